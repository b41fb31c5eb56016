#!/usr/bin/env bash
# gpucheck.sh PJRT_PLUGIN [PEAK_TFLOPS]
#
# On a GPU machine: runs the conformance suite on XLA (float32) and a
# training benchmark on a 1B-class Llama (Llama 3.2 1B's architecture, bf16
# compute, f32 master weights), printing tokens/s and MFU against the card's
# dense bf16 peak. PJRT_PLUGIN is the absolute path of a PJRT plugin, e.g.
# the CUDA one inside JAX's jax-cuda13-pjrt wheel
# (…/site-packages/jax_plugins/xla_cuda13/xla_cuda_plugin.so). Nothing is
# downloaded. One run takes about 5–10 minutes (mostly compilation).
# Override the benchmark shape with BATCH, SEQ, STEPS.
set -euo pipefail
cd "$(dirname "$0")/../.."

plugin=${1:?usage: gpucheck.sh /abs/path/to/pjrt_plugin.so [peak_bf16_tflops]}
case "$plugin" in /*) ;; *) echo "gpucheck: the PJRT plugin path must be absolute" >&2; exit 2 ;; esac
[ -f "$plugin" ] || { echo "gpucheck: no file $plugin" >&2; exit 2; }

peak=${2:-}
if [ -z "$peak" ] && command -v nvidia-smi >/dev/null; then
  name=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
  # Dense bf16 tensor-core peaks (TFLOP/s) from NVIDIA's data sheets.
  case "$name" in
    *H200*|*GH200*)          peak=989 ;;
    *H100*PCIe*)             peak=756 ;;
    *H100*NVL*)              peak=835 ;;
    *H100*)                  peak=989 ;;
    *B200*)                  peak=2250 ;;
    *A100*)                  peak=312 ;;
    *L40S*)                  peak=362 ;;
    *L4*)                    peak=121 ;;
    *A10*)                   peak=125 ;;
    *)                       peak=0 ;;
  esac
  echo "gpucheck: device $name, bf16 peak ${peak} TFLOP/s"
  nvidia-smi -L
fi

export MARIN_PJRT_PLUGIN="$plugin" GOMLX_NO_AUTO_INSTALL=1 GOPJRT_CUDA_CHECKS=0
export GOMLX_BACKEND="xla:$plugin"
# The suite's float32 tolerances need real float32 matmuls, not TF32.
echo "== conformance (xla, float32)"
NVIDIA_TF32_OVERRIDE=0 go test ./backends/gomlx -run 'TestConformanceXLA' -count=1 -v -timeout 8m 2>&1 | grep -v '^=== RUN' | tail -40

echo "== training benchmark (Llama 3.2 1B architecture, bf16)"
go run ./backends/gomlx/gpucheck -engine xla -pjrt "$plugin" -model 1b \
  -batch "${BATCH:-8}" -seq "${SEQ:-1024}" -warmup 2 -steps "${STEPS:-10}" -peak-tflops "${peak:-0}"
