# The AVX2 build of the same kernels: same interface.
from ._kernels import *  # noqa: F403
from ._kernels import (
    build_cflags as build_cflags,
)  # noqa: E501
from ._kernels import (
    fork_capped as fork_capped,
)
from ._kernels import (
    max_threads as max_threads,
)
from ._kernels import (
    openmp_enabled as openmp_enabled,
)
from ._kernels import (
    openmp_version as openmp_version,
)
from ._kernels import (
    release_fork_cap as release_fork_cap,
)
from ._kernels import (
    simd as simd,
)
from ._kernels import (
    vector_pow as vector_pow,
)
