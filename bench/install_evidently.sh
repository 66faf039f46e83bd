#!/usr/bin/env bash
# Install Evidently into a throwaway venv for bench/monitor_drift.py --compare-evidently.
# Usage: bash bench/install_evidently.sh   (prints the path of that venv's python)
set -euo pipefail

EVIDENTLY_VERSION="${EVIDENTLY_VERSION:-0.7.23}"
# Evidently 0.7 imports a helper pandas 3 removed; pyarrow reads the benchmark's Parquet files.
EXTRA=("pandas==2.3.3" "pyarrow")
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.work/evidently-venv"
python="$venv/bin/python"

installed() {
    "$python" -c 'import importlib.metadata as m; print(m.version("evidently"))' 2>/dev/null
}

if [ -x "$python" ] && [ "$(installed)" = "$EVIDENTLY_VERSION" ] \
    && "$python" -c 'import evidently.presets, pyarrow' 2>/dev/null; then
    echo "$python"
    exit 0
fi

mkdir -p "$here/.work"
if [ ! -x "$python" ]; then
    python3 -m venv "$venv"
fi
"$python" -m pip install --quiet --disable-pip-version-check \
    "evidently==$EVIDENTLY_VERSION" "${EXTRA[@]}" >&2
echo "evidently $(installed)" >&2
echo "$python"
