#!/usr/bin/env bash
# Sets everything up, then runs the default coevolution (3 generations of
# AC/DC on SmolLM2-135M-Instruct). Extra arguments go to acdc-engine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/acdc-engine --plugins merge,taskgen "$@"
