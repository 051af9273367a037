#!/usr/bin/env bash
# One command on a fresh machine: set up .venv, lint, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/mypy  # the packages of [tool.mypy] in pyproject.toml: zero errors
exec .venv/bin/python -m pytest -q -m "not gpu" --timeout 900 "$@"
