#!/usr/bin/env bash
# Install MLServer (KServe's Python runtime) and its scikit-learn runtime into a throwaway venv
# for `make bench-compare`.
# Usage: bash bench/install_mlserver.sh   (prints the path of that venv's python)
set -euo pipefail

MLSERVER_VERSION="${MLSERVER_VERSION:-1.7.1}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.work/mlserver-venv"
python="$venv/bin/python"

installed() {
    "$python" -c 'import importlib.metadata as m; print(m.version("mlserver"), m.version("mlserver-sklearn"))' 2>/dev/null
}

if [ -x "$python" ] && [ "$(installed)" = "$MLSERVER_VERSION $MLSERVER_VERSION" ]; then
    echo "$python"
    exit 0
fi

mkdir -p "$here/.work"
if [ ! -x "$python" ]; then
    python3 -m venv "$venv"
fi
"$python" -m pip install --quiet --disable-pip-version-check \
    "mlserver==$MLSERVER_VERSION" "mlserver-sklearn==$MLSERVER_VERSION" >&2
echo "mlserver $(installed)" >&2
echo "$python"
