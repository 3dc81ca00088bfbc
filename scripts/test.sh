#!/usr/bin/env bash
# Sets everything up, then runs the whole test suite: the main environment
# (.venv, with the Ray and OpenVINO extras), then the vLLM backend in its own (.venv-vllm).
# With arguments, runs only those pytest arguments in the main environment.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup_openvino.sh  # the openvino backend's extra and export environment (its tests need them)
if [ $# -gt 0 ]; then
  exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
fi
.venv/bin/python -m pytest -q -p no:cacheprovider
bash scripts/setup_vllm.sh
exec .venv-vllm/bin/python -m pytest -q -p no:cacheprovider tests_vllm
