#!/usr/bin/env bash
# One command on a fresh machine: set up .venv, then run the quickstart study on bundled data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/nas run studies/quickstart.py "$@"
