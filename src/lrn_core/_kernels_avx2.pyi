# The AVX2 build of the same kernels: same interface.
from ._kernels import *  # noqa: F403
from ._kernels import build_cflags as build_cflags, max_threads as max_threads, openmp_enabled as openmp_enabled, openmp_version as openmp_version, simd as simd, vector_pow as vector_pow  # noqa: E501
