/* XLA FFI handlers (JAX custom calls on the CPU) over lrn-core's kernels: bodies in
 * lrn_xla_ffi.c, compiled into each kernel extension; declared for Cython in _lrn_xla_ffi.pxd.
 *
 * The handlers parse and check XLA's call frame (buffers, scalar attributes), then call the
 * core's one driver, the same code lrn_core.lrn runs. That driver is Cython (_kernels.pyx: tiles,
 * scratch, OpenMP); it hands its entry points to the handlers through lrn_xla_ffi_set_driver
 * when the module loads. No Python and no GIL are involved in a call. */

#ifndef LRN_XLA_FFI_H_
#define LRN_XLA_FFI_H_

#include <stddef.h>

#include "lrn_driver.h"
#include "xla_ffi_c_api.h"

/* Copies the table; called once by the Cython module at import, before any handler exists. */
void lrn_xla_ffi_set_driver(const lrn_driver* driver);

/* lrn(x; size, before, alpha, beta, k, axis) */
XLA_FFI_Error* lrn_xla_ffi_lrn(XLA_FFI_CallFrame* frame);
/* lrn_backward(g, x; same attributes): operands (x, g), as the adapter's lrn_core_lrn_vjp */
XLA_FFI_Error* lrn_xla_ffi_lrn_vjp(XLA_FFI_CallFrame* frame);
/* window_sum(v; size, before, axis) */
XLA_FFI_Error* lrn_xla_ffi_window_sum(XLA_FFI_CallFrame* frame);

#endif /* LRN_XLA_FFI_H_ */
