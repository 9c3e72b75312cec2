#!/usr/bin/env bash
# Run the test suite from a fresh checkout: a virtual environment with the project
# and its test extras, Debian's chromium for the report screenshot test, then the
# linters (ruff check, ruff format --check, mypy on src; settings in pyproject.toml), then pytest.
# --quick runs the fast lane only (pytest -m "not slow").  Other arguments go to
# pytest.  VENV selects the environment (default .venv).
# pytest's exit code 5 (no tests collected) is turned into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
quick=0
args=()
for a in "$@"; do
    if [ "$a" = "--quick" ]; then quick=1; else args+=("$a"); fi
done
if [ "$quick" -eq 1 ]; then
    args=(-m "not slow" ${args[@]+"${args[@]}"})
fi

if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing Debian's chromium for the report screenshot test" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "warning: chromium not found; install it (apt-get install chromium) or the report screenshot test fails" >&2
    fi
fi

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
# The CPU wheel of the torch the tests run on (the machines this project runs on keep
# it on disk, where pip finds it; PyPI alone is reached), first (alone: its dependencies come from
# PyPI with the project's): the project accepts any torch in its declared range, so the
# next line keeps this one and never pulls a CUDA build.
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
    "$VENV/bin/python" -m pip install -q --no-deps "torch==2.13.0"
fi
"$VENV/bin/python" -m pip install -q -e ".[test]"
# easyfsl (a test dependency: tests/pipeline/test_eval_demo.py runs its TaskSampler and
# PrototypicalNetworks on a SplitDataset) declares torchvision, and pip would then replace this
# project's torch with the one that torchvision pins. Installed without dependencies; its runtime
# needs here are torch, tqdm, pandas and Pillow (already installed), and the import-time names it
# takes from torchvision come from tests/pipeline/torchvision_stub when torchvision is absent.
"$VENV/bin/python" -m pip install -q --no-deps "easyfsl==1.5.0"

echo "ruff check src tests bench" >&2
"$VENV/bin/python" -m ruff check src tests bench
echo "ruff format --check src tests bench" >&2
"$VENV/bin/python" -m ruff format --check src tests bench
echo "mypy (src)" >&2
"$VENV/bin/python" -m mypy

export AUDIOSET_FEWSHOT_PROGRESS="${AUDIOSET_FEWSHOT_PROGRESS:-0}"
set +e
"$VENV/bin/python" -m pytest -q -p no:cacheprovider ${args[@]+"${args[@]}"}
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: failing" >&2
    exit 1
fi
exit "$rc"
