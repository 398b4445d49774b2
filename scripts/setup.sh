#!/usr/bin/env bash
# Create .venv (Python >= 3.11) and install trilm-jax into it. Idempotent.
#   ./scripts/setup.sh        the test set-up: the package with its dev extras (what CI runs)
#   ./scripts/setup.sh run    the package alone: enough to train, generate and launch
#
# The dev extras include torch (CPU) for the Hugging Face parity tests. torch is pinned to 2.13.0
# before anything else asks for it: on our CI machines pip takes that release from a local
# CPU-only wheel; an unpinned torch would pull a multi-GB CUDA build.
#   TRILM_NO_TORCH=1   skip torch and transformers (their tests then skip, saying so)
#   TRILM_LLAMACPP=1   also build llama-cpp-python (~5 min) for the GGUF logit-agreement test
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip install --quiet)
"${PIP[@]}" --upgrade pip
if [ "${1:-dev}" = "run" ]; then
  "${PIP[@]}" -e .
  exit 0
fi
extras="dev"
if [ "${TRILM_NO_TORCH:-0}" = "1" ]; then
  extras="scaling,export"
  "${PIP[@]}" "pytest>=8" "ruff>=0.6"
elif ! .venv/bin/python -c "import torch" 2>/dev/null; then
  "${PIP[@]}" "torch==2.13.0"
fi
if [ "${TRILM_LLAMACPP:-0}" = "1" ]; then
  extras="$extras,llamacpp"
fi
"${PIP[@]}" -e ".[$extras]"
