/* lrn-core's C kernels: declarations only (the bodies are in lrn_kernels.c).
 *
 * Rows are float arrays of L contiguous positions; a tile's rows are ``xs`` (x, dy) or ``ys``
 * (output) floats apart. Every function that takes ``dy`` runs the forward pass when dy is
 * NULL (output y = x * s ** -beta) and the backward pass otherwise (output dx). The functions
 * that return a count return how many values left the range where float accumulation is
 * accurate (the caller then redoes the tile in double), or -1 when the build has no such
 * kernel (LRN_DIRECT is 0: no AVX2/FMA), and the caller takes its portable path.
 *
 * lrn_kernels.c is compiled into both extensions, once with the baseline flags and once with
 * -mavx2 -mfma: the macros below describe the build they are compiled in.
 */
#ifndef LRN_KERNELS_H
#define LRN_KERNELS_H

#include <stddef.h>

#ifdef _OPENMP
#define LRN_OPENMP 1
#define LRN_OPENMP_VERSION _OPENMP
#else
#define LRN_OPENMP 0
#define LRN_OPENMP_VERSION 0
#endif

#if defined(__AVX2__) && defined(__FMA__)
#define LRN_DIRECT 1 /* the one-pass float32 kernels (rows, pixels, fused rows) exist */
#else
#define LRN_DIRECT 0
#endif

#if defined(LRN_HAVE_LIBMVEC) && defined(__AVX2__)
#define LRN_VECTOR_POW 1 /* float64 generic betas use glibc's 4-wide pow */
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

/* Direct rows up to this window (wider ones are streamed); channels a tile prefetches ahead. */
#define LRN_DIRECT_MAX_SIZE 8
#define LRN_PREFETCH_ROWS 2

/* Threads an OpenMP region would use now; 1 without OpenMP and in a forked child (below). */
int lrn_max_threads(void);

/* Fork safety (GNU OpenMP's pool does not survive fork). lrn_install_fork_guard registers, once,
   a pthread_atfork child handler that caps every forked child at one thread; it returns
   pthread_atfork's result (0 on success). lrn_fork_capped: 1 while the cap holds.
   lrn_release_fork_cap lifts it unless a team of several threads ran before the fork (then the
   inherited pool is dead and it returns -1). lrn_team_starting(n) is called before every
   parallel region with the team size n. */
int lrn_install_fork_guard(void);
int lrn_fork_capped(void);
int lrn_release_fork_cap(void);
void lrn_team_starting(int threads);

/* Prefetch the cache lines of n bytes from p (a row read a little later). */
void lrn_prefetch(const void* p, ptrdiff_t n);

/* s[j] = s[j] ** -beta in place (float rows: s normal, in [1e-20, 1e30]); the _pair forms also
   write v[j] = s[j] ** -beta / s[j]. */
void lrn_pow075_f32(float* s, ptrdiff_t n);
void lrn_pow05_f32(float* s, ptrdiff_t n);
void lrn_pow075_pair_f32(float* s, float* v, ptrdiff_t n);
void lrn_pow05_pair_f32(float* s, float* v, ptrdiff_t n);
void lrn_pow_f32(float* s, ptrdiff_t n, double beta);
void lrn_pow_f64(double* s, ptrdiff_t n, double beta);

/* One row of a van Herk tile, fused (beta 0.75 or 0.5): s = k + an * (S + P, or S alone
   without addp), t = s ** -beta. Forward: out = x * t. Backward: out = t and R = dy * x * t / s;
   returns how many r are outside [-1e30, 1e30]. */
ptrdiff_t lrn_fused_row_f32(const float* S, const float* P, int addp, float k, float an,
                            const float* x, const float* dy, float* out, float* R, ptrdiff_t n,
                            int beta_075);

/* A tile of L contiguous positions (NCHW) on the float fast path (beta 0.75 or 0.5, window
   n <= 32): direct rows up to LRN_DIRECT_MAX_SIZE, streamed van Herk rows above; one pass.
   buf: (4n + 3) * round8(L) floats, and at least 2n * B for direct rows (B >= L, their ring
   stride). coef = 2 * alpha * beta / n; lim = the largest window sum allowed. */
ptrdiff_t lrn_rows_f32(const float* X, const float* DY, ptrdiff_t xs, float* Y, ptrdiff_t ys,
                       ptrdiff_t C, ptrdiff_t n, ptrdiff_t before, ptrdiff_t L, ptrdiff_t B,
                       float k, float an, float coef, float lim, int beta_075, float* buf);

/* npix positions with contiguous channels (NHWC), xs / ys apart, on the float fast path.
   Scratch: Q, R and A hold C + n + 8 floats, T C + 8; grouped sums windows from groups of
   about sqrt(n) channels. */
ptrdiff_t lrn_pixels_f32(const float* x, const float* dy, ptrdiff_t xs, float* out,
                         ptrdiff_t ys, ptrdiff_t npix, ptrdiff_t C, ptrdiff_t n,
                         ptrdiff_t before, float k, float an, float coef, float lim,
                         int beta_075, int grouped, float* Q, float* T, float* R, float* A);

#endif /* LRN_KERNELS_H */
