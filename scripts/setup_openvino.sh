#!/usr/bin/env bash
# Sets up the openvino generation backend (plugins/generation/openvino_backend.py)
# and its measurements (benchmarks/backends.py, benchmarks/openvino_speed.py):
# the `openvino` extra (runtime, GenAI, tokenizers; prebuilt wheels, 274 MB)
# into .venv, and .venv-openvino-export, used only to convert a checkpoint
# with optimum-intel, in an environment of its own because optimum-intel 2.2
# pins transformers<5.6 (the project needs >=5.19). The default run never
# needs them; the test command (scripts/test.sh) runs this. Safe to re-run: it
# reinstalls only when this file or pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=${PYTHON:-python3}
stamp=.venv-openvino-export/.setup-stamp
want=$(cat pyproject.toml scripts/setup_openvino.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setting up OpenVINO: the openvino extra in .venv, and .venv-openvino-export (first time: about 2 minutes)"
PYTHONWARNINGS=ignore .venv/bin/pip install --quiet -e ".[openvino]"
"$PY" -m venv .venv-openvino-export
.venv-openvino-export/bin/pip install --quiet --upgrade "pip>=24" "setuptools>=77" wheel
.venv-openvino-export/bin/pip install --quiet "torch==2.13.0"  # the local CPU build first, as in setup.sh
.venv-openvino-export/bin/pip install --quiet "torch==2.13.0" "optimum-intel[openvino]==2.2.0" "nncf==3.4.0" \
  "openvino==2026.4.1" "openvino-tokenizers==2026.4.1.0"
# the export fails with "operator torchvision::nms does not exist" while torchvision is present
.venv-openvino-export/bin/pip uninstall --quiet -y torchvision || true
echo "$want" > "$stamp"
