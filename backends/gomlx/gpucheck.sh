#!/usr/bin/env bash
# gpucheck.sh PJRT_PLUGIN|auto [PEAK_TFLOPS]
#
# On a GPU machine: runs the conformance suite on XLA (float32) and a
# training benchmark on a 1B-class Llama (Llama 3.2 1B's architecture, bf16
# compute, f32 master weights), printing tokens/s and MFU against the card's
# dense bf16 peak.
#
# PJRT_PLUGIN is the absolute path of a PJRT plugin, e.g. the CUDA one in
# JAX's jax-cuda13-pjrt wheel (…/jax_plugins/xla_cuda13/xla_cuda_plugin.so);
# "auto" looks for one under /usr, /opt, /root and /home. Nothing is
# downloaded. A machine without network access cannot build: prepare the
# binaries where Go modules are reachable and carry them over:
#
#	GPUCHECK_BIN=backends/gomlx/gpucheck/bin backends/gomlx/gpucheck.sh --build-only
#	(then, on the GPU machine) GPUCHECK_BIN=backends/gomlx/gpucheck/bin backends/gomlx/gpucheck.sh auto
#
# One run takes about 5–10 minutes, mostly XLA compilation. Override the
# benchmark shape with BATCH, SEQ, STEPS (defaults 8×512, 10 timed steps:
# about 50 GB of an 80 GB card).
set -euo pipefail
cd "$(dirname "$0")/../.."

bin=${GPUCHECK_BIN:-}
build() {
  mkdir -p "$1"
  go test -c -o "$1/gomlx.test" ./backends/gomlx
  go build -o "$1/gpucheck" ./backends/gomlx/gpucheck
}
if [ "${1:-}" = "--build-only" ]; then
  build "${bin:?set GPUCHECK_BIN to the directory for the binaries}"
  exit 0
fi
if [ -z "$bin" ]; then
  bin=$(mktemp -d)
  build "$bin"
fi
bin=$(cd "$bin" && pwd)

plugin=${1:?usage: gpucheck.sh /abs/path/to/pjrt_plugin.so|auto [peak_bf16_tflops]}
if [ "$plugin" = auto ]; then
  plugin=$(find /usr /opt /root /home -name 'xla_cuda_plugin.so' -o -name 'pjrt_c_api_gpu_plugin.so' -o -name 'pjrt_plugin_xla_cuda*.so' 2>/dev/null | head -1 || true)
  [ -n "$plugin" ] || { echo "gpucheck: no PJRT plugin found under /usr /opt /root /home; pass its path" >&2; exit 2; }
  echo "gpucheck: using PJRT plugin $plugin"
fi
case "$plugin" in /*) ;; *) echo "gpucheck: the PJRT plugin path must be absolute" >&2; exit 2 ;; esac
[ -f "$plugin" ] || { echo "gpucheck: no file $plugin" >&2; exit 2; }

peak=${2:-}
if [ -z "$peak" ] && command -v nvidia-smi >/dev/null; then
  name=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
  # Dense bf16 tensor-core peaks (TFLOP/s) from NVIDIA's data sheets.
  case "$name" in
    *H200*|*GH200*) peak=989 ;;
    *H100*PCIe*)    peak=756 ;;
    *H100*NVL*)     peak=835 ;;
    *H100*)         peak=989 ;;
    *B200*)         peak=2250 ;;
    *A100*)         peak=312 ;;
    *L40S*)         peak=362 ;;
    *L4*)           peak=121 ;;
    *A10*)          peak=125 ;;
    *)              peak=0 ;;
  esac
  echo "gpucheck: device $name, dense bf16 peak ${peak} TFLOP/s"
  nvidia-smi -L
fi

export MARIN_PJRT_PLUGIN="$plugin" GOMLX_NO_AUTO_INSTALL=1 GOPJRT_CUDA_CHECKS=0 GOMLX_BACKEND="xla:$plugin"
echo "== conformance (xla, float32)"
# The suite's float32 tolerances need float32 matmuls, not TF32.
(cd backends/gomlx && NVIDIA_TF32_OVERRIDE=0 "$bin/gomlx.test" -test.run 'TestConformanceXLA' -test.count=1 -test.v -test.timeout 8m 2>&1 |
  grep -v '^=== RUN' | tail -40) || echo "gpucheck: conformance FAILED"

echo "== training benchmark (Llama 3.2 1B architecture, bf16)"
"$bin/gpucheck" -engine xla -pjrt "$plugin" -model 1b \
  -batch "${BATCH:-8}" -seq "${SEQ:-512}" -warmup 2 -steps "${STEPS:-10}" -peak-tflops "${peak:-0}"
