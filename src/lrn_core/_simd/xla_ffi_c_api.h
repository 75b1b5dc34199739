/* The few declarations of the XLA FFI C API that lrn-core's JAX handlers use (lrn_xla_ffi.c).
 *
 * Vendored from upstream `xla/ffi/api/c_api.h` (OpenXLA, Apache License 2.0; shipped in jaxlib
 * as jaxlib/include/xla/ffi/api/c_api.h), restricted to XLA FFI API version 0.1: buffers,
 * scalar attributes, errors, and the metadata extension of the version handshake. Nothing else
 * (state, streams, futures, thread pools): some "minor" versions rearranged those, while the
 * structs below only ever gained fields at their end, which the `struct_size` checks detect.
 *
 * Why a copy and not jaxlib's header: the core must build without JAX installed (setup.py needs
 * only a C compiler, Cython and NumPy), and one binary must serve every jaxlib whose XLA accepts
 * handlers of API 0.1 (built against jaxlib 0.10's own header a handler reports 0.3, which older
 * jaxlibs refuse). The layouts are the ABI XLA promises to keep for a version; do not edit them
 * except to follow upstream. */

#ifndef LRN_XLA_FFI_C_API_H_
#define LRN_XLA_FFI_C_API_H_

#include <stddef.h>
#include <stdint.h>

/* the API version the handlers are written for and report in the handshake */
#define LRN_XLA_FFI_API_MAJOR 0
#define LRN_XLA_FFI_API_MINOR 1

#define XLA_FFI_STRUCT_SIZE(struct_type, last_field) \
    (offsetof(struct_type, last_field) + sizeof(((struct_type*)0)->last_field))

typedef struct XLA_FFI_InternalApi XLA_FFI_InternalApi;
typedef struct XLA_FFI_ExecutionContext XLA_FFI_ExecutionContext;
typedef struct XLA_FFI_Error XLA_FFI_Error;

typedef enum {
    XLA_FFI_Extension_Metadata = 1,
} XLA_FFI_Extension_Type;

typedef struct XLA_FFI_Extension_Base {
    size_t struct_size;
    XLA_FFI_Extension_Type type;
    struct XLA_FFI_Extension_Base* next;
} XLA_FFI_Extension_Base;

typedef struct XLA_FFI_Api_Version {
    size_t struct_size;
    XLA_FFI_Extension_Base* extension_start;
    int major_version;
    int minor_version;
} XLA_FFI_Api_Version;
#define XLA_FFI_Api_Version_STRUCT_SIZE XLA_FFI_STRUCT_SIZE(XLA_FFI_Api_Version, minor_version)

typedef enum {
    XLA_FFI_Error_Code_INVALID_ARGUMENT = 3,
    XLA_FFI_Error_Code_RESOURCE_EXHAUSTED = 8,
    XLA_FFI_Error_Code_FAILED_PRECONDITION = 9,
    XLA_FFI_Error_Code_INTERNAL = 13,
} XLA_FFI_Error_Code;

typedef struct XLA_FFI_Error_Create_Args {
    size_t struct_size;
    XLA_FFI_Extension_Base* extension_start;
    const char* message;
    XLA_FFI_Error_Code errc;
} XLA_FFI_Error_Create_Args;
#define XLA_FFI_Error_Create_Args_STRUCT_SIZE XLA_FFI_STRUCT_SIZE(XLA_FFI_Error_Create_Args, errc)

typedef XLA_FFI_Error* XLA_FFI_Error_Create(XLA_FFI_Error_Create_Args* args);

typedef enum {
    XLA_FFI_DataType_S64 = 5,
    XLA_FFI_DataType_F32 = 11,
    XLA_FFI_DataType_F64 = 12,
} XLA_FFI_DataType;

typedef struct XLA_FFI_Buffer {
    size_t struct_size;
    XLA_FFI_Extension_Base* extension_start;
    XLA_FFI_DataType dtype;
    void* data;
    int64_t rank;
    int64_t* dims;
} XLA_FFI_Buffer;
#define XLA_FFI_Buffer_STRUCT_SIZE XLA_FFI_STRUCT_SIZE(XLA_FFI_Buffer, dims)

typedef enum {
    XLA_FFI_ArgType_BUFFER = 1,
} XLA_FFI_ArgType;

typedef enum {
    XLA_FFI_RetType_BUFFER = 1,
} XLA_FFI_RetType;

typedef enum {
    XLA_FFI_AttrType_SCALAR = 3,
} XLA_FFI_AttrType;

typedef struct XLA_FFI_ByteSpan {
    const char* ptr;
    size_t len;
} XLA_FFI_ByteSpan;

typedef struct XLA_FFI_Scalar {
    XLA_FFI_DataType dtype;
    void* value;
} XLA_FFI_Scalar;

typedef enum {
    XLA_FFI_ExecutionStage_EXECUTE = 3,
} XLA_FFI_ExecutionStage;

typedef struct XLA_FFI_Args {
    size_t struct_size;
    XLA_FFI_Extension_Base* extension_start;
    int64_t size;
    XLA_FFI_ArgType* types;
    void** args;
} XLA_FFI_Args;
#define XLA_FFI_Args_STRUCT_SIZE XLA_FFI_STRUCT_SIZE(XLA_FFI_Args, args)

typedef struct XLA_FFI_Rets {
    size_t struct_size;
    XLA_FFI_Extension_Base* extension_start;
    int64_t size;
    XLA_FFI_RetType* types;
    void** rets;
} XLA_FFI_Rets;
#define XLA_FFI_Rets_STRUCT_SIZE XLA_FFI_STRUCT_SIZE(XLA_FFI_Rets, rets)

/* attributes are sorted by name (upstream guarantees it; the handlers do not rely on it) */
typedef struct XLA_FFI_Attrs {
    size_t struct_size;
    XLA_FFI_Extension_Base* extension_start;
    int64_t size;
    XLA_FFI_AttrType* types;
    XLA_FFI_ByteSpan** names;
    void** attrs;
} XLA_FFI_Attrs;
#define XLA_FFI_Attrs_STRUCT_SIZE XLA_FFI_STRUCT_SIZE(XLA_FFI_Attrs, attrs)

/* The leading fields of XLA_FFI_Api; the struct is only ever seen through XLA's pointer, and
 * the fields after error_create (other API functions, not used here) are left out. */
typedef struct XLA_FFI_Api {
    size_t struct_size;
    XLA_FFI_Extension_Base* extension_start;
    XLA_FFI_Api_Version api_version;
    const XLA_FFI_InternalApi* internal_api;
    XLA_FFI_Error_Create* XLA_FFI_Error_Create;
} XLA_FFI_Api;
#define LRN_XLA_FFI_Api_NEEDED_SIZE XLA_FFI_STRUCT_SIZE(XLA_FFI_Api, XLA_FFI_Error_Create)

/* Later versions add fields after attrs (e.g. `future`); the handlers never touch them. */
typedef struct XLA_FFI_CallFrame {
    size_t struct_size;
    XLA_FFI_Extension_Base* extension_start;
    const XLA_FFI_Api* api;
    XLA_FFI_ExecutionContext* ctx;
    XLA_FFI_ExecutionStage stage;
    XLA_FFI_Args args;
    XLA_FFI_Rets rets;
    XLA_FFI_Attrs attrs;
} XLA_FFI_CallFrame;
#define XLA_FFI_CallFrame_STRUCT_SIZE XLA_FFI_STRUCT_SIZE(XLA_FFI_CallFrame, attrs)

typedef XLA_FFI_Error* XLA_FFI_Handler(XLA_FFI_CallFrame* call_frame);

typedef uint32_t XLA_FFI_Handler_Traits;

/* Later versions add `state_type_id` after traits. */
typedef struct XLA_FFI_Metadata {
    size_t struct_size;
    XLA_FFI_Api_Version api_version;
    XLA_FFI_Handler_Traits traits;
} XLA_FFI_Metadata;
#define XLA_FFI_Metadata_STRUCT_SIZE XLA_FFI_STRUCT_SIZE(XLA_FFI_Metadata, traits)

typedef struct XLA_FFI_Metadata_Extension {
    XLA_FFI_Extension_Base extension_base;
    XLA_FFI_Metadata* metadata;
} XLA_FFI_Metadata_Extension;
#define XLA_FFI_Metadata_Extension_STRUCT_SIZE \
    XLA_FFI_STRUCT_SIZE(XLA_FFI_Metadata_Extension, metadata)

#endif /* LRN_XLA_FFI_C_API_H_ */
