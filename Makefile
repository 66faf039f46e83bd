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

# The orchestrators the export tests run (tests/pipeline/orchestrators.py): each in a venv of its
# own, as they pin packages older than the project's (Airflow: fastapi; kfp: protobuf, requests).
TOOLS := .venv-tools
AIRFLOW := apache-airflow==3.3.2 apache-airflow-providers-cncf-kubernetes==10.25.0
KFP := kfp==2.17.3

$(TOOLS)/airflow/.installed:
	$(PYTHON) -m venv $(TOOLS)/airflow
	$(TOOLS)/airflow/bin/pip install --quiet --disable-pip-version-check $(AIRFLOW)
	touch $@

$(TOOLS)/kfp/.installed:
	$(PYTHON) -m venv $(TOOLS)/kfp
	$(TOOLS)/kfp/bin/pip install --quiet --disable-pip-version-check $(KFP)
	touch $@

demo: $(STAMP)
	$(BIN)/python examples/demo.py

test: $(STAMP) $(TOOLS)/airflow/.installed $(TOOLS)/kfp/.installed
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
	$(BIN)/python bench/ray_executor.py

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
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
