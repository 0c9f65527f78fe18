#!/usr/bin/env bash
# The device check, run on a lent GPU machine (see DEVELOPERS.md): build there, run the GPU
# tests, describe the device, and leave a log and the results under $OUT, within 6 minutes.
# That machine has Python, torch, CuPy, CMake, pybind11 and scikit-build-core but no network,
# hence --no-build-isolation --no-deps.
set -uo pipefail
OUT=${OUT:-/tmp/dlcb-gpu-check}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1
cd "$(dirname "$0")/.."

step() { echo; echo "=== $* ($(date +%T))"; }
status=0

step "device"
nvidia-smi || status=1

step "build (CUDA required)"
DLCB_ENABLE_CUDA=ON timeout 240 python -m pip install --no-build-isolation --no-deps -q . || { echo "build failed"; exit 1; }

step "GPU tests"
cd /tmp  # import the installed package, not the source tree
timeout 120 python -m pytest -q -rs "$OLDPWD/tests/test_cuda.py" || status=1

step "devices"
timeout 60 python -m dlcb_kernels devices --json > "$OUT/devices.json" || status=1
timeout 60 python -m dlcb_kernels devices || status=1

echo; echo "=== done, status $status"
exit $status
