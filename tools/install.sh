#!/usr/bin/env bash
# Install mmovl and the OpenMMLab stack it is tested with. Idempotent: a
# second run checks each piece and installs only what is missing.
#
#   bash tools/install.sh
#
# The environment: the active virtualenv if there is one, else $MMOVL_VENV,
# else .venv in the repository (created with $PYTHON, default python3).
# mmcv is source-only on PyPI; this compiles its ops (~9 min on 2 cores) and
# handles the traps listed in docs: setuptools<80 (mmcv's setup.py imports
# pkg_resources), --no-build-isolation (its build imports torch) and C++20
# (torch >= 2.10 headers need it, mmcv forces -std=c++17).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV=${VIRTUAL_ENV:-${MMOVL_VENV:-$ROOT/.venv}}
PY="$VENV/bin/python"
say() { echo "[mmovl install] $*"; }

if [[ ! -x "$PY" ]]; then
    say "creating virtualenv $VENV"
    "${PYTHON:-python3}" -m venv "$VENV"
fi
pip_q() { "$PY" -m pip install --disable-pip-version-check -q "$@"; }

# True when every NAME==VERSION argument is installed at that version.
have() {
    "$PY" - "$@" <<'PYEOF'
import sys
from importlib.metadata import PackageNotFoundError, version
for req in sys.argv[1:]:
    name, want = req.split('==')
    try:
        if version(name) != want:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PYEOF
}

pip_q -r requirements/build.txt

torch_reqs=$(grep -E '^torch(vision)?==' requirements/runtime.txt | tr '\n' ' ')
if ! have $torch_reqs; then
    say "installing $torch_reqs"
    pip_q $torch_reqs
fi
# torch pulls in an unpinned setuptools; put the pin back before mmcv builds.
pip_q -r requirements/build.txt

mmcv_req=$(grep -E '^mmcv==' requirements/mminstall.txt)
if ! have "$mmcv_req" || ! "$PY" -c 'import mmcv.ops' 2>/dev/null; then
    say "building $mmcv_req with its compiled ops (about 9 minutes on 2 cores)"
    wrap_dir=$(mktemp -d)
    trap 'rm -rf "$wrap_dir"' EXIT
    # gcc keeps the last -std flag: append C++20 after mmcv's -std=c++17.
    printf '#!/bin/sh\nexec %s "$@" -std=gnu++20\n' "${CXX:-g++}" > "$wrap_dir/cxx"
    chmod +x "$wrap_dir/cxx"
    CXX="$wrap_dir/cxx" MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
        "$PY" -m pip install --disable-pip-version-check \
        --no-build-isolation "$mmcv_req"
fi

say "installing the OpenMMLab packages, open_clip and mmovl"
pip_q -r requirements/mminstall.txt -r requirements/runtime.txt \
    -r requirements/tests.txt
pip_q --no-build-isolation --no-deps -e .
"$PY" -c 'import mmovl; print("[mmovl install] mmovl", mmovl.__version__, "ready in", __import__("sys").prefix)'
