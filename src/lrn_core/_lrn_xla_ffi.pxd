# The XLA FFI handlers (JAX custom calls), declared once: src/lrn_core/_simd/lrn_xla_ffi.h, bodies
# in lrn_xla_ffi.c, compiled into each kernel extension. _kernels.pyx fills the driver table.

from libc.stddef cimport ptrdiff_t


cdef extern from "_simd/lrn_xla_ffi.h" nogil:
    const int LRN_XLA_FFI_API_MAJOR
    const int LRN_XLA_FFI_API_MINOR

    ctypedef struct lrn_view:
        ptrdiff_t outer, C, inner
        ptrdiff_t s0, s1, s2

    ctypedef struct lrn_driver:
        int (*lrn_f32)(const float* x, const float* dy, float* out, const lrn_view* v,
                       ptrdiff_t size, ptrdiff_t before, double alpha, double beta,
                       double k) noexcept nogil
        int (*lrn_f64)(const double* x, const double* dy, double* out, const lrn_view* v,
                       ptrdiff_t size, ptrdiff_t before, double alpha, double beta,
                       double k) noexcept nogil
        int (*window_f32)(const float* v, float* out, const lrn_view* view, ptrdiff_t size,
                          ptrdiff_t before) noexcept nogil
        int (*window_f64)(const double* v, double* out, const lrn_view* view, ptrdiff_t size,
                          ptrdiff_t before) noexcept nogil

    void lrn_xla_ffi_set_driver(const lrn_driver* driver)
    # XLA's call frame and error, opaque here: only C reads them
    ctypedef struct XLA_FFI_CallFrame
    ctypedef struct XLA_FFI_Error
    XLA_FFI_Error* lrn_xla_ffi_lrn(XLA_FFI_CallFrame* frame)
    XLA_FFI_Error* lrn_xla_ffi_lrn_vjp(XLA_FFI_CallFrame* frame)
    XLA_FFI_Error* lrn_xla_ffi_window_sum(XLA_FFI_CallFrame* frame)
