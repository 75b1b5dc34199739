"""XLA FFI handlers for the JAX adapter, written in Python with ``ctypes`` (no compiled code).

XLA calls a handler with a ``XLA_FFI_CallFrame`` (``jaxlib/include/xla/ffi/api/c_api.h``): the
operand and result buffers (dtype, data pointer, dims) and the scalar attributes of the call.
The handler wraps the buffers as NumPy arrays without copying, and the kernels read the operands
and write the result in place. ``jax.pure_callback`` instead copies the operands into new jax
Arrays and the result back into XLA's buffer: about 35 ms per call on a 37 MB tensor here, six
times the kernel itself (docs/jax.rst).

The structures below mirror the C API of XLA FFI version 0.3 (jaxlib 0.10). :func:`register`
checks the API version XLA reports and every call checks the struct sizes it receives; on a
mismatch no target is registered (the adapter falls back to ``jax.pure_callback``) or the call
fails with an error that names the way out, ``implementation="xla"``. A Python exception in a
kernel becomes an XLA error, never a silent success.
"""

from __future__ import annotations

import ctypes as C
import sys

import jax
import numpy as np

__all__ = ["register"]

#: the XLA FFI C API version these structures follow
API_VERSION = (0, 3)
_METADATA_EXTENSION = 1
_EXECUTE = 3
_ERROR_INTERNAL = 13
_DTYPES = {11: np.dtype(np.float32), 12: np.dtype(np.float64)}  # XLA_FFI_DataType F32, F64
_SCALARS = {5: C.c_int64, 12: C.c_double}  # S64, F64


class _ExtensionBase(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("type", C.c_int), ("next", C.c_void_p)]


class _ApiVersion(C.Structure):
    _fields_ = [
        ("struct_size", C.c_size_t),
        ("extension_start", C.c_void_p),
        ("major", C.c_int),
        ("minor", C.c_int),
    ]


class _Metadata(C.Structure):
    _fields_ = [
        ("struct_size", C.c_size_t),
        ("api_version", _ApiVersion),
        ("traits", C.c_uint32),
        ("state_type_id", C.c_int64),
    ]


class _MetadataExtension(C.Structure):
    _fields_ = [("base", _ExtensionBase), ("metadata", C.POINTER(_Metadata))]


class _Buffer(C.Structure):
    _fields_ = [
        ("struct_size", C.c_size_t),
        ("extension_start", C.c_void_p),
        ("dtype", C.c_int),
        ("data", C.c_void_p),
        ("rank", C.c_int64),
        ("dims", C.POINTER(C.c_int64)),
    ]


class _List(C.Structure):  # XLA_FFI_Args and XLA_FFI_Rets have the same layout
    _fields_ = [
        ("struct_size", C.c_size_t),
        ("extension_start", C.c_void_p),
        ("size", C.c_int64),
        ("types", C.POINTER(C.c_int)),
        ("items", C.POINTER(C.c_void_p)),
    ]


class _ByteSpan(C.Structure):
    _fields_ = [("ptr", C.c_void_p), ("len", C.c_size_t)]


class _Attrs(C.Structure):
    _fields_ = [
        ("struct_size", C.c_size_t),
        ("extension_start", C.c_void_p),
        ("size", C.c_int64),
        ("types", C.POINTER(C.c_int)),
        ("names", C.POINTER(C.POINTER(_ByteSpan))),
        ("attrs", C.POINTER(C.c_void_p)),
    ]


class _Scalar(C.Structure):
    _fields_ = [("dtype", C.c_int), ("value", C.c_void_p)]


class _CallFrame(C.Structure):
    _fields_ = [
        ("struct_size", C.c_size_t),
        ("extension_start", C.POINTER(_ExtensionBase)),
        ("api", C.c_void_p),
        ("ctx", C.c_void_p),
        ("stage", C.c_int),
        ("args", _List),
        ("rets", _List),
        ("attrs", _Attrs),
        ("future", C.c_void_p),
    ]


class _ErrorCreateArgs(C.Structure):
    _fields_ = [
        ("struct_size", C.c_size_t),
        ("extension_start", C.c_void_p),
        ("message", C.c_char_p),
        ("errc", C.c_int),
    ]


class _ApiHead(C.Structure):  # the first fields of XLA_FFI_Api
    _fields_ = [
        ("struct_size", C.c_size_t),
        ("extension_start", C.c_void_p),
        ("api_version", _ApiVersion),
        ("internal_api", C.c_void_p),
        ("error_create", C.CFUNCTYPE(C.c_void_p, C.POINTER(_ErrorCreateArgs))),
    ]


#: XLA_FFI_STRUCT_SIZE(XLA_FFI_CallFrame, attrs): the size up to its last mandatory field
_FRAME_SIZE = _CallFrame.attrs.offset + C.sizeof(_Attrs)
_HANDLER = C.CFUNCTYPE(C.c_void_p, C.POINTER(_CallFrame))

# XLA's CPU client allocates every result afresh, and the kernel then faults in one page of zeros
# per 4 KiB written: on the machines here about 30 ms for a 37 MB result, several times the LRN
# itself. Asking for transparent huge pages on the (2 MiB-aligned interior of the) result before
# writing it cuts that to a few ms where the kernel allows them on request
# (/sys/kernel/mm/transparent_hugepage/enabled = madvise, the common default). A hint only: it
# changes no content, and a refusal is ignored.
_HUGE_PAGE = 2 << 20
_MADV_HUGEPAGE = 14
_MIN_ADVISE_BYTES = 4 << 20
try:
    _madvise = C.CDLL(None).madvise if sys.platform.startswith("linux") else None
    if _madvise is not None:
        _madvise.argtypes = [C.c_void_p, C.c_size_t, C.c_int]
        _madvise.restype = C.c_int
except (OSError, AttributeError):  # pragma: no cover - no libc symbol
    _madvise = None


def _advise_huge_pages(a):
    if _madvise is None or a.nbytes < _MIN_ADVISE_BYTES:
        return
    start = -(-a.ctypes.data // _HUGE_PAGE) * _HUGE_PAGE
    end = (a.ctypes.data + a.nbytes) // _HUGE_PAGE * _HUGE_PAGE
    if end > start:
        _madvise(start, end - start, _MADV_HUGEPAGE)


_keep = []  # the ctypes function objects must live as long as XLA may call them


class _LayoutError(RuntimeError):
    pass


def _array(pointer):
    """A NumPy view of an XLA buffer (row-major, as ``jax.ffi`` lays out operands by default)."""
    b = C.cast(pointer, C.POINTER(_Buffer)).contents
    if b.struct_size < C.sizeof(_Buffer):
        raise _LayoutError(
            f"XLA_FFI_Buffer has {b.struct_size} bytes, expected at least {C.sizeof(_Buffer)}"
        )
    if b.dtype not in _DTYPES:
        raise TypeError(f"buffer dtype code {b.dtype}: lrn-core's kernels take float32 and float64")
    shape = tuple(b.dims[i] for i in range(b.rank))
    dtype = _DTYPES[b.dtype]
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes == 0:
        return np.empty(shape, dtype)
    return np.frombuffer((C.c_char * nbytes).from_address(b.data), dtype).reshape(shape)


def _attrs(a):
    out = {}
    for i in range(a.size):
        span = a.names[i].contents
        scalar = C.cast(a.attrs[i], C.POINTER(_Scalar)).contents
        value = C.cast(scalar.value, C.POINTER(_SCALARS[scalar.dtype])).contents.value
        out[C.string_at(span.ptr, span.len).decode()] = value
    return out


def _handler(name, fn):
    """An XLA FFI handler calling ``fn(*operands, out=result, **attributes)``."""

    def handler(frame_pointer):
        frame = frame_pointer.contents
        try:
            extension = frame.extension_start
            if extension and extension.contents.type == _METADATA_EXTENSION:
                metadata = C.cast(extension, C.POINTER(_MetadataExtension)).contents.metadata
                metadata.contents.api_version = _ApiVersion(
                    C.sizeof(_ApiVersion), None, *API_VERSION
                )
                metadata.contents.traits = 0
                return None
            if frame.struct_size < _FRAME_SIZE:
                raise _LayoutError(
                    f"XLA_FFI_CallFrame has {frame.struct_size} bytes, expected "
                    f"at least {_FRAME_SIZE}"
                )
            if frame.stage != _EXECUTE:
                return None
            operands = [_array(frame.args.items[i]) for i in range(frame.args.size)]
            out = _array(frame.rets.items[0])
            if out.size:
                _advise_huge_pages(out)
                fn(*operands, out=out, **_attrs(frame.attrs))
            return None
        except BaseException as exc:
            hint = (
                " This jaxlib's FFI structures differ from the ones lrn-core knows: use "
                "implementation='xla'."
                if isinstance(exc, _LayoutError)
                else ""
            )
            message = f"{name}: {type(exc).__name__}: {exc}.{hint}".encode()
            api = C.cast(frame.api, C.POINTER(_ApiHead)).contents
            args = _ErrorCreateArgs(C.sizeof(_ErrorCreateArgs), None, message, _ERROR_INTERNAL)
            return api.error_create(C.byref(args))

    return _HANDLER(handler)


def register(functions):
    """Register ``{target name: fn}`` as CPU FFI targets; the names registered (none if this
    jaxlib's FFI is not the version the structures follow, or registration fails)."""
    if not hasattr(jax, "ffi"):
        return frozenset()
    try:
        import jaxlib

        if tuple(int(p) for p in jaxlib.__version__.split(".")[:2]) != (0, 10):
            return frozenset()  # structures written for jaxlib 0.10 (XLA FFI 0.3)
    except (ImportError, ValueError):
        return frozenset()
    names = set()
    for name, fn in functions.items():
        handler = _handler(name, fn)
        try:
            jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(handler), platform="cpu")
        except Exception:  # pragma: no cover - an older or newer jax: pure_callback instead
            continue
        _keep.append(handler)
        names.add(name)
    return frozenset(names)
