# CUDA extension (dlcb_kernels._cuda), built when nvcc is found (DLCB_ENABLE_CUDA=AUTO), always
# (ON: a missing nvcc is an error) or never (OFF).
set(DLCB_ENABLE_CUDA "AUTO" CACHE STRING "Build the CUDA extension: AUTO, ON or OFF")
set_property(CACHE DLCB_ENABLE_CUDA PROPERTY STRINGS AUTO ON OFF)
message(STATUS "dlcb: DLCB_ENABLE_CUDA=${DLCB_ENABLE_CUDA} (CUDA extension not yet part of the build)")
