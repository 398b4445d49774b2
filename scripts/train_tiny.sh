#!/usr/bin/env bash
# Set up (if needed) and train the default tiny TriLM on the bundled corpus, end to end:
# metrics, checkpoints under runs/tiny, and a generated sample at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh run
# A fresh run directory each time, so a second run never meets the first one's checkpoints.
.venv/bin/trilm train --config configs/runs/tiny.yaml "train.out_dir=runs/tiny-$(date +%Y%m%d-%H%M%S)" "$@"
