#!/usr/bin/env bash
# Install wrk (the HTTP load generator bench/serving.py drives) from Debian's packages.
# Usage: bash bench/install_wrk.sh   (prints the path of wrk; needs root or sudo if missing)
set -euo pipefail

if ! command -v wrk >/dev/null 2>&1; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    $sudo apt-get install -y -q wrk >&2 || {
        $sudo apt-get update -q >&2
        $sudo apt-get install -y -q wrk >&2
    }
fi
command -v wrk
