# The only ways things get installed: `make demo` and `make test` create .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-compare clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	$(BIN)/lint-imports

# Byte-compile first: with PYTHONDONTWRITEBYTECODE set, every run would compile the sources again.
bench: $(STAMP)
	$(BIN)/python -m compileall -q src
	$(BIN)/python bench/data.py
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/tracking.py
	$(BIN)/python bench/gates.py
	bash bench/install_wrk.sh >/dev/null
	$(BIN)/python bench/serving.py
	$(BIN)/python bench/serving_memory.py
	$(BIN)/python bench/deploy.py
	$(BIN)/python bench/monitor.py
	$(BIN)/python bench/monitor_drift.py
	$(BIN)/python bench/install_size.py

bench-compare: $(STAMP)
	$(BIN)/python -m compileall -q src
	bash bench/install_dvc.sh
	$(BIN)/python bench/data.py --compare-dvc bench/.work/dvc-venv/bin/dvc --repeat 3
	$(BIN)/python bench/pipeline.py --compare-dvc bench/.work/dvc-venv/bin/dvc
	$(BIN)/python bench/tracking.py --compare-mlflow "$$(bash bench/install_mlflow.sh)"
	$(BIN)/python bench/gates.py
	bash bench/install_wrk.sh >/dev/null
	$(BIN)/python bench/serving.py --compare-mlflow "$$(bash bench/install_mlflow.sh)" \
		--compare-mlserver "$$(bash bench/install_mlserver.sh)"
	$(BIN)/python bench/monitor_drift.py --compare-evidently "$$(bash bench/install_evidently.sh)"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
