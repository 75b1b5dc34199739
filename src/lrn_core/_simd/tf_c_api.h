/* The few declarations of TensorFlow's C API that lrn-core's TF op (lrn_tf_op.c) uses.
 *
 * From TensorFlow's public C headers (tensorflow/c/kernels.h, ops.h, tf_tensor.h, tf_status.h,
 * tf_datatype.h; Apache License 2.0), as function-pointer types: the op library does not link
 * against libtensorflow_framework. When TensorFlow loads it (tf.load_op_library), the library
 * looks the functions up in the libtensorflow_framework.so.2 that process already has loaded
 * (dlopen with RTLD_NOLOAD, dlsym), so the core builds without TensorFlow and one binary serves
 * every TensorFlow whose C API has these functions. Only the stable C API: opaque handles,
 * scalars and plain functions, no struct layouts and no C++. Do not edit except to follow
 * upstream. */

#ifndef LRN_TF_C_API_H_
#define LRN_TF_C_API_H_

#include <stddef.h>
#include <stdint.h>

typedef struct TF_Status TF_Status;
typedef struct TF_Tensor TF_Tensor;
typedef struct TF_KernelBuilder TF_KernelBuilder;
typedef struct TF_OpKernelConstruction TF_OpKernelConstruction;
typedef struct TF_OpKernelContext TF_OpKernelContext;
typedef struct TF_OpDefinitionBuilder TF_OpDefinitionBuilder;
typedef struct TF_ShapeInferenceContext TF_ShapeInferenceContext;
typedef struct TF_ShapeHandle TF_ShapeHandle;

/* tf_datatype.h, tf_status.h: the values used here */
typedef int TF_DataType;
enum { LRN_TF_FLOAT = 1, LRN_TF_DOUBLE = 2 };
typedef int TF_Code;
enum { LRN_TF_OK = 0, LRN_TF_INVALID_ARGUMENT = 3, LRN_TF_RESOURCE_EXHAUSTED = 8 };

/* X(name, return type, parameters): every function the op library calls */
#define LRN_TF_FUNCTIONS(X)                                                                     \
    X(TF_NewStatus, TF_Status*, (void))                                                         \
    X(TF_DeleteStatus, void, (TF_Status*))                                                      \
    X(TF_SetStatus, void, (TF_Status*, TF_Code, const char*))                                   \
    X(TF_GetCode, TF_Code, (const TF_Status*))                                                  \
    X(TF_NewOpDefinitionBuilder, TF_OpDefinitionBuilder*, (const char*))                        \
    X(TF_OpDefinitionBuilderAddInput, void, (TF_OpDefinitionBuilder*, const char*))             \
    X(TF_OpDefinitionBuilderAddOutput, void, (TF_OpDefinitionBuilder*, const char*))            \
    X(TF_OpDefinitionBuilderAddAttr, void, (TF_OpDefinitionBuilder*, const char*))              \
    X(TF_OpDefinitionBuilderSetShapeInferenceFunction, void,                                    \
      (TF_OpDefinitionBuilder*, void (*)(TF_ShapeInferenceContext*, TF_Status*)))               \
    X(TF_RegisterOpDefinition, void, (TF_OpDefinitionBuilder*, TF_Status*))                     \
    X(TF_NewShapeHandle, TF_ShapeHandle*, (void))                                               \
    X(TF_DeleteShapeHandle, void, (TF_ShapeHandle*))                                            \
    X(TF_ShapeInferenceContextGetInput, void,                                                   \
      (TF_ShapeInferenceContext*, int, TF_ShapeHandle*, TF_Status*))                            \
    X(TF_ShapeInferenceContextSetOutput, void,                                                  \
      (TF_ShapeInferenceContext*, int, TF_ShapeHandle*, TF_Status*))                            \
    X(TF_NewKernelBuilder, TF_KernelBuilder*,                                                   \
      (const char*, const char*, void* (*)(TF_OpKernelConstruction*),                           \
       void (*)(void*, TF_OpKernelContext*), void (*)(void*)))                                  \
    X(TF_KernelBuilder_TypeConstraint, void,                                                    \
      (TF_KernelBuilder*, const char*, TF_DataType, TF_Status*))                                \
    X(TF_RegisterKernelBuilder, void, (const char*, TF_KernelBuilder*, TF_Status*))             \
    X(TF_DeleteKernelBuilder, void, (TF_KernelBuilder*))                                        \
    X(TF_OpKernelConstruction_GetAttrInt64, void,                                               \
      (TF_OpKernelConstruction*, const char*, int64_t*, TF_Status*))                            \
    X(TF_OpKernelConstruction_Failure, void, (TF_OpKernelConstruction*, TF_Status*))            \
    X(TF_GetInput, void, (TF_OpKernelContext*, int, TF_Tensor**, TF_Status*))                   \
    X(TF_AllocateOutput, TF_Tensor*,                                                            \
      (TF_OpKernelContext*, int, TF_DataType, const int64_t*, int, size_t, TF_Status*))         \
    X(TF_OpKernelContext_Failure, void, (TF_OpKernelContext*, TF_Status*))                      \
    X(TF_DeleteTensor, void, (TF_Tensor*))                                                      \
    X(TF_TensorType, TF_DataType, (const TF_Tensor*))                                           \
    X(TF_NumDims, int, (const TF_Tensor*))                                                      \
    X(TF_Dim, int64_t, (const TF_Tensor*, int))                                                 \
    X(TF_TensorData, void*, (const TF_Tensor*))

#endif /* LRN_TF_C_API_H_ */
