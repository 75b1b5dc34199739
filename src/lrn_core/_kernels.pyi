# Stub for the compiled kernels (lrn_core._kernels and lrn_core._kernels_avx2 share it).
# Arrays are 3-D (outer, C, inner) views, float32 or float64, all of one dtype; the kernels
# trust their inputs: lrn_core._api validates and builds the views.
import numpy as np
import numpy.typing as npt

_Float = np.float32 | np.float64

openmp_enabled: bool
openmp_version: int
simd: str
build_cflags: str
vector_pow: bool
#: the XLA FFI API version the JAX handlers are built for (docs/jax-ffi.rst)
xla_ffi_api_version: tuple[int, int]

def max_threads() -> int: ...
def fork_capped() -> bool: ...
def release_fork_cap() -> bool: ...
def window_sum(
    v: npt.NDArray[_Float], out: npt.NDArray[_Float], size: int, before: int
) -> None: ...
def lrn_forward(
    x: npt.NDArray[_Float],
    out: npt.NDArray[_Float],
    size: int,
    before: int,
    alpha: float,
    beta: float,
    k: float,
) -> None: ...
def lrn_backward(
    dy: npt.NDArray[_Float],
    x: npt.NDArray[_Float],
    out: npt.NDArray[_Float],
    size: int,
    before: int,
    alpha: float,
    beta: float,
    k: float,
) -> None: ...
def xla_ffi_handlers() -> dict[str, object]: ...
def driver_table() -> object: ...
