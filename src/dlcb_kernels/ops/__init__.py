"""Public kernel entry points: validate, then call the native kernels."""
