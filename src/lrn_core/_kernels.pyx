# The compiled core of lrn-core: channel window sums, LRN forward and LRN backward.
#
# Every kernel works on a 3-D strided view (outer, C, inner) of the caller's array, C being the
# channel axis; strides are in elements and may be negative. Validation, dtype policy and the
# choice of view live in ``_api.py``: this module trusts its inputs and only computes. The
# float32 fast-path kernels are C (``_simd/lrn_kernels.c``, declared in ``_lrn_kernels.pxd``);
# this module is the driver: path choice, scratch, threads, and the portable tiles.
#
# Work is split into tiles: one tile is up to B positions of one ``outer`` row (consecutive
# ``inner`` indices) times all C channels, seen as C rows of B values. When the positions are
# contiguous (NCHW) the rows are read and written in place; otherwise (NHWC, transposed views)
# the tile is first gathered into thread-local scratch. Either way every inner loop runs over
# contiguous memory and vectorises. Tiles are independent and are spread over OpenMP threads
# (static schedule). A forward tile takes two passes over its rows (suffix sums going down, then
# prefix sums, s ** -beta and the output going up); a backward tile four. One driver (``_lrn``)
# and one tile, position and row kernel serve both passes: ``dy`` NULL means forward.
#
# The common case takes a shorter road: float32 with contiguous positions (NCHW), windows of at
# most FAST_MAX_SIZE channels and beta 0.75 or 0.5 runs one pass over the rows per direction on
# AVX2 builds (``lrn_rows_f32``: direct rows up to LRN_DIRECT_MAX_SIZE channels, streamed van
# Herk rows above), and channels-last positions take ``lrn_pixels_f32``. This is what brings the
# kernels close to the memory floor (BENCHMARKS.md).
#
# Window sums use the van Herk / Gil-Werman scheme: the (zero padded) channel axis is cut into
# blocks of n channels; a window of n channels is the suffix sum of one block plus the prefix sum
# of the next. That costs three additions per element for any n, never subtracts, and only adds
# values that lie inside the window: no cancellation next to a huge channel, and inf/nan only
# reach the outputs whose window contains them.
#
# Precision: float64 inputs are computed in double. float32 inputs take a float fast path when
# it is provably accurate to a few ulps: the window has at most FAST_MAX_SIZE channels (so a sum
# has few roundings), 0 <= alpha/size <= 1e6 and 1e-20 <= k <= 5e29 (so s >= 1e-20), and the
# tile's block totals show every s <= 1e30 and no inf/nan. A tile that fails the check is
# recomputed with double accumulation, so the guarantee holds for any input.
#
# This file is compiled twice by setup.py: as ``_kernels`` with the baseline flags of the
# platform, and (on x86-64) as ``_kernels_avx2`` with AVX2/FMA enabled; ``_dispatch.py`` picks
# the one the CPU supports.

from cython cimport floating

ctypedef fused acc:
    # the type window sums and s are computed in
    float
    double
from cpython.pycapsule cimport PyCapsule_New
from cython.parallel cimport parallel, prange
from libc.math cimport sqrt
from libc.stddef cimport ptrdiff_t
from libc.stdint cimport uintptr_t
from libc.stdlib cimport free, malloc

from lrn_core._lrn_kernels cimport (
    LRN_BUILD_CFLAGS,
    LRN_DIRECT,
    LRN_DIRECT_MAX_SIZE,
    LRN_OPENMP,
    LRN_OPENMP_VERSION,
    LRN_PREFETCH_ROWS,
    LRN_SIMD,
    LRN_VECTOR_POW,
    lrn_fork_capped,
    lrn_fused_row_f32,
    lrn_install_fork_guard,
    lrn_max_threads,
    lrn_pixels_f32,
    lrn_pow05_f32,
    lrn_pow05_pair_f32,
    lrn_pow075_f32,
    lrn_pow075_pair_f32,
    lrn_pow_f32,
    lrn_pow_f64,
    lrn_prefetch,
    lrn_release_fork_cap,
    lrn_rows_f32,
    lrn_team_starting,
)
from lrn_core._lrn_xla_ffi cimport (
    LRN_XLA_FFI_API_MAJOR,
    LRN_XLA_FFI_API_MINOR,
    lrn_driver,
    lrn_view,
    lrn_xla_ffi_lrn,
    lrn_xla_ffi_lrn_vjp,
    lrn_xla_ffi_set_driver,
    lrn_xla_ffi_window_sum,
)


cdef enum:
    # Inputs smaller than this many elements run on one thread: starting a team costs more
    # than it saves (see BENCHMARKS.md).
    SERIAL_BELOW = 32768
    # Target bytes of window-sum scratch per thread; the tile width B follows from it and C.
    SCRATCH_TARGET = 262144
    # Largest window the float32 fast path accumulates in float.
    FAST_MAX_SIZE = 32
    # Channels-last inputs with windows up to this size are computed position by position,
    # summing each window directly along the contiguous channels (no transposes).
    PIXEL_MAX_SIZE = 8
    # On the float fast path (beta 0.75 or 0.5, AVX2 builds) channels-last positions are summed
    # directly up to this window (all of the fast path): cheaper than transposing tiles.
    PIXEL_DIRECT_MAX_SIZE = 32
    # From this window up, those positions sum their windows from groups of about sqrt(n)
    # channels (about 2 sqrt(n) loads a value) instead of n shifted loads (measured crossover:
    # about 7 channels).
    PIXEL_GROUP_SIZE = 8
    # Contiguous positions (NCHW) on the float fast path with windows up to LRN_DIRECT_MAX_SIZE
    # (8) and beta 0.75 or 0.5 take direct rows (AVX2 builds): one pass per direction,
    # DIRECT_TILE positions a tile, window sums read straight from the rows of x. Their cost
    # grows with the window (n loads an element); from about 8 channels the streamed rows, whose
    # cost does not, are as fast (measured: BENCHMARKS.md). LRN_PREFETCH_ROWS (2): tiles
    # prefetch the rows of x (and dy) this many channels ahead (the rows of a tile are far
    # apart, so the hardware prefetchers do not see them coming).
    DIRECT_TILE = 512
    # Wider windows on that path (up to FAST_MAX_SIZE) take streamed van Herk rows, STREAM_TILE
    # positions a tile, so that their rings (n + 2 rows; 4n + 3 in the backward) stay in L2.
    STREAM_TILE = 384
    # Betas with closed forms of s ** -beta (float: rsqrt + Newton on AVX2; double: sqrt, divide).
    BETA_GENERIC = 0
    BETA_075 = 1
    BETA_05 = 2
    BETA_1 = 3
    BETA_0 = 4


openmp_enabled = bool(LRN_OPENMP)
openmp_version = LRN_OPENMP_VERSION
simd = (<bytes>LRN_SIMD).decode()
build_cflags = (<bytes>LRN_BUILD_CFLAGS).decode()
vector_pow = bool(LRN_VECTOR_POW)


def max_threads():
    """Threads an OpenMP region would use now (OMP_NUM_THREADS, threadpoolctl); 1 without OpenMP
    and in a forked child (see fork_capped)."""
    return lrn_max_threads()


# Registered when the module loads, before any parallel region can run: every forked child of
# this process runs the kernels on one thread (lrn_kernels.h, "Fork safety").
if lrn_install_fork_guard() != 0:
    raise ImportError("lrn_core: pthread_atfork failed; forked children could hang")


def fork_capped():
    """True in a forked child, where the kernels run on one thread."""
    return bool(lrn_fork_capped())


def release_fork_cap():
    """Lift the one-thread cap of a forked child. False (cap kept) when the parent had run a
    team of several threads before the fork: the child's inherited thread pool is then dead."""
    return lrn_release_fork_cap() == 0


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


cdef Py_ssize_t _tile_width(Py_ssize_t C, Py_ssize_t n, Py_ssize_t inner,
                            Py_ssize_t acc_bytes) noexcept nogil:
    """Positions per tile: window-sum scratch of about SCRATCH_TARGET bytes, 8 <= B <= 1024."""
    cdef Py_ssize_t b = SCRATCH_TARGET // (acc_bytes * (C + n + 2))
    b = (b // 8) * 8
    if b < 8:
        b = 8
    if b > 1024:
        b = 1024
    if b > inner:
        b = inner
    return b


cdef inline float* _aligned64(void* block) noexcept nogil:
    """The first 64-byte boundary in ``block`` (allocated 64 bytes longer): scratch rows whose
    width is a multiple of 16 floats then start on cache lines, so no vector load is split."""
    return <float*>((<uintptr_t>block + 63) & ~(<uintptr_t>63))


cdef int _n_threads(Py_ssize_t n_elements, Py_ssize_t n_tiles) noexcept nogil:
    cdef int nt = lrn_max_threads()
    if n_elements < SERIAL_BELOW:
        return 1
    if nt > n_tiles:
        nt = <int>n_tiles
    if nt < 1:
        nt = 1
    lrn_team_starting(nt)
    return nt


# ---------------------------------------------------------------------------------------------
# Tile helpers. A tile has C rows of L <= B valid positions; scratch rows are B long.

cdef inline void _gather(const floating* src, Py_ssize_t sc, Py_ssize_t si, Py_ssize_t C,
                         Py_ssize_t L, Py_ssize_t B, floating* dst) noexcept nogil:
    """dst[c*B + j] = src[c*sc + j*si]."""
    cdef Py_ssize_t c, j
    cdef const floating* col
    for j in range(L):
        col = src + j * si
        for c in range(C):
            dst[c * B + j] = col[c * sc]


cdef inline void _scatter(const floating* src, Py_ssize_t C, Py_ssize_t L, Py_ssize_t B,
                          floating* dst, Py_ssize_t sc, Py_ssize_t si) noexcept nogil:
    """dst[c*sc + j*si] = src[c*B + j]."""
    cdef Py_ssize_t c, j
    cdef floating* col
    for j in range(L):
        col = dst + j * si
        for c in range(C):
            col[c * sc] = src[c * B + j]


cdef inline void _neg_pow(acc* s, Py_ssize_t L, double beta, int kind) noexcept nogil:
    """s[j] = s[j] ** -beta in place; closed forms for the common betas.

    The float version is used only on rows checked to lie in [1e-20, 1e30].
    """
    cdef Py_ssize_t j
    cdef acc r
    cdef acc one = 1
    if acc is float:
        if kind == BETA_075:
            lrn_pow075_f32(s, L)
            return
        if kind == BETA_05:
            lrn_pow05_f32(s, L)
            return
    if kind == BETA_075:  # double from here on for 0.75 and 0.5
        for j in range(L):
            r = sqrt(s[j])
            s[j] = one / (r * sqrt(r))
    elif kind == BETA_05:
        for j in range(L):
            s[j] = one / sqrt(s[j])
    elif kind == BETA_1:
        for j in range(L):
            s[j] = one / s[j]
    elif kind == BETA_0:
        for j in range(L):
            s[j] = one
    elif acc is float:
        # in double: powf with a float beta is off by up to ~20 ulp for large s
        lrn_pow_f32(s, L, beta)
    else:
        lrn_pow_f64(s, L, beta)


cdef inline void _neg_pow_pair(acc* s, acc* v, Py_ssize_t L, double beta,
                               int kind) noexcept nogil:
    """s[j] = t = s[j] ** -beta and v[j] = t / s[j] (float: rows checked as in _neg_pow)."""
    cdef Py_ssize_t j
    if acc is float:
        if kind == BETA_075:
            lrn_pow075_pair_f32(s, v, L)
            return
        if kind == BETA_05:
            lrn_pow05_pair_f32(s, v, L)
            return
    for j in range(L):
        v[j] = s[j]
    _neg_pow(s, L, beta, kind)
    if kind == BETA_1:
        for j in range(L):
            v[j] = s[j] * s[j]
    else:
        for j in range(L):
            v[j] = s[j] / v[j]


cdef inline void _suffix_pass(const floating* X, Py_ssize_t xs, const acc* V, int square,
                              acc* S, Py_ssize_t C, Py_ssize_t n, Py_ssize_t before,
                              Py_ssize_t L, Py_ssize_t B) noexcept nogil:
    """Suffix sums within blocks of n padded rows, from the last row up.

    The summed rows are ``X[ch]**2`` (square) or ``V[ch]`` (rows B apart), padded row p standing
    for channel ``ch = p - before`` and being zero outside [0, C). S holds C + n - 1 rows.
    """
    cdef Py_ssize_t Lp = C + n - 1
    cdef Py_ssize_t p, j, ch
    cdef acc* Srow
    cdef const acc* Snext
    cdef const floating* xrow
    cdef const acc* vrow
    cdef acc v
    for p in range(Lp - 1, -1, -1):
        Srow = S + p * B
        ch = p - before
        Snext = Srow + B
        if ch < 0 or ch >= C:
            if p == Lp - 1 or (p + 1) % n == 0:
                for j in range(L):
                    Srow[j] = 0
            else:
                for j in range(L):
                    Srow[j] = Snext[j]
        elif square:
            xrow = X + ch * xs
            if ch >= LRN_PREFETCH_ROWS:  # the rows are visited upwards
                lrn_prefetch(xrow - LRN_PREFETCH_ROWS * xs, L * sizeof(floating))
            if p == Lp - 1 or (p + 1) % n == 0:
                for j in range(L):
                    v = <acc>xrow[j]
                    Srow[j] = v * v
            else:
                for j in range(L):
                    v = <acc>xrow[j]
                    Srow[j] = v * v + Snext[j]
        else:
            vrow = V + ch * B
            if p == Lp - 1 or (p + 1) % n == 0:
                for j in range(L):
                    Srow[j] = vrow[j]
            else:
                for j in range(L):
                    Srow[j] = vrow[j] + Snext[j]


cdef inline void _prefix_row(const floating* X, Py_ssize_t xs, const acc* V, int square,
                             acc* P, Py_ssize_t c, Py_ssize_t C, Py_ssize_t n, Py_ssize_t before,
                             Py_ssize_t L, Py_ssize_t B) noexcept nogil:
    """Advance the running prefix sum P for output row c (rows visited c = 0, 1, 2, ...).

    Window c covers padded rows [c, c + n - 1]: the suffix sum S[c] plus P, the prefix sum of
    the block holding row c + n - 1, except when c starts a block (then S[c] alone: addp false).
    Summed rows are X[ch]**2 (square) or V[ch] (rows B apart), zero outside [0, C).
    """
    cdef Py_ssize_t q = c + n - 1
    cdef Py_ssize_t ch = q - before
    cdef Py_ssize_t j
    cdef const floating* xrow = X + ch * xs
    cdef const acc* vrow
    cdef bint valid = c > 0 and 0 <= ch < C
    cdef bint reset = c > 0 and q % n == 0
    cdef acc v
    # each branch is one simple loop, so each vectorises
    if valid and square:
        if reset:
            for j in range(L):
                v = <acc>xrow[j]
                P[j] = v * v
        else:
            for j in range(L):
                v = <acc>xrow[j]
                P[j] = P[j] + v * v
    elif valid:
        vrow = V + ch * B
        if reset:
            for j in range(L):
                P[j] = vrow[j]
        else:
            for j in range(L):
                P[j] = P[j] + vrow[j]
    elif reset:
        for j in range(L):
            P[j] = 0


cdef inline void _affine_row(const acc* Srow, const acc* P, acc* T, bint addp, acc kk, acc an,
                             Py_ssize_t L) noexcept nogil:
    """T = kk + an * (window sum): Srow + P, or Srow alone when the window is one block."""
    cdef Py_ssize_t j
    if addp:
        for j in range(L):
            T[j] = kk + an * (Srow[j] + P[j])
    else:
        for j in range(L):
            T[j] = kk + an * Srow[j]


# ---------------------------------------------------------------------------------------------
# Tiles. X/DY rows are ``xs`` apart (the caller's array, or gathered scratch); Y rows ``ys``.

cdef inline bint _tile(const floating* X, const floating* DY, Py_ssize_t xs, floating* Y,
                       Py_ssize_t ys, acc* S, Py_ssize_t C, Py_ssize_t n, Py_ssize_t before,
                       double alpha, double beta, double k, int kind, bint checked, Py_ssize_t L,
                       Py_ssize_t B) noexcept nogil:
    """One tile: forward (DY NULL) y, or backward dx (see ``lrn_backward``). S holds C + n + 1
    rows of B (suffix sums, then the prefix row P and a row T), and, backward, two more such
    blocks (S2, the sums of r; R, r). With ``checked`` (the float fast path) return False,
    having written no output, when a value could leave the range where float is accurate."""
    cdef Py_ssize_t rows = (C + n + 1) * B
    cdef acc* P = S + (C + n - 1) * B
    cdef acc* T = P + B
    cdef acc* S2 = S + rows
    cdef acc* P2 = S2 + (C + n - 1) * B
    cdef acc* R = S2 + rows
    cdef acc an = <acc>(alpha / <double>n)
    cdef acc coef = <acc>(2.0 * alpha * beta / <double>n)
    cdef acc kk = <acc>k
    cdef Py_ssize_t c, j, nbad
    cdef Py_ssize_t after = n - 1 - before
    cdef const floating* xrow
    cdef const floating* drow = NULL
    cdef floating* orow
    cdef acc* Srow
    cdef acc* Rrow = NULL
    cdef acc* Wrow
    cdef acc r, big = <acc>1e30
    cdef int bad = 0
    cdef bint backward = DY != NULL
    cdef bint fused = (floating is float and acc is float
                       and (kind == BETA_075 or kind == BETA_05))
    # s; forward: y = x * s ** -beta; backward: t = s ** -beta (kept in S), r = dy * x * t / s
    _suffix_pass(X, xs, <acc*>NULL, 1, S, C, n, before, L, B)
    if checked and not _blocks_ok(S, C, n, alpha, k, L, B):
        return False
    for c in range(C):
        Srow = S + c * B
        xrow = X + c * xs
        if backward:
            Rrow = R + c * B
            drow = DY + c * xs
            if c + LRN_PREFETCH_ROWS < C:
                lrn_prefetch(drow + LRN_PREFETCH_ROWS * xs, L * sizeof(floating))
        _prefix_row(X, xs, <acc*>NULL, 1, P, c, C, n, before, L, B)
        if fused:
            nbad = lrn_fused_row_f32(<float*>Srow, <float*>P, c % n != 0, <float>kk, <float>an,
                                     <const float*>xrow, <const float*>drow,
                                     <float*>Srow if backward else <float*>(Y + c * ys),
                                     <float*>Rrow, L, kind == BETA_075)
            if nbad > 0 and checked:
                return False
            if nbad >= 0:
                continue
        if not backward:
            _affine_row(Srow, P, T, c % n != 0, kk, an, L)
            _neg_pow(T, L, beta, kind)
            orow = Y + c * ys
            for j in range(L):
                orow[j] = <floating>(<acc>xrow[j] * T[j])
            continue
        _affine_row(Srow, P, Srow, c % n != 0, kk, an, L)  # in place: S row c serves output c
        _neg_pow_pair(Srow, Rrow, L, beta, kind)
        if checked:
            for j in range(L):
                r = <acc>drow[j] * <acc>xrow[j] * Rrow[j]
                Rrow[j] = r
                bad += not (-big <= r <= big)
            if bad:
                return False
        else:
            for j in range(L):
                Rrow[j] = <acc>drow[j] * <acc>xrow[j] * Rrow[j]
    if not backward:
        return True
    # the transposed window sum of r, and dx
    _suffix_pass(X, xs, R, 0, S2, C, n, after, L, B)
    for c in range(C):
        Wrow = S2 + c * B
        _prefix_row(X, xs, R, 0, P2, c, C, n, after, L, B)
        Srow = S + c * B
        xrow = X + c * xs
        drow = DY + c * xs
        orow = Y + c * ys
        if c % n != 0:  # the window sum is Wrow + P2 (one loop either way)
            for j in range(L):
                orow[j] = <floating>(<acc>drow[j] * Srow[j]
                                     - coef * <acc>xrow[j] * (Wrow[j] + P2[j]))
        else:
            for j in range(L):
                orow[j] = <floating>(<acc>drow[j] * Srow[j] - coef * <acc>xrow[j] * Wrow[j])
    return True


cdef inline bint _fast_ok(Py_ssize_t n, double alpha, double k) noexcept nogil:
    """Parameters for which the float32 fast path is accurate (plus the per-tile check).

    With k >= 1e-20, every s >= 1e-20 and squares lost to underflow are negligible; the tile
    check (_blocks_ok) then bounds every s by 1e30 and rules out inf/nan.
    """
    cdef double an = alpha / <double>n
    return n <= FAST_MAX_SIZE and 0.0 <= an <= 1e6 and 1e-20 <= k <= 5e29


cdef inline double _sum_limit(double alpha, double k, Py_ssize_t n) noexcept nogil:
    """The largest window sum W with s = k + alpha/n * W <= 1e30 (and no more than 1e30)."""
    cdef double an = alpha / <double>n
    cdef double lim = (1e30 - k) / an if an > 0 else 1e30
    return lim if lim < 1e30 else 1e30


cdef inline bint _blocks_ok(const acc* S, Py_ssize_t C, Py_ssize_t n, double alpha, double k,
                            Py_ssize_t L, Py_ssize_t B) noexcept nogil:
    """After a suffix pass of squares: every block total (S at block starts) is finite and small
    enough that s = k + alpha/n * (window sum) <= 1e30; a window spans at most two blocks."""
    cdef Py_ssize_t p, j
    cdef acc lim = <acc>(0.5 * _sum_limit(alpha, k, n))
    cdef int bad = 0
    cdef const acc* row
    for p in range((C + n - 2) // n + 1):  # block starts 0, n, 2n, ... < C + n - 1
        row = S + p * n * B
        for j in range(L):
            bad += not (row[j] <= lim)
    return bad == 0


# ---------------------------------------------------------------------------------------------
# Positions with contiguous channels (NHWC), the general path (any dtype and beta; windows up to
# PIXEL_MAX_SIZE, and the redo of a failed fast position): one position at a time, windows
# summed directly along the channels (n loads a value; no subtraction, so the guarantees of the
# tiles hold). Q and R hold C + n - 1 padded values, W and V hold C.

cdef inline void _pixel_window(const acc* Q, acc* W, Py_ssize_t C, Py_ssize_t n) noexcept nogil:
    """W[c] = Q[c] + Q[c + 1] + ... + Q[c + n - 1]."""
    cdef Py_ssize_t c, m
    for c in range(C):
        W[c] = Q[c]
    for m in range(1, n):
        for c in range(C):
            W[c] = W[c] + Q[c + m]


cdef inline void _pixel_pad(acc* Q, Py_ssize_t C, Py_ssize_t n, Py_ssize_t lead) noexcept nogil:
    """Zero the ``lead`` padded values before the channels and the ones after them."""
    cdef Py_ssize_t c
    for c in range(lead):
        Q[c] = 0
    for c in range(lead + C, C + n - 1):
        Q[c] = 0


cdef inline bint _pixel_sums(const floating* x, acc* Q, acc* W, Py_ssize_t C, Py_ssize_t n,
                             Py_ssize_t before, double alpha, double k,
                             bint checked) noexcept nogil:
    """W = window sums of x**2 for one position; with ``checked`` (the float fast path), False
    unless every s = k + alpha/n * W[c] is finite and <= 1e30."""
    cdef Py_ssize_t c
    cdef acc v
    cdef acc lim = <acc>_sum_limit(alpha, k, n)
    cdef int bad = 0
    _pixel_pad(Q, C, n, before)
    for c in range(C):
        v = <acc>x[c]
        Q[before + c] = v * v
    _pixel_window(Q, W, C, n)
    if checked:
        for c in range(C):
            bad += not (W[c] <= lim)
    return bad == 0


cdef inline bint _pixel(const floating* x, const floating* dy, floating* y, acc* Q, acc* W,
                        acc* V, acc* R, Py_ssize_t C, Py_ssize_t n, Py_ssize_t before,
                        double alpha, double beta, double k, int kind,
                        bint checked) noexcept nogil:
    """Forward (dy NULL) or backward of one position whose C channels are contiguous in x, dy
    and y; with ``checked`` (the float fast path) False, having written nothing, when a value
    could leave the range where float is accurate."""
    cdef Py_ssize_t c
    cdef Py_ssize_t after = n - 1 - before
    cdef acc r, big = <acc>1e30
    cdef acc an = <acc>(alpha / <double>n)
    cdef acc kk = <acc>k
    cdef acc coef = <acc>(2.0 * alpha * beta / <double>n)
    cdef int bad = 0
    if not _pixel_sums(x, Q, W, C, n, before, alpha, k, checked):
        return False
    if (dy == NULL and floating is float and acc is float
            and (kind == BETA_075 or kind == BETA_05)):
        if lrn_fused_row_f32(<float*>W, <float*>W, 0, <float>kk, <float>an, <const float*>x,
                             NULL, <float*>y, NULL, C, kind == BETA_075) >= 0:
            return True
    _affine_row(W, W, W, False, kk, an, C)
    if dy == NULL:
        _neg_pow(W, C, beta, kind)
        for c in range(C):
            y[c] = <floating>(<acc>x[c] * W[c])
        return True
    _neg_pow_pair(W, V, C, beta, kind)  # W = t = s ** -beta, V = t / s
    _pixel_pad(R, C, n, after)  # the transposed window: ``after`` values lead
    for c in range(C):
        r = <acc>dy[c] * <acc>x[c] * V[c]
        R[after + c] = r
        if checked:
            bad += not (-big <= r <= big)
    if bad:
        return False
    _pixel_window(R, V, C, n)
    for c in range(C):
        y[c] = <floating>(<acc>dy[c] * W[c] - coef * <acc>x[c] * V[c])
    return True


# ---------------------------------------------------------------------------------------------
# Kernels

cdef struct Geometry:
    # B positions a tile, per_row tiles an outer row, n_tiles in all, on this many threads
    Py_ssize_t B, per_row, n_tiles
    int threads


cdef inline Geometry _geometry(Py_ssize_t outer, Py_ssize_t C, Py_ssize_t inner, Py_ssize_t n,
                               Py_ssize_t acc_bytes) noexcept nogil:
    cdef Geometry g
    g.B = _tile_width(C, n, inner, acc_bytes)
    g.per_row = (inner + g.B - 1) // g.B
    g.n_tiles = outer * g.per_row
    g.threads = _n_threads(outer * C * inner, g.n_tiles)
    return g


cdef inline bint _direct_ok(bint fast, Py_ssize_t n, int kind, Py_ssize_t max_size) noexcept nogil:
    """Float32 inputs take one-pass rows (direct up to LRN_DIRECT_MAX_SIZE, streamed above) or
    direct positions (up to PIXEL_DIRECT_MAX_SIZE) for windows up to ``max_size`` when this
    holds; ``fast`` is the float fast path's parameter check."""
    return (LRN_DIRECT and fast and n <= max_size
            and (kind == BETA_075 or kind == BETA_05))


cdef inline Geometry _direct_geometry(Py_ssize_t outer, Py_ssize_t C, Py_ssize_t inner,
                                      Py_ssize_t n) noexcept nogil:
    cdef Geometry g
    g.B = min(<Py_ssize_t>(DIRECT_TILE if n <= LRN_DIRECT_MAX_SIZE else STREAM_TILE), inner)
    g.per_row = (inner + g.B - 1) // g.B
    g.n_tiles = outer * g.per_row
    g.threads = _n_threads(outer * C * inner, g.n_tiles)
    return g


def window_sum(const floating[:, :, :] v, floating[:, :, :] out, Py_ssize_t size,
               Py_ssize_t before):
    """out[o, c, i] = sum of v[o, m, i] for m in [c - before, c - before + size - 1] ∩ [0, C)."""
    cdef Py_ssize_t outer = v.shape[0], C = v.shape[1], inner = v.shape[2]
    if outer == 0 or C == 0 or inner == 0:
        return
    cdef int failed
    with nogil:
        failed = _window_run(&v[0, 0, 0], &out[0, 0, 0], outer, C, inner,
                             v.strides[0] // sizeof(floating), v.strides[1] // sizeof(floating),
                             v.strides[2] // sizeof(floating),
                             out.strides[0] // sizeof(floating),
                             out.strides[1] // sizeof(floating),
                             out.strides[2] // sizeof(floating), size, before)
    if failed:
        raise MemoryError("lrn_core: could not allocate the per-thread scratch")


cdef int _window_run(const floating* vp, floating* op, Py_ssize_t outer, Py_ssize_t C,
                     Py_ssize_t inner, Py_ssize_t vso, Py_ssize_t vsc, Py_ssize_t vsi,
                     Py_ssize_t oso, Py_ssize_t osc, Py_ssize_t osi, Py_ssize_t n,
                     Py_ssize_t before) noexcept nogil:
    """The window-sum driver over raw pointers (strides in elements, no empty extent): 0, or -1
    when the per-thread scratch cannot be allocated. Shared by window_sum and the XLA handlers."""
    cdef Geometry g = _geometry(outer, C, inner, n, sizeof(double))
    cdef Py_ssize_t B = g.B
    cdef Py_ssize_t t, o, i0, L, c, j
    cdef floating* buf = NULL
    cdef double* V = NULL
    cdef double* S = NULL
    cdef const floating* src
    cdef int failed = 0
    cdef int* failp = &failed
    with parallel(num_threads=g.threads):
        buf = <floating*>malloc(C * B * sizeof(floating))
        V = <double*>malloc(C * B * sizeof(double))
        S = <double*>malloc((C + n + 1) * B * sizeof(double))
        if buf == NULL or V == NULL or S == NULL:
            failp[0] = 1
        else:
            for t in prange(g.n_tiles, schedule='static'):
                o = t // g.per_row
                i0 = (t % g.per_row) * B
                L = min(B, inner - i0)
                src = vp + o * vso + i0 * vsi
                for c in range(C):
                    for j in range(L):
                        V[c * B + j] = src[c * vsc + j * vsi]
                _suffix_pass(src, 0, V, 0, S, C, n, before, L, B)
                for c in range(C):
                    _prefix_row(src, 0, V, 0, S + (C + n - 1) * B, c, C, n, before, L, B)
                    _affine_row(S + c * B, S + (C + n - 1) * B, S + c * B, c % n != 0, 0.0, 1.0,
                                L)
                    for j in range(L):
                        buf[c * B + j] = <floating>S[c * B + j]
                _scatter(buf, C, L, B, op + o * oso + i0 * osi, osc, osi)
        free(buf)
        free(V)
        free(S)
    return -1 if failed else 0


cdef inline const floating* _at(const floating* p, Py_ssize_t i) noexcept nogil:
    """p + i, or NULL for NULL (dy in the forward pass)."""
    return p + i if p != NULL else NULL


cdef void _pixels(const floating* x, const floating* dy, Py_ssize_t xs, Py_ssize_t ds, floating* y,
                  Py_ssize_t ys, Py_ssize_t L, bint fast, float* Sf, double* Sd, Py_ssize_t C,
                  Py_ssize_t n, Py_ssize_t before, double alpha, double beta, double k,
                  int kind) noexcept nogil:
    """L channels-last positions (``xs``, ``ds``, ``ys`` apart) one at a time: _pixel on the
    float fast path when ``fast``, and in double where it refuses (or without it).

    Kept out of the driver's prange body on purpose: not inline, and called from two places
    (GCC inlines a static function called once; ``nm`` on the built extension should list
    ``_pixels``). Inlined there, among the live values of every path of both passes, GCC
    spilled the pointers of the per-position loops to the stack and called _neg_pow out of
    line: the float64 channels-last forward ran about 1.2x slower than the former forward-only
    driver (callgrind: 8% more instructions). A call a tile costs nothing measurable."""
    cdef Py_ssize_t j, cn = C + n
    cdef const floating* X
    cdef const floating* DY
    cdef floating* Y
    for j in range(L):
        X, DY, Y = x + j * xs, _at(dy, j * ds), y + j * ys
        if not (fast and _pixel(X, DY, Y, Sf, Sf + cn, Sf + 2 * cn, Sf + 3 * cn, C, n, before,
                                alpha, beta, k, kind, True)):
            _pixel(X, DY, Y, Sd, Sd + cn, Sd + 2 * cn, Sd + 3 * cn, C, n, before, alpha, beta, k,
                   kind, False)


cdef _lrn(const floating[:, :, :] x, const floating[:, :, :] dy, floating[:, :, :] out,
          bint backward, Py_ssize_t n, Py_ssize_t before, double alpha, double beta, double k):
    """The driver on memoryviews (forward: dy is x and not read)."""
    cdef Py_ssize_t outer = x.shape[0], C = x.shape[1], inner = x.shape[2]
    if outer == 0 or C == 0 or inner == 0:
        return
    cdef int failed
    with nogil:
        failed = _lrn_run(&x[0, 0, 0], &dy[0, 0, 0] if backward else NULL, &out[0, 0, 0],
                          outer, C, inner, x.strides[0] // sizeof(floating),
                          x.strides[1] // sizeof(floating), x.strides[2] // sizeof(floating),
                          dy.strides[0] // sizeof(floating), dy.strides[1] // sizeof(floating),
                          dy.strides[2] // sizeof(floating), out.strides[0] // sizeof(floating),
                          out.strides[1] // sizeof(floating), out.strides[2] // sizeof(floating),
                          backward, n, before, alpha, beta, k)
    if failed:
        raise MemoryError("lrn_core: could not allocate the per-thread scratch")


cdef int _lrn_run(const floating* xp, const floating* dp, floating* op, Py_ssize_t outer,
                  Py_ssize_t C, Py_ssize_t inner, Py_ssize_t xso, Py_ssize_t xsc, Py_ssize_t xsi,
                  Py_ssize_t dso, Py_ssize_t dsc, Py_ssize_t dsi, Py_ssize_t oso, Py_ssize_t osc,
                  Py_ssize_t osi, bint backward, Py_ssize_t n, Py_ssize_t before, double alpha,
                  double beta, double k) noexcept nogil:
    """The one driver of both passes, over raw pointers (strides in elements, no empty extent;
    forward: dp NULL, its strides those of x): path choice, scratch, threads, and the redo in
    double of tiles the float fast path refuses. 0, or -1 when the per-thread scratch cannot be
    allocated. Shared by lrn_forward/lrn_backward and the XLA handlers (lrn_xla_ffi.c)."""
    cdef int kind = _beta_kind(beta)
    cdef bint fast = floating is float and _fast_ok(n, alpha, k)
    # blocks of window-sum scratch a van Herk tile needs: S; backward also S2 and R
    cdef Py_ssize_t blocks = 3 if backward else 1
    cdef Geometry g = _geometry(outer, C, inner, n,
                                blocks * (sizeof(float) if fast else sizeof(double)))
    cdef Py_ssize_t B = g.B
    # rows are read in place only when x and dy share the channel stride and are contiguous
    cdef bint in_direct = xsi == 1 and dsi == 1 and xsc == dsc
    cdef bint o_direct = osi == 1
    # channels-last positions (NHWC): position by position, no transposes
    cdef bint channels_last = xsc == 1 and dsc == 1 and osc == 1 and (xsi != 1 or dsi != 1)
    cdef bint pixels_direct = (floating is float and channels_last and xsi == dsi
                               and _direct_ok(fast, n, kind, PIXEL_DIRECT_MAX_SIZE))
    cdef bint pixels = pixels_direct or (channels_last and n <= PIXEL_MAX_SIZE)
    # contiguous positions on the float fast path: direct rows, or streamed for wider windows
    cdef bint direct = (floating is float and in_direct and o_direct
                        and _direct_ok(fast, n, kind, FAST_MAX_SIZE))
    cdef Py_ssize_t Bs = B  # the van Herk tile width (tiles redone after a direct tile fails)
    g = _direct_geometry(outer, C, inner, n) if direct else g
    B = g.B
    cdef Py_ssize_t cn = C + n
    cdef float an = <float>(alpha / <double>n), coef = <float>(2.0 * alpha * beta / <double>n)
    cdef float lim = <float>_sum_limit(alpha, k, n)
    # van Herk tiles, positions (4 rows of C + n + 8), streamed rows (n + 2 rows of B rounded
    # up to 8; 4n + 3 backward; direct rows need 2n rows of B backward)
    cdef Py_ssize_t scratch = max(blocks * (C + n + 1) * Bs, 4 * (cn + 8),
                                  ((4 * n + 3) if backward else (n + 2)) * ((B + 7) // 8 * 8))
    cdef Py_ssize_t t, o, i0, L, xs, ys, j
    # per-thread scratch (gathered tiles only, which are never direct: their width B is Bs)
    cdef floating* xbuf = NULL
    cdef floating* dbuf = NULL
    cdef floating* obuf = NULL
    cdef void* Sf_block = NULL
    cdef float* Sf = NULL
    cdef double* Sd = NULL
    cdef const floating* X
    cdef const floating* DY
    cdef floating* Y
    cdef int failed = 0
    cdef int* failp = &failed
    with parallel(num_threads=g.threads):
        xbuf = <floating*>malloc(C * Bs * sizeof(floating))
        dbuf = <floating*>malloc(C * Bs * sizeof(floating)) if backward else NULL
        obuf = <floating*>malloc(C * Bs * sizeof(floating))
        Sf_block = malloc(scratch * sizeof(float) + 64)
        Sf = _aligned64(Sf_block)
        Sd = <double*>malloc(scratch * sizeof(double))
        if (xbuf == NULL or (backward and dbuf == NULL) or obuf == NULL or Sf_block == NULL
                or Sd == NULL):
            failp[0] = 1
        else:
            for t in prange(g.n_tiles, schedule='static'):
                o = t // g.per_row
                i0 = (t % g.per_row) * B
                L = min(B, inner - i0)
                if direct:
                    X, DY, Y = xp + o * xso + i0, _at(dp, o * dso + i0), op + o * oso + i0
                    if lrn_rows_f32(<const float*>X, <const float*>DY, xsc, <float*>Y, osc, C, n,
                                    before, L, B, <float>k, an, coef, lim, kind == BETA_075,
                                    Sf) != 0:
                        for j in range((L + Bs - 1) // Bs):
                            _tile(X + j * Bs, _at(DY, j * Bs), xsc, Y + j * Bs, osc, Sd, C, n,
                                  before, alpha, beta, k, kind, False, min(Bs, L - j * Bs), Bs)
                    continue
                if pixels:
                    if pixels_direct and lrn_pixels_f32(
                            <const float*>(xp + o * xso + i0 * xsi),
                            <const float*>_at(dp, o * dso + i0 * dsi), xsi,
                            <float*>(op + o * oso + i0 * osi), osi, L, C, n, before, <float>k,
                            an, coef, lim, kind == BETA_075, n >= PIXEL_GROUP_SIZE, Sf,
                            Sf + cn + 8, Sf + 2 * (cn + 8), Sf + 3 * (cn + 8)) == 0:
                        continue
                    # two calls, one for each pass: _pixels stays a function of its own
                    X, Y = xp + o * xso + i0 * xsi, op + o * oso + i0 * osi
                    if backward:
                        _pixels(X, dp + o * dso + i0 * dsi, xsi, dsi, Y, osi, L, fast, Sf, Sd, C,
                                n, before, alpha, beta, k, kind)
                    else:
                        _pixels(X, NULL, xsi, dsi, Y, osi, L, fast, Sf, Sd, C, n, before, alpha,
                                beta, k, kind)
                    continue
                if in_direct:
                    X, DY, xs = xp + o * xso + i0, _at(dp, o * dso + i0), xsc
                else:
                    _gather(xp + o * xso + i0 * xsi, xsc, xsi, C, L, B, xbuf)
                    if backward:
                        _gather(dp + o * dso + i0 * dsi, dsc, dsi, C, L, B, dbuf)
                    X, DY, xs = xbuf, dbuf, B
                if o_direct:
                    Y, ys = op + o * oso + i0, osc
                else:
                    Y, ys = obuf, B
                if not (fast and _tile(X, DY, xs, Y, ys, Sf, C, n, before, alpha, beta, k, kind,
                                       True, L, B)):
                    _tile(X, DY, xs, Y, ys, Sd, C, n, before, alpha, beta, k, kind, False, L, B)
                if not o_direct:
                    _scatter(obuf, C, L, B, op + o * oso + i0 * osi, osc, osi)
        free(xbuf)
        free(dbuf)
        free(obuf)
        free(Sf_block)
        free(Sd)
    return -1 if failed else 0


def lrn_forward(const floating[:, :, :] x, floating[:, :, :] out, Py_ssize_t size,
                Py_ssize_t before, double alpha, double beta, double k):
    """out = x * (k + alpha / size * window_sum(x ** 2)) ** -beta along axis 1."""
    _lrn(x, x, out, False, size, before, alpha, beta, k)


def lrn_backward(const floating[:, :, :] dy, const floating[:, :, :] x, floating[:, :, :] out,
                 Py_ssize_t size, Py_ssize_t before, double alpha, double beta, double k):
    """out = dy * s**-beta - 2*alpha*beta/size * x * window_sum_T(dy * x * s**(-beta-1)).

    s = k + alpha/size * window_sum(x**2); window_sum_T is the transposed window
    (``before`` and ``after`` swapped).
    """
    _lrn(x, dy, out, True, size, before, alpha, beta, k)


# ---------------------------------------------------------------------------------------------
# XLA FFI (JAX custom calls): the C handlers (_simd/lrn_xla_ffi.c) check XLA's call frame and
# call these entry points, the same driver as above, with no Python and no GIL.

cdef int _ffi_lrn_f32(const float* x, const float* dy, float* out, const lrn_view* v,
                      ptrdiff_t size, ptrdiff_t before, double alpha, double beta,
                      double k) noexcept nogil:
    return _lrn_run(x, dy, out, v.outer, v.C, v.inner, v.s0, v.s1, v.s2, v.s0, v.s1, v.s2,
                    v.s0, v.s1, v.s2, dy != NULL, size, before, alpha, beta, k)


cdef int _ffi_lrn_f64(const double* x, const double* dy, double* out, const lrn_view* v,
                      ptrdiff_t size, ptrdiff_t before, double alpha, double beta,
                      double k) noexcept nogil:
    return _lrn_run(x, dy, out, v.outer, v.C, v.inner, v.s0, v.s1, v.s2, v.s0, v.s1, v.s2,
                    v.s0, v.s1, v.s2, dy != NULL, size, before, alpha, beta, k)


cdef int _ffi_window_f32(const float* v, float* out, const lrn_view* w, ptrdiff_t size,
                         ptrdiff_t before) noexcept nogil:
    return _window_run(v, out, w.outer, w.C, w.inner, w.s0, w.s1, w.s2, w.s0, w.s1, w.s2, size,
                       before)


cdef int _ffi_window_f64(const double* v, double* out, const lrn_view* w, ptrdiff_t size,
                         ptrdiff_t before) noexcept nogil:
    return _window_run(v, out, w.outer, w.C, w.inner, w.s0, w.s1, w.s2, w.s0, w.s1, w.s2, size,
                       before)


cdef lrn_driver _driver
_driver.lrn_f32 = _ffi_lrn_f32
_driver.lrn_f64 = _ffi_lrn_f64
_driver.window_f32 = _ffi_window_f32
_driver.window_f64 = _ffi_window_f64
lrn_xla_ffi_set_driver(&_driver)

#: the XLA FFI API version the handlers are built for (and report in XLA's handshake)
xla_ffi_api_version = (LRN_XLA_FFI_API_MAJOR, LRN_XLA_FFI_API_MINOR)


def xla_ffi_handlers():
    """The XLA FFI handlers as ``{"lrn" | "lrn_vjp" | "window_sum": PyCapsule}``, for
    ``jax.ffi.register_ffi_target``; operands and attributes as in docs/jax-ffi.rst."""
    return {
        "lrn": PyCapsule_New(<void*>lrn_xla_ffi_lrn, NULL, NULL),
        "lrn_vjp": PyCapsule_New(<void*>lrn_xla_ffi_lrn_vjp, NULL, NULL),
        "window_sum": PyCapsule_New(<void*>lrn_xla_ffi_window_sum, NULL, NULL),
    }


def driver_table():
    """The driver's entry points (``lrn_driver*``, _simd/lrn_xla_ffi.h) as a PyCapsule named
    ``lrn_core.lrn_driver``: handed once to the TF op library (``lrn_tf_op_set_driver``)."""
    return PyCapsule_New(<void*>&_driver, b"lrn_core.lrn_driver", NULL)
