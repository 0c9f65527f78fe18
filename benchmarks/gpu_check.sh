#!/usr/bin/env bash
# The device check, run on a lent H100/H200 (see DEVELOPERS.md): build there, run the GPU
# tests, run the gpu-quick suite (our kernels against cuBLAS and cuDNN), and leave the log,
# the device description and the throughput table under $OUT, all within 6 minutes. Order:
# build, smoke tests, devices, the suite (it checks every result before timing it, and keeps
# every finished record if it is cut short), the kernels' own test files, pytest-benchmark.
# That machine has Python 3.12 with torch, CuPy, CMake, pybind11 and scikit-build-core but no
# network, hence pip's --no-build-isolation --no-deps. Every step has its own time limit and
# the whole script a deadline: a step that would start too late is skipped and says so.
set -uo pipefail
OUT=${OUT:-/tmp/dlcb-gpu-check}
BUDGET=${DLCB_GPU_CHECK_SECONDS:-350}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1
cd "$(dirname "$0")/.."
SOURCE=$PWD
START=$(date +%s)
status=0

step() { echo; echo "=== $* (t+$(( $(date +%s) - START ))s)"; }
# run LIMIT CMD...: at most LIMIT seconds, and never past the deadline
run() {
  local limit=$1; shift
  local left=$(( BUDGET - ($(date +%s) - START) ))
  if (( left < 20 )); then echo "skipped: ${left}s left of the ${BUDGET}s budget"; status=1; return 1; fi
  (( limit > left )) && limit=$left
  timeout "$limit" "$@"
  local rc=$?
  (( rc == 124 )) && echo "timed out after ${limit}s: $*"
  (( rc != 0 )) && status=1
  return $rc
}

step "device"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv || status=1
$PYTHON -c "import torch, cupy; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', \
torch.backends.cudnn.version(), '| cupy', cupy.__version__)" || status=1

step "build (CUDA required; sm_90a machine code only, to build fast)"
# The shipped build also has sm_80 and compute_90 PTX; this machine needs only its own code.
export DLCB_ENABLE_CUDA=ON CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) CUDAARCHS=90a-real
run 200 $PYTHON -m pip install --no-build-isolation --no-deps -q "$SOURCE" || { echo "build failed"; exit 1; }

cd /tmp  # import the installed package, not the source tree
# One pytest process per file, each under its own limit: a kernel that hangs or faults costs
# its own file, not the others (faulthandler prints where it hung first). The Hopper GEMM's
# smallest case (TMA boxes wholly outside the matrix, the likeliest hang) runs first on its own.
step "GPU tests: runtime, measurement, arrays; Hopper GEMM smoke test"
pytest_gpu() { run "$1" $PYTHON -m pytest -q -rfEs --tb=line --maxfail=25 -p no:cacheprovider -o faulthandler_timeout=$(( $1 - 5 )) \
  --durations=3 "${@:2}"; }
pytest_gpu 40 "$SOURCE/tests/test_cuda.py" "$SOURCE/tests/test_cuda_measure.py" "$SOURCE/tests/test_device_array.py"
pytest_gpu 30 "$SOURCE/tests/test_cuda_gemm_hopper.py" -k "1-1-1"

step "devices"
run 60 $PYTHON -m dlcb_kernels devices --json > "$OUT/devices.json"
run 30 $PYTHON -c "import json, sys; d = json.load(open(sys.argv[1])); [print(g['name'], {k: v.get('theoretical_gflops') \
for k, v in g['peaks'].items()}, g.get('measured')) for g in d['gpus']]" "$OUT/devices.json"

step "gpu-quick suite: ours vs cuBLAS/cuDNN"
run 150 $PYTHON -m dlcb_kernels bench --device cuda --suite gpu-quick --max-time 0.5 --min-samples 5 \
  -o "$OUT/gpu-quick.json"
rc=$?
(( rc == 3 )) && echo "some records failed or errored: see the table"

for file in test_cuda_gemm_fp32 test_cuda_gemm_tc test_cuda_gemm_hopper test_cuda_conv test_cuda_rnn; do
  step "GPU tests: $file"
  pytest_gpu 50 "$SOURCE/tests/$file.py"
done

step "NCCL collectives on one GPU (one rank: the path, not a link; needs mpi4py and CuPy's NCCL)"
if $PYTHON -c "import mpi4py, cupy.cuda.nccl as n; assert n.available" 2>/dev/null; then
  run 40 $PYTHON -m dlcb_kernels bench comm --backend nccl --max-bytes 64M --no-deepbench --max-time 0.2 \
    -o "$OUT/comm-nccl.json"
else
  echo "skipped: mpi4py or CuPy's NCCL is not installed here"
fi

step "pytest-benchmark on the GPU (the same problems, CUDA-event clock)"
run 60 $PYTHON -m pytest -q -p no:cacheprovider "$SOURCE/benchmarks/test_benchmarks.py" --benchmark-only \
  --dlcb-max-time=0.2 --dlcb-table "$OUT/pytest-gpu.json" -k "gemm and 4096"

echo; echo "=== done in $(( $(date +%s) - START ))s, status $status"
exit $status
