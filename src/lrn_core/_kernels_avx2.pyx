# The same kernels as _kernels.pyx, compiled with AVX2/FMA enabled (see setup.py).
# Loaded by _dispatch.py only on CPUs that report AVX2 and FMA.
include "_kernels.pyx"
