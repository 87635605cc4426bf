#!/usr/bin/env bash
# The dependency floors are true: install every dependency of pyproject.toml (and of its "test" extra) pinned
# at the floor it declares ("numpy>=2.0" -> "numpy==2.0"), in a fresh virtual environment, then run the test
# suite there. torch's floor is 2.13, the oldest torch this test can install here (a CPU build).
#
#   bash .ci/min_versions.sh [VENV_DIR]        # default /tmp/maso-minvenv; PYTHON=python3.11 by default
#
# Not part of .ci/run: it installs about 1 GB and runs the whole suite once more (about 10 minutes on 2 cores).
# Last run: 568 passed, 1 skipped (numpy 2.0.0, scipy 1.13.0, torch 2.13.0+cpu, daqp 0.8.4, Python 3.11).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-/tmp/maso-minvenv}
PYTHON=${PYTHON:-python3.11}

mapfile -t PINS < <("$PYTHON" - <<'PY'
import re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
for req in project["dependencies"] + project["optional-dependencies"]["test"]:
    m = re.fullmatch(r"\s*([A-Za-z0-9_.\-\[\]]+)\s*>=\s*([0-9][0-9A-Za-z.]*)\s*", req)
    if not m:
        raise SystemExit(f"min_versions.sh: {req!r} has no '>=' floor to pin")
    print(f"{m[1]}=={m[2]}")
PY
)
echo "floors: ${PINS[*]}"
"$PYTHON" -m venv --clear "$VENV"
"$VENV/bin/pip" install -q "${PINS[@]}"
"$VENV/bin/pip" install -q --no-deps -e .
"$VENV/bin/pip" check
"$VENV/bin/python" -c "import numpy, scipy, torch; print('numpy', numpy.__version__, 'scipy', scipy.__version__, 'torch', torch.__version__)"
"$VENV/bin/python" -m pytest -x -p no:cacheprovider "${@:2}"   # quiet already (addopts); ends with "N passed"
