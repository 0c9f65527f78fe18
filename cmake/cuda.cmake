# CUDA extension (dlcb_kernels._cuda). DLCB_ENABLE_CUDA: AUTO builds it when this machine has an
# NVIDIA GPU (a /dev/nvidia0 device or a working `nvidia-smi -L`) and a working CUDA compiler; ON
# builds it wherever nvcc works (a missing nvcc is an error: CI compiles it so); OFF never. The
# CUDA build is about three quarters of an install's time, so a machine that cannot run it does
# not pay for it.
#
# Kernels and runtime calls are compiled by nvcc into a static library behind a plain C++ API
# (csrc/cuda/*.h); the pybind11 binding (csrc/cuda/*.cpp) is compiled by the host compiler, so
# nvcc never parses pybind11 or Python headers. The CUDA runtime is linked statically: it opens
# libcuda only when first used, so the module imports on machines without a GPU or a driver.
set(DLCB_ENABLE_CUDA "AUTO" CACHE STRING "Build the CUDA extension: AUTO, ON or OFF")
set_property(CACHE DLCB_ENABLE_CUDA PROPERTY STRINGS AUTO ON OFF)
string(TOUPPER "${DLCB_ENABLE_CUDA}" DLCB_CUDA_MODE)
if(NOT DLCB_CUDA_MODE MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "dlcb: DLCB_ENABLE_CUDA must be AUTO, ON or OFF, not '${DLCB_ENABLE_CUDA}'")
endif()
if(DLCB_CUDA_MODE STREQUAL "OFF")
  message(STATUS "dlcb: CUDA extension not built: DLCB_ENABLE_CUDA=OFF")
  return()
endif()

if(DLCB_CUDA_MODE STREQUAL "AUTO")
  set(_dlcb_gpu FALSE)
  if(EXISTS "/dev/nvidia0")
    set(_dlcb_gpu TRUE)
  else()
    execute_process(COMMAND nvidia-smi -L RESULT_VARIABLE _smi_status OUTPUT_VARIABLE _smi_out ERROR_QUIET)
    if(_smi_status EQUAL 0 AND _smi_out MATCHES "GPU")
      set(_dlcb_gpu TRUE)
    endif()
  endif()
  if(NOT _dlcb_gpu)
    message(STATUS "dlcb: CUDA extension not built: no NVIDIA GPU here (DLCB_ENABLE_CUDA=ON builds it anyway)")
    return()
  endif()
endif()

include(CheckLanguage)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  set(DLCB_NO_NVCC "no working CUDA compiler found (nvcc not on PATH and CUDACXX unset, \
or its test compile failed)")
  if(DLCB_CUDA_MODE STREQUAL "ON")
    message(FATAL_ERROR "dlcb: DLCB_ENABLE_CUDA=ON but ${DLCB_NO_NVCC}")
  endif()
  message(STATUS "dlcb: CUDA extension not built: ${DLCB_NO_NVCC}")
  # Forget the cached NOTFOUND, so that the next configure of this (reused) build directory
  # looks again and picks up a CUDA toolkit installed in the meantime.
  unset(CMAKE_CUDA_COMPILER CACHE)
  return()
endif()

# A100 (sm_80) machine code; H100/H200 machine code for sm_90a, the architecture-specific
# target whose wgmma and setmaxnreg the Hopper kernels need (it runs on compute capability 9.0
# only); and compute_90 PTX that newer GPUs JIT-compile (Hopper-only kernels refuse to run
# there: see gemm_unsupported_reason). CMAKE_CUDA_ARCHITECTURES or CUDAARCHS override this.
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES AND NOT DEFINED ENV{CUDAARCHS})
  set(CMAKE_CUDA_ARCHITECTURES 80-real 90a-real 90-virtual)
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
message(STATUS "dlcb: CUDA extension built with nvcc ${CMAKE_CUDA_COMPILER_VERSION} \
for architectures ${CMAKE_CUDA_ARCHITECTURES}")

file(GLOB_RECURSE DLCB_CUDA_KERNEL_SOURCES CONFIGURE_DEPENDS
  "${CMAKE_CURRENT_SOURCE_DIR}/csrc/cuda/*.cu")
add_library(dlcb_cuda_core STATIC ${DLCB_CUDA_KERNEL_SOURCES})
# PIC: the archive ends up inside a shared Python module. Static cudart: no libcudart.so to ship
# or to clash with the one torch or cupy bring.
set_target_properties(dlcb_cuda_core PROPERTIES
  POSITION_INDEPENDENT_CODE ON CUDA_RUNTIME_LIBRARY Static)
target_include_directories(dlcb_cuda_core PUBLIC "${CMAKE_CURRENT_SOURCE_DIR}/csrc/cuda")
target_link_libraries(dlcb_cuda_core PUBLIC CUDA::cudart_static)
target_compile_options(dlcb_cuda_core PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>)

file(GLOB_RECURSE DLCB_CUDA_BINDING_SOURCES CONFIGURE_DEPENDS
  "${CMAKE_CURRENT_SOURCE_DIR}/csrc/cuda/*.cpp")
pybind11_add_module(_cuda MODULE ${DLCB_CUDA_BINDING_SOURCES})
target_link_libraries(_cuda PRIVATE dlcb_cuda_core)
target_compile_options(_cuda PRIVATE -O3 -Wall -Wextra)
# Keep the static runtime's symbols inside the module, so a libcudart.so loaded by another
# library (torch, cupy) can neither interpose on them nor be interposed on.
target_link_options(_cuda PRIVATE "LINKER:--exclude-libs,ALL")
install(TARGETS _cuda LIBRARY DESTINATION dlcb_kernels)
