#!/usr/bin/env bash
# Install IPL with its test tools into .venv and run lint, types and the test suite.
# torch is installed first and pinned: any other torch requirement pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
# The seller page's tests drive Debian's Chromium through Playwright (never a browser download).
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then
  sudo=$([ "$(id -u)" = 0 ] || echo sudo)
  $sudo apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
fi
python3 -m venv .venv
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q '.[test]'
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/pytest "$@"
