# Declarations of the hand-written GEMM in gemm.h, cimported by im2col.pyx and pointwise.pyx, and the
# float/double dispatch of its entry points for Cython's fused `real` (= cython.floating).
cimport cython

ctypedef cython.floating real
cdef extern from "gemm.h" nogil:
    enum:
        GEMM_MR
        GEMM_NR_S
        GEMM_NR_D

    ctypedef struct gemm_plan:
        Py_ssize_t kc
        Py_ssize_t nkb
        Py_ssize_t nc
        Py_ssize_t njc
        Py_ssize_t mc
        Py_ssize_t nic

    void gemm_make_plan(gemm_plan *pl, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, Py_ssize_t nr,
                        Py_ssize_t elsize, Py_ssize_t outer, int nthreads, int split_rows)

    void gemm_block_s(Py_ssize_t m, Py_ssize_t n, Py_ssize_t kc, const float *a, Py_ssize_t lda,
                      const float *b, Py_ssize_t ldb, Py_ssize_t bpanel, float *c, Py_ssize_t ldc,
                      int first, int last, const float *bias, int act)
    void gemm_block_d(Py_ssize_t m, Py_ssize_t n, Py_ssize_t kc, const double *a, Py_ssize_t lda,
                      const double *b, Py_ssize_t ldb, Py_ssize_t bpanel, double *c, Py_ssize_t ldc,
                      int first, int last, const double *bias, int act)

    void gemm_copy_run_s(float *dst, const float *src, Py_ssize_t n, Py_ssize_t lo, Py_ssize_t hi)
    void gemm_copy_run_d(double *dst, const double *src, Py_ssize_t n, Py_ssize_t lo, Py_ssize_t hi)


cdef inline void gemm_block_r(Py_ssize_t m, Py_ssize_t n, Py_ssize_t kc, const real *a, Py_ssize_t lda,
                              const real *b, Py_ssize_t ldb, Py_ssize_t bpanel, real *c, Py_ssize_t ldc,
                              bint first, bint last, const real *bias, int act) noexcept nogil:
    if real is float:
        gemm_block_s(m, n, kc, a, lda, b, ldb, bpanel, c, ldc, first, last, bias, act)
    else:
        gemm_block_d(m, n, kc, a, lda, b, ldb, bpanel, c, ldc, first, last, bias, act)


cdef inline void gemm_copy_run_r(real *dst, const real *src, Py_ssize_t n, Py_ssize_t lo,
                                 Py_ssize_t hi) noexcept nogil:
    if real is float:
        gemm_copy_run_s(dst, src, n, lo, hi)
    else:
        gemm_copy_run_d(dst, src, n, lo, hi)
