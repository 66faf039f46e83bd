#!/usr/bin/env bash
# Install DVC into a throwaway venv for `make bench-compare`.
# Usage: bash bench/install_dvc.sh   (prints the path of the dvc executable)
set -euo pipefail

DVC_VERSION="${DVC_VERSION:-3.67.1}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.work/dvc-venv"
dvc="$venv/bin/dvc"

if [ -x "$dvc" ] && "$dvc" --version 2>/dev/null | grep -qx "$DVC_VERSION"; then
    echo "$dvc"
    exit 0
fi

mkdir -p "$here/.work"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "dvc==$DVC_VERSION" >&2
"$dvc" --version >&2
echo "$dvc"
