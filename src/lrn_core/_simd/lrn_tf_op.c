/* TensorFlow ops over lrn-core's kernels, for graphs (tf.function) on the CPU.
 *
 * Built as its own shared library (lrn_core/_lrn_tf_op*.so), loaded by the TF adapter with
 * tf.load_op_library. Loading runs the constructor below: it looks TensorFlow's C API up in the
 * libtensorflow_framework.so.2 the process has loaded (tf_c_api.h says why it does not link
 * against it) and registers two ops with CPU kernels for float32 and float64, channels last:
 *
 *   LrnCoreLrn(x; size, before, alpha, beta, k) -> y
 *   LrnCoreLrnGrad(dy, x; same attributes) -> dx     (the gradient of <dy, y> in x)
 *
 * alpha, beta and k are float64 values carried bit for bit in int attributes (a TF "float"
 * attribute is float32, which would round k = 1.3). Each kernel checks its inputs, allocates
 * the result and calls the core's driver (the same code lrn_core.lrn runs) through the table
 * the adapter hands over once with lrn_tf_op_set_driver: no Python and no GIL in a call. A bad
 * input fails the op with TF's InvalidArgument error naming the op and the argument. */

#include <dlfcn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lrn_driver.h"
#include "tf_c_api.h"

/* ---- TensorFlow's C API, looked up at load --------------------------------------------------- */

static struct {
#define LRN_TF_FIELD(name, ret, params) ret(*name) params;
    LRN_TF_FUNCTIONS(LRN_TF_FIELD)
#undef LRN_TF_FIELD
} tf;

/* why the ops are not registered ("" when they are), for lrn_tf_op_status */
static char load_error[256] = "not loaded by TensorFlow";

static int resolve(void) {
    void* lib = dlopen("libtensorflow_framework.so.2", RTLD_NOW | RTLD_NOLOAD);
    if (lib == NULL) {
        snprintf(load_error, sizeof load_error,
                 "libtensorflow_framework.so.2 is not loaded in this process");
        return -1;
    }
#define LRN_TF_LOOKUP(name, ret, params)                                                 \
    *(void**)(&tf.name) = dlsym(lib, #name);                                             \
    if (tf.name == NULL) {                                                               \
        snprintf(load_error, sizeof load_error, "this TensorFlow has no C function %s", #name); \
        return -1;                                                                       \
    }
    LRN_TF_FUNCTIONS(LRN_TF_LOOKUP)
#undef LRN_TF_LOOKUP
    return 0; /* the handle stays open: the functions are used for the life of the process */
}

/* ---- the driver ------------------------------------------------------------------------------ */

static lrn_driver driver;
static int driver_set = 0;

void lrn_tf_op_set_driver(const lrn_driver* d) {
    driver = *d;
    driver_set = 1;
}

const char* lrn_tf_op_status(void) { return load_error; }

/* ---- errors ---------------------------------------------------------------------------------- */

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void fail(TF_OpKernelContext* ctx, TF_Code code, const char* fmt, ...) {
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    TF_Status* status = tf.TF_NewStatus();
    tf.TF_SetStatus(status, code, message);
    tf.TF_OpKernelContext_Failure(ctx, status);
    tf.TF_DeleteStatus(status);
}

/* ---- kernels --------------------------------------------------------------------------------- */

typedef struct params {
    int backward;
    const char* op;
    int64_t size, before;
    double alpha, beta, k;
} params;

static double from_bits(int64_t bits) {
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

static void* create(TF_OpKernelConstruction* ctx, int backward) {
    params* p = calloc(1, sizeof *p);
    TF_Status* status = tf.TF_NewStatus();
    int64_t bits[3] = {0, 0, 0};
    static const char* const names[3] = {"alpha", "beta", "k"};
    if (p == NULL) {
        tf.TF_SetStatus(status, LRN_TF_RESOURCE_EXHAUSTED, "lrn-core: out of memory");
        tf.TF_OpKernelConstruction_Failure(ctx, status);
        tf.TF_DeleteStatus(status);
        return NULL;
    }
    p->backward = backward;
    p->op = backward ? "LrnCoreLrnGrad" : "LrnCoreLrn";
    tf.TF_OpKernelConstruction_GetAttrInt64(ctx, "size", &p->size, status);
    if (tf.TF_GetCode(status) == LRN_TF_OK)
        tf.TF_OpKernelConstruction_GetAttrInt64(ctx, "before", &p->before, status);
    for (int i = 0; i < 3 && tf.TF_GetCode(status) == LRN_TF_OK; ++i)
        tf.TF_OpKernelConstruction_GetAttrInt64(ctx, names[i], &bits[i], status);
    if (tf.TF_GetCode(status) == LRN_TF_OK && (p->before < 0 || p->before >= p->size)) {
        char message[160];
        snprintf(message, sizeof message, "%s: attribute 'before' must be in [0, %lld), got %lld",
                 p->op, (long long)p->size, (long long)p->before);
        tf.TF_SetStatus(status, LRN_TF_INVALID_ARGUMENT, message);
    }
    if (tf.TF_GetCode(status) != LRN_TF_OK) {
        tf.TF_OpKernelConstruction_Failure(ctx, status);
        tf.TF_DeleteStatus(status);
        free(p);
        return NULL;
    }
    tf.TF_DeleteStatus(status);
    p->alpha = from_bits(bits[0]);
    p->beta = from_bits(bits[1]);
    p->k = from_bits(bits[2]);
    return p;
}

static void* create_forward(TF_OpKernelConstruction* ctx) { return create(ctx, 0); }
static void* create_backward(TF_OpKernelConstruction* ctx) { return create(ctx, 1); }

static void destroy(void* kernel) { free(kernel); }

static void compute(void* kernel, TF_OpKernelContext* ctx) {
    const params* p = kernel;
    TF_Tensor* in[2] = {NULL, NULL};
    TF_Tensor* out = NULL;
    static const char* const names[2][2] = {{"x", ""}, {"dy", "x"}};
    int n_in = p->backward ? 2 : 1;
    TF_Status* status = tf.TF_NewStatus();
    for (int i = 0; i < n_in; ++i) {
        tf.TF_GetInput(ctx, i, &in[i], status);
        if (tf.TF_GetCode(status) != LRN_TF_OK) {
            tf.TF_OpKernelContext_Failure(ctx, status);
            goto done;
        }
    }
    TF_Tensor* x = in[n_in - 1];
    int rank = tf.TF_NumDims(x);
    TF_DataType dtype = tf.TF_TensorType(x);
    if (rank < 1) {
        fail(ctx, LRN_TF_INVALID_ARGUMENT, "%s: x must have rank >= 1 (channels last), got 0",
             p->op);
        goto done;
    }
    if (dtype != LRN_TF_FLOAT && dtype != LRN_TF_DOUBLE) {
        fail(ctx, LRN_TF_INVALID_ARGUMENT, "%s: x must be float32 or float64", p->op);
        goto done;
    }
    int64_t dims[64];
    if (rank > 64) {
        fail(ctx, LRN_TF_INVALID_ARGUMENT, "%s: x has rank %d, more than 64", p->op, rank);
        goto done;
    }
    int64_t n = 1;
    for (int d = 0; d < rank; ++d) {
        dims[d] = tf.TF_Dim(x, d);
        n *= dims[d];
    }
    if (p->backward) {
        int same = tf.TF_NumDims(in[0]) == rank && tf.TF_TensorType(in[0]) == dtype;
        for (int d = 0; same && d < rank; ++d) same = tf.TF_Dim(in[0], d) == dims[d];
        if (!same) {
            fail(ctx, LRN_TF_INVALID_ARGUMENT, "%s: %s must have the shape and dtype of x",
                 p->op, names[1][0]);
            goto done;
        }
    }
    size_t itemsize = dtype == LRN_TF_FLOAT ? sizeof(float) : sizeof(double);
    out = tf.TF_AllocateOutput(ctx, 0, dtype, dims, rank, (size_t)n * itemsize, status);
    if (tf.TF_GetCode(status) != LRN_TF_OK) {
        tf.TF_OpKernelContext_Failure(ctx, status);
        goto done;
    }
    if (n == 0) goto done;
    if (!driver_set) {
        fail(ctx, LRN_TF_INVALID_ARGUMENT,
             "%s: lrn-core's kernels are not initialised (load the op through "
             "lrn_core.adapters.tensorflow)",
             p->op);
        goto done;
    }
    /* channels last: the positions are walked as the inner axis, (1, C, positions), as
     * lrn_core._api does for a channels-last array */
    int64_t C = dims[rank - 1];
    lrn_view v = {1, C, n / C, n, 1, C};
    const void* xd = tf.TF_TensorData(x);
    const void* dyd = p->backward ? tf.TF_TensorData(in[0]) : NULL;
    void* od = tf.TF_TensorData(out);
    int failed = dtype == LRN_TF_FLOAT
                     ? driver.lrn_f32(xd, dyd, od, &v, p->size, p->before, p->alpha, p->beta, p->k)
                     : driver.lrn_f64(xd, dyd, od, &v, p->size, p->before, p->alpha, p->beta, p->k);
    if (failed) fail(ctx, LRN_TF_RESOURCE_EXHAUSTED, "%s: lrn-core: out of memory", p->op);
done:
    for (int i = 0; i < n_in; ++i)
        if (in[i] != NULL) tf.TF_DeleteTensor(in[i]);
    if (out != NULL) tf.TF_DeleteTensor(out);
    tf.TF_DeleteStatus(status);
}

/* ---- registration ---------------------------------------------------------------------------- */

static void same_shape(TF_ShapeInferenceContext* ctx, TF_Status* status) {
    TF_ShapeHandle* shape = tf.TF_NewShapeHandle();
    tf.TF_ShapeInferenceContextGetInput(ctx, 0, shape, status);
    if (tf.TF_GetCode(status) == LRN_TF_OK)
        tf.TF_ShapeInferenceContextSetOutput(ctx, 0, shape, status);
    tf.TF_DeleteShapeHandle(shape);
}

static int register_op(const char* name, int backward, TF_Status* status) {
    TF_OpDefinitionBuilder* b = tf.TF_NewOpDefinitionBuilder(name);
    if (backward) tf.TF_OpDefinitionBuilderAddInput(b, "dy: T");
    tf.TF_OpDefinitionBuilderAddInput(b, "x: T");
    tf.TF_OpDefinitionBuilderAddOutput(b, backward ? "dx: T" : "y: T");
    tf.TF_OpDefinitionBuilderAddAttr(b, "T: {float, double}");
    tf.TF_OpDefinitionBuilderAddAttr(b, "size: int >= 1");
    tf.TF_OpDefinitionBuilderAddAttr(b, "before: int >= 0");
    tf.TF_OpDefinitionBuilderAddAttr(b, "alpha: int"); /* float64 bits */
    tf.TF_OpDefinitionBuilderAddAttr(b, "beta: int");
    tf.TF_OpDefinitionBuilderAddAttr(b, "k: int");
    tf.TF_OpDefinitionBuilderSetShapeInferenceFunction(b, same_shape);
    tf.TF_RegisterOpDefinition(b, status);
    if (tf.TF_GetCode(status) != LRN_TF_OK) return -1;
    static const TF_DataType types[2] = {LRN_TF_FLOAT, LRN_TF_DOUBLE};
    for (int i = 0; i < 2; ++i) {
        TF_KernelBuilder* kb = tf.TF_NewKernelBuilder(
            name, "CPU", backward ? create_backward : create_forward, compute, destroy);
        tf.TF_KernelBuilder_TypeConstraint(kb, "T", types[i], status);
        if (tf.TF_GetCode(status) != LRN_TF_OK) {
            tf.TF_DeleteKernelBuilder(kb);
            return -1;
        }
        tf.TF_RegisterKernelBuilder(name, kb, status); /* takes ownership of kb */
        if (tf.TF_GetCode(status) != LRN_TF_OK) return -1;
    }
    return 0;
}

#if defined(__GNUC__)
__attribute__((constructor))
#endif
static void lrn_tf_op_load(void) {
    if (resolve() != 0) return;
    TF_Status* status = tf.TF_NewStatus();
    if (register_op("LrnCoreLrn", 0, status) == 0 && register_op("LrnCoreLrnGrad", 1, status) == 0)
        load_error[0] = '\0';
    else
        snprintf(load_error, sizeof load_error, "registering the lrn-core ops failed");
    tf.TF_DeleteStatus(status);
}
