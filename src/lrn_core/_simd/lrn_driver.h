/* The core's driver as C entry points, for the framework bindings written in C: the XLA FFI
 * handlers (lrn_xla_ffi.c) and the TensorFlow ops (lrn_tf_op.c). The driver itself is Cython
 * (_kernels.pyx: tiles, scratch, OpenMP), the code lrn_core.lrn runs; the kernel module fills a
 * table of these and hands it to each binding once (lrn_xla_ffi_set_driver when it loads,
 * lrn_tf_op_set_driver when the TF adapter loads the op library). */

#ifndef LRN_DRIVER_H_
#define LRN_DRIVER_H_

#include <stddef.h>

/* A 3-D (outer, C, inner) view shared by all operands and the result; strides in elements. */
typedef struct lrn_view {
    ptrdiff_t outer, C, inner;
    ptrdiff_t s0, s1, s2;
} lrn_view;

/* The driver's entry points: 0 on success, -1 when the per-thread scratch cannot be allocated.
 * dy NULL is the forward pass. */
typedef struct lrn_driver {
    int (*lrn_f32)(const float* x, const float* dy, float* out, const lrn_view* v, ptrdiff_t size,
                   ptrdiff_t before, double alpha, double beta, double k);
    int (*lrn_f64)(const double* x, const double* dy, double* out, const lrn_view* v,
                   ptrdiff_t size, ptrdiff_t before, double alpha, double beta, double k);
    int (*window_f32)(const float* v, float* out, const lrn_view* view, ptrdiff_t size,
                      ptrdiff_t before);
    int (*window_f64)(const double* v, double* out, const lrn_view* view, ptrdiff_t size,
                      ptrdiff_t before);
} lrn_driver;

#endif /* LRN_DRIVER_H_ */
