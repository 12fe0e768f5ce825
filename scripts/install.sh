#!/usr/bin/env bash
# Install ray_nasrank and everything it needs, idempotently.
#   scripts/install.sh            # core + Tune + Optuna + test/doc tools ([dev])
# Torch: a CPU build is installed first (an unpinned 'torch' would pull several GB of CUDA wheels).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
stamp=.make/installed
mkdir -p .make
# The check runs outside the repo: from its root, `import ray_nasrank` finds the folder itself even
# when the editable install points at another (moved or deleted) checkout.
repo=$PWD
if [ -f "$stamp" ] && [ "$stamp" -nt setup.cfg ] && (cd / && "$PY" -c "
import pathlib, sys, ray_nasrank, torch, ray.tune, optuna
sys.exit(pathlib.Path(ray_nasrank.__file__).resolve().parents[1] != pathlib.Path(sys.argv[1]).resolve())" "$repo") 2>/dev/null; then
  exit 0
fi
if ! "$PY" -c "import torch" 2>/dev/null; then
  # Prefer a local CPU wheel (pip's find-links), then PyTorch's CPU index.
  "$PY" -m pip install -q "torch==2.13.0" 2>/dev/null \
    || "$PY" -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu
fi
"$PY" -m pip install -q -e ".[dev]"
# Fashion-MNIST for the main job comes from Debian's package where apt is there and we are root.
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
    || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1)) \
    || echo "note: could not install dataset-fashion-mnist; use --dataset digits or set NASRANK_FASHION_MNIST" >&2
fi
touch "$stamp"
