#!/usr/bin/env bash
# Every GPU measurement of docs/PERFORMANCE.md in one call, in under 8 minutes on one H100/H200:
#   bash benchmarks/speed/gpu.sh               # on the GPU machine: the table, then the CPU = GPU agreement tests
#   bash benchmarks/speed/gpu.sh --dry-run     # anywhere: the same code with the tiny preset on the CPU
#   bash benchmarks/speed/gpu.sh --fetch-wheels  # on a machine with PyPI: fill .whl/ with the pinned wheels
#
# The GPU machine may have other versions of our pinned libraries (or no network): wheels found in .whl/ (git-ignored;
# carry it along) are installed into a private folder first, without touching the machine's own packages. torch is
# the machine's CUDA build. The Markdown table is printed at the end and written to $OUT/gpu_table.md (or
# /tmp/gpu_table.md); paste it into docs/PERFORMANCE.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
MODE=${1:-run}
# Pins from setup.py that the GPU image is known to lack (transformers 5.17 there, 5.23 here) or to differ in, and
# regex, which transformers 5.23 checks at import (>= 2025.10.22); the image's other libraries satisfy its needs.
WHEELS=("transformers==5.23.0" "tokenizers==0.23.3" "regex==2026.11.19")

case "$MODE" in
  --fetch-wheels)
    mkdir -p .whl
    "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d .whl "${WHEELS[@]}"
    ls -la .whl
    exit 0 ;;
  --dry-run|run) ;;
  *) echo "usage: $0 [--dry-run | --fetch-wheels]" >&2; exit 2 ;;
esac

export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
SITE=""
if [[ "$MODE" == run ]] && compgen -G ".whl/*.whl" >/dev/null; then
  SITE=/tmp/bridgevla-site
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl
fi
export PYTHONPATH="${SITE:+$SITE:}$PWD"
OUTDIR=${OUT:-/tmp}
START=$(date +%s)

"$PY" - <<'EOF'
import torch, transformers
print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
      f"CUDA {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
EOF

if [[ "$MODE" == --dry-run ]]; then
  timeout 1500 "$PY" -m bridgevla.scripts.speed_gpu --dry-run --out "$OUTDIR/gpu_table.md"
else
  # Rows that would start after 270 s are skipped (and say so); the table file is rewritten after every row, so a
  # run stopped by the timeout keeps what it measured. Leaves time for the tests below within 8 minutes.
  timeout 360 "$PY" -m bridgevla.scripts.speed_gpu --budget-s 270 --out "$OUTDIR/gpu_table.md" || \
    echo "gpu.sh: speed_gpu stopped early (exit $?); the rows measured so far are in $OUTDIR/gpu_table.md"
fi

# CPU = GPU agreement (and no host<->device synchronisation inside a keypose): the CUDA tests, skipped on a CPU.
timeout 90 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/rendering tests/bridgevla/model/test_policy.py

echo "gpu.sh: done in $(( $(date +%s) - START )) s; table in $OUTDIR/gpu_table.md"
