#!/usr/bin/env bash
# Install IPL with its test tools into .venv and run lint, types and the test suite.
# torch is installed first and pinned: any other torch requirement pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q '.[test]'
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/pytest "$@"
