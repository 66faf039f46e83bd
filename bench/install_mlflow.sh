#!/usr/bin/env bash
# Install MLflow into a throwaway venv for `make bench-compare`.
# Usage: bash bench/install_mlflow.sh   (prints the path of that venv's python)
set -euo pipefail

MLFLOW_VERSION="${MLFLOW_VERSION:-3.17.2}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.work/mlflow-venv"
python="$venv/bin/python"

installed() {
    "$python" -c 'import importlib.metadata as m; print(m.version("mlflow"))' 2>/dev/null
}

if [ -x "$python" ] && [ "$(installed)" = "$MLFLOW_VERSION" ]; then
    echo "$python"
    exit 0
fi

mkdir -p "$here/.work"
if [ ! -x "$python" ]; then
    python3 -m venv "$venv"
fi
"$python" -m pip install --quiet --disable-pip-version-check \
    "mlflow==$MLFLOW_VERSION" >&2
echo "mlflow $(installed)" >&2
echo "$python"
