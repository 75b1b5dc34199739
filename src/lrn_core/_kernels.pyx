# The compiled core of lrn-core: channel window sums, LRN forward and LRN backward.
#
# Every kernel works on a 3-D strided view (outer, C, inner) of the caller's array, C being the
# channel axis; strides are in elements and may be negative. Validation, dtype policy and the
# choice of view live in ``_api.py``: this module trusts its inputs and only computes.
#
# Work is split into tiles: one tile is up to B positions of one ``outer`` row (consecutive
# ``inner`` indices) times all C channels, seen as C rows of B values. When the positions are
# contiguous (NCHW) the rows are read and written in place; otherwise (NHWC, transposed views)
# the tile is first gathered into thread-local scratch. Either way every inner loop runs over
# contiguous memory and vectorises. Tiles are independent and are spread over OpenMP threads
# (static schedule). A forward tile takes two passes over its rows (suffix sums going down, then
# prefix sums, s ** -beta and the output going up); a backward tile four.
#
# The common case takes a shorter road: float32 with contiguous positions (NCHW), windows of at
# most FAST_MAX_SIZE channels and beta 0.75 or 0.5 runs one pass over the rows per direction on
# AVX2 builds. Up to DIRECT_MAX_SIZE channels, "direct rows": each window sum is read straight
# from the rows of x (n fused multiply-adds), with no scratch in the forward and two rings of n
# rows in the backward. Wider windows, "streamed rows": the van Herk sums below, taken as the
# rows stream past, with rings of n rows, so their cost does not grow with n. The rows of x and
# dy (and, streamed, of the output) are prefetched a couple of channels ahead. This is what
# brings the kernels close to the memory floor (BENCHMARKS.md).
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
from cython.parallel cimport parallel, prange
from libc.math cimport sqrt
from libc.stdint cimport uintptr_t
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
    /* s ** -0.75 and s ** -0.5 for float rows whose values are all normal and positive (the
       float fast path checks that first). With AVX2/FMA: the hardware reciprocal square root
       estimate refined by two Newton steps (about 1 ulp), times its correctly rounded square
       root for -0.75; about 2.5x the throughput of sqrt + sqrt + divide. Elsewhere: plain C. */
    #if defined(__AVX2__) && defined(__FMA__)
    #include <immintrin.h>
    static inline __m256 lrn_rsqrt8(__m256 s) {
        /* a ~ s^-1/2 to 12 bits, one Newton step to ~22 bits, then a last step written as a
           correction a + a/2 * (1 - s a^2) with the residual from an FMA: ~0.6 ulp. */
        const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
        __m256 a = _mm256_rsqrt_ps(s);
        __m256 e = _mm256_fnmadd_ps(_mm256_mul_ps(s, a), a, one);
        a = _mm256_fmadd_ps(_mm256_mul_ps(half, a), e, a);
        e = _mm256_fnmadd_ps(_mm256_mul_ps(s, a), a, one);
        return _mm256_fmadd_ps(_mm256_mul_ps(half, a), e, a);
    }
    /* t = s ** -beta for s = k + an * w (beta 0.75 or 0.5); *a receives s ** -0.5. */
    static inline __m256 lrn_t8(__m256 w, __m256 van, __m256 vk, int beta_075, __m256* a) {
        *a = lrn_rsqrt8(_mm256_fmadd_ps(van, w, vk));
        return beta_075 ? _mm256_mul_ps(*a, _mm256_sqrt_ps(*a)) : *a;
    }
    /* How many of the first min(rem, 8) lanes of v are outside [lo, hi] (nan included). */
    static inline int lrn_lanes_bad8(__m256 v, __m256 lo, __m256 hi, Py_ssize_t rem) {
        __m256 ok = _mm256_and_ps(_mm256_cmp_ps(v, hi, _CMP_LE_OQ), _mm256_cmp_ps(v, lo, _CMP_GE_OQ));
        int live = rem >= 8 ? 0xff : (1 << rem) - 1;
        return __builtin_popcount(~_mm256_movemask_ps(ok) & live);
    }
    /* The first half of a backward element, 8 at a time, from the window sum w: t = s ** -beta
       (into T), r = dy * x * t / s (into R); returns how many r are outside [-1e30, 1e30]. */
    static inline int lrn_backward8(__m256 w, const float* x, const float* dy, float* T,
                                    float* R, __m256 vk, __m256 van, int beta_075) {
        __m256 a, t = lrn_t8(w, van, vk, beta_075, &a);
        __m256 v = _mm256_mul_ps(t, _mm256_mul_ps(a, a));
        __m256 r = _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(dy), _mm256_loadu_ps(x)), v);
        _mm256_storeu_ps(T, t);
        _mm256_storeu_ps(R, r);
        return lrn_lanes_bad8(r, _mm256_set1_ps(-1e30f), _mm256_set1_ps(1e30f), 8);
    }
    #endif
    /* The same one element at a time, in double (the tails of the vector loops). */
    static inline double lrn_negpow1(double s, int beta_075) {
        double r = sqrt(s);
        return beta_075 ? 1.0 / (r * sqrt(r)) : 1.0 / r;
    }
    static inline int lrn_backward1(double s, float x, float dy, float* T, float* R,
                                    int beta_075) {
        double t = lrn_negpow1(s, beta_075);
        float r = (float)((double)dy * (double)x * (t / s));
        *T = (float)t;
        *R = r;
        return !(r <= 1e30f && r >= -1e30f);
    }
    static inline void lrn_pow075_f32(float* s, Py_ssize_t n) {
        Py_ssize_t j = 0;
    #if defined(__AVX2__) && defined(__FMA__)
        for (; j + 8 <= n; j += 8) {
            __m256 a = lrn_rsqrt8(_mm256_loadu_ps(s + j));
            _mm256_storeu_ps(s + j, _mm256_mul_ps(a, _mm256_sqrt_ps(a)));
        }
    #endif
        for (; j < n; j++) {  /* the remainder (or all, without AVX2): in double */
            double r = sqrt((double)s[j]);
            s[j] = (float)(1.0 / (r * sqrt(r)));
        }
    }
    static inline void lrn_pow05_f32(float* s, Py_ssize_t n) {
        Py_ssize_t j = 0;
    #if defined(__AVX2__) && defined(__FMA__)
        for (; j + 8 <= n; j += 8)
            _mm256_storeu_ps(s + j, lrn_rsqrt8(_mm256_loadu_ps(s + j)));
    #endif
        for (; j < n; j++)
            s[j] = (float)(1.0 / sqrt((double)s[j]));
    }
    /* The backward pass wants t = s^-beta and v = t / s together: from a = s^-1/2, v = t a a. */
    static inline void lrn_pow075_pair_f32(float* s, float* v, Py_ssize_t n) {
        Py_ssize_t j = 0;
    #if defined(__AVX2__) && defined(__FMA__)
        for (; j + 8 <= n; j += 8) {
            __m256 a = lrn_rsqrt8(_mm256_loadu_ps(s + j));
            __m256 t = _mm256_mul_ps(a, _mm256_sqrt_ps(a));
            _mm256_storeu_ps(s + j, t);
            _mm256_storeu_ps(v + j, _mm256_mul_ps(t, _mm256_mul_ps(a, a)));
        }
    #endif
        for (; j < n; j++) {
            double x = (double)s[j], r = sqrt(x), t = 1.0 / (r * sqrt(r));
            s[j] = (float)t;
            v[j] = (float)(t / x);
        }
    }
    static inline void lrn_pow05_pair_f32(float* s, float* v, Py_ssize_t n) {
        Py_ssize_t j = 0;
    #if defined(__AVX2__) && defined(__FMA__)
        for (; j + 8 <= n; j += 8) {
            __m256 a = lrn_rsqrt8(_mm256_loadu_ps(s + j));
            _mm256_storeu_ps(s + j, a);
            _mm256_storeu_ps(v + j, _mm256_mul_ps(a, _mm256_mul_ps(a, a)));
        }
    #endif
        for (; j < n; j++) {
            double x = (double)s[j], t = 1.0 / sqrt(x);
            s[j] = (float)t;
            v[j] = (float)(t / x);
        }
    }
    /* The float fast path's forward row, fused: s = k + an * (S + P), y = x * s ** -beta, for
       beta 0.75 and 0.5 (returns 0 for other betas or without AVX2: the caller loops). */
    static inline int lrn_forward_row_f32(const float* S, const float* P, int addp, float k,
                                          float an, const float* x, float* y, Py_ssize_t n,
                                          int beta_075) {
    #if defined(__AVX2__) && defined(__FMA__)
        Py_ssize_t j = 0;
        const __m256 vk = _mm256_set1_ps(k), van = _mm256_set1_ps(an);
        for (; j + 8 <= n; j += 8) {
            __m256 w = _mm256_loadu_ps(S + j);
            if (addp) w = _mm256_add_ps(w, _mm256_loadu_ps(P + j));
            __m256 a, t = lrn_t8(w, van, vk, beta_075, &a);
            _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), t));
        }
        for (; j < n; j++) {
            double s = (double)(k + an * (addp ? S[j] + P[j] : S[j]));
            y[j] = (float)((double)x[j] * lrn_negpow1(s, beta_075));
        }
        return 1;
    #else
        return 0;
    #endif
    }
    /* The float fast path's first backward row, fused: s = k + an * (S + P), t = s ** -beta
       (into T), r = dy * x * t / s (into R); returns how many r are outside [-1e30, 1e30] (nan
       included), or -1 for other betas or without AVX2 (the caller loops). */
    static inline Py_ssize_t lrn_backward_row_f32(const float* S, const float* P, int addp,
                                                  float k, float an, const float* x,
                                                  const float* dy, float* T, float* R,
                                                  Py_ssize_t n, int beta_075) {
    #if defined(__AVX2__) && defined(__FMA__)
        Py_ssize_t j = 0, bad = 0;
        const __m256 vk = _mm256_set1_ps(k), van = _mm256_set1_ps(an);
        for (; j + 8 <= n; j += 8) {
            __m256 w = _mm256_loadu_ps(S + j);
            if (addp) w = _mm256_add_ps(w, _mm256_loadu_ps(P + j));
            bad += lrn_backward8(w, x + j, dy + j, T + j, R + j, vk, van, beta_075);
        }
        for (; j < n; j++) {
            double s = (double)(k + an * (addp ? S[j] + P[j] : S[j]));
            bad += lrn_backward1(s, x[j], dy[j], T + j, R + j, beta_075);
        }
        return bad;
    #else
        return -1;
    #endif
    }
    /* Prefetch the cache lines of n bytes from p (a row the caller reads a little later). */
    static inline void lrn_prefetch(const void* p, Py_ssize_t n) {
    #if defined(__GNUC__)
        for (Py_ssize_t j = 0; j < n; j += 64) __builtin_prefetch((const char*)p + j, 0, 3);
    #endif
    }
    /* The same for a row the caller writes a little later: its lines are fetched for writing
       ahead of the stores, which otherwise wait for them. */
    static inline void lrn_prefetch_w(void* p, Py_ssize_t n) {
    #if defined(__GNUC__)
        for (Py_ssize_t j = 0; j < n; j += 64) __builtin_prefetch((char*)p + j, 1, 3);
    #endif
    }
    /* Direct rows (the float fast path for windows of at most DIRECT_MAX_SIZE channels with
       contiguous positions): the window sum of squares is taken straight from the m rows of x
       in the window (pointers in ``rows``), accumulated with FMAs in channel order: no scratch
       and no subtraction. Each returns how many values failed the range checks (window sum
       above ``lim`` or not a number; for the backward also r outside [-1e30, 1e30]), so the
       caller can redo the tile in double. LRN_DIRECT is 0 without AVX2/FMA (then the tiles
       above are used). */
    #if defined(__AVX2__) && defined(__FMA__)
    #define LRN_DIRECT 1
    static inline __m256 lrn_window8(const float* const* rows, int m, Py_ssize_t j) {
        __m256 w = _mm256_setzero_ps();
        for (int i = 0; i < m; i++) {
            __m256 v = _mm256_loadu_ps(rows[i] + j);
            w = _mm256_fmadd_ps(v, v, w);
        }
        return w;
    }
    static inline void lrn_window32(const float* const* rows, int m, Py_ssize_t j, __m256* w) {
        __m256 w0 = _mm256_setzero_ps(), w1 = w0, w2 = w0, w3 = w0;
        for (int i = 0; i < m; i++) {
            const float* r = rows[i] + j;
            __m256 v0 = _mm256_loadu_ps(r), v1 = _mm256_loadu_ps(r + 8);
            __m256 v2 = _mm256_loadu_ps(r + 16), v3 = _mm256_loadu_ps(r + 24);
            w0 = _mm256_fmadd_ps(v0, v0, w0);
            w1 = _mm256_fmadd_ps(v1, v1, w1);
            w2 = _mm256_fmadd_ps(v2, v2, w2);
            w3 = _mm256_fmadd_ps(v3, v3, w3);
        }
        w[0] = w0; w[1] = w1; w[2] = w2; w[3] = w3;
    }
    static inline double lrn_window1(const float* const* rows, int m, Py_ssize_t j) {
        float w = 0.0f;
        for (int i = 0; i < m; i++) w = fmaf(rows[i][j], rows[i][j], w);
        return (double)w;
    }
    /* y = x * s ** -beta, s = k + an * W (beta 0.75 or 0.5) */
    static Py_ssize_t lrn_forward_direct_f32(const float* const* rows, int m, const float* x,
                                             float* y, Py_ssize_t n, float k, float an,
                                             float lim, int beta_075) {
        Py_ssize_t j = 0, bad = 0;
        const __m256 vk = _mm256_set1_ps(k), van = _mm256_set1_ps(an);
        const __m256 vlim = _mm256_set1_ps(lim), zero = _mm256_setzero_ps();
        for (; j + 32 <= n; j += 32) {  /* four independent vectors: latency hidden */
            __m256 w[4];
            lrn_window32(rows, m, j, w);
            for (int u = 0; u < 4; u++) {
                bad += lrn_lanes_bad8(w[u], zero, vlim, 8);
                __m256 a, t = lrn_t8(w[u], van, vk, beta_075, &a);
                _mm256_storeu_ps(y + j + 8 * u, _mm256_mul_ps(_mm256_loadu_ps(x + j + 8 * u), t));
            }
        }
        for (; j + 8 <= n; j += 8) {
            __m256 w = lrn_window8(rows, m, j);
            bad += lrn_lanes_bad8(w, zero, vlim, 8);
            __m256 a, t = lrn_t8(w, van, vk, beta_075, &a);
            _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), t));
        }
        for (; j < n; j++) {
            double w = lrn_window1(rows, m, j), s = (double)k + (double)an * w;
            bad += !(w <= (double)lim);
            y[j] = (float)((double)x[j] * lrn_negpow1(s, beta_075));
        }
        return bad;
    }
    /* Vectors of up to 8 floats: full loads/stores, or masked ones for the last rem < 8. */
    static inline __m256 lrn_load8(const float* p, Py_ssize_t rem) {
        if (rem >= 8) return _mm256_loadu_ps(p);
        const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        return _mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rem), idx));
    }
    static inline void lrn_store8(float* p, __m256 v, Py_ssize_t rem) {
        if (rem >= 8) { _mm256_storeu_ps(p, v); return; }
        const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_maskstore_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rem), idx), v);
    }
    /* Positions with contiguous channels (NHWC), windows up to PIXEL_DIRECT_MAX_SIZE: per
       position, the squares go to a zero-padded row Q (``before`` zeros first); window c is the
       sum of the n shifted loads Q[c ... c + n - 1]; everything stays in L1, and the positions
       are read and written in memory order. Lanes past C load as zero and are not stored. */
    static inline void lrn_pixel_squares(const float* x, float* Q, Py_ssize_t C) {
        for (Py_ssize_t c = 0; c < C; c += 8) {
            __m256 v = lrn_load8(x + c, C - c);
            _mm256_storeu_ps(Q + c, _mm256_mul_ps(v, v));  /* zeros past C: the padding */
        }
    }
    /* Window sums for one position, 8 at a time. Narrow windows: n shifted loads of Q. Wider
       ones (``grouped``) first sum groups of m consecutive values, m the power of two nearest
       below sqrt(n), by doubling in place in A (log2(m) passes: A[c] + A[c + h]); a window is
       then n / m loads of those groups, m apart, plus the n % m values left, from Q: about
       2 sqrt(n) loads a value instead of n. Every addition adds values of the window; none
       subtracts. */
    static inline Py_ssize_t lrn_group_width(Py_ssize_t n) {
        Py_ssize_t m = 1;
        while (4 * m * m <= n) m *= 2;
        return m;
    }
    /* G[c] = Q[c] + ... + Q[c + m - 1] for c < C + n - m (Q and A hold C + n + 8 floats);
       returns G: A, or Q itself for m = 1. */
    static const float* lrn_group_sums(const float* Q, float* A, Py_ssize_t C, Py_ssize_t n,
                                       Py_ssize_t m) {
        const float* src = Q;
        for (Py_ssize_t h = 1; h < m; h *= 2) {
            for (Py_ssize_t c = 0; c < C + n - 2 * h; c += 8)
                _mm256_storeu_ps(A + c, _mm256_add_ps(_mm256_loadu_ps(src + c),
                                                      _mm256_loadu_ps(src + c + h)));
            src = A;
        }
        return src;
    }
    static inline __m256 lrn_window_sum8(const float* G, const float* Q, Py_ssize_t m,
                                         Py_ssize_t q, Py_ssize_t r) {
        __m256 w = _mm256_loadu_ps(G);
        for (Py_ssize_t i = 1; i < q; i++) w = _mm256_add_ps(w, _mm256_loadu_ps(G + i * m));
        for (Py_ssize_t i = 0; i < r; i++) w = _mm256_add_ps(w, _mm256_loadu_ps(Q + q * m + i));
        return w;
    }
    /* One function for both directions. Forward (dy NULL): out = x * t. Backward: T = t,
       R = r = dy * x * t / s (``after`` zeros first), then out = dy * t - coef * x * (window
       of r, transposed). Scratch: Q, R and A hold C + n + 8 floats (padding set here), T
       C + 8. */
    static Py_ssize_t lrn_pixels_f32(const float* x, const float* dy, Py_ssize_t xs, float* out,
                                     Py_ssize_t ys, Py_ssize_t npix, Py_ssize_t C, Py_ssize_t n,
                                     Py_ssize_t before, float k, float an, float coef, float lim,
                                     int beta_075, int grouped, float* Q, float* T, float* R,
                                     float* A) {
        const __m256 vk = _mm256_set1_ps(k), van = _mm256_set1_ps(an), vc = _mm256_set1_ps(coef);
        const __m256 vlim = _mm256_set1_ps(lim), zero = _mm256_setzero_ps();
        const __m256 big = _mm256_set1_ps(1e30f), nbig = _mm256_set1_ps(-1e30f);
        const Py_ssize_t after = n - 1 - before;
        const Py_ssize_t m = grouped ? lrn_group_width(n) : 1, q = n / m, r = n % m;
        Py_ssize_t bad = 0;
        for (Py_ssize_t c = 0; c < C + n + 8; c++) Q[c] = R[c] = A[c] = 0.0f;
        for (Py_ssize_t p = 0; p < npix; p++) {
            const float* px = x + p * xs;
            const float* pd = dy + p * xs;
            float* po = out + p * ys;
            lrn_pixel_squares(px, Q + before, C);
            const float* G = lrn_group_sums(Q, A, C, n, m);
            for (Py_ssize_t c = 0; c < C; c += 8) {
                __m256 w = lrn_window_sum8(G + c, Q + c, m, q, r);
                bad += lrn_lanes_bad8(w, zero, vlim, C - c);
                __m256 a, t = lrn_t8(w, van, vk, beta_075, &a);
                __m256 xv = lrn_load8(px + c, C - c);
                if (dy == NULL) {
                    lrn_store8(po + c, _mm256_mul_ps(xv, t), C - c);
                    continue;
                }
                __m256 r = _mm256_mul_ps(_mm256_mul_ps(lrn_load8(pd + c, C - c), xv),
                                         _mm256_mul_ps(t, _mm256_mul_ps(a, a)));
                bad += lrn_lanes_bad8(r, nbig, big, C - c);
                _mm256_storeu_ps(T + c, t);
                lrn_store8(R + after + c, r, C - c);  /* past C: the padding zeros stay */
            }
            if (dy == NULL) continue;
            G = lrn_group_sums(R, A, C, n, m);
            for (Py_ssize_t c = 0; c < C; c += 8) {
                __m256 w = lrn_window_sum8(G + c, R + c, m, q, r);
                __m256 u = _mm256_mul_ps(vc, lrn_load8(px + c, C - c));
                __m256 g = _mm256_mul_ps(lrn_load8(pd + c, C - c), _mm256_loadu_ps(T + c));
                lrn_store8(po + c, _mm256_fnmadd_ps(u, w, g), C - c);
            }
        }
        return bad;
    }
    static Py_ssize_t lrn_backward_direct_f32(const float* const* rows, int m, const float* x,
                                              const float* dy, float* T, float* R, Py_ssize_t n,
                                              float k, float an, float lim, int beta_075) {
        Py_ssize_t j = 0, bad = 0;
        const __m256 vk = _mm256_set1_ps(k), van = _mm256_set1_ps(an);
        const __m256 vlim = _mm256_set1_ps(lim), zero = _mm256_setzero_ps();
        for (; j + 32 <= n; j += 32) {
            __m256 w[4];
            lrn_window32(rows, m, j, w);
            for (int u = 0; u < 4; u++) {
                Py_ssize_t q = j + 8 * u;
                bad += lrn_lanes_bad8(w[u], zero, vlim, 8);
                bad += lrn_backward8(w[u], x + q, dy + q, T + q, R + q, vk, van, beta_075);
            }
        }
        for (; j + 8 <= n; j += 8) {
            __m256 w = lrn_window8(rows, m, j);
            bad += lrn_lanes_bad8(w, zero, vlim, 8);
            bad += lrn_backward8(w, x + j, dy + j, T + j, R + j, vk, van, beta_075);
        }
        for (; j < n; j++) {
            double w = lrn_window1(rows, m, j), s = (double)k + (double)an * w;
            bad += !(w <= (double)lim);
            bad += lrn_backward1(s, x[j], dy[j], T + j, R + j, beta_075);
        }
        return bad;
    }
    /* The second half: dx = dy * t - coef * x * (sum of the m rows of r in the window). */
    static void lrn_backward_direct_out_f32(const float* const* rrows, int m, const float* x,
                                            const float* dy, const float* T, float* dx,
                                            Py_ssize_t n, float coef) {
        Py_ssize_t j = 0;
        const __m256 vc = _mm256_set1_ps(coef);
        for (; j + 8 <= n; j += 8) {
            __m256 w = _mm256_loadu_ps(rrows[0] + j);
            for (int i = 1; i < m; i++) w = _mm256_add_ps(w, _mm256_loadu_ps(rrows[i] + j));
            __m256 u = _mm256_mul_ps(vc, _mm256_loadu_ps(x + j));
            __m256 g = _mm256_mul_ps(_mm256_loadu_ps(dy + j), _mm256_loadu_ps(T + j));
            _mm256_storeu_ps(dx + j, _mm256_fnmadd_ps(u, w, g));
        }
        for (; j < n; j++) {
            float w = rrows[0][j];
            for (int i = 1; i < m; i++) w += rrows[i][j];
            dx[j] = dy[j] * T[j] - coef * x[j] * w;
        }
    }
    /* Streamed van Herk rows (the float fast path for wider windows, DIRECT_MAX_SIZE < n <=
       FAST_MAX_SIZE, contiguous positions): the van Herk sums of the tiles, but taken in one
       pass over the channels with rings of n rows instead of a whole tile of scratch, so the
       scratch stays in L1/L2 and each row of x and dy comes from memory once. Padded row p
       stands for channel p - before; window a covers padded rows [a, a + n - 1] and is the
       suffix sum S of its block (n rows, kept in a ring) plus the running prefix sum P of the
       next block. Window a is complete when row p = a + n - 1 arrives: its output is written
       then, fused with the prefix update; the window that starts a block is written after that
       block's suffix sums. The backward runs the same scheme a second time, on the rows of r as
       they come out (the transposed window, ``after`` rows before), in the same pass. Rows are
       W = L rounded up to 8 floats apart in the scratch; the last vector of a row is masked. */
    #define LRN_STREAM_MAX 64
    static inline Py_ssize_t lrn_round8(Py_ssize_t L) { return (L + 7) & ~(Py_ssize_t)7; }
    /* Suffix sums of the m rows src[0..m) (squared with sq) into dst, last row first, 32
       columns at a time in registers. */
    static void lrn_suffix_rows(const float* const* src, float* const* dst, int m, int sq,
                                Py_ssize_t L) {
        Py_ssize_t j = 0;
        for (; j + 32 <= L; j += 32) {
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int i = m - 1; i >= 0; i--) {
                const float* s = src[i] + j;
                float* d = dst[i] + j;
                __m256 v0 = _mm256_loadu_ps(s), v1 = _mm256_loadu_ps(s + 8);
                __m256 v2 = _mm256_loadu_ps(s + 16), v3 = _mm256_loadu_ps(s + 24);
                if (sq) {
                    a0 = _mm256_fmadd_ps(v0, v0, a0); a1 = _mm256_fmadd_ps(v1, v1, a1);
                    a2 = _mm256_fmadd_ps(v2, v2, a2); a3 = _mm256_fmadd_ps(v3, v3, a3);
                } else {
                    a0 = _mm256_add_ps(v0, a0); a1 = _mm256_add_ps(v1, a1);
                    a2 = _mm256_add_ps(v2, a2); a3 = _mm256_add_ps(v3, a3);
                }
                _mm256_storeu_ps(d, a0); _mm256_storeu_ps(d + 8, a1);
                _mm256_storeu_ps(d + 16, a2); _mm256_storeu_ps(d + 24, a3);
            }
        }
        for (; j < L; j += 8) {  /* masked past L: zeros, so the scratch stays finite */
            __m256 a0 = _mm256_setzero_ps();
            for (int i = m - 1; i >= 0; i--) {
                __m256 v = lrn_load8(src[i] + j, L - j);
                a0 = sq ? _mm256_fmadd_ps(v, v, a0) : _mm256_add_ps(v, a0);
                _mm256_storeu_ps(dst[i] + j, a0);
            }
        }
    }
    /* P = x^2 (reset) or P + x^2, for the rows of a block that complete no window. */
    static void lrn_prefix_sq(const float* x, float* P, int reset, Py_ssize_t L) {
        Py_ssize_t j = 0;
        if (reset) {
            for (; j + 8 <= L; j += 8) {
                __m256 v = _mm256_loadu_ps(x + j);
                _mm256_storeu_ps(P + j, _mm256_mul_ps(v, v));
            }
        } else {
            for (; j + 8 <= L; j += 8) {
                __m256 v = _mm256_loadu_ps(x + j);
                _mm256_storeu_ps(P + j, _mm256_fmadd_ps(v, v, _mm256_loadu_ps(P + j)));
            }
        }
        if (j < L) {
            __m256 v = lrn_load8(x + j, L - j);
            _mm256_storeu_ps(P + j, reset ? _mm256_mul_ps(v, v)
                                          : _mm256_fmadd_ps(v, v, _mm256_loadu_ps(P + j)));
        }
    }
    /* The slots of the block of padded rows [b, end) whose first channel is b - shift: the
       suffix row of slot i is dst[..] of its channel, the first channel's row for padding
       before the channels and the zero row Z after them. Returns the rows to sum (src/dst). */
    static int lrn_block_rows(Py_ssize_t b, Py_ssize_t end, Py_ssize_t shift, Py_ssize_t C,
                              const float* base, Py_ssize_t bs, Py_ssize_t ring, float* S,
                              Py_ssize_t W, const float* Z, const float** slot,
                              const float** src, float** dst) {
        Py_ssize_t lo = b - shift > 0 ? b - shift : 0, hi = end - shift < C ? end - shift : C;
        int m = 0;
        for (Py_ssize_t p = b; p < end; p++) {
            Py_ssize_t ch = p - shift;
            slot[p - b] = ch >= hi ? Z : S + ((ch < lo ? lo + shift : p) - b) * W;
        }
        for (Py_ssize_t ch = lo; ch < hi; ch++, m++) {
            src[m] = base + (ring ? ch % ring : ch) * bs;
            dst[m] = S + (ch + shift - b) * W;
        }
        return m;
    }
    /* The window sum of output row a (columns j .. j + 8, rem live): w = S (+ P), P first
       updated from the new row xn when pmode is 1 (reset) or 2 (add). */
    static inline __attribute__((always_inline)) __m256 lrn_stream_window8(
            const float* xn, float* P, int pmode, int usep, const float* S, Py_ssize_t j,
            Py_ssize_t rem) {
        __m256 w = _mm256_loadu_ps(S + j);
        if (pmode) {
            __m256 v = lrn_load8(xn + j, rem);
            __m256 p = pmode == 1 ? _mm256_mul_ps(v, v)
                                  : _mm256_fmadd_ps(v, v, _mm256_loadu_ps(P + j));
            _mm256_storeu_ps(P + j, p);
            w = _mm256_add_ps(w, p);
        } else if (usep) {
            w = _mm256_add_ps(w, _mm256_loadu_ps(P + j));
        }
        return w;
    }
    /* Forward output row a: y = x * t(w). */
    static inline __attribute__((always_inline)) void lrn_stream_fwd8(
            const float* xn, float* P, int pmode, int usep, const float* S, const float* x,
            float* y, Py_ssize_t j, Py_ssize_t rem, __m256 vk, __m256 van, __m256 vlim,
            int beta_075, __m256* vbad) {
        __m256 w = lrn_stream_window8(xn, P, pmode, usep, S, j, rem);
        __m256 a, t = lrn_t8(w, van, vk, beta_075, &a);
        lrn_store8(y + j, _mm256_mul_ps(lrn_load8(x + j, rem), t), rem);
        *vbad = _mm256_or_ps(*vbad, _mm256_cmp_ps(w, vlim, _CMP_NLE_UQ));
    }
    static Py_ssize_t lrn_stream_fwd_row(const float* xn, float* P, int pmode, int usep,
                                         const float* S, const float* x, float* y, Py_ssize_t L,
                                         __m256 vk, __m256 van, __m256 vlim, int beta_075) {
        Py_ssize_t j = 0;
        __m256 vbad = _mm256_setzero_ps();  /* lanes with a window sum above lim or nan */
        if (pmode == 2 && beta_075) {  /* the common row, with constant flags */
            for (; j + 8 <= L; j += 8)
                lrn_stream_fwd8(xn, P, 2, 0, S, x, y, j, 8, vk, van, vlim, 1, &vbad);
        }
        for (; j + 8 <= L; j += 8)
            lrn_stream_fwd8(xn, P, pmode, usep, S, x, y, j, 8, vk, van, vlim, beta_075, &vbad);
        if (j < L)  /* the dead lanes of the last vector are zeros: never flagged */
            lrn_stream_fwd8(xn, P, pmode, usep, S, x, y, j, L - j, vk, van, vlim, beta_075,
                            &vbad);
        return _mm256_movemask_ps(vbad) != 0;
    }
    /* y = x * s ** -beta for a tile of L contiguous positions; buf holds (n + 2) rows of
       lrn_round8(L) floats. Returns how many window sums were above lim or not a number. */
    static Py_ssize_t lrn_forward_stream_f32(const float* X, Py_ssize_t xs, float* Y,
                                             Py_ssize_t ys, Py_ssize_t C, Py_ssize_t n,
                                             Py_ssize_t before, Py_ssize_t L, float k, float an,
                                             float lim, int beta_075, float* buf) {
        const __m256 vk = _mm256_set1_ps(k), van = _mm256_set1_ps(an);
        const __m256 vlim = _mm256_set1_ps(lim);
        const Py_ssize_t W = lrn_round8(L), Lp = C + n - 1;
        float* S = buf;
        float* P = buf + n * W;
        float* Z = P + W;
        const float* slot[LRN_STREAM_MAX];
        const float* src[LRN_STREAM_MAX];
        float* dst[LRN_STREAM_MAX];
        Py_ssize_t bad = 0;
        int pzero = 1;
        for (Py_ssize_t j = 0; j < W; j++) Z[j] = 0.0f;
        for (Py_ssize_t p = 0; p < Lp; p++) {
            Py_ssize_t b = p - p % n, end = b + n < Lp ? b + n : Lp;
            Py_ssize_t ch = p - before, a = p - n + 1;
            int out = a >= 0 && a < b;  /* window a ends here and does not start a block */
            if (p == b) pzero = 1;
            if (ch + 2 < C) lrn_prefetch(X + (ch + 2) * xs, L * 4);
            if (a + 2 >= 0 && a + 2 < C) lrn_prefetch_w(Y + (a + 2) * ys, L * 4);
            if (ch >= 0 && ch < C) {
                if (out)
                    bad += lrn_stream_fwd_row(X + ch * xs, P, pzero ? 1 : 2, 0,
                                              slot[a - b + n], X + a * xs, Y + a * ys, L, vk,
                                              van, vlim, beta_075);
                else
                    lrn_prefix_sq(X + ch * xs, P, pzero, L);
                pzero = 0;
            } else if (out) {
                bad += lrn_stream_fwd_row(NULL, P, 0, !pzero, slot[a - b + n], X + a * xs,
                                          Y + a * ys, L, vk, van, vlim, beta_075);
            }
            if (p == end - 1) {  /* the block is complete: its suffix sums, its first window */
                int m = lrn_block_rows(b, end, before, C, X, xs, 0, S, W, Z, slot, src, dst);
                if (m) lrn_suffix_rows(src, dst, m, 1, L);
                if (b < C)
                    bad += lrn_stream_fwd_row(NULL, P, 0, 0, slot[0], X + b * xs, Y + b * ys, L,
                                              vk, van, vlim, beta_075);
            }
        }
        return bad;
    }
    /* Backward output row a of the first scheme (t into Ta, r into Ra; w as in the forward),
       then the second scheme's prefix P2 (reset or + r) and, with S2, the dx row c whose
       transposed window ends at row a: dx = dy t - coef x (S2 + P2). */
    static inline __attribute__((always_inline)) void lrn_stream_bwd8(
            const float* xn, float* P, int pmode, int usep, const float* S, const float* xa,
            const float* dya, float* Ta, float* Ra, float* P2, int p2reset, const float* S2,
            const float* xc, const float* dyc, const float* Tc, float* dxc, Py_ssize_t j,
            Py_ssize_t rem, __m256 vk, __m256 van, __m256 vlim, __m256 vc, int beta_075,
            __m256* vbad) {
        __m256 w = lrn_stream_window8(xn, P, pmode, usep, S, j, rem);
        __m256 a, t = lrn_t8(w, van, vk, beta_075, &a);
        __m256 r = _mm256_mul_ps(_mm256_mul_ps(lrn_load8(dya + j, rem), lrn_load8(xa + j, rem)),
                                 _mm256_mul_ps(t, _mm256_mul_ps(a, a)));
        __m256 ra = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), r);  /* |r| */
        *vbad = _mm256_or_ps(*vbad, _mm256_or_ps(_mm256_cmp_ps(w, vlim, _CMP_NLE_UQ),
                                                 _mm256_cmp_ps(ra, _mm256_set1_ps(1e30f),
                                                               _CMP_NLE_UQ)));
        _mm256_storeu_ps(Ta + j, t);
        _mm256_storeu_ps(Ra + j, r);
        __m256 p2 = p2reset ? r : _mm256_add_ps(r, _mm256_loadu_ps(P2 + j));
        _mm256_storeu_ps(P2 + j, p2);
        if (S2) {
            __m256 u = _mm256_mul_ps(vc, lrn_load8(xc + j, rem));
            __m256 g = _mm256_mul_ps(lrn_load8(dyc + j, rem), _mm256_loadu_ps(Tc + j));
            __m256 w2 = _mm256_add_ps(_mm256_loadu_ps(S2 + j), p2);
            lrn_store8(dxc + j, _mm256_fnmadd_ps(u, w2, g), rem);
        }
    }
    static Py_ssize_t lrn_stream_bwd_row(
            const float* xn, float* P, int pmode, int usep, const float* S, const float* xa,
            const float* dya, float* Ta, float* Ra, float* P2, int p2reset, const float* S2,
            const float* xc, const float* dyc, const float* Tc, float* dxc, Py_ssize_t L,
            __m256 vk, __m256 van, __m256 vlim, __m256 vc, int beta_075) {
        Py_ssize_t j = 0;
        __m256 vbad = _mm256_setzero_ps();  /* lanes with w above lim, |r| above 1e30, or nan */
        if (pmode == 2 && !p2reset && S2 && beta_075) {  /* the common row, constant flags */
            for (; j + 8 <= L; j += 8)
                lrn_stream_bwd8(xn, P, 2, 0, S, xa, dya, Ta, Ra, P2, 0, S2, xc, dyc, Tc, dxc, j,
                                8, vk, van, vlim, vc, 1, &vbad);
        }
        for (; j + 8 <= L; j += 8)
            lrn_stream_bwd8(xn, P, pmode, usep, S, xa, dya, Ta, Ra, P2, p2reset, S2, xc, dyc,
                            Tc, dxc, j, 8, vk, van, vlim, vc, beta_075, &vbad);
        if (j < L)
            lrn_stream_bwd8(xn, P, pmode, usep, S, xa, dya, Ta, Ra, P2, p2reset, S2, xc, dyc,
                            Tc, dxc, j, L - j, vk, van, vlim, vc, beta_075, &vbad);
        return _mm256_movemask_ps(vbad) != 0;
    }
    /* A dx row of the second scheme alone: w2 = S2 (+ P2), P2 first updated from a row of r
       when p2mode is 1 (reset) or 2 (add). */
    static inline __attribute__((always_inline)) void lrn_stream_dx8(
            const float* rn, float* P2, int p2mode, int usep, const float* S2, const float* xc,
            const float* dyc, const float* Tc, float* dxc, Py_ssize_t j, Py_ssize_t rem,
            __m256 vc) {
        __m256 w2 = _mm256_loadu_ps(S2 + j);
        if (p2mode) {
            __m256 p2 = _mm256_loadu_ps(rn + j);
            if (p2mode == 2) p2 = _mm256_add_ps(p2, _mm256_loadu_ps(P2 + j));
            _mm256_storeu_ps(P2 + j, p2);
            w2 = _mm256_add_ps(w2, p2);
        } else if (usep) {
            w2 = _mm256_add_ps(w2, _mm256_loadu_ps(P2 + j));
        }
        __m256 u = _mm256_mul_ps(vc, lrn_load8(xc + j, rem));
        __m256 g = _mm256_mul_ps(lrn_load8(dyc + j, rem), _mm256_loadu_ps(Tc + j));
        lrn_store8(dxc + j, _mm256_fnmadd_ps(u, w2, g), rem);
    }
    static void lrn_stream_dx_row(const float* rn, float* P2, int p2mode, int usep,
                                  const float* S2, const float* xc, const float* dyc,
                                  const float* Tc, float* dxc, Py_ssize_t L, __m256 vc) {
        Py_ssize_t j = 0;
        for (; j + 8 <= L; j += 8)
            lrn_stream_dx8(rn, P2, p2mode, usep, S2, xc, dyc, Tc, dxc, j, 8, vc);
        if (j < L) lrn_stream_dx8(rn, P2, p2mode, usep, S2, xc, dyc, Tc, dxc, j, L - j, vc);
    }
    /* dx for a tile of L contiguous positions (x and dy rows xs apart); buf holds 4n + 3 rows
       of lrn_round8(L) floats. Returns how many values failed the range checks. */
    static Py_ssize_t lrn_backward_stream_f32(const float* X, const float* DY, Py_ssize_t xs,
                                              float* DX, Py_ssize_t ys, Py_ssize_t C,
                                              Py_ssize_t n, Py_ssize_t before, Py_ssize_t L,
                                              float k, float an, float coef, float lim,
                                              int beta_075, float* buf) {
        const __m256 vk = _mm256_set1_ps(k), van = _mm256_set1_ps(an);
        const __m256 vlim = _mm256_set1_ps(lim), vc = _mm256_set1_ps(coef);
        const Py_ssize_t W = lrn_round8(L), Lp = C + n - 1, after = n - 1 - before;
        float* S = buf;            /* suffix sums of squares, n rows */
        float* S2 = S + n * W;     /* suffix sums of r, n rows */
        float* T = S2 + n * W;     /* t of channel a in row a % n */
        float* R = T + n * W;      /* r of channel a in row a % n */
        float* P = R + n * W;
        float* P2 = P + W;
        float* Z = P2 + W;
        const float* slot[LRN_STREAM_MAX];
        const float* slot2[LRN_STREAM_MAX];
        const float* src[LRN_STREAM_MAX];
        float* dst[LRN_STREAM_MAX];
        Py_ssize_t bad = 0;
        int pzero = 1, p2zero = 1;
        for (Py_ssize_t j = 0; j < W; j++) Z[j] = 0.0f;
        /* step p: row p of the squares arrives and window a = p - n + 1 completes (t, r of
           channel a); then row q = p - before of the second scheme (r of channel a) arrives
           and its window c = q - n + 1 completes (dx of channel c = a - before). */
        for (Py_ssize_t p = 0; p < Lp + before; p++) {
            Py_ssize_t a = p - n + 1, q = p - before, c = q - n + 1;
            Py_ssize_t qb = q >= 0 ? q - q % n : 0;
            int dxout = q >= 0 && c >= 0 && c < qb;  /* window c ends at q, not a block start */
            if (q >= 0 && q == qb) p2zero = 1;
            const Py_ssize_t cc = c >= 0 ? c : 0;  /* the pointers below are used for c >= 0 */
            const float* s2 = dxout ? slot2[c - qb + n] : NULL;
            const float* xc = X + cc * xs;
            const float* dyc = DY + cc * xs;
            const float* Tc = T + (cc % n) * W;
            float* dxc = DX + cc * ys;
            if (p < Lp) {
                Py_ssize_t b = p - p % n, end = b + n < Lp ? b + n : Lp, ch = p - before;
                int out = a >= 0 && a < b;
                if (p == b) pzero = 1;
                if (ch + 2 < C) lrn_prefetch(X + (ch + 2) * xs, L * 4);
                if (a + 2 >= 0 && a + 2 < C) lrn_prefetch(DY + (a + 2) * xs, L * 4);
                if (c + 2 >= 0 && c + 2 < C) lrn_prefetch_w(DX + (c + 2) * ys, L * 4);
                if (out) {
                    int real = ch >= 0 && ch < C;
                    bad += lrn_stream_bwd_row(real ? X + ch * xs : NULL, P,
                                              real ? (pzero ? 1 : 2) : 0, !pzero,
                                              slot[a - b + n], X + a * xs, DY + a * xs,
                                              T + (a % n) * W, R + (a % n) * W, P2, p2zero, s2,
                                              xc, dyc, Tc, dxc, L, vk, van, vlim, vc, beta_075);
                    p2zero = 0;
                    dxout = 0;
                    if (real) pzero = 0;
                } else if (ch >= 0 && ch < C) {
                    lrn_prefix_sq(X + ch * xs, P, pzero, L);
                    pzero = 0;
                }
                if (p == end - 1) {
                    int m = lrn_block_rows(b, end, before, C, X, xs, 0, S, W, Z, slot, src, dst);
                    if (m) lrn_suffix_rows(src, dst, m, 1, L);
                    if (b < C) {  /* a == b: the window starting the block */
                        bad += lrn_stream_bwd_row(NULL, P, 0, 0, slot[0], X + b * xs,
                                                  DY + b * xs, T + (b % n) * W, R + (b % n) * W,
                                                  P2, p2zero, s2, xc, dyc, Tc, dxc, L, vk, van,
                                                  vlim, vc, beta_075);
                        p2zero = 0;
                        dxout = 0;
                    }
                }
            }
            if (q < 0) continue;
            Py_ssize_t endq = qb + n < Lp ? qb + n : Lp;
            if (dxout)  /* row q is padding (a outside the channels) */
                lrn_stream_dx_row(NULL, P2, 0, !p2zero, s2, xc, dyc, Tc, dxc, L, vc);
            if (q == endq - 1) {
                int m = lrn_block_rows(qb, endq, after, C, R, W, n, S2, W, Z, slot2, src, dst);
                if (m) lrn_suffix_rows(src, dst, m, 0, L);
                if (qb < C)
                    lrn_stream_dx_row(NULL, P2, 0, 0, slot2[0], X + qb * xs, DY + qb * xs,
                                      T + (qb % n) * W, DX + qb * ys, L, vc);
            }
        }
        return bad;
    }
    #else
    #define LRN_DIRECT 0
    static Py_ssize_t lrn_pixels_f32(const float* x, const float* dy, Py_ssize_t xs, float* out,
                                     Py_ssize_t ys, Py_ssize_t npix, Py_ssize_t C, Py_ssize_t n,
                                     Py_ssize_t before, float k, float an, float coef, float lim,
                                     int beta_075, int grouped, float* Q, float* T, float* R,
                                     float* A) { return -1; }
    static Py_ssize_t lrn_forward_direct_f32(const float* const* rows, int m, const float* x,
                                             float* y, Py_ssize_t n, float k, float an,
                                             float lim, int beta_075) { return -1; }
    static Py_ssize_t lrn_backward_direct_f32(const float* const* rows, int m, const float* x,
                                              const float* dy, float* T, float* R, Py_ssize_t n,
                                              float k, float an, float lim, int beta_075) {
        return -1;
    }
    static void lrn_backward_direct_out_f32(const float* const* rrows, int m, const float* x,
                                            const float* dy, const float* T, float* dx,
                                            Py_ssize_t n, float coef) {}
    static Py_ssize_t lrn_forward_stream_f32(const float* X, Py_ssize_t xs, float* Y,
                                             Py_ssize_t ys, Py_ssize_t C, Py_ssize_t n,
                                             Py_ssize_t before, Py_ssize_t L, float k, float an,
                                             float lim, int beta_075, float* buf) { return -1; }
    static Py_ssize_t lrn_backward_stream_f32(const float* X, const float* DY, Py_ssize_t xs,
                                              float* DX, Py_ssize_t ys, Py_ssize_t C,
                                              Py_ssize_t n, Py_ssize_t before, Py_ssize_t L,
                                              float k, float an, float coef, float lim,
                                              int beta_075, float* buf) { return -1; }
    #endif
    /* s ** -beta for any beta. float rows (the float fast path: s normal, in [1e-20, 1e30]):
       with AVX2, 2 ** (-beta * log2(s)) four at a time in double, below; otherwise the scalar
       pow. double rows: with glibc's vector maths library (libmvec; setup.py probes it for the
       AVX2 build), four double-precision pows at a time; otherwise the scalar pow. A float32
       result is rounded once from double. */
    #if defined(LRN_HAVE_LIBMVEC) && defined(__AVX2__)
    __m256d _ZGVdN4vv_pow(__m256d x, __m256d y);
    #endif
    #if defined(__AVX2__) && defined(__FMA__)
    /* c[0] x^(k-1) + c[1] x^(k-2) + ... + c[k-1], by Horner's rule. */
    static inline __m256d lrn_poly_pd(__m256d x, const double* c, int k) {
        __m256d p = _mm256_set1_pd(c[0]);
        for (int i = 1; i < k; i++) p = _mm256_fmadd_pd(p, x, _mm256_set1_pd(c[i]));
        return p;
    }
    /* log2(x) for normal positive doubles: x = 2^e m with m in [sqrt(1/2), sqrt(2)), and
       log2(m) from the atanh series of z = (m - 1) / (m + 1), |z| < 0.172, to z^15. */
    static inline __m256d lrn_log2_pd(__m256d x) {
        const __m256i mant = _mm256_set1_epi64x(0x000FFFFFFFFFFFFFLL);
        const __m256i one = _mm256_set1_epi64x(0x3FF0000000000000LL);
        const __m256d two52 = _mm256_set1_pd(4503599627370496.0);  /* 2^52 */
        const __m256d il2 = _mm256_set1_pd(2.0 / 0.6931471805599453);  /* 2 / ln 2 */
        __m256i xi = _mm256_castpd_si256(x);
        __m256d m = _mm256_castsi256_pd(_mm256_or_si256(_mm256_and_si256(xi, mant), one));
        __m256d big = _mm256_cmp_pd(m, _mm256_set1_pd(1.4142135623730951), _CMP_GT_OQ);
        m = _mm256_blendv_pd(m, _mm256_mul_pd(m, _mm256_set1_pd(0.5)), big);
        /* the biased exponent, plus one where m was halved (big is all ones: -1), as a double:
           its bits ORed into 2^52, minus 2^52 + 1023 */
        __m256i e = _mm256_sub_epi64(_mm256_srli_epi64(xi, 52), _mm256_castpd_si256(big));
        __m256d ed = _mm256_sub_pd(
            _mm256_castsi256_pd(_mm256_or_si256(e, _mm256_castpd_si256(two52))),
            _mm256_add_pd(two52, _mm256_set1_pd(1023.0)));
        __m256d z = _mm256_div_pd(_mm256_sub_pd(m, _mm256_set1_pd(1.0)),
                                  _mm256_add_pd(m, _mm256_set1_pd(1.0)));
        static const double atanh_c[8] = {1.0 / 15, 1.0 / 13, 1.0 / 11, 1.0 / 9, 1.0 / 7,
                                          1.0 / 5, 1.0 / 3, 1.0};
        __m256d p = lrn_poly_pd(_mm256_mul_pd(z, z), atanh_c, 8);  /* 1 + z^2/3 + ... */
        return _mm256_fmadd_pd(_mm256_mul_pd(p, il2), z, ed);
    }
    /* 2 ** y: y = n + f with n an integer and |f| <= 1/2, e^(f ln 2) from its Taylor series to
       the 12th power, times 2^n put into the exponent. y is first clamped to [-300, 300], far
       past the float range, so that overflow and underflow round to inf and 0 as pow's do. */
    static inline __m256d lrn_exp2_pd(__m256d y) {
        y = _mm256_min_pd(_mm256_max_pd(y, _mm256_set1_pd(-300.0)), _mm256_set1_pd(300.0));
        __m256d n = _mm256_round_pd(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m256d g = _mm256_mul_pd(_mm256_sub_pd(y, n), _mm256_set1_pd(0.6931471805599453));
        static const double exp_c[13] = {1.0 / 479001600, 1.0 / 39916800, 1.0 / 3628800,
                                         1.0 / 362880, 1.0 / 40320, 1.0 / 5040, 1.0 / 720,
                                         1.0 / 120, 1.0 / 24, 1.0 / 6, 0.5, 1.0, 1.0};
        __m256d p = lrn_poly_pd(g, exp_c, 13);  /* 1 + g + g^2/2 + ... + g^12/12! */
        __m256i ni = _mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(n));
        __m256i bits = _mm256_slli_epi64(_mm256_add_epi64(ni, _mm256_set1_epi64x(1023)), 52);
        return _mm256_mul_pd(p, _mm256_castsi256_pd(bits));
    }
    #endif
    /* Both series are good to about 1e-15 relative, so the float result is the correctly
       rounded s ** -beta except within about 1e-7 ulp of a halfway point (none among 8 million
       values over [1e-20, 1e30] for several betas); about 1.6x the speed of libmvec's pow. */
    static inline void lrn_pow_f32(float* s, Py_ssize_t n, double beta) {
        Py_ssize_t j = 0;
    #if defined(__AVX2__) && defined(__FMA__)
        const __m256d nb = _mm256_set1_pd(-beta);
        for (; j + 4 <= n; j += 4) {
            __m256d x = _mm256_cvtps_pd(_mm_loadu_ps(s + j));
            _mm_storeu_ps(s + j, _mm256_cvtpd_ps(lrn_exp2_pd(_mm256_mul_pd(nb, lrn_log2_pd(x)))));
        }
    #endif
        for (; j < n; j++)
            s[j] = (float)pow((double)s[j], -beta);
    }
    static inline void lrn_pow_f64(double* s, Py_ssize_t n, double beta) {
        Py_ssize_t j = 0;
    #if defined(LRN_HAVE_LIBMVEC) && defined(__AVX2__)
        const __m256d nb = _mm256_set1_pd(-beta);
        for (; j + 4 <= n; j += 4)
            _mm256_storeu_pd(s + j, _ZGVdN4vv_pow(_mm256_loadu_pd(s + j), nb));
    #endif
        for (; j < n; j++)
            s[j] = pow(s[j], -beta);
    }
    #if defined(LRN_HAVE_LIBMVEC) && defined(__AVX2__)
    #define LRN_VECTOR_POW 1
    #else
    #define LRN_VECTOR_POW 0
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
    void lrn_pow075_f32(float* s, Py_ssize_t n) noexcept nogil
    void lrn_pow05_f32(float* s, Py_ssize_t n) noexcept nogil
    void lrn_pow075_pair_f32(float* s, float* v, Py_ssize_t n) noexcept nogil
    void lrn_pow_f32(float* s, Py_ssize_t n, double beta) noexcept nogil
    Py_ssize_t lrn_backward_row_f32(const float* S, const float* P, int addp, float k, float an,
                                    const float* x, const float* dy, float* T, float* R,
                                    Py_ssize_t n, int beta_075) noexcept nogil
    int lrn_forward_row_f32(const float* S, const float* P, int addp, float k, float an,
                            const float* x, float* y, Py_ssize_t n, int beta_075) noexcept nogil
    void lrn_pow_f64(double* s, Py_ssize_t n, double beta) noexcept nogil
    const int LRN_VECTOR_POW
    const int LRN_DIRECT
    Py_ssize_t lrn_forward_direct_f32(const float* const* rows, int m, const float* x, float* y,
                                      Py_ssize_t n, float k, float an, float lim,
                                      int beta_075) noexcept nogil
    Py_ssize_t lrn_backward_direct_f32(const float* const* rows, int m, const float* x,
                                       const float* dy, float* T, float* R, Py_ssize_t n,
                                       float k, float an, float lim, int beta_075) noexcept nogil
    void lrn_backward_direct_out_f32(const float* const* rrows, int m, const float* x,
                                     const float* dy, const float* T, float* dx, Py_ssize_t n,
                                     float coef) noexcept nogil
    Py_ssize_t lrn_forward_stream_f32(const float* X, Py_ssize_t xs, float* Y, Py_ssize_t ys,
                                      Py_ssize_t C, Py_ssize_t n, Py_ssize_t before,
                                      Py_ssize_t L, float k, float an, float lim, int beta_075,
                                      float* buf) noexcept nogil
    Py_ssize_t lrn_backward_stream_f32(const float* X, const float* DY, Py_ssize_t xs,
                                       float* DX, Py_ssize_t ys, Py_ssize_t C, Py_ssize_t n,
                                       Py_ssize_t before, Py_ssize_t L, float k, float an,
                                       float coef, float lim, int beta_075,
                                       float* buf) noexcept nogil
    void lrn_prefetch(const void* p, Py_ssize_t n) noexcept nogil
    void lrn_prefetch_w(void* p, Py_ssize_t n) noexcept nogil
    Py_ssize_t lrn_pixels_f32(const float* x, const float* dy, Py_ssize_t xs, float* out,
                              Py_ssize_t ys, Py_ssize_t npix, Py_ssize_t C, Py_ssize_t n,
                              Py_ssize_t before, float k, float an, float coef, float lim,
                              int beta_075, int grouped, float* Q, float* T, float* R,
                              float* A) noexcept nogil
    void lrn_pow05_pair_f32(float* s, float* v, Py_ssize_t n) noexcept nogil


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
    # Contiguous positions (NCHW) on the float fast path with windows up to this size and beta
    # 0.75 or 0.5 take direct rows (AVX2 builds): one pass per direction, DIRECT_TILE positions
    # a tile, window sums read straight from the rows of x. Their cost grows with the window
    # (n loads an element); from about 8 channels the streamed rows, whose cost does not, are
    # as fast (measured: BENCHMARKS.md).
    DIRECT_MAX_SIZE = 8
    DIRECT_TILE = 512
    # Wider windows on that path (up to FAST_MAX_SIZE) take streamed van Herk rows, STREAM_TILE
    # positions a tile, so that their rings (n + 2 rows; 4n + 3 in the backward) stay in L2.
    STREAM_TILE = 384
    # Tiles prefetch the rows of x (and dy) this many channels ahead of their use: the rows of a
    # tile are far apart, so the hardware prefetchers do not see them coming.
    PREFETCH_ROWS = 2
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
    cdef int nt = omp_get_max_threads()
    if n_elements < SERIAL_BELOW:
        return 1
    if nt > n_tiles:
        nt = <int>n_tiles
    return nt if nt > 0 else 1


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
            if ch >= PREFETCH_ROWS:  # the rows are visited upwards
                lrn_prefetch(xrow - PREFETCH_ROWS * xs, L * sizeof(floating))
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
# S holds C + n + 1 rows (suffix sums, then window sums; one more row for P, one for T).

cdef inline bint _forward_tile(const floating* X, Py_ssize_t xs, floating* Y, Py_ssize_t ys,
                               acc* S, Py_ssize_t C, Py_ssize_t n, Py_ssize_t before,
                               double alpha, double beta, double k, int kind, bint checked,
                               Py_ssize_t L, Py_ssize_t B) noexcept nogil:
    """One forward tile; with ``checked`` (the float fast path) return False, having written
    nothing, when the tile's values could leave the range where float is accurate."""
    cdef acc* P = S + (C + n - 1) * B
    cdef acc* T = P + B
    cdef acc an = <acc>(alpha / <double>n)
    cdef acc kk = <acc>k
    cdef Py_ssize_t c, j
    cdef const floating* xrow
    cdef floating* yrow
    cdef bint fused = (floating is float and acc is float
                       and (kind == BETA_075 or kind == BETA_05))
    _suffix_pass(X, xs, <acc*>NULL, 1, S, C, n, before, L, B)
    if checked and not _blocks_ok(S, C, n, alpha, k, L, B):
        return False
    for c in range(C):
        xrow = X + c * xs
        yrow = Y + c * ys
        if fused:
            _prefix_row(X, xs, <acc*>NULL, 1, P, c, C, n, before, L, B)
            if lrn_forward_row_f32(<float*>(S + c * B), <float*>P, c % n != 0, <float>kk,
                                   <float>an, <float*>xrow, <float*>yrow, L, kind == BETA_075):
                continue
        else:
            _prefix_row(X, xs, <acc*>NULL, 1, P, c, C, n, before, L, B)
        _affine_row(S + c * B, P, T, c % n != 0, kk, an, L)
        _neg_pow(T, L, beta, kind)
        for j in range(L):
            yrow[j] = <floating>(<acc>xrow[j] * T[j])
    return True


cdef inline bint _backward_tile(const floating* DY, const floating* X, Py_ssize_t xs,
                                floating* DX, Py_ssize_t ys, acc* S, acc* S2, acc* R,
                                Py_ssize_t C, Py_ssize_t n, Py_ssize_t before, double alpha,
                                double beta, double k, int kind, bint checked, Py_ssize_t L,
                                Py_ssize_t B) noexcept nogil:
    """One backward tile (DY and X rows both ``xs`` apart); see ``lrn_backward``. With
    ``checked`` (the float fast path) return False, having written nothing, when a value
    could leave the range where float is accurate."""
    cdef acc* P = S + (C + n - 1) * B
    cdef acc* P2 = S2 + (C + n - 1) * B
    cdef acc an = <acc>(alpha / <double>n)
    cdef acc coef = <acc>(2.0 * alpha * beta / <double>n)
    cdef acc kk = <acc>k
    cdef Py_ssize_t c, j
    cdef Py_ssize_t after = n - 1 - before
    cdef const floating* xrow
    cdef const floating* drow
    cdef floating* orow
    cdef acc* Srow
    cdef acc* Rrow
    cdef acc* Wrow
    cdef acc r, big = <acc>1e30
    cdef int bad = 0
    cdef Py_ssize_t nbad
    cdef bint fused = (floating is float and acc is float
                       and (kind == BETA_075 or kind == BETA_05))
    # s, then t = s ** -beta (kept in S) and r = dy * x * t / s (in R)
    _suffix_pass(X, xs, <acc*>NULL, 1, S, C, n, before, L, B)
    if checked and not _blocks_ok(S, C, n, alpha, k, L, B):
        return False
    for c in range(C):
        Srow = S + c * B
        Rrow = R + c * B
        xrow = X + c * xs
        drow = DY + c * xs
        if c + PREFETCH_ROWS < C:
            lrn_prefetch(drow + PREFETCH_ROWS * xs, L * sizeof(floating))
        _prefix_row(X, xs, <acc*>NULL, 1, P, c, C, n, before, L, B)
        if fused:
            nbad = lrn_backward_row_f32(<float*>Srow, <float*>P, c % n != 0, <float>kk, <float>an,
                                        <float*>xrow, <float*>drow, <float*>Srow, <float*>Rrow,
                                        L, kind == BETA_075)
            if nbad > 0 and checked:
                return False
            if nbad >= 0:
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
    # the transposed window sum of r, and dx
    _suffix_pass(X, xs, R, 0, S2, C, n, after, L, B)
    for c in range(C):
        Wrow = S2 + c * B
        _prefix_row(X, xs, R, 0, P2, c, C, n, after, L, B)
        Srow = S + c * B
        xrow = X + c * xs
        drow = DY + c * xs
        orow = DX + c * ys
        if c % n != 0:  # the window sum is Wrow + P2 (one loop either way)
            for j in range(L):
                orow[j] = <floating>(<acc>drow[j] * Srow[j]
                                     - coef * <acc>xrow[j] * (Wrow[j] + P2[j]))
        else:
            for j in range(L):
                orow[j] = <floating>(<acc>drow[j] * Srow[j] - coef * <acc>xrow[j] * Wrow[j])
    return True


cdef inline int _window_rows(const float* X, Py_ssize_t xs, Py_ssize_t c, Py_ssize_t C,
                             Py_ssize_t lo, Py_ssize_t hi, const float** rows) noexcept nogil:
    """rows = the rows of X for channels c - lo ... c + hi inside [0, C); returns how many."""
    cdef int m = 0
    cdef Py_ssize_t ch
    for ch in range(max(c - lo, 0), min(c + hi + 1, C)):
        rows[m] = X + ch * xs
        m += 1
    return m


cdef inline bint _forward_direct(const float* X, Py_ssize_t xs, float* Y, Py_ssize_t ys,
                                 Py_ssize_t C, Py_ssize_t n, Py_ssize_t before, double alpha,
                                 double k, int kind, Py_ssize_t L) noexcept nogil:
    """A forward tile by direct rows; False when a value left the float range (the caller
    redoes the tile)."""
    cdef const float* rows[DIRECT_MAX_SIZE]
    cdef float lim = <float>_sum_limit(alpha, k, n)
    cdef float an = <float>(alpha / <double>n), kk = <float>k
    cdef Py_ssize_t c, bad = 0
    cdef int m
    for c in range(C):
        if c + n - before + PREFETCH_ROWS <= C:
            lrn_prefetch(X + (c + n - before + PREFETCH_ROWS - 1) * xs, L * 4)
        m = _window_rows(X, xs, c, C, before, n - 1 - before, rows)
        bad += lrn_forward_direct_f32(rows, m, X + c * xs, Y + c * ys, L, kk, an, lim,
                                      kind == BETA_075)
    return bad == 0


cdef inline bint _backward_direct(const float* DY, const float* X, Py_ssize_t xs, float* DX,
                                  Py_ssize_t ys, float* T, float* R, Py_ssize_t C, Py_ssize_t n,
                                  Py_ssize_t before, double alpha, double beta, double k,
                                  int kind, Py_ssize_t L, Py_ssize_t B) noexcept nogil:
    """A backward tile by direct rows, one pass: row a's t and r (rings T and R of n rows B
    long) as soon as x reaches channel a + after, and dx of channel a - before, whose
    transposed window ends at a. False when a value left the float range."""
    cdef const float* rows[DIRECT_MAX_SIZE]
    cdef const float* rrows[DIRECT_MAX_SIZE]
    cdef Py_ssize_t after = n - 1 - before
    cdef float lim = <float>_sum_limit(alpha, k, n)
    cdef float an = <float>(alpha / <double>n), kk = <float>k
    cdef float coef = <float>(2.0 * alpha * beta / <double>n)
    cdef Py_ssize_t a, b, ch, bad = 0
    cdef int m
    for a in range(C + before):
        if a + after + PREFETCH_ROWS < C:
            lrn_prefetch(X + (a + after + PREFETCH_ROWS) * xs, L * 4)
            lrn_prefetch(DY + (a + PREFETCH_ROWS) * xs, L * 4)
        if a < C:
            m = _window_rows(X, xs, a, C, before, after, rows)
            bad += lrn_backward_direct_f32(rows, m, X + a * xs, DY + a * xs, T + (a % n) * B,
                                           R + (a % n) * B, L, kk, an, lim, kind == BETA_075)
        b = a - before
        if b >= 0:
            m = 0
            for ch in range(max(b - after, 0), min(b + before + 1, C)):
                rrows[m] = R + (ch % n) * B
                m += 1
            lrn_backward_direct_out_f32(rrows, m, X + b * xs, DY + b * xs, T + (b % n) * B,
                                        DX + b * ys, L, coef)
    return bad == 0


cdef inline bint _forward_rows(const float* X, Py_ssize_t xs, float* Y, Py_ssize_t ys,
                               float* buf, Py_ssize_t C, Py_ssize_t n, Py_ssize_t before,
                               double alpha, double k, int kind, Py_ssize_t L) noexcept nogil:
    """A forward tile of contiguous positions on the float fast path: direct rows for windows
    up to DIRECT_MAX_SIZE, streamed van Herk rows above (``buf``: n + 2 rows of L rounded up
    to 8). False when a value left the float range (the caller redoes the tile)."""
    if n <= DIRECT_MAX_SIZE:
        return _forward_direct(X, xs, Y, ys, C, n, before, alpha, k, kind, L)
    return lrn_forward_stream_f32(X, xs, Y, ys, C, n, before, L, <float>k,
                                  <float>(alpha / <double>n), <float>_sum_limit(alpha, k, n),
                                  kind == BETA_075, buf) == 0


cdef inline bint _backward_rows(const float* DY, const float* X, Py_ssize_t xs, float* DX,
                                Py_ssize_t ys, float* buf, Py_ssize_t C, Py_ssize_t n,
                                Py_ssize_t before, double alpha, double beta, double k,
                                int kind, Py_ssize_t L, Py_ssize_t B) noexcept nogil:
    """The backward of ``_forward_rows`` (``buf``: 2n rows of B >= L floats for direct rows,
    4n + 3 rows of L rounded up to 8 for streamed ones)."""
    if n <= DIRECT_MAX_SIZE:
        return _backward_direct(DY, X, xs, DX, ys, buf, buf + n * B, C, n, before, alpha, beta,
                                k, kind, L, B)
    return lrn_backward_stream_f32(X, DY, xs, DX, ys, C, n, before, L, <float>k,
                                   <float>(alpha / <double>n),
                                   <float>(2.0 * alpha * beta / <double>n),
                                   <float>_sum_limit(alpha, k, n), kind == BETA_075, buf) == 0


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


cdef inline bint _forward_pixel(const floating* x, floating* y, acc* Q, acc* W, Py_ssize_t C,
                                Py_ssize_t n, Py_ssize_t before, double alpha, double beta,
                                double k, int kind, bint checked) noexcept nogil:
    """LRN of one position whose C channels are contiguous in x and y."""
    cdef Py_ssize_t c
    cdef acc an = <acc>(alpha / <double>n)
    cdef acc kk = <acc>k
    if not _pixel_sums(x, Q, W, C, n, before, alpha, k, checked):
        return False
    if floating is float and acc is float and (kind == BETA_075 or kind == BETA_05):
        if lrn_forward_row_f32(<float*>W, <float*>W, 0, <float>kk, <float>an, <float*>x,
                               <float*>y, C, kind == BETA_075):
            return True
    _affine_row(W, W, W, False, kk, an, C)
    _neg_pow(W, C, beta, kind)
    for c in range(C):
        y[c] = <floating>(<acc>x[c] * W[c])
    return True


cdef inline bint _backward_pixel(const floating* dy, const floating* x, floating* dx, acc* Q,
                                 acc* W, acc* V, acc* R, Py_ssize_t C, Py_ssize_t n,
                                 Py_ssize_t before, double alpha, double beta, double k, int kind,
                                 bint checked) noexcept nogil:
    """Input gradient of one position whose C channels are contiguous in dy, x and dx."""
    cdef Py_ssize_t c
    cdef Py_ssize_t after = n - 1 - before
    cdef acc r, big = <acc>1e30
    cdef acc an = <acc>(alpha / <double>n)
    cdef acc kk = <acc>k
    cdef acc coef = <acc>(2.0 * alpha * beta / <double>n)
    cdef int bad = 0
    if not _pixel_sums(x, Q, W, C, n, before, alpha, k, checked):
        return False
    _affine_row(W, W, W, False, kk, an, C)
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
        dx[c] = <floating>(<acc>dy[c] * W[c] - coef * <acc>x[c] * V[c])
    return True


# ---------------------------------------------------------------------------------------------
# Kernels

cdef struct Geometry:
    # B positions a tile, per_row tiles an outer row, n_tiles in all, on this many threads
    Py_ssize_t B, per_row, n_tiles
    int threads


cdef inline Geometry _geometry(Py_ssize_t O, Py_ssize_t C, Py_ssize_t I, Py_ssize_t n,
                               Py_ssize_t acc_bytes) noexcept nogil:
    cdef Geometry g
    g.B = _tile_width(C, n, I, acc_bytes)
    g.per_row = (I + g.B - 1) // g.B
    g.n_tiles = O * g.per_row
    g.threads = _n_threads(O * C * I, g.n_tiles)
    return g


cdef inline bint _direct_ok(bint fast, Py_ssize_t n, int kind, Py_ssize_t max_size) noexcept nogil:
    """Float32 inputs take one-pass rows (direct up to DIRECT_MAX_SIZE, streamed above) or
    direct positions (up to PIXEL_DIRECT_MAX_SIZE) for windows up to ``max_size`` when this
    holds; ``fast`` is the float fast path's parameter check."""
    return (LRN_DIRECT and fast and n <= max_size
            and (kind == BETA_075 or kind == BETA_05))


cdef inline Geometry _direct_geometry(Py_ssize_t O, Py_ssize_t C, Py_ssize_t I,
                                     Py_ssize_t n) noexcept nogil:
    cdef Geometry g
    g.B = min(<Py_ssize_t>(DIRECT_TILE if n <= DIRECT_MAX_SIZE else STREAM_TILE), I)
    g.per_row = (I + g.B - 1) // g.B
    g.n_tiles = O * g.per_row
    g.threads = _n_threads(O * C * I, g.n_tiles)
    return g


def window_sum(const floating[:, :, :] v, floating[:, :, :] out, Py_ssize_t size,
               Py_ssize_t before):
    """out[o, c, i] = sum of v[o, m, i] for m in [c - before, c - before + size - 1] ∩ [0, C)."""
    cdef Py_ssize_t O = v.shape[0], C = v.shape[1], I = v.shape[2]
    if O == 0 or C == 0 or I == 0:
        return
    cdef Py_ssize_t n = size
    cdef Geometry g = _geometry(O, C, I, n, sizeof(double))
    cdef Py_ssize_t B = g.B
    cdef const floating* vp = &v[0, 0, 0]
    cdef floating* op = &out[0, 0, 0]
    cdef Py_ssize_t vso = v.strides[0] // sizeof(floating), vsc = v.strides[1] // sizeof(floating)
    cdef Py_ssize_t vsi = v.strides[2] // sizeof(floating)
    cdef Py_ssize_t oso = out.strides[0] // sizeof(floating)
    cdef Py_ssize_t osc = out.strides[1] // sizeof(floating)
    cdef Py_ssize_t osi = out.strides[2] // sizeof(floating)
    cdef Py_ssize_t t, o, i0, L, c, j
    cdef floating* buf
    cdef double* V
    cdef double* S
    cdef const floating* src
    cdef int failed = 0
    cdef int* failp = &failed
    with nogil, parallel(num_threads=g.threads):
        buf = <floating*>malloc(C * B * sizeof(floating))
        V = <double*>malloc(C * B * sizeof(double))
        S = <double*>malloc((C + n + 1) * B * sizeof(double))
        if buf == NULL or V == NULL or S == NULL:
            failp[0] = 1
        else:
            for t in prange(g.n_tiles, schedule='static'):
                o = t // g.per_row
                i0 = (t % g.per_row) * B
                L = min(B, I - i0)
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
    if failed:
        raise MemoryError("lrn_core: could not allocate the per-thread scratch")


def lrn_forward(const floating[:, :, :] x, floating[:, :, :] out, Py_ssize_t size,
                Py_ssize_t before, double alpha, double beta, double k):
    """out = x * (k + alpha / size * window_sum(x ** 2)) ** -beta along axis 1."""
    cdef Py_ssize_t O = x.shape[0], C = x.shape[1], I = x.shape[2]
    if O == 0 or C == 0 or I == 0:
        return
    cdef Py_ssize_t n = size
    cdef int kind = _beta_kind(beta)
    cdef bint fast = floating is float and _fast_ok(n, alpha, k)
    cdef Geometry g = _geometry(O, C, I, n, sizeof(float) if fast else sizeof(double))
    cdef Py_ssize_t B = g.B
    cdef const floating* xp = &x[0, 0, 0]
    cdef floating* op = &out[0, 0, 0]
    cdef Py_ssize_t xso = x.strides[0] // sizeof(floating), xsc = x.strides[1] // sizeof(floating)
    cdef Py_ssize_t xsi = x.strides[2] // sizeof(floating)
    cdef Py_ssize_t oso = out.strides[0] // sizeof(floating)
    cdef Py_ssize_t osc = out.strides[1] // sizeof(floating)
    cdef Py_ssize_t osi = out.strides[2] // sizeof(floating)
    cdef bint x_direct = xsi == 1, o_direct = osi == 1
    # channels-last positions (NHWC) with small windows: position by position, no transposes
    cdef bint pixels_direct = (floating is float and xsc == 1 and osc == 1 and xsi != 1
                               and _direct_ok(fast, n, kind, PIXEL_DIRECT_MAX_SIZE))
    cdef bint pixels = pixels_direct or (xsc == 1 and osc == 1 and xsi != 1
                                         and n <= PIXEL_MAX_SIZE)
    # contiguous positions on the float fast path: direct rows, or streamed for wider windows
    cdef bint direct = (floating is float and x_direct and o_direct
                        and _direct_ok(fast, n, kind, FAST_MAX_SIZE))
    cdef Py_ssize_t Bs = B  # the van Herk tile width (tiles redone after a direct tile fails)
    g = _direct_geometry(O, C, I, n) if direct else g
    B = g.B
    cdef Py_ssize_t cn = C + n
    cdef Py_ssize_t scratch = max((C + n + 1) * Bs, 4 * (cn + 8), (n + 2) * ((B + 7) // 8 * 8))
    cdef Py_ssize_t t, o, i0, L, xs, ys, j
    cdef floating* xbuf
    cdef floating* obuf
    cdef float* Sf
    cdef void* Sf_block
    cdef double* Sd
    cdef const floating* X
    cdef floating* Y
    cdef int failed = 0
    cdef int* failp = &failed
    with nogil, parallel(num_threads=g.threads):
        # gathered tiles only, which are never direct: their width B is Bs
        xbuf = <floating*>malloc(C * Bs * sizeof(floating))
        obuf = <floating*>malloc(C * Bs * sizeof(floating))
        Sf_block = malloc(scratch * sizeof(float) + 64)
        Sf = _aligned64(Sf_block)
        Sd = <double*>malloc(scratch * sizeof(double))
        if xbuf == NULL or obuf == NULL or Sf_block == NULL or Sd == NULL:
            failp[0] = 1
        else:
            for t in prange(g.n_tiles, schedule='static'):
                o = t // g.per_row
                i0 = (t % g.per_row) * B
                L = min(B, I - i0)
                if direct:
                    X, Y = xp + o * xso + i0, op + o * oso + i0
                    if not _forward_rows(<const float*>X, xsc, <float*>Y, osc, Sf, C, n, before,
                                         alpha, k, kind, L):
                        for j in range((L + Bs - 1) // Bs):
                            _forward_tile(X + j * Bs, xsc, Y + j * Bs, osc, Sd, C, n, before,
                                          alpha, beta, k, kind, False, min(Bs, L - j * Bs), Bs)
                    continue
                if pixels:
                    if pixels_direct and lrn_pixels_f32(
                            <const float*>(xp + o * xso + i0 * xsi), NULL, xsi,
                            <float*>(op + o * oso + i0 * osi), osi, L, C, n, before, <float>k,
                            <float>(alpha / n), 0.0, <float>_sum_limit(alpha, k, n),
                            kind == BETA_075, n >= PIXEL_GROUP_SIZE, Sf, Sf + cn + 8,
                            Sf + 2 * (cn + 8), Sf + 3 * (cn + 8)) == 0:
                        continue
                    for j in range(L):
                        X = xp + o * xso + (i0 + j) * xsi
                        Y = op + o * oso + (i0 + j) * osi
                        if not (fast and _forward_pixel(X, Y, Sf, Sf + C + n, C, n, before, alpha,
                                                        beta, k, kind, True)):
                            _forward_pixel(X, Y, Sd, Sd + C + n, C, n, before, alpha, beta, k,
                                           kind, False)
                    continue
                if x_direct:
                    X, xs = xp + o * xso + i0, xsc
                else:
                    _gather(xp + o * xso + i0 * xsi, xsc, xsi, C, L, B, xbuf)
                    X, xs = xbuf, B
                if o_direct:
                    Y, ys = op + o * oso + i0, osc
                else:
                    Y, ys = obuf, B
                if not (fast and _forward_tile(X, xs, Y, ys, Sf, C, n, before, alpha, beta, k,
                                               kind, True, L, B)):
                    _forward_tile(X, xs, Y, ys, Sd, C, n, before, alpha, beta, k, kind, False,
                                  L, B)
                if not o_direct:
                    _scatter(obuf, C, L, B, op + o * oso + i0 * osi, osc, osi)
        free(xbuf)
        free(obuf)
        free(Sf_block)
        free(Sd)
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
    cdef int kind = _beta_kind(beta)
    cdef bint fast = floating is float and _fast_ok(n, alpha, k)
    cdef Geometry g = _geometry(O, C, I, n, 3 * (sizeof(float) if fast else sizeof(double)))
    cdef Py_ssize_t B = g.B
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
    # rows are read in place only when x and dy share the channel stride and are contiguous
    cdef bint in_direct = xsi == 1 and dsi == 1 and xsc == dsc
    cdef bint o_direct = osi == 1
    cdef bint channels_last = xsc == 1 and dsc == 1 and osc == 1 and (xsi != 1 or dsi != 1)
    cdef bint pixels_direct = (floating is float and channels_last and xsi == dsi
                               and _direct_ok(fast, n, kind, PIXEL_DIRECT_MAX_SIZE))
    cdef bint pixels = pixels_direct or (channels_last and n <= PIXEL_MAX_SIZE)
    cdef bint direct = (floating is float and in_direct and o_direct
                        and _direct_ok(fast, n, kind, FAST_MAX_SIZE))
    cdef Py_ssize_t Bs = B  # the van Herk tile width (tiles redone after a direct tile fails)
    g = _direct_geometry(O, C, I, n) if direct else g
    B = g.B
    cdef Py_ssize_t t, o, i0, L, xs, ys, j, cn = C + n
    cdef const floating* XP
    cdef const floating* DP
    cdef floating* OP
    cdef floating* xbuf
    cdef floating* dbuf
    cdef floating* obuf
    cdef float* Sf
    cdef void* Sf_block
    cdef double* Sd
    cdef const floating* X
    cdef const floating* DY
    cdef floating* DX
    cdef Py_ssize_t rows = (C + n + 1) * Bs
    cdef Py_ssize_t scratch = max(3 * rows, 4 * cn, (4 * n + 3) * ((B + 7) // 8 * 8),
                                  4 * (cn + 8))
    cdef int failed = 0
    cdef int* failp = &failed
    with nogil, parallel(num_threads=g.threads):
        xbuf = <floating*>malloc(C * Bs * sizeof(floating))
        dbuf = <floating*>malloc(C * Bs * sizeof(floating))
        obuf = <floating*>malloc(C * Bs * sizeof(floating))
        Sf_block = malloc(scratch * sizeof(float) + 64)
        Sf = _aligned64(Sf_block)
        Sd = <double*>malloc(scratch * sizeof(double))
        if xbuf == NULL or dbuf == NULL or obuf == NULL or Sf_block == NULL or Sd == NULL:
            failp[0] = 1
        else:
            for t in prange(g.n_tiles, schedule='static'):
                o = t // g.per_row
                i0 = (t % g.per_row) * B
                L = min(B, I - i0)
                if direct:
                    X, DY, DX = xp + o * xso + i0, dp + o * dso + i0, op + o * oso + i0
                    if not _backward_rows(<const float*>DY, <const float*>X, xsc, <float*>DX,
                                          osc, Sf, C, n, before, alpha, beta, k, kind, L, B):
                        for j in range((L + Bs - 1) // Bs):
                            _backward_tile(DY + j * Bs, X + j * Bs, xsc, DX + j * Bs, osc, Sd,
                                           Sd + rows, Sd + 2 * rows, C, n, before, alpha, beta,
                                           k, kind, False, min(Bs, L - j * Bs), Bs)
                    continue
                if pixels:
                    if pixels_direct and lrn_pixels_f32(
                            <const float*>(xp + o * xso + i0 * xsi),
                            <const float*>(dp + o * dso + i0 * dsi), xsi,
                            <float*>(op + o * oso + i0 * osi), osi, L, C, n, before, <float>k,
                            <float>(alpha / n), <float>(2.0 * alpha * beta / n),
                            <float>_sum_limit(alpha, k, n), kind == BETA_075,
                            n >= PIXEL_GROUP_SIZE, Sf, Sf + cn + 8, Sf + 2 * (cn + 8),
                            Sf + 3 * (cn + 8)) == 0:
                        continue
                    for j in range(L):
                        XP = xp + o * xso + (i0 + j) * xsi
                        DP = dp + o * dso + (i0 + j) * dsi
                        OP = op + o * oso + (i0 + j) * osi
                        if not (fast and _backward_pixel(DP, XP, OP, Sf, Sf + cn, Sf + 2 * cn,
                                                         Sf + 3 * cn, C, n, before, alpha, beta,
                                                         k, kind, True)):
                            _backward_pixel(DP, XP, OP, Sd, Sd + cn, Sd + 2 * cn, Sd + 3 * cn, C,
                                            n, before, alpha, beta, k, kind, False)
                    continue
                if in_direct:
                    X, DY, xs = xp + o * xso + i0, dp + o * dso + i0, xsc
                else:
                    _gather(xp + o * xso + i0 * xsi, xsc, xsi, C, L, B, xbuf)
                    _gather(dp + o * dso + i0 * dsi, dsc, dsi, C, L, B, dbuf)
                    X, DY, xs = xbuf, dbuf, B
                if o_direct:
                    DX, ys = op + o * oso + i0, osc
                else:
                    DX, ys = obuf, B
                if not (fast and _backward_tile(DY, X, xs, DX, ys, Sf, Sf + rows, Sf + 2 * rows,
                                                C, n, before, alpha, beta, k, kind, True, L, B)):
                    _backward_tile(DY, X, xs, DX, ys, Sd, Sd + rows, Sd + 2 * rows, C, n, before,
                                   alpha, beta, k, kind, False, L, B)
                if not o_direct:
                    _scatter(obuf, C, L, B, op + o * oso + i0 * osi, osc, osi)
        free(xbuf)
        free(dbuf)
        free(obuf)
        free(Sf_block)
        free(Sd)
    if failed:
        raise MemoryError("lrn_core: could not allocate the per-thread scratch")
