/* XLA FFI handlers over lrn-core's kernels (see lrn_xla_ffi.h and docs/jax-ffi.rst).
 *
 * Every call is checked before anything is read or written: the struct sizes XLA passes (the
 * API only ever appends fields, so a struct at least as large as API 0.1's has every field used
 * here), the operand and result types, dtypes and dims, and every attribute, by name, type and
 * range. A bad call returns an XLA error naming the target and the argument; nothing is written
 * outside the result buffer. */

#include "lrn_xla_ffi.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__linux__)
#include <sys/mman.h>
#endif

static lrn_driver driver;
static int driver_set = 0;

void lrn_xla_ffi_set_driver(const lrn_driver* d) {
    driver = *d;
    driver_set = 1;
}

/* ---- errors ---------------------------------------------------------------------------- */

static int api_usable(const XLA_FFI_CallFrame* frame) {
    return frame->api != NULL && frame->api->struct_size >= LRN_XLA_FFI_Api_NEEDED_SIZE &&
           frame->api->XLA_FFI_Error_Create != NULL;
}

/* An XLA error "<target>: <message>"; XLA copies the message and owns the error. */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static XLA_FFI_Error* fail(const XLA_FFI_CallFrame* frame, const char* target,
                           XLA_FFI_Error_Code code, const char* fmt, ...) {
    char message[640];
    int n = snprintf(message, sizeof message, "%s: ", target);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < sizeof message) {
        vsnprintf(message + n, sizeof message - (size_t)n, fmt, ap);
    }
    va_end(ap);
    XLA_FFI_Error_Create_Args args;
    memset(&args, 0, sizeof args);
    args.struct_size = XLA_FFI_Error_Create_Args_STRUCT_SIZE;
    args.message = message;
    args.errc = code;
    return frame->api->XLA_FFI_Error_Create(&args);
}

/* ---- the version handshake --------------------------------------------------------------- */

/* XLA asks for the handler's API version (at registration) with a call frame whose extension
 * chain holds a metadata extension (and whose api is NULL). 1 if this was that call. */
static int answer_metadata(const XLA_FFI_CallFrame* frame) {
    const XLA_FFI_Extension_Base* ext = frame->extension_start;
    for (int hops = 0; ext != NULL && hops < 64; ++hops, ext = ext->next) {
        if (ext->type != XLA_FFI_Extension_Metadata) continue;
        if (ext->struct_size < XLA_FFI_Metadata_Extension_STRUCT_SIZE) return 1;
        XLA_FFI_Metadata* m = ((const XLA_FFI_Metadata_Extension*)ext)->metadata;
        /* too small a metadata struct: leave it as XLA filled it (version 0.0), which XLA
         * refuses, rather than write past it */
        if (m == NULL || m->struct_size < XLA_FFI_Metadata_STRUCT_SIZE) return 1;
        m->api_version.struct_size = XLA_FFI_Api_Version_STRUCT_SIZE;
        m->api_version.extension_start = NULL;
        m->api_version.major_version = LRN_XLA_FFI_API_MAJOR;
        m->api_version.minor_version = LRN_XLA_FFI_API_MINOR;
        m->traits = 0;
        return 1;
    }
    return 0;
}

/* ---- attributes -------------------------------------------------------------------------- */

enum { A_SIZE, A_BEFORE, A_AXIS, A_ALPHA, A_BETA, A_K, N_ATTRS };
static const char* const attr_names[N_ATTRS] = {"size", "before", "axis", "alpha", "beta", "k"};

typedef struct params {
    int64_t i[3];  /* size, before, axis */
    double d[3];   /* alpha, beta, k */
} params;

static const char* dtype_name(int dtype) {
    switch (dtype) {
        case 1: return "pred";
        case 2: return "int8";
        case 3: return "int16";
        case 4: return "int32";
        case 5: return "int64";
        case 6: return "uint8";
        case 7: return "uint16";
        case 8: return "uint32";
        case 9: return "uint64";
        case 10: return "float16";
        case 11: return "float32";
        case 12: return "float64";
        case 15: return "complex64";
        case 16: return "bfloat16";
        case 18: return "complex128";
        default: return "another type";
    }
}

/* Reads the attributes: exactly the first `wanted` of attr_names (3: the integers; 6: all),
 * integers as int64 and reals as float64 scalars, as the adapter's lowering passes them. */
static XLA_FFI_Error* read_attrs(const XLA_FFI_CallFrame* frame, const char* target, int wanted,
                                 params* p) {
    const XLA_FFI_Attrs* a = &frame->attrs;
    int seen[N_ATTRS] = {0};
    if (a->struct_size < XLA_FFI_Attrs_STRUCT_SIZE)
        return fail(frame, target, XLA_FFI_Error_Code_FAILED_PRECONDITION,
                    "XLA_FFI_Attrs has %zu bytes, expected at least %zu (XLA FFI API 0.1)",
                    a->struct_size, (size_t)XLA_FFI_Attrs_STRUCT_SIZE);
    if (a->size < 0 || (a->size > 0 && (a->types == NULL || a->names == NULL || a->attrs == NULL)))
        return fail(frame, target, XLA_FFI_Error_Code_INVALID_ARGUMENT, "malformed attributes");
    for (int64_t i = 0; i < a->size; ++i) {
        const XLA_FFI_ByteSpan* name = a->names[i];
        if (name == NULL || (name->len > 0 && name->ptr == NULL))
            return fail(frame, target, XLA_FFI_Error_Code_INVALID_ARGUMENT,
                        "attribute %lld has no name", (long long)i);
        int which = -1;
        for (int j = 0; j < wanted; ++j) {
            if (strlen(attr_names[j]) == name->len &&
                memcmp(attr_names[j], name->ptr, name->len) == 0) {
                which = j;
                break;
            }
        }
        int shown = name->len > 64 ? 64 : (int)name->len;
        if (which < 0)
            return fail(frame, target, XLA_FFI_Error_Code_INVALID_ARGUMENT,
                        "unexpected attribute '%.*s' (this target takes %s)", shown, name->ptr,
                        wanted == 3 ? "size, before, axis"
                                    : "size, before, axis, alpha, beta, k");
        if (seen[which]++)
            return fail(frame, target, XLA_FFI_Error_Code_INVALID_ARGUMENT,
                        "attribute '%s' given twice", attr_names[which]);
        const XLA_FFI_Scalar* s = (const XLA_FFI_Scalar*)a->attrs[i];
        int want_int = which < 3;
        int want_dtype = want_int ? XLA_FFI_DataType_S64 : XLA_FFI_DataType_F64;
        if (a->types[i] != XLA_FFI_AttrType_SCALAR || s == NULL || s->value == NULL)
            return fail(frame, target, XLA_FFI_Error_Code_INVALID_ARGUMENT,
                        "attribute '%s' must be a scalar", attr_names[which]);
        if ((int)s->dtype != want_dtype)
            return fail(frame, target, XLA_FFI_Error_Code_INVALID_ARGUMENT,
                        "attribute '%s' must be %s, got %s", attr_names[which],
                        want_int ? "int64" : "float64", dtype_name((int)s->dtype));
        if (want_int)
            memcpy(&p->i[which], s->value, sizeof(int64_t));
        else
            memcpy(&p->d[which - 3], s->value, sizeof(double));
    }
    for (int j = 0; j < wanted; ++j) {
        if (!seen[j])
            return fail(frame, target, XLA_FFI_Error_Code_INVALID_ARGUMENT,
                        "missing attribute '%s'", attr_names[j]);
    }
    if (p->i[A_SIZE] < 1)
        return fail(frame, target, XLA_FFI_Error_Code_INVALID_ARGUMENT,
                    "attribute 'size' must be >= 1, got %lld", (long long)p->i[A_SIZE]);
    if (p->i[A_BEFORE] < 0 || p->i[A_BEFORE] > p->i[A_SIZE] - 1)
        return fail(frame, target, XLA_FFI_Error_Code_INVALID_ARGUMENT,
                    "attribute 'before' must be in [0, size - 1] = [0, %lld], got %lld",
                    (long long)(p->i[A_SIZE] - 1), (long long)p->i[A_BEFORE]);
    for (int j = 3; j < wanted; ++j) {
        if (!isfinite(p->d[j - 3]))
            return fail(frame, target, XLA_FFI_Error_Code_INVALID_ARGUMENT,
                        "attribute '%s' must be finite, got %g", attr_names[j], p->d[j - 3]);
    }
    return NULL;
}

/* ---- buffers ----------------------------------------------------------------------------- */

static XLA_FFI_Error* check_buffer(const XLA_FFI_CallFrame* frame, const char* target,
                                   const char* what, const XLA_FFI_Buffer* b,
                                   const XLA_FFI_Buffer* like) {
    if (b == NULL || b->struct_size < XLA_FFI_Buffer_STRUCT_SIZE)
        return fail(frame, target, XLA_FFI_Error_Code_FAILED_PRECONDITION,
                    "%s: XLA_FFI_Buffer has %zu bytes, expected at least %zu (XLA FFI API 0.1)",
                    what, b == NULL ? (size_t)0 : b->struct_size,
                    (size_t)XLA_FFI_Buffer_STRUCT_SIZE);
    if (b->dtype != XLA_FFI_DataType_F32 && b->dtype != XLA_FFI_DataType_F64)
        return fail(frame, target, XLA_FFI_Error_Code_INVALID_ARGUMENT,
                    "%s must be float32 or float64 (the kernels' dtypes; the adapter computes "
                    "float16 and bfloat16 in float32), got %s",
                    what, dtype_name((int)b->dtype));
    if (b->rank < 1 || (b->dims == NULL))
        return fail(frame, target, XLA_FFI_Error_Code_INVALID_ARGUMENT,
                    "%s must have at least 1 dimension (the channel axis), got rank %lld", what,
                    (long long)b->rank);
    for (int64_t d = 0; d < b->rank; ++d) {
        if (b->dims[d] < 0)
            return fail(frame, target, XLA_FFI_Error_Code_INVALID_ARGUMENT,
                        "%s has a negative dimension %lld", what, (long long)b->dims[d]);
    }
    if (like != NULL) {
        if (b->dtype != like->dtype)
            return fail(frame, target, XLA_FFI_Error_Code_INVALID_ARGUMENT,
                        "%s has dtype %s, the result %s", what, dtype_name((int)b->dtype),
                        dtype_name((int)like->dtype));
        int same = b->rank == like->rank;
        for (int64_t d = 0; same && d < b->rank; ++d) same = b->dims[d] == like->dims[d];
        if (!same)
            return fail(frame, target, XLA_FFI_Error_Code_INVALID_ARGUMENT,
                        "%s must have the shape of the result", what);
    }
    return NULL;
}

/* ---- one call ---------------------------------------------------------------------------- */

typedef enum { K_LRN, K_VJP, K_WINDOW } kind;

static int overlaps(const void* a, const void* b, size_t nbytes) {
    uintptr_t pa = (uintptr_t)a, pb = (uintptr_t)b;
    return pa < pb + nbytes && pb < pa + nbytes;
}

/* XLA's CPU client allocates every result afresh, and writing it then faults in one page of
 * zeros per 4 KiB: about 30 ms for a 37 MB result here, several times the LRN. Transparent huge
 * pages on request (the common `madvise` setting) cut that to a few ms. A hint only: it changes
 * no content, and a refusal is ignored. */
static void advise_huge_pages(void* p, size_t nbytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const uintptr_t huge = (uintptr_t)2 << 20;
    if (nbytes < ((size_t)4 << 20)) return;
    uintptr_t start = ((uintptr_t)p + huge - 1) / huge * huge;
    uintptr_t end = ((uintptr_t)p + nbytes) / huge * huge;
    if (end > start) (void)madvise((void*)start, end - start, MADV_HUGEPAGE);
#else
    (void)p;
    (void)nbytes;
#endif
}

/* NaN in every element of a well-formed float result buffer (see call). */
static void poison_result(const XLA_FFI_CallFrame* frame) {
    const XLA_FFI_Rets* rets = &frame->rets;
    if (rets->struct_size < XLA_FFI_Rets_STRUCT_SIZE || rets->size != 1 || rets->rets == NULL)
        return;
    const XLA_FFI_Buffer* b = (const XLA_FFI_Buffer*)rets->rets[0];
    if (b == NULL || b->struct_size < XLA_FFI_Buffer_STRUCT_SIZE || b->data == NULL ||
        b->dims == NULL || b->rank < 0)
        return;
    int64_t n = 1;
    for (int64_t d = 0; d < b->rank; ++d) n *= b->dims[d] > 0 ? b->dims[d] : 0;
    if (b->dtype == XLA_FFI_DataType_F32) {
        for (int64_t i = 0; i < n; ++i) ((float*)b->data)[i] = NAN;
    } else if (b->dtype == XLA_FFI_DataType_F64) {
        for (int64_t i = 0; i < n; ++i) ((double*)b->data)[i] = NAN;
    }
}

static XLA_FFI_Error* call(XLA_FFI_CallFrame* frame, kind which, const char* target) {
    if (frame == NULL) return NULL; /* nothing to answer to: XLA never does this */
    if (answer_metadata(frame)) return NULL;
    /* Without a usable API no error can be returned. XLA never calls so (api is NULL only in
     * the metadata call); should it, the result is filled with NaN rather than left as
     * garbage that looks like a result. */
    if (frame->struct_size < XLA_FFI_CallFrame_STRUCT_SIZE) return NULL;
    if (!api_usable(frame)) {
        poison_result(frame);
        return NULL;
    }
    if (frame->api->api_version.major_version != LRN_XLA_FFI_API_MAJOR ||
        frame->api->api_version.minor_version < LRN_XLA_FFI_API_MINOR)
        return fail(frame, target, XLA_FFI_Error_Code_FAILED_PRECONDITION,
                    "this XLA's FFI API is %d.%d; lrn-core's handlers are built for %d.%d. Use "
                    "implementation='native'",
                    frame->api->api_version.major_version, frame->api->api_version.minor_version,
                    LRN_XLA_FFI_API_MAJOR, LRN_XLA_FFI_API_MINOR);
    if (frame->stage != XLA_FFI_ExecutionStage_EXECUTE) return NULL;
    if (!driver_set)
        return fail(frame, target, XLA_FFI_Error_Code_INTERNAL,
                    "lrn-core's kernels are not initialised (import lrn_core first)");

    const XLA_FFI_Args* args = &frame->args;
    const XLA_FFI_Rets* rets = &frame->rets;
    if (args->struct_size < XLA_FFI_Args_STRUCT_SIZE || rets->struct_size < XLA_FFI_Rets_STRUCT_SIZE)
        return fail(frame, target, XLA_FFI_Error_Code_FAILED_PRECONDITION,
                    "XLA_FFI_Args/XLA_FFI_Rets smaller than in XLA FFI API 0.1");
    int64_t n_args = which == K_VJP ? 2 : 1;
    if (args->size != n_args || args->types == NULL || args->args == NULL)
        return fail(frame, target, XLA_FFI_Error_Code_INVALID_ARGUMENT,
                    "expected %lld operand%s, got %lld", (long long)n_args, n_args > 1 ? "s" : "",
                    (long long)args->size);
    if (rets->size != 1 || rets->types == NULL || rets->rets == NULL ||
        rets->types[0] != XLA_FFI_RetType_BUFFER)
        return fail(frame, target, XLA_FFI_Error_Code_INVALID_ARGUMENT,
                    "expected one result buffer, got %lld results", (long long)rets->size);
    const XLA_FFI_Buffer* out = (const XLA_FFI_Buffer*)rets->rets[0];
    XLA_FFI_Error* err = check_buffer(frame, target, "the result", out, NULL);
    if (err) return err;
    static const char* const operand_names[2][2] = {{"operand x", ""}, {"operand x", "operand g"}};
    const XLA_FFI_Buffer* in[2] = {NULL, NULL};
    for (int64_t i = 0; i < n_args; ++i) {
        const char* what = which == K_WINDOW ? "operand v" : operand_names[which == K_VJP][i];
        if (args->types[i] != XLA_FFI_ArgType_BUFFER)
            return fail(frame, target, XLA_FFI_Error_Code_INVALID_ARGUMENT,
                        "%s must be a buffer", what);
        in[i] = (const XLA_FFI_Buffer*)args->args[i];
        err = check_buffer(frame, target, what, in[i], out);
        if (err) return err;
    }

    params p;
    memset(&p, 0, sizeof p);
    err = read_attrs(frame, target, which == K_WINDOW ? 3 : 6, &p);
    if (err) return err;
    int64_t rank = out->rank, axis = p.i[A_AXIS];
    if (axis < 0 || axis >= rank)
        return fail(frame, target, XLA_FFI_Error_Code_INVALID_ARGUMENT,
                    "attribute 'axis' must be in [0, %lld) for a result of rank %lld, got %lld",
                    (long long)rank, (long long)rank, (long long)axis);

    /* the (outer, C, inner) view of a row-major buffer (jax.ffi's default layout) around axis;
     * with nothing after the channels (channels last) the outer positions are walked as the
     * inner axis, (1, C, outer), as lrn_core._api does, so tiles still hold many positions */
    int64_t outer = 1, inner = 1, C = out->dims[axis];
    for (int64_t d = 0; d < axis; ++d) outer *= out->dims[d];
    for (int64_t d = axis + 1; d < rank; ++d) inner *= out->dims[d];
    if (outer == 0 || C == 0 || inner == 0) return NULL;
    lrn_view v;
    if (inner == 1 && outer > 1) {
        v.outer = 1, v.C = (ptrdiff_t)C, v.inner = (ptrdiff_t)outer;
        v.s0 = (ptrdiff_t)(C * outer), v.s1 = 1, v.s2 = (ptrdiff_t)C;
    } else {
        v.outer = (ptrdiff_t)outer, v.C = (ptrdiff_t)C, v.inner = (ptrdiff_t)inner;
        v.s0 = (ptrdiff_t)(C * inner), v.s1 = (ptrdiff_t)inner, v.s2 = 1;
    }
    int f64 = out->dtype == XLA_FFI_DataType_F64;
    size_t nbytes = (size_t)(outer * C * inner) * (f64 ? sizeof(double) : sizeof(float));
    for (int64_t i = 0; i < n_args; ++i) {
        if (in[i]->data == NULL)
            return fail(frame, target, XLA_FFI_Error_Code_INVALID_ARGUMENT,
                        "operand %lld has no data", (long long)i);
    }
    if (out->data == NULL)
        return fail(frame, target, XLA_FFI_Error_Code_INVALID_ARGUMENT, "the result has no data");

    /* XLA gives a custom call's result its own buffer unless aliasing was asked for (the adapter
     * never asks); should it share an operand's anyway, compute into scratch and copy, since the
     * kernels read all channels of a tile after writing some */
    void* dst = out->data;
    int shared = 0;
    for (int64_t i = 0; i < n_args; ++i) shared |= overlaps(in[i]->data, out->data, nbytes);
    if (shared) {
        dst = malloc(nbytes);
        if (dst == NULL)
            return fail(frame, target, XLA_FFI_Error_Code_RESOURCE_EXHAUSTED,
                        "could not allocate %zu bytes for a result sharing an operand's memory",
                        nbytes);
    } else {
        advise_huge_pages(dst, nbytes);
    }

    int rc;
    ptrdiff_t size = (ptrdiff_t)p.i[A_SIZE], before = (ptrdiff_t)p.i[A_BEFORE];
    if (which == K_WINDOW) {
        rc = f64 ? driver.window_f64((const double*)in[0]->data, (double*)dst, &v, size, before)
                 : driver.window_f32((const float*)in[0]->data, (float*)dst, &v, size, before);
    } else {
        /* lrn_core_lrn_vjp(x, g): the kernels' backward reads dy = g */
        const void* dy = which == K_VJP ? in[1]->data : NULL;
        rc = f64 ? driver.lrn_f64((const double*)in[0]->data, (const double*)dy, (double*)dst, &v,
                                  size, before, p.d[0], p.d[1], p.d[2])
                 : driver.lrn_f32((const float*)in[0]->data, (const float*)dy, (float*)dst, &v,
                                  size, before, p.d[0], p.d[1], p.d[2]);
    }
    if (shared) {
        if (rc == 0) memcpy(out->data, dst, nbytes);
        free(dst);
    }
    if (rc != 0)
        return fail(frame, target, XLA_FFI_Error_Code_RESOURCE_EXHAUSTED,
                    "could not allocate the kernels' per-thread scratch");
    return NULL;
}

XLA_FFI_Error* lrn_xla_ffi_lrn(XLA_FFI_CallFrame* frame) {
    return call(frame, K_LRN, "lrn_core_lrn_cpu");
}

XLA_FFI_Error* lrn_xla_ffi_lrn_vjp(XLA_FFI_CallFrame* frame) {
    return call(frame, K_VJP, "lrn_core_lrn_vjp_cpu");
}

XLA_FFI_Error* lrn_xla_ffi_window_sum(XLA_FFI_CallFrame* frame) {
    return call(frame, K_WINDOW, "lrn_core_window_sum_cpu");
}
