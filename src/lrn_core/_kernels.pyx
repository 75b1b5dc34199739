# The compiled core of lrn-core: channel window sums, LRN forward and LRN backward.
#
# Every kernel works on a 3-D strided view (outer, C, inner) of the caller's array, C being the
# channel axis; strides are in elements and may be negative. Validation, dtype policy and the
# choice of view live in ``_api.py``: this module trusts its inputs and only computes.
#
# Work is split into tiles: one tile is up to B positions of one ``outer`` row (consecutive
# ``inner`` indices) times all C channels. A tile is copied into thread-local scratch laid out
# channel-major (C rows of B contiguous values), so every inner loop below runs over contiguous
# memory and vectorises, whatever the layout of the caller's array (NCHW, NHWC, transposed,
# negative strides). Tiles are independent and are spread over OpenMP threads (static schedule).
#
# Window sums use the van Herk / Gil-Werman scheme: the (zero padded) channel axis is cut into
# blocks of n channels; a window of n channels is the suffix sum of one block plus the prefix sum
# of the next. That costs three additions per element for any n, never subtracts, and only adds
# values that lie inside the window: no cancellation next to a huge channel, and inf/nan only
# reach the outputs whose window contains them. Sums are accumulated in double for both dtypes.
#
# This file is compiled twice by setup.py: as ``_kernels`` with the baseline flags of the
# platform, and (on x86-64) as ``_kernels_avx2`` with AVX2/FMA enabled; ``_dispatch.py`` picks
# the one the CPU supports.

from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.math cimport pow, sqrt
from libc.stdlib cimport free, malloc

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define LRN_OPENMP 1
    #define LRN_OPENMP_VERSION _OPENMP
    #else
    #define LRN_OPENMP 0
    #define LRN_OPENMP_VERSION 0
    static int omp_get_max_threads(void) { return 1; }
    #endif
    #ifndef LRN_BUILD_CFLAGS
    #define LRN_BUILD_CFLAGS ""
    #endif
    #if defined(__AVX2__)
    #define LRN_SIMD "avx2"
    #elif defined(__SSE2__)
    #define LRN_SIMD "sse2"
    #else
    #define LRN_SIMD "none"
    #endif
    """
    const int LRN_OPENMP
    const int LRN_OPENMP_VERSION
    const char* LRN_SIMD
    const char* LRN_BUILD_CFLAGS
    int omp_get_max_threads() noexcept nogil


cdef enum:
    # Inputs smaller than this many elements run on one thread: starting a team costs more
    # than it saves (see BENCHMARKS.md).
    SERIAL_BELOW = 32768
    # Target bytes of scratch per thread; the tile width B is chosen from it and C.
    SCRATCH_TARGET = 262144
    # Beta fast paths (exact closed forms of s ** -beta).
    BETA_GENERIC = 0
    BETA_075 = 1
    BETA_05 = 2
    BETA_1 = 3
    BETA_0 = 4


openmp_enabled = bool(LRN_OPENMP)
openmp_version = LRN_OPENMP_VERSION
simd = (<bytes>LRN_SIMD).decode()
build_cflags = (<bytes>LRN_BUILD_CFLAGS).decode()


def max_threads():
    """Threads an OpenMP region would use now (OMP_NUM_THREADS, threadpoolctl); 1 without OpenMP."""
    return omp_get_max_threads()


cdef inline int _beta_kind(double beta) noexcept nogil:
    if beta == 0.75:
        return BETA_075
    if beta == 0.5:
        return BETA_05
    if beta == 1.0:
        return BETA_1
    if beta == 0.0:
        return BETA_0
    return BETA_GENERIC


cdef Py_ssize_t _tile_width(Py_ssize_t C, Py_ssize_t inner, Py_ssize_t row_bytes) noexcept nogil:
    """Positions per tile: fill about SCRATCH_TARGET bytes, a multiple of 8, 8 <= B <= 512."""
    cdef Py_ssize_t b = SCRATCH_TARGET // (row_bytes * (C + 1))
    b = (b // 8) * 8
    if b < 8:
        b = 8
    if b > 512:
        b = 512
    if b > inner:
        b = inner
    return b


cdef int _n_threads(Py_ssize_t n_elements, Py_ssize_t n_tiles) noexcept nogil:
    cdef int nt = omp_get_max_threads()
    if n_elements < SERIAL_BELOW:
        return 1
    if nt > n_tiles:
        nt = <int>n_tiles
    return nt if nt > 0 else 1


# ---------------------------------------------------------------------------------------------
# Tile helpers. A tile row is B doubles (or B values of the input type); L <= B positions valid.

cdef inline void _load(const floating* src, Py_ssize_t sc, Py_ssize_t si, Py_ssize_t C,
                       Py_ssize_t L, Py_ssize_t B, floating* dst) noexcept nogil:
    """dst[c*B + j] = src[c*sc + j*si]."""
    cdef Py_ssize_t c, j
    cdef const floating* row
    cdef floating* drow
    if si == 1:
        for c in range(C):
            row = src + c * sc
            drow = dst + c * B
            for j in range(L):
                drow[j] = row[j]
    else:
        for j in range(L):
            row = src + j * si
            for c in range(C):
                dst[c * B + j] = row[c * sc]


cdef inline void _store(const floating* src, Py_ssize_t C, Py_ssize_t L, Py_ssize_t B,
                        floating* dst, Py_ssize_t sc, Py_ssize_t si) noexcept nogil:
    """dst[c*sc + j*si] = src[c*B + j]."""
    cdef Py_ssize_t c, j
    cdef const floating* srow
    cdef floating* row
    if si == 1:
        for c in range(C):
            srow = src + c * B
            row = dst + c * sc
            for j in range(L):
                row[j] = srow[j]
    else:
        for j in range(L):
            row = dst + j * si
            for c in range(C):
                row[c * sc] = src[c * B + j]


cdef inline void _window_sum(const double* v, double* S, Py_ssize_t C, Py_ssize_t n,
                             Py_ssize_t before, Py_ssize_t L, Py_ssize_t B) noexcept nogil:
    """S[c*B + j] = sum of v[m*B + j] for m in [c - before, c - before + n - 1] within [0, C).

    S must hold C + n - 1 rows. Padded row p stands for channel p - before (zero outside
    [0, C)); the window of output c is padded rows [c, c + n - 1]. S first receives the suffix
    sums of each block of n padded rows, then is overwritten in place with the window sums.
    """
    cdef Py_ssize_t Lp = C + n - 1
    cdef Py_ssize_t p, q, c, j, ch
    cdef double* Srow
    cdef double* Snext
    cdef const double* vrow
    cdef double* P = S + Lp * B   # one extra row: the running prefix sum
    # Suffix sums within blocks of n padded rows, from the last row down.
    for p in range(Lp - 1, -1, -1):
        Srow = S + p * B
        ch = p - before
        if p == Lp - 1 or (p + 1) % n == 0:
            # last row of its block
            if 0 <= ch < C:
                vrow = v + ch * B
                for j in range(L):
                    Srow[j] = vrow[j]
            else:
                for j in range(L):
                    Srow[j] = 0.0
        else:
            Snext = Srow + B
            if 0 <= ch < C:
                vrow = v + ch * B
                for j in range(L):
                    Srow[j] = vrow[j] + Snext[j]
            else:
                for j in range(L):
                    Srow[j] = Snext[j]
    # Window c = suffix(c) + prefix(c + n - 1) unless the window is exactly one block.
    for c in range(1, C):
        q = c + n - 1
        ch = q - before
        if q % n == 0:
            if 0 <= ch < C:
                vrow = v + ch * B
                for j in range(L):
                    P[j] = vrow[j]
            else:
                for j in range(L):
                    P[j] = 0.0
        elif 0 <= ch < C:
            vrow = v + ch * B
            for j in range(L):
                P[j] += vrow[j]
        if c % n != 0:
            Srow = S + c * B
            for j in range(L):
                Srow[j] += P[j]


cdef inline void _neg_pow(double* s, Py_ssize_t L, double beta, int kind) noexcept nogil:
    """s[j] = s[j] ** -beta, in place, with exact closed forms for common betas."""
    cdef Py_ssize_t j
    cdef double r
    if kind == BETA_075:
        for j in range(L):
            r = sqrt(s[j])
            s[j] = 1.0 / (r * sqrt(r))
    elif kind == BETA_05:
        for j in range(L):
            s[j] = 1.0 / sqrt(s[j])
    elif kind == BETA_1:
        for j in range(L):
            s[j] = 1.0 / s[j]
    elif kind == BETA_0:
        for j in range(L):
            s[j] = 1.0
    else:
        for j in range(L):
            s[j] = pow(s[j], -beta)


cdef inline void _square_rows(const floating* xt, double* Q, Py_ssize_t C, Py_ssize_t L,
                              Py_ssize_t B) noexcept nogil:
    cdef Py_ssize_t c, j
    cdef double v
    for c in range(C):
        for j in range(L):
            v = xt[c * B + j]
            Q[c * B + j] = v * v


cdef inline void _scale_shift(double* S, Py_ssize_t C, Py_ssize_t L, Py_ssize_t B,
                              double k, double an) noexcept nogil:
    """S = k + an * S over C rows."""
    cdef Py_ssize_t c, j
    for c in range(C):
        for j in range(L):
            S[c * B + j] = k + an * S[c * B + j]


# ---------------------------------------------------------------------------------------------
# Kernels

def window_sum(const floating[:, :, :] v, floating[:, :, :] out, Py_ssize_t size,
               Py_ssize_t before):
    """out[o, c, i] = sum of v[o, m, i] for m in [c - before, c - before + size - 1] ∩ [0, C)."""
    cdef Py_ssize_t O = v.shape[0], C = v.shape[1], I = v.shape[2]
    if O == 0 or C == 0 or I == 0:
        return
    cdef Py_ssize_t n = size
    cdef Py_ssize_t B = _tile_width(C + n, I, 3 * sizeof(double))
    cdef Py_ssize_t per_row = (I + B - 1) // B
    cdef Py_ssize_t n_tiles = O * per_row
    cdef int nt = _n_threads(O * C * I, n_tiles)
    cdef const floating* vp = &v[0, 0, 0]
    cdef floating* op = &out[0, 0, 0]
    cdef Py_ssize_t vso = v.strides[0] // sizeof(floating), vsc = v.strides[1] // sizeof(floating)
    cdef Py_ssize_t vsi = v.strides[2] // sizeof(floating)
    cdef Py_ssize_t oso = out.strides[0] // sizeof(floating)
    cdef Py_ssize_t osc = out.strides[1] // sizeof(floating)
    cdef Py_ssize_t osi = out.strides[2] // sizeof(floating)
    cdef Py_ssize_t t, o, i0, L, c, j
    cdef floating* xt
    cdef double* Q
    cdef double* S
    cdef int failed = 0
    cdef int* failp = &failed
    with nogil, parallel(num_threads=nt):
        xt = <floating*>malloc(C * B * sizeof(floating))
        Q = <double*>malloc(C * B * sizeof(double))
        S = <double*>malloc((C + n) * B * sizeof(double))
        if xt == NULL or Q == NULL or S == NULL:
            failp[0] = 1
        else:
            for t in prange(n_tiles, schedule='static'):
                o = t // per_row
                i0 = (t % per_row) * B
                L = I - i0
                if L > B:
                    L = B
                _load(vp + o * vso + i0 * vsi, vsc, vsi, C, L, B, xt)
                for c in range(C):
                    for j in range(L):
                        Q[c * B + j] = xt[c * B + j]
                _window_sum(Q, S, C, n, before, L, B)
                for c in range(C):
                    for j in range(L):
                        xt[c * B + j] = <floating>S[c * B + j]
                _store(xt, C, L, B, op + o * oso + i0 * osi, osc, osi)
        free(xt)
        free(Q)
        free(S)
    if failed:
        raise MemoryError("lrn_core: could not allocate the per-thread scratch")


def lrn_forward(const floating[:, :, :] x, floating[:, :, :] out, Py_ssize_t size,
                Py_ssize_t before, double alpha, double beta, double k):
    """out = x * (k + alpha / size * window_sum(x ** 2)) ** -beta along axis 1."""
    cdef Py_ssize_t O = x.shape[0], C = x.shape[1], I = x.shape[2]
    if O == 0 or C == 0 or I == 0:
        return
    cdef Py_ssize_t n = size
    cdef double an = alpha / <double>size
    cdef int kind = _beta_kind(beta)
    cdef Py_ssize_t B = _tile_width(C + n, I, 3 * sizeof(double))
    cdef Py_ssize_t per_row = (I + B - 1) // B
    cdef Py_ssize_t n_tiles = O * per_row
    cdef int nt = _n_threads(O * C * I, n_tiles)
    cdef const floating* xp = &x[0, 0, 0]
    cdef floating* op = &out[0, 0, 0]
    cdef Py_ssize_t xso = x.strides[0] // sizeof(floating), xsc = x.strides[1] // sizeof(floating)
    cdef Py_ssize_t xsi = x.strides[2] // sizeof(floating)
    cdef Py_ssize_t oso = out.strides[0] // sizeof(floating)
    cdef Py_ssize_t osc = out.strides[1] // sizeof(floating)
    cdef Py_ssize_t osi = out.strides[2] // sizeof(floating)
    cdef Py_ssize_t t, o, i0, L, c, j
    cdef floating* xt
    cdef double* Q
    cdef double* S
    cdef double* srow
    cdef floating* xrow
    cdef int failed = 0
    cdef int* failp = &failed
    with nogil, parallel(num_threads=nt):
        xt = <floating*>malloc(C * B * sizeof(floating))
        Q = <double*>malloc(C * B * sizeof(double))
        S = <double*>malloc((C + n) * B * sizeof(double))
        if xt == NULL or Q == NULL or S == NULL:
            failp[0] = 1
        else:
            for t in prange(n_tiles, schedule='static'):
                o = t // per_row
                i0 = (t % per_row) * B
                L = I - i0
                if L > B:
                    L = B
                _load(xp + o * xso + i0 * xsi, xsc, xsi, C, L, B, xt)
                _square_rows(xt, Q, C, L, B)
                _window_sum(Q, S, C, n, before, L, B)
                for c in range(C):
                    srow = S + c * B
                    xrow = xt + c * B
                    for j in range(L):
                        srow[j] = k + an * srow[j]
                    _neg_pow(srow, L, beta, kind)
                    for j in range(L):
                        xrow[j] = <floating>(xrow[j] * srow[j])
                _store(xt, C, L, B, op + o * oso + i0 * osi, osc, osi)
        free(xt)
        free(Q)
        free(S)
    if failed:
        raise MemoryError("lrn_core: could not allocate the per-thread scratch")


def lrn_backward(const floating[:, :, :] dy, const floating[:, :, :] x, floating[:, :, :] out,
                 Py_ssize_t size, Py_ssize_t before, double alpha, double beta, double k):
    """out = dy * s**-beta - 2*alpha*beta/size * x * window_sum_T(dy * x * s**(-beta-1)).

    s = k + alpha/size * window_sum(x**2); window_sum_T is the transposed window
    (``before`` and ``after`` swapped).
    """
    cdef Py_ssize_t O = x.shape[0], C = x.shape[1], I = x.shape[2]
    if O == 0 or C == 0 or I == 0:
        return
    cdef Py_ssize_t n = size
    cdef Py_ssize_t after = size - 1 - before
    cdef double an = alpha / <double>size
    cdef double coef = 2.0 * alpha * beta / <double>size
    cdef int kind = _beta_kind(beta)
    cdef Py_ssize_t B = _tile_width(C + n, I, 4 * sizeof(double))
    cdef Py_ssize_t per_row = (I + B - 1) // B
    cdef Py_ssize_t n_tiles = O * per_row
    cdef int nt = _n_threads(O * C * I, n_tiles)
    cdef const floating* xp = &x[0, 0, 0]
    cdef const floating* dp = &dy[0, 0, 0]
    cdef floating* op = &out[0, 0, 0]
    cdef Py_ssize_t xso = x.strides[0] // sizeof(floating), xsc = x.strides[1] // sizeof(floating)
    cdef Py_ssize_t xsi = x.strides[2] // sizeof(floating)
    cdef Py_ssize_t dso = dy.strides[0] // sizeof(floating)
    cdef Py_ssize_t dsc = dy.strides[1] // sizeof(floating)
    cdef Py_ssize_t dsi = dy.strides[2] // sizeof(floating)
    cdef Py_ssize_t oso = out.strides[0] // sizeof(floating)
    cdef Py_ssize_t osc = out.strides[1] // sizeof(floating)
    cdef Py_ssize_t osi = out.strides[2] // sizeof(floating)
    cdef Py_ssize_t t, o, i0, L, c, j
    cdef floating* xt
    cdef floating* dt
    cdef double* Q
    cdef double* S
    cdef double* S2
    cdef double* srow
    cdef double* qrow
    cdef double* wrow
    cdef floating* xrow
    cdef floating* drow
    cdef double s
    cdef int failed = 0
    cdef int* failp = &failed
    with nogil, parallel(num_threads=nt):
        xt = <floating*>malloc(C * B * sizeof(floating))
        dt = <floating*>malloc(C * B * sizeof(floating))
        Q = <double*>malloc(C * B * sizeof(double))
        S = <double*>malloc((C + n) * B * sizeof(double))
        S2 = <double*>malloc((C + n) * B * sizeof(double))
        if xt == NULL or dt == NULL or Q == NULL or S == NULL or S2 == NULL:
            failp[0] = 1
        else:
            for t in prange(n_tiles, schedule='static'):
                o = t // per_row
                i0 = (t % per_row) * B
                L = I - i0
                if L > B:
                    L = B
                _load(xp + o * xso + i0 * xsi, xsc, xsi, C, L, B, xt)
                _load(dp + o * dso + i0 * dsi, dsc, dsi, C, L, B, dt)
                _square_rows(xt, Q, C, L, B)
                _window_sum(Q, S, C, n, before, L, B)
                # S <- s ** -beta, Q <- r = dy * x * s ** -beta / s
                for c in range(C):
                    srow = S + c * B
                    qrow = Q + c * B
                    for j in range(L):
                        srow[j] = k + an * srow[j]
                        qrow[j] = srow[j]
                    _neg_pow(srow, L, beta, kind)
                    xrow = xt + c * B
                    drow = dt + c * B
                    for j in range(L):
                        qrow[j] = (<double>drow[j] * <double>xrow[j]) * srow[j] / qrow[j]
                _window_sum(Q, S2, C, n, after, L, B)
                for c in range(C):
                    srow = S + c * B
                    wrow = S2 + c * B
                    xrow = xt + c * B
                    drow = dt + c * B
                    for j in range(L):
                        drow[j] = <floating>(<double>drow[j] * srow[j]
                                             - coef * <double>xrow[j] * wrow[j])
                _store(dt, C, L, B, op + o * oso + i0 * osi, osc, osi)
        free(xt)
        free(dt)
        free(Q)
        free(S)
        free(S2)
    if failed:
        raise MemoryError("lrn_core: could not allocate the per-thread scratch")
