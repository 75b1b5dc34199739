/* lrn-core's C kernels (declared in lrn_kernels.h; the Cython module _kernels.pyx drives them).
 *
 * The float fast path: float32 with beta 0.75 or 0.5, contiguous positions (NCHW) or contiguous
 * channels (NHWC), windows of at most 32 channels, on AVX2/FMA builds. Up to
 * LRN_DIRECT_MAX_SIZE channels, "direct rows": each window sum is read straight from the rows
 * of x (n fused multiply-adds), with no scratch in the forward and two rings of n rows in the
 * backward. Wider windows, "streamed rows": van Herk sums taken as the rows stream past, with
 * rings of n rows, so their cost does not grow with n. The rows of x and dy (and, streamed, of
 * the output) are prefetched a couple of channels ahead. Every kernel is written once for both
 * passes: dy == NULL means forward.
 *
 * This file is compiled twice (baseline flags, and -mavx2 -mfma); without AVX2/FMA only the
 * portable helpers exist and the fast-path entry points return -1.
 */
#include "lrn_kernels.h"

#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define LRN_HAVE_PTHREAD_ATFORK 1
#endif
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

/* Fork safety. GNU OpenMP keeps its worker threads in a pool that a forked child inherits as
   bookkeeping only: the threads themselves are gone, so a child entering a parallel region
   waits for them forever. As data.table and PyTorch do, a child handler registered with
   pthread_atfork drops the library to one thread in every forked child (a region of one thread
   never touches the pool). lrn_team_started remembers whether this process, or an ancestor
   before its fork, ran a team of several threads: only then is the pool a child inherits known
   to be dead, and only without it may a child take its threads back (lrn_release_fork_cap). */
static volatile int lrn_team_started = 0;
static volatile int lrn_fork_cap = 0;

#if defined(_OPENMP) && defined(LRN_HAVE_PTHREAD_ATFORK)
static void lrn_atfork_child(void) { lrn_fork_cap = 1; }
#endif

int lrn_install_fork_guard(void) {
#if defined(_OPENMP) && defined(LRN_HAVE_PTHREAD_ATFORK)
    static int installed = 0;
    if (installed) return 0;
    installed = 1;
    return pthread_atfork(NULL, NULL, lrn_atfork_child);
#else
    return 0;
#endif
}

int lrn_fork_capped(void) { return lrn_fork_cap; }

int lrn_release_fork_cap(void) {
    if (lrn_fork_cap && lrn_team_started) return -1;
    lrn_fork_cap = 0;
    return 0;
}

void lrn_team_starting(int threads) {
    if (threads > 1) lrn_team_started = 1;
}

int lrn_max_threads(void) {
#ifdef _OPENMP
    return lrn_fork_cap ? 1 : omp_get_max_threads();
#else
    return 1;
#endif
}

/* Arguments a build without the fast path does not read. */
static inline void lrn_unused(int z, ...) { (void)z; }

/* Prefetch the cache lines of n bytes from p: for reading, or for writing (a row the caller
   writes a little later: its lines are fetched ahead of the stores, which otherwise wait). */
static inline void prefetch_r(const void* p, ptrdiff_t n) {
#if defined(__GNUC__)
    for (ptrdiff_t j = 0; j < n; j += 64) __builtin_prefetch((const char*)p + j, 0, 3);
#else
    lrn_unused(0, p, n);
#endif
}
static inline void prefetch_w(void* p, ptrdiff_t n) {
#if defined(__GNUC__)
    for (ptrdiff_t j = 0; j < n; j += 64) __builtin_prefetch((char*)p + j, 1, 3);
#else
    lrn_unused(0, p, n);
#endif
}
void lrn_prefetch(const void* p, ptrdiff_t n) { prefetch_r(p, n); }

/* s ** -0.75 and s ** -0.5 for float rows whose values are all normal and positive (the
   float fast path checks that first). With AVX2/FMA: the hardware reciprocal square root
   estimate refined by two Newton steps (about 1 ulp), times its correctly rounded square
   root for -0.75; about 2.5x the throughput of sqrt + sqrt + divide. Elsewhere: plain C. */
#if defined(__AVX2__) && defined(__FMA__)
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
static inline int lrn_lanes_bad8(__m256 v, __m256 lo, __m256 hi, ptrdiff_t rem) {
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
void lrn_pow075_f32(float* s, ptrdiff_t n) {
    ptrdiff_t j = 0;
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
void lrn_pow05_f32(float* s, ptrdiff_t n) {
    ptrdiff_t j = 0;
#if defined(__AVX2__) && defined(__FMA__)
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(s + j, lrn_rsqrt8(_mm256_loadu_ps(s + j)));
#endif
    for (; j < n; j++)
        s[j] = (float)(1.0 / sqrt((double)s[j]));
}
/* The backward pass wants t = s^-beta and v = t / s together: from a = s^-1/2, v = t a a. */
void lrn_pow075_pair_f32(float* s, float* v, ptrdiff_t n) {
    ptrdiff_t j = 0;
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
void lrn_pow05_pair_f32(float* s, float* v, ptrdiff_t n) {
    ptrdiff_t j = 0;
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
#if LRN_DIRECT
/* One row of a van Herk tile, fused (see lrn_kernels.h). */
static inline __attribute__((always_inline)) ptrdiff_t lrn_fused_row(
        const float* S, const float* P, int addp, float k, float an, const float* x,
        const float* dy, float* out, float* R, ptrdiff_t n, int beta_075) {
    ptrdiff_t j = 0, bad = 0;
    const __m256 vk = _mm256_set1_ps(k), van = _mm256_set1_ps(an);
    for (; j + 8 <= n; j += 8) {
        __m256 w = _mm256_loadu_ps(S + j);
        if (addp) w = _mm256_add_ps(w, _mm256_loadu_ps(P + j));
        if (dy == NULL) {
            __m256 a, t = lrn_t8(w, van, vk, beta_075, &a);
            _mm256_storeu_ps(out + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), t));
        } else {
            bad += lrn_backward8(w, x + j, dy + j, out + j, R + j, vk, van, beta_075);
        }
    }
    for (; j < n; j++) {
        double s = (double)(k + an * (addp ? S[j] + P[j] : S[j]));
        if (dy == NULL)
            out[j] = (float)((double)x[j] * lrn_negpow1(s, beta_075));
        else
            bad += lrn_backward1(s, x[j], dy[j], out + j, R + j, beta_075);
    }
    return bad;
}
#endif
ptrdiff_t lrn_fused_row_f32(const float* S, const float* P, int addp, float k, float an,
                            const float* x, const float* dy, float* out, float* R, ptrdiff_t n,
                            int beta_075) {
#if LRN_DIRECT
    if (dy == NULL) /* two inlined copies: each pass gets its own loops */
        return lrn_fused_row(S, P, addp, k, an, x, NULL, out, NULL, n, beta_075);
    return lrn_fused_row(S, P, addp, k, an, x, dy, out, R, n, beta_075);
#else
    lrn_unused(0, S, P, addp, k, an, x, dy, out, R, n, beta_075);
    return -1;
#endif
}
/* Direct rows (the float fast path for windows of at most LRN_DIRECT_MAX_SIZE channels with
   contiguous positions): the window sum of squares is taken straight from the m rows of x
   in the window (pointers in ``rows``), accumulated with FMAs in channel order: no scratch
   and no subtraction. They count the values that failed the range checks (window sum above
   ``lim`` or not a number; for the backward also r outside [-1e30, 1e30]), so the caller
   can redo the tile in double. Without AVX2/FMA (LRN_DIRECT 0) the Cython tiles are used. */
#if LRN_DIRECT
static inline __m256 lrn_window8(const float* const* rows, int m, ptrdiff_t j) {
    __m256 w = _mm256_setzero_ps();
    for (int i = 0; i < m; i++) {
        __m256 v = _mm256_loadu_ps(rows[i] + j);
        w = _mm256_fmadd_ps(v, v, w);
    }
    return w;
}
static inline void lrn_window32(const float* const* rows, int m, ptrdiff_t j, __m256* w) {
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
static inline double lrn_window1(const float* const* rows, int m, ptrdiff_t j) {
    float w = 0.0f;
    for (int i = 0; i < m; i++) w = fmaf(rows[i][j], rows[i][j], w);
    return (double)w;
}
/* y = x * s ** -beta, s = k + an * W (beta 0.75 or 0.5) */
/* Vectors of up to 8 floats: full loads/stores, or masked ones for the last rem < 8. */
static inline __m256 lrn_load8(const float* p, ptrdiff_t rem) {
    if (rem >= 8) return _mm256_loadu_ps(p);
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rem), idx));
}
static inline void lrn_store8(float* p, __m256 v, ptrdiff_t rem) {
    if (rem >= 8) { _mm256_storeu_ps(p, v); return; }
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_maskstore_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rem), idx), v);
}
/* Positions with contiguous channels (NHWC), windows up to PIXEL_DIRECT_MAX_SIZE: per
   position, the squares go to a zero-padded row Q (``before`` zeros first); window c is the
   sum of the n shifted loads Q[c ... c + n - 1]; everything stays in L1, and the positions
   are read and written in memory order. Lanes past C load as zero and are not stored. */
static inline void lrn_pixel_squares(const float* x, float* Q, ptrdiff_t C) {
    for (ptrdiff_t c = 0; c < C; c += 8) {
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
static inline ptrdiff_t lrn_group_width(ptrdiff_t n) {
    ptrdiff_t m = 1;
    while (4 * m * m <= n) m *= 2;
    return m;
}
/* G[c] = Q[c] + ... + Q[c + m - 1] for c < C + n - m (Q and A hold C + n + 8 floats);
   returns G: A, or Q itself for m = 1. */
static const float* lrn_group_sums(const float* Q, float* A, ptrdiff_t C, ptrdiff_t n,
                                   ptrdiff_t m) {
    const float* src = Q;
    for (ptrdiff_t h = 1; h < m; h *= 2) {
        for (ptrdiff_t c = 0; c < C + n - 2 * h; c += 8)
            _mm256_storeu_ps(A + c, _mm256_add_ps(_mm256_loadu_ps(src + c),
                                                  _mm256_loadu_ps(src + c + h)));
        src = A;
    }
    return src;
}
static inline __m256 lrn_window_sum8(const float* G, const float* Q, ptrdiff_t m,
                                     ptrdiff_t q, ptrdiff_t r) {
    __m256 w = _mm256_loadu_ps(G);
    for (ptrdiff_t i = 1; i < q; i++) w = _mm256_add_ps(w, _mm256_loadu_ps(G + i * m));
    for (ptrdiff_t i = 0; i < r; i++) w = _mm256_add_ps(w, _mm256_loadu_ps(Q + q * m + i));
    return w;
}
/* One function for both directions. Forward (dy NULL): out = x * t. Backward: T = t,
   R = r = dy * x * t / s (``after`` zeros first), then out = dy * t - coef * x * (window
   of r, transposed). Scratch: Q, R and A hold C + n + 8 floats (padding set here), T
   C + 8. */
static inline __attribute__((always_inline)) ptrdiff_t lrn_pixels(
        const float* x, const float* dy, ptrdiff_t xs, float* out, ptrdiff_t ys, ptrdiff_t npix,
        ptrdiff_t C, ptrdiff_t n, ptrdiff_t before, float k, float an, float coef, float lim,
        int beta_075, int grouped, float* Q, float* T, float* R, float* A) {
    const __m256 vk = _mm256_set1_ps(k), van = _mm256_set1_ps(an), vc = _mm256_set1_ps(coef);
    const __m256 vlim = _mm256_set1_ps(lim), zero = _mm256_setzero_ps();
    const __m256 big = _mm256_set1_ps(1e30f), nbig = _mm256_set1_ps(-1e30f);
    const ptrdiff_t after = n - 1 - before;
    const ptrdiff_t m = grouped ? lrn_group_width(n) : 1, q = n / m, r = n % m;
    ptrdiff_t bad = 0;
    for (ptrdiff_t c = 0; c < C + n + 8; c++) Q[c] = R[c] = A[c] = 0.0f;
    for (ptrdiff_t p = 0; p < npix; p++) {
        const float* px = x + p * xs;
        const float* pd = dy ? dy + p * xs : NULL;
        float* po = out + p * ys;
        lrn_pixel_squares(px, Q + before, C);
        const float* G = lrn_group_sums(Q, A, C, n, m);
        for (ptrdiff_t c = 0; c < C; c += 8) {
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
        for (ptrdiff_t c = 0; c < C; c += 8) {
            __m256 w = lrn_window_sum8(G + c, R + c, m, q, r);
            __m256 u = _mm256_mul_ps(vc, lrn_load8(px + c, C - c));
            __m256 g = _mm256_mul_ps(lrn_load8(pd + c, C - c), _mm256_loadu_ps(T + c));
            lrn_store8(po + c, _mm256_fnmadd_ps(u, w, g), C - c);
        }
    }
    return bad;
}
/* The second half: dx = dy * t - coef * x * (sum of the m rows of r in the window). */
static void lrn_direct_out(const float* const* rrows, int m, const float* x,
                                        const float* dy, const float* T, float* dx,
                                        ptrdiff_t n, float coef) {
    ptrdiff_t j = 0;
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
/* 8 window sums w of direct row j: forward (dy NULL) out = x * t; backward out = t and R = r
   (lrn_backward8). Returns how many w are above lim or nan (and, backward, r out of range). */
static inline __attribute__((always_inline)) int lrn_direct8(
        __m256 w, const float* x, const float* dy, float* out, float* R, ptrdiff_t j, __m256 vk,
        __m256 van, __m256 vlim, int beta_075) {
    int bad = lrn_lanes_bad8(w, _mm256_setzero_ps(), vlim, 8);
    if (dy == NULL) {
        __m256 a, t = lrn_t8(w, van, vk, beta_075, &a);
        _mm256_storeu_ps(out + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), t));
        return bad;
    }
    return bad + lrn_backward8(w, x + j, dy + j, out + j, R + j, vk, van, beta_075);
}
/* One direct row of n positions, s = k + an * W (beta 0.75 or 0.5); see lrn_direct8. Inlined
   into lrn_direct_f32 twice, so each pass gets its own loops. */
static inline __attribute__((always_inline)) ptrdiff_t lrn_direct_row(
        const float* const* rows, int m, const float* x, const float* dy, float* out, float* R,
        ptrdiff_t n, float k, float an, float lim, int beta_075) {
    ptrdiff_t j = 0, bad = 0;
    const __m256 vk = _mm256_set1_ps(k), van = _mm256_set1_ps(an), vlim = _mm256_set1_ps(lim);
    for (; j + 32 <= n; j += 32) { /* four independent vectors: latency hidden */
        __m256 w[4];
        lrn_window32(rows, m, j, w);
        for (int u = 0; u < 4; u++)
            bad += lrn_direct8(w[u], x, dy, out, R, j + 8 * u, vk, van, vlim, beta_075);
    }
    for (; j + 8 <= n; j += 8)
        bad += lrn_direct8(lrn_window8(rows, m, j), x, dy, out, R, j, vk, van, vlim, beta_075);
    for (; j < n; j++) {
        double w = lrn_window1(rows, m, j), s = (double)k + (double)an * w;
        bad += !(w <= (double)lim);
        if (dy == NULL)
            out[j] = (float)((double)x[j] * lrn_negpow1(s, beta_075));
        else
            bad += lrn_backward1(s, x[j], dy[j], out + j, R + j, beta_075);
    }
    return bad;
}
/* A tile by direct rows, one pass. Forward: row a of y from the rows of x in its window.
   Backward: row a's t and r (rings T and R of n rows B apart) as soon as x reaches channel
   a + after, and dx of channel a - before, whose transposed window ends at a. */
static ptrdiff_t lrn_direct_f32(const float* X, const float* DY, ptrdiff_t xs, float* Y,
                                ptrdiff_t ys, ptrdiff_t C, ptrdiff_t n, ptrdiff_t before,
                                ptrdiff_t L, ptrdiff_t B, float k, float an, float coef,
                                float lim, int beta_075, float* buf) {
    const float* rows[LRN_DIRECT_MAX_SIZE];
    const ptrdiff_t after = n - 1 - before;
    float* T = buf;
    float* R = buf + n * B;
    ptrdiff_t bad = 0;
    for (ptrdiff_t a = 0; a < C + (DY ? before : 0); a++) {
        if (a + after + LRN_PREFETCH_ROWS < C) {
            prefetch_r(X + (a + after + LRN_PREFETCH_ROWS) * xs, L * 4);
            if (DY) prefetch_r(DY + (a + LRN_PREFETCH_ROWS) * xs, L * 4);
        }
        if (a < C) {
            int m = 0;
            for (ptrdiff_t ch = a > before ? a - before : 0; ch <= a + after && ch < C; ch++)
                rows[m++] = X + ch * xs;
            if (DY == NULL)
                bad += lrn_direct_row(rows, m, X + a * xs, NULL, Y + a * ys, NULL, L, k, an, lim,
                                      beta_075);
            else
                bad += lrn_direct_row(rows, m, X + a * xs, DY + a * xs, T + (a % n) * B,
                                      R + (a % n) * B, L, k, an, lim, beta_075);
        }
        ptrdiff_t b = a - before;
        if (DY != NULL && b >= 0) {
            int m = 0;
            for (ptrdiff_t ch = b > after ? b - after : 0; ch <= b + before && ch < C; ch++)
                rows[m++] = R + (ch % n) * B;
            lrn_direct_out(rows, m, X + b * xs, DY + b * xs, T + (b % n) * B, Y + b * ys, L,
                           coef);
        }
    }
    return bad;
}
/* Streamed van Herk rows (the float fast path for wider windows, LRN_DIRECT_MAX_SIZE < n <=
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
static inline ptrdiff_t lrn_round8(ptrdiff_t L) { return (L + 7) & ~(ptrdiff_t)7; }
/* Suffix sums of the m rows src[0..m) (squared with sq) into dst, last row first, 32
   columns at a time in registers. */
static void lrn_suffix_rows(const float* const* src, float* const* dst, int m, int sq,
                            ptrdiff_t L) {
    ptrdiff_t j = 0;
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
static void lrn_prefix_sq(const float* x, float* P, int reset, ptrdiff_t L) {
    ptrdiff_t j = 0;
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
static int lrn_block_rows(ptrdiff_t b, ptrdiff_t end, ptrdiff_t shift, ptrdiff_t C,
                          const float* base, ptrdiff_t bs, ptrdiff_t ring, float* S,
                          ptrdiff_t W, const float* Z, const float** slot,
                          const float** src, float** dst) {
    ptrdiff_t lo = b - shift > 0 ? b - shift : 0, hi = end - shift < C ? end - shift : C;
    int m = 0;
    for (ptrdiff_t p = b; p < end; p++) {
        ptrdiff_t ch = p - shift;
        slot[p - b] = ch >= hi ? Z : S + ((ch < lo ? lo + shift : p) - b) * W;
    }
    for (ptrdiff_t ch = lo; ch < hi; ch++, m++) {
        src[m] = base + (ring ? ch % ring : ch) * bs;
        dst[m] = S + (ch + shift - b) * W;
    }
    return m;
}
/* The window sum of output row a (columns j .. j + 8, rem live): w = S (+ P), P first
   updated from the new row xn when pmode is 1 (reset) or 2 (add). */
static inline __attribute__((always_inline)) __m256 lrn_stream_window8(
        const float* xn, float* P, int pmode, int usep, const float* S, ptrdiff_t j,
        ptrdiff_t rem) {
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
/* One 8-wide step of streamed output row a: the window sum w (lrn_stream_window8), t = s **
   -beta. Forward (dya NULL): Ta receives y = x t. Backward: Ta receives t and Ra r, then the
   second scheme's prefix P2 (reset or + r) and, with S2, the dx row c whose transposed window
   ends at row a: dx = dy t - coef x (S2 + P2). */
static inline __attribute__((always_inline)) void lrn_stream8(
        const float* xn, float* P, int pmode, int usep, const float* S, const float* xa,
        const float* dya, float* Ta, float* Ra, float* P2, int p2reset, const float* S2,
        const float* xc, const float* dyc, const float* Tc, float* dxc, ptrdiff_t j,
        ptrdiff_t rem, __m256 vk, __m256 van, __m256 vlim, __m256 vc, int beta_075,
        __m256* vbad) {
    __m256 w = lrn_stream_window8(xn, P, pmode, usep, S, j, rem);
    __m256 a, t = lrn_t8(w, van, vk, beta_075, &a);
    __m256 wbad = _mm256_cmp_ps(w, vlim, _CMP_NLE_UQ);
    if (dya == NULL) {
        lrn_store8(Ta + j, _mm256_mul_ps(lrn_load8(xa + j, rem), t), rem);
        *vbad = _mm256_or_ps(*vbad, wbad);
        return;
    }
    __m256 r = _mm256_mul_ps(_mm256_mul_ps(lrn_load8(dya + j, rem), lrn_load8(xa + j, rem)),
                             _mm256_mul_ps(t, _mm256_mul_ps(a, a)));
    __m256 ra = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), r); /* |r| */
    *vbad = _mm256_or_ps(*vbad, _mm256_or_ps(wbad, _mm256_cmp_ps(ra, _mm256_set1_ps(1e30f),
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
/* A whole row of lrn_stream8; returns whether any lane was flagged (w above lim, |r| above
   1e30, or nan; the dead lanes of the last vector are zeros, never flagged). */
static inline __attribute__((always_inline)) ptrdiff_t lrn_stream_row_(
        const float* xn, float* P, int pmode, int usep, const float* S, const float* xa,
        const float* dya, float* Ta, float* Ra, float* P2, int p2reset, const float* S2,
        const float* xc, const float* dyc, const float* Tc, float* dxc, ptrdiff_t L,
        __m256 vk, __m256 van, __m256 vlim, __m256 vc, int beta_075) {
    ptrdiff_t j = 0;
    __m256 vbad = _mm256_setzero_ps();
    if (pmode == 2 && beta_075 && (dya == NULL || (!p2reset && S2))) { /* the common row */
        for (; j + 8 <= L; j += 8)
            lrn_stream8(xn, P, 2, 0, S, xa, dya, Ta, Ra, P2, 0, S2, xc, dyc, Tc, dxc, j, 8, vk,
                        van, vlim, vc, 1, &vbad);
    }
    for (; j + 8 <= L; j += 8)
        lrn_stream8(xn, P, pmode, usep, S, xa, dya, Ta, Ra, P2, p2reset, S2, xc, dyc, Tc, dxc,
                    j, 8, vk, van, vlim, vc, beta_075, &vbad);
    if (j < L)
        lrn_stream8(xn, P, pmode, usep, S, xa, dya, Ta, Ra, P2, p2reset, S2, xc, dyc, Tc, dxc,
                    j, L - j, vk, van, vlim, vc, beta_075, &vbad);
    return _mm256_movemask_ps(vbad) != 0;
}
/* A streamed tile: its rows, scratch rings and constants. */
typedef struct {
    const float* X;
    const float* DY;
    float* Y;
    ptrdiff_t xs, ys, n, L, W;
    float *S, *P, *S2, *T, *R, *P2;
    __m256 vk, van, vlim, vc;
    int beta_075;
} lrn_stream;
/* Output row a of the first scheme (xn, pmode, usep, S: lrn_stream_window8); in the backward
   also the second scheme's row (p2reset, S2 and dx row c, as in lrn_stream8). The forward and
   backward rows are two inlined copies of lrn_stream_row_, each with its constant pointers. */
static ptrdiff_t lrn_stream_row(const lrn_stream* z, const float* xn, int pmode, int usep,
                                const float* S, ptrdiff_t a, int p2reset, const float* S2,
                                ptrdiff_t c) {
    const float* xa = z->X + a * z->xs;
    if (z->DY == NULL)
        return lrn_stream_row_(xn, z->P, pmode, usep, S, xa, NULL, z->Y + a * z->ys, NULL, NULL,
                               0, NULL, NULL, NULL, NULL, NULL, z->L, z->vk, z->van, z->vlim,
                               z->vc, z->beta_075);
    const ptrdiff_t W = z->W, n = z->n;
    return lrn_stream_row_(xn, z->P, pmode, usep, S, xa, z->DY + a * z->xs, z->T + (a % n) * W,
                           z->R + (a % n) * W, z->P2, p2reset, S2, z->X + c * z->xs,
                           z->DY + c * z->xs, z->T + (c % n) * W, z->Y + c * z->ys, z->L,
                           z->vk, z->van, z->vlim, z->vc, z->beta_075);
}
/* A dx row of the second scheme alone: w2 = S2 (+ P2), P2 first updated from a row of r
   when p2mode is 1 (reset) or 2 (add). */
static inline __attribute__((always_inline)) void lrn_stream_dx8(
        const float* rn, float* P2, int p2mode, int usep, const float* S2, const float* xc,
        const float* dyc, const float* Tc, float* dxc, ptrdiff_t j, ptrdiff_t rem,
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
                              const float* Tc, float* dxc, ptrdiff_t L, __m256 vc) {
    ptrdiff_t j = 0;
    for (; j + 8 <= L; j += 8)
        lrn_stream_dx8(rn, P2, p2mode, usep, S2, xc, dyc, Tc, dxc, j, 8, vc);
    if (j < L) lrn_stream_dx8(rn, P2, p2mode, usep, S2, xc, dyc, Tc, dxc, j, L - j, vc);
}
/* A tile of L contiguous positions by streamed rows (see above); buf holds n + 2 rows of
   lrn_round8(L) floats for the forward, 4n + 3 for the backward. Returns how many rows had
   values out of range. Step p: row p of the squares arrives and window a = p - n + 1
   completes (y, or t and r, of channel a); in the backward row q = p - before of the second
   scheme (r of channel a) then arrives and its window c = q - n + 1 completes (dx of channel
   c = a - before). */
static ptrdiff_t lrn_stream_f32(const float* X, const float* DY, ptrdiff_t xs, float* Y,
                                ptrdiff_t ys, ptrdiff_t C, ptrdiff_t n, ptrdiff_t before,
                                ptrdiff_t L, float k, float an, float coef, float lim,
                                int beta_075, float* buf) {
    const ptrdiff_t W = lrn_round8(L), Lp = C + n - 1, after = n - 1 - before;
    lrn_stream z;
    z.X = X, z.DY = DY, z.Y = Y, z.xs = xs, z.ys = ys, z.n = n, z.L = L, z.W = W;
    z.S = buf;             /* suffix sums of squares, n rows */
    z.P = z.S + n * W;     /* prefix sum of squares */
    float* Z = z.P + W;    /* zeros */
    z.S2 = Z + W;          /* backward: suffix sums of r, n rows */
    z.T = z.S2 + n * W;    /* t of channel a in row a % n */
    z.R = z.T + n * W;     /* r of channel a in row a % n */
    z.P2 = z.R + n * W;    /* prefix sum of r */
    z.vk = _mm256_set1_ps(k), z.van = _mm256_set1_ps(an);
    z.vlim = _mm256_set1_ps(lim), z.vc = _mm256_set1_ps(coef);
    z.beta_075 = beta_075;
    const float* slot[LRN_STREAM_MAX];
    const float* slot2[LRN_STREAM_MAX];
    const float* src[LRN_STREAM_MAX];
    float* dst[LRN_STREAM_MAX];
    ptrdiff_t bad = 0;
    int pzero = 1, p2zero = 1;
    for (ptrdiff_t j = 0; j < W; j++) Z[j] = 0.0f;
    for (ptrdiff_t p = 0; p < Lp + (DY ? before : 0); p++) {
        ptrdiff_t a = p - n + 1, q = p - before, c = q - n + 1;
        ptrdiff_t qb = q >= 0 ? q - q % n : 0;
        int dxout = DY && q >= 0 && c >= 0 && c < qb; /* window c ends at q, not a block start */
        if (q >= 0 && q == qb) p2zero = 1;
        const ptrdiff_t cc = c >= 0 ? c : 0; /* the dx row, used for c >= 0 */
        const float* s2 = dxout ? slot2[c - qb + n] : NULL;
        if (p < Lp) {
            ptrdiff_t b = p - p % n, end = b + n < Lp ? b + n : Lp, ch = p - before;
            int out = a >= 0 && a < b, real = ch >= 0 && ch < C;
            if (p == b) pzero = 1;
            if (ch + 2 < C) prefetch_r(X + (ch + 2) * xs, L * 4);
            if (a + 2 >= 0 && a + 2 < C) {
                if (DY) prefetch_r(DY + (a + 2) * xs, L * 4);
                else prefetch_w(Y + (a + 2) * ys, L * 4);
            }
            if (DY && c + 2 >= 0 && c + 2 < C) prefetch_w(Y + (c + 2) * ys, L * 4);
            if (out) {
                bad += lrn_stream_row(&z, real ? X + ch * xs : NULL, real ? (pzero ? 1 : 2) : 0,
                                      !pzero, slot[a - b + n], a, p2zero, s2, cc);
                p2zero = 0;
                dxout = 0;
                if (real) pzero = 0;
            } else if (real) {
                lrn_prefix_sq(X + ch * xs, z.P, pzero, L);
                pzero = 0;
            }
            if (p == end - 1) { /* the block is complete: its suffix sums, its first window */
                int m = lrn_block_rows(b, end, before, C, X, xs, 0, z.S, W, Z, slot, src, dst);
                if (m) lrn_suffix_rows(src, dst, m, 1, L);
                if (b < C) {
                    bad += lrn_stream_row(&z, NULL, 0, 0, slot[0], b, p2zero, s2, cc);
                    p2zero = 0;
                    dxout = 0;
                }
            }
        }
        if (DY == NULL || q < 0) continue;
        ptrdiff_t endq = qb + n < Lp ? qb + n : Lp;
        if (dxout) /* row q is padding (a outside the channels) */
            lrn_stream_dx_row(NULL, z.P2, 0, !p2zero, s2, X + cc * xs, DY + cc * xs,
                              z.T + (cc % n) * W, Y + cc * ys, L, z.vc);
        if (q == endq - 1) {
            int m = lrn_block_rows(qb, endq, after, C, z.R, W, n, z.S2, W, Z, slot2, src, dst);
            if (m) lrn_suffix_rows(src, dst, m, 0, L);
            if (qb < C)
                lrn_stream_dx_row(NULL, z.P2, 0, 0, slot2[0], X + qb * xs, DY + qb * xs,
                                  z.T + (qb % n) * W, Y + qb * ys, L, z.vc);
        }
    }
    return bad;
}
#endif /* LRN_DIRECT */

/* The fast-path entry points (see lrn_kernels.h). */
ptrdiff_t lrn_rows_f32(const float* X, const float* DY, ptrdiff_t xs, float* Y, ptrdiff_t ys,
                       ptrdiff_t C, ptrdiff_t n, ptrdiff_t before, ptrdiff_t L, ptrdiff_t B,
                       float k, float an, float coef, float lim, int beta_075, float* buf) {
#if LRN_DIRECT
    if (n <= LRN_DIRECT_MAX_SIZE)
        return lrn_direct_f32(X, DY, xs, Y, ys, C, n, before, L, B, k, an, coef, lim, beta_075,
                              buf);
    return lrn_stream_f32(X, DY, xs, Y, ys, C, n, before, L, k, an, coef, lim, beta_075, buf);
#else
    lrn_unused(0, X, DY, xs, Y, ys, C, n, before, L, B, k, an, coef, lim, beta_075, buf);
    return -1;
#endif
}
ptrdiff_t lrn_pixels_f32(const float* x, const float* dy, ptrdiff_t xs, float* out,
                         ptrdiff_t ys, ptrdiff_t npix, ptrdiff_t C, ptrdiff_t n,
                         ptrdiff_t before, float k, float an, float coef, float lim,
                         int beta_075, int grouped, float* Q, float* T, float* R, float* A) {
#if LRN_DIRECT
    if (dy == NULL) /* two inlined copies: each pass gets its own loops */
        return lrn_pixels(x, NULL, xs, out, ys, npix, C, n, before, k, an, coef, lim, beta_075,
                          grouped, Q, T, R, A);
    return lrn_pixels(x, dy, xs, out, ys, npix, C, n, before, k, an, coef, lim, beta_075,
                      grouped, Q, T, R, A);
#else
    lrn_unused(0, x, dy, xs, out, ys, npix, C, n, before, k, an, coef, lim, beta_075, grouped,
               Q, T, R, A);
    return -1;
#endif
}

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
void lrn_pow_f32(float* s, ptrdiff_t n, double beta) {
    ptrdiff_t j = 0;
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
void lrn_pow_f64(double* s, ptrdiff_t n, double beta) {
    ptrdiff_t j = 0;
#if defined(LRN_HAVE_LIBMVEC) && defined(__AVX2__)
    const __m256d nb = _mm256_set1_pd(-beta);
    for (; j + 4 <= n; j += 4)
        _mm256_storeu_pd(s + j, _ZGVdN4vv_pow(_mm256_loadu_pd(s + j), nb));
#endif
    for (; j < n; j++)
        s[j] = pow(s[j], -beta);
}
