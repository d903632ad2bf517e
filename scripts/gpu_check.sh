#!/usr/bin/env bash
# Every check that needs a CUDA GPU, in one run, for a GPU machine that has PyTorch and Triton but none of the
# curation stack (a lent machine with its own Python: nothing is installed, the repo runs from PYTHONPATH).
#   1. the machine: nvidia-smi, torch / triton versions
#   2. the `gpu` tests of kernels and trainer with the kernels compiled (TRITON_INTERPRET=0), not interpreted:
#      Triton and Flex attention (fp16/bf16, D 64/128, blocks 64/128) and fused MoE / RMSNorm vs the references,
#      bf16 autocast training, torch.compile around the Triton kernels, torchrun over NCCL with DDP and FSDP2
#      (tests/test_trainer_loop.py)
#   3. benchmarks/kernels_gpu.py: blocksparse attention vs dense flash SDPA and FlexAttention (4K-32K), MoE vs
#      the per-expert loop, RMSNorm, linear cross-entropy; each row is printed as soon as it is measured
# The synth GPU test (tests/test_synth_generate.py) needs the curation stack and the 94 MB SmolLM2 package; it
# is not part of this run.
#
#   OUT=/tmp/gpu-check scripts/gpu_check.sh                 # both parts; logs under $OUT (default out/gpu-check)
#   scripts/gpu_check.sh tests                              # only the tests (about 3-5 min: Triton and Flex compile)
#   SEQ_LENS=4096,16384 BENCH_TIMEOUT=240 scripts/gpu_check.sh bench
# Through the device tool, whose $OUT comes back: `scripts/gpu_check.sh tests` with timeout_s ~330, then
# `scripts/gpu_check.sh bench` the same way (the logs land in its $OUT; nothing needs carrying).
# Each part stops at its timeout (TEST_TIMEOUT, BENCH_TIMEOUT: 300 s each), so both fit a 10-minute window; where
# one command may run only so long, run the parts as two commands. Exit status: the tests' (the benchmark's is
# in its log).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gpu-check}  # the device tool sets OUT to the folder it brings back
PY=${PYTHON:-python3}
part=${1:-all}
case "$part" in all|tests|bench) ;; *) echo "usage: scripts/gpu_check.sh [all|tests|bench]" >&2; exit 2;; esac
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TRITON_INTERPRET=0 TRITON_DEFAULT_FP_FUSION=1

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: no CUDA GPU visible to $PY; run this on a GPU machine (on a CPU machine: make test)" >&2
    exit 2
fi
{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    "$PY" -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"
} 2>&1 | tee "$OUT/machine.txt"

status=0
if [ "$part" != bench ]; then
    echo "== gpu tests" | tee "$OUT/gpu-tests.log"
    timeout "${TEST_TIMEOUT:-300}" "$PY" -m pytest -q -m gpu -p no:cacheprovider -o addopts="-ra" --durations=10 \
        tests/test_kernels_attention.py tests/test_kernels_moe.py tests/test_kernels_norm_ce.py \
        tests/test_trainer_loop.py 2>&1 | tee -a "$OUT/gpu-tests.log"
    status=${PIPESTATUS[0]}
    echo "gpu_check: tests exit status $status" | tee -a "$OUT/gpu-tests.log"
fi
if [ "$part" != tests ]; then
    echo "== benchmarks/kernels_gpu.py" | tee "$OUT/kernels-gpu.log"
    timeout "${BENCH_TIMEOUT:-300}" "$PY" benchmarks/kernels_gpu.py --seq-lens "${SEQ_LENS:-4096,8192,16384,32768}" \
        2>&1 | tee -a "$OUT/kernels-gpu.log"
    echo "gpu_check: benchmark exit status ${PIPESTATUS[0]}" | tee -a "$OUT/kernels-gpu.log"
fi
exit "$status"
