#!/usr/bin/env bash
# The GPU check, prepared so that one lent GPU call settles what the CPU cannot (docs/performance.md):
#
#   bash tools/gpu_check.sh            # in the repository root of a machine with a CUDA GPU, torch and triton
#
# Everything lands in $OUT (the device tool's folder; default gpu_check/), at most 8 files: summary.txt (each step,
# its exit status and seconds), kernel_tests.log (the kernel tests on the GPU: explicit, events, projection, no host
# read inside a call, with ISVS_TEST_GPU=1), timing.json and timing.log (tools/gpu_timing.py: real sizes against the torch backend on the GPU,
# throughput of the default and FAST over batch sizes, the smoothing's share of a ResNet-18 and a ResNet-50 step,
# CUDA-graph capture), bench.log (tools/bench.py --device cuda), autotune.log and the tuned configuration
# (tools/autotune.py). A deadline guard (GPU_CHECK_SECONDS, default 540) gives each step what is left of it and
# skips a step that would start with under 20 s, so the whole check ends inside a 10-minute call.
set -u
OUT=${OUT:-gpu_check}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 ISVS_TEST_GPU=1 ISVS_CONFIG_DIR=$OUT
deadline=$(( $(date +%s) + ${GPU_CHECK_SECONDS:-540} ))
: > "$OUT/summary.txt"

step() {  # step NAME SECONDS COMMAND...: run COMMAND into NAME.log within SECONDS and the deadline
    local name=$1 limit=$2 start left
    shift 2
    left=$(( deadline - $(date +%s) ))
    if (( left < 20 )); then
        echo "$name: skipped, ${left} s left before the deadline" >> "$OUT/summary.txt"
        return
    fi
    (( limit > left )) && limit=$left
    start=$(date +%s)
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    echo "$name: exit $? after $(( $(date +%s) - start )) s (limit $limit s)" >> "$OUT/summary.txt"
}

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"; } \
    >> "$OUT/summary.txt" 2>&1
# the host-read tests first: short, and what a capture needs; each kernel variant compiles on first use
step kernel_tests 200 python3 -m pytest -q -p no:cacheprovider kernels_tests/test_host_reads.py \
    kernels_tests/test_events_kernel.py kernels_tests/test_lbi_fused.py kernels_tests/test_projection.py
step timing 180 python3 tools/gpu_timing.py --output "$OUT/timing.json"
step bench 60 python3 tools/bench.py --device cuda --repeat 5
step autotune 90 python3 tools/autotune.py
cat "$OUT/summary.txt"
