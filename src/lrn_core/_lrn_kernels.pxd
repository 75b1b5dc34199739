# The C kernels, declared once (src/lrn_core/_simd/lrn_kernels.h; bodies in lrn_kernels.c,
# compiled into each kernel extension). ``dy`` NULL means the forward pass.

cdef extern from "_simd/lrn_kernels.h" nogil:
    const int LRN_OPENMP
    const int LRN_OPENMP_VERSION
    const int LRN_DIRECT
    const int LRN_VECTOR_POW
    const char* LRN_SIMD
    const char* LRN_BUILD_CFLAGS
    enum:
        LRN_DIRECT_MAX_SIZE
        LRN_PREFETCH_ROWS

    int lrn_max_threads()
    int lrn_install_fork_guard()
    int lrn_fork_capped()
    int lrn_release_fork_cap()
    void lrn_team_starting(int threads)
    void lrn_prefetch(const void* p, Py_ssize_t n)
    void lrn_pow075_f32(float* s, Py_ssize_t n)
    void lrn_pow05_f32(float* s, Py_ssize_t n)
    void lrn_pow075_pair_f32(float* s, float* v, Py_ssize_t n)
    void lrn_pow05_pair_f32(float* s, float* v, Py_ssize_t n)
    void lrn_pow_f32(float* s, Py_ssize_t n, double beta)
    void lrn_pow_f64(double* s, Py_ssize_t n, double beta)
    Py_ssize_t lrn_fused_row_f32(const float* S, const float* P, int addp, float k, float an,
                                 const float* x, const float* dy, float* out, float* R,
                                 Py_ssize_t n, int beta_075)
    Py_ssize_t lrn_rows_f32(const float* X, const float* DY, Py_ssize_t xs, float* Y,
                            Py_ssize_t ys, Py_ssize_t C, Py_ssize_t n, Py_ssize_t before,
                            Py_ssize_t L, Py_ssize_t B, float k, float an, float coef, float lim,
                            int beta_075, float* buf)
    Py_ssize_t lrn_pixels_f32(const float* x, const float* dy, Py_ssize_t xs, float* out,
                              Py_ssize_t ys, Py_ssize_t npix, Py_ssize_t C, Py_ssize_t n,
                              Py_ssize_t before, float k, float an, float coef, float lim,
                              int beta_075, int grouped, float* Q, float* T, float* R, float* A)
