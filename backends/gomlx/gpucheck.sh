#!/usr/bin/env bash
# gpucheck.sh PJRT_PLUGIN|auto [PEAK_TFLOPS]
#
# The gomlx engine's checks on a GPU machine, in about ten minutes, each part
# under its own time limit, figures appended as JSON lines to $GPUCHECK_OUT
# (default ./gpucheck-figures.jsonl) and the log to $GPUCHECK_OUT.log:
#
#   (a) conformance: the engine suite on XLA in float32 (TF32 off), and the
#       same numbers as the pure-Go CPU reference (TestConformanceXLA*);
#   (b) throughput: a 1B Llama (Llama 3.2 1B's architecture, random init,
#       bf16 compute) training: tokens/s, MFU against the card's measured
#       bf16 matmul rate and against the data sheet's;
#   (c) fit: three steps of a random-init Llama-3.1-8B full fine-tune at
#       sequence length 4096 in the lean policy (bf16 weights with Kahan
#       compensation, bf16 moments, per-layer activation checkpointing):
#       tokens/s and peak device memory (nvidia-smi sampled every 200 ms with
#       XLA's preallocation off), next to the memory plan's estimate;
#       then a LoRA r=16 adapter over every linear projection the same way
#       (frozen bf16 base, lean adapter);
#   (d) export: a small model trained on XLA, its hf/ export loaded by the
#       machine's own transformers, and a LoRA adapter trained over it
#       (PEFT's layout) by peft where installed, logits compared with ours
#       (compare_hf.py).
#
# PJRT_PLUGIN is the absolute path of a PJRT plugin, e.g. the CUDA one in
# JAX's jax-cuda13-pjrt package (…/jax_plugins/xla_cuda13/xla_cuda_plugin.so);
# "auto" asks the machine's Python where jax_plugins is, then searches /usr,
# /opt, /root and /home. Nothing is downloaded. The GPU machine has no Go
# toolchain: build the binaries where Go modules are reachable and carry
# them over (linux/amd64):
#
#	GPUCHECK_BIN=backends/gomlx/gpucheck/bin backends/gomlx/gpucheck.sh --build-only
#	(then, on the GPU machine) GPUCHECK_BIN=backends/gomlx/gpucheck/bin backends/gomlx/gpucheck.sh auto
#
# Without a GPU the CPU-capable parts run on GoMLX's pure-Go engine at small
# sizes: backends/gomlx/gpucheck.sh --cpu (what was run where this was
# written; the GPU parts have not been run).
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

bin=${GPUCHECK_BIN:-}
build() {
  mkdir -p "$1"
  GOOS=linux GOARCH=amd64 go test -c -o "$1/gomlx.test" ./backends/gomlx || return 1
  GOOS=linux GOARCH=amd64 go build -o "$1/gpucheck" ./backends/gomlx/gpucheck || return 1
}
if [ "${1:-}" = "--build-only" ]; then
  build "${bin:?set GPUCHECK_BIN to the directory for the binaries}" || exit 1
  exit 0
fi
if [ -z "$bin" ]; then
  bin=$(mktemp -d)
  build "$bin" || exit 1
fi
bin=$(cd "$bin" && pwd)
out=${GPUCHECK_OUT:-$root/gpucheck-figures.jsonl}
case "$out" in /*) ;; *) out="$root/$out" ;; esac
log="$out.log"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
py=${PYTHON:-python3}
: >>"$out"
note() { echo "$*" | tee -a "$log"; }
# fig CHECK STATUS [key=value…]: a JSON line for a part that failed or
# timed out (the binaries write their own lines when they succeed).
fig() {
  local check=$1 status=$2; shift 2
  printf '{"check":"%s","status":"%s","time":"%s"%s}\n' "$check" "$status" "$(date -u +%FT%TZ)" \
    "$(for kv in "$@"; do printf ',"%s":"%s"' "${kv%%=*}" "${kv#*=}"; done)" >>"$out"
}
# run CHECK SECONDS CMD…: a part under its time limit, its output logged.
run() {
  local check=$1 secs=$2; shift 2
  note "== $check (at most ${secs}s): $*"
  local t0=$SECONDS
  timeout --kill-after=10 "$secs" "$@" 2>&1 | tee -a "$log" | tail -25
  local rc=${PIPESTATUS[0]}
  note "== $check: exit $rc after $((SECONDS - t0))s"
  case $rc in
    0) ;;
    124|137) fig "$check" timeout "seconds=$secs" ;;
    *) fig "$check" failed "exit=$rc" ;;
  esac
  return 0
}

if [ "${1:-}" = "--cpu" ]; then
  # The parts that run without a GPU, on the pure-Go engine, small.
  note "gpucheck --cpu: pure-Go engine, small sizes; figures in $out"
  run conformance 600 bash -c "cd '$root/backends/gomlx' && '$bin/gomlx.test' -test.run 'TestConformance\$|TestConformanceAgainstCPU' -test.count=1 -test.timeout 9m"
  run bench 300 "$bin/gpucheck" -mode bench -engine go -model small -batch 2 -seq 128 -warmup 1 -steps 2 -out "$out"
  run fit 300 "$bin/gpucheck" -mode fit -engine go -model small -seq 256 -steps 2 -out "$out"
  run fit_lora 300 "$bin/gpucheck" -mode fit -engine go -model small -seq 256 -steps 2 -lora 8 -out "$out"
  run export 300 "$bin/gpucheck" -mode export -engine go -dir "$work/export" -out "$out"
  ref=transformers
  "$py" -c 'import transformers' 2>/dev/null || ref=torch
  run hf_export 300 "$py" backends/gomlx/gpucheck/compare_hf.py "$work/export" --reference "$ref" --out "$out"
  note "figures: $out"
  exit 0
fi

plugin=${1:?usage: gpucheck.sh /abs/path/to/pjrt_plugin.so|auto [peak_bf16_tflops] | --cpu | --build-only}
if [ "$plugin" = auto ]; then
  plugin=$("$py" - <<'EOF' 2>/dev/null
import glob, os
try:
    import jax_plugins
    for d in jax_plugins.__path__:
        for p in glob.glob(os.path.join(d, "**", "xla_cuda_plugin.so"), recursive=True):
            print(p)
            raise SystemExit
except ImportError:
    pass
EOF
  )
  [ -n "$plugin" ] || plugin=$(find /usr /opt /root /home -name 'xla_cuda_plugin.so' -o -name 'pjrt_c_api_gpu_plugin.so' -o -name 'pjrt_plugin_xla_cuda*.so' 2>/dev/null | head -1 || true)
  [ -n "$plugin" ] || { echo "gpucheck: no PJRT plugin found (jax_plugins, /usr /opt /root /home); pass its path" >&2; exit 2; }
fi
case "$plugin" in /*) ;; *) echo "gpucheck: the PJRT plugin path must be absolute" >&2; exit 2 ;; esac
[ -f "$plugin" ] || { echo "gpucheck: no file $plugin" >&2; exit 2; }
note "gpucheck: PJRT plugin $plugin; figures in $out"

peak=${2:-0}
if command -v nvidia-smi >/dev/null; then
  name=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
  if [ "$peak" = 0 ]; then
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
    esac
  fi
  note "gpucheck: device $name, data sheet dense bf16 peak ${peak} TFLOP/s"
  nvidia-smi -L | tee -a "$log"
  fig device ok "name=$name" "datasheet_tflops=$peak" "plugin=$plugin"
fi

export MARIN_PJRT_PLUGIN="$plugin" GOMLX_NO_AUTO_INSTALL=1 GOPJRT_CUDA_CHECKS=0

# (a) The conformance suite's float32 tolerances need float32 matmuls, not TF32.
run conformance 180 env NVIDIA_TF32_OVERRIDE=0 bash -c "cd '$root/backends/gomlx' && '$bin/gomlx.test' -test.run 'TestConformanceXLA' -test.count=1 -test.v -test.timeout 170s"
grep -E -- '^(--- |ok|FAIL|PASS)' "$log" | grep -E 'Conformance' | tail -5 | while read -r l; do note "$l"; done

# (b) Throughput of a 1B Llama in bf16.
run bench 150 "$bin/gpucheck" -mode bench -engine xla -pjrt "$plugin" -model 1b \
  -batch "${BATCH:-8}" -seq "${SEQ:-2048}" -warmup 2 -steps "${STEPS:-5}" -peak-tflops "$peak" -out "$out"

# (c) Llama-3.1-8B, lean, seq 4096: peak memory as nvidia-smi sees it with
# XLA's preallocation off.
mem() {
  local check=$1; shift
  local samples="$work/$check.mem"
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$samples" 2>/dev/null &
  local smi=$!
  MARIN_XLA_PREALLOCATE=false run "$check" 240 "$@"
  kill "$smi" 2>/dev/null; wait "$smi" 2>/dev/null
  local mib
  mib=$(sort -n "$samples" | tail -1)
  note "== $check: peak device memory ${mib:-?} MiB"
  fig "${check}_memory" ok "peak_mib=${mib:-unknown}"
}
if command -v nvidia-smi >/dev/null; then
  mem fit_8b_lean "$bin/gpucheck" -mode fit -engine xla -pjrt "$plugin" -model 8b -seq 4096 -steps 3 -precision lean -out "$out"
  mem fit_8b_lora "$bin/gpucheck" -mode fit -engine xla -pjrt "$plugin" -model 8b -seq 4096 -steps 3 -precision lean -lora 16 -out "$out"
else
  fig fit_8b_lean skipped "why=no nvidia-smi"
fi

# (d) The hf/ export in the machine's transformers (and peft).
run export 90 "$bin/gpucheck" -mode export -engine xla -pjrt "$plugin" -dir "$work/export" -out "$out"
run hf_export 120 env NVIDIA_TF32_OVERRIDE=0 "$py" backends/gomlx/gpucheck/compare_hf.py "$work/export" --reference transformers --out "$out"

note "gpucheck: done in ${SECONDS}s; figures in $out"
