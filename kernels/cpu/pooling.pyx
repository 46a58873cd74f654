"""CPU kernels of max / average pooling, global average pooling and local response normalisation.

Each function takes C-contiguous arrays of one dtype (float32 or float64; x may be read-only) with the
output y already allocated and non-empty, releases the GIL and runs `nthreads` OpenMP threads over the
(n, c) planes (static schedule: each plane is computed by one thread in a fixed order, so the result
does not depend on the thread count). The per-plane work is in pooling.h; argument checks live in
kernels/pooling.py and kernels/shapes.py.
"""
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cython.parallel cimport prange, threadid

ctypedef fused real:
    float
    double

cdef extern from "pooling.h" nogil:
    ctypedef Py_ssize_t cf_idx
    cf_idx cf_pool_workspace(cf_idx W, cf_idx P, cf_idx Q, cf_idx kw, cf_idx sh, cf_idx sw, cf_idx pw, cf_idx dw)
    cf_idx cf_avg_count(cf_idx o, cf_idx n, cf_idx f, cf_idx s, cf_idx pad, int include_pad)
    void cf_pool_plane_f32(const float *x, float *y, int is_max, int include_pad, cf_idx H, cf_idx W,
                           cf_idx P, cf_idx Q, cf_idx kh, cf_idx kw, cf_idx sh, cf_idx sw, cf_idx ph,
                           cf_idx pw, cf_idx dh, cf_idx dw, const float *wdiv, float *ws)
    void cf_pool_plane_f64(const double *x, double *y, int is_max, int include_pad, cf_idx H, cf_idx W,
                           cf_idx P, cf_idx Q, cf_idx kh, cf_idx kw, cf_idx sh, cf_idx sw, cf_idx ph,
                           cf_idx pw, cf_idx dh, cf_idx dw, const double *wdiv, double *ws)
    float cf_plane_mean_f32(const float *x, cf_idx n)
    double cf_plane_mean_f64(const double *x, cf_idx n)
    void cf_lrn_plane_f32(const float *xs, float *yc, cf_idx c, cf_idx C, cf_idx HW, cf_idx size,
                          double alpha, double beta, double k, float *ws)
    void cf_lrn_plane_f64(const double *xs, double *yc, cf_idx c, cf_idx C, cf_idx HW, cf_idx size,
                          double alpha, double beta, double k, double *ws)


def _check_window(Py_ssize_t H, Py_ssize_t W, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                  Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw):
    """Canonical windows only (kernels/canonical.py): the workspace and the window loops are sized by
    padding, stride, dilation and kernel size, which must stay of the order of the plane."""
    if H < 1 or W < 1 or min(kh, kw, sh, sw, dh, dw) < 1 or min(ph, pw) < 0:
        raise ValueError(f"pooling needs a non-empty plane, positive kernel, stride and dilation and "
                         f"non-negative padding, got plane {H}x{W}, kernel ({kh}, {kw}), stride ({sh}, {sw}), "
                         f"dilation ({dh}, {dw}), padding ({ph}, {pw})")
    if max(ph, sh, dh) > 2 * H + 8 or max(pw, sw, dw) > 2 * W + 8:
        raise ValueError(f"padding, stride and dilation must be at most 2*H + 8 and 2*W + 8 (plane {H}x{W}): "
                         f"got padding ({ph}, {pw}), stride ({sh}, {sw}), dilation ({dh}, {dw}); "
                         f"kernels.max_pool2d / avg_pool2d rewrite larger ones")
    # the dilated window fits the padded plane (no overflow: the right sides are of the plane's order)
    if kh - 1 > (H + 2 * ph - 1) // dh or kw - 1 > (W + 2 * pw - 1) // dw:
        raise ValueError(f"kernel ({kh}, {kw}) dilated by ({dh}, {dw}) is larger than the padded plane "
                         f"{H + 2 * ph}x{W + 2 * pw}")


def pool2d(const real[:, :, :, ::1] x, real[:, :, :, ::1] y, bint is_max, Py_ssize_t kh, Py_ssize_t kw,
           Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
           bint count_include_pad, int nthreads):
    """y (N, C, P, Q) = max or average pool of x (N, C, H, W) over a kh x kw window (PyTorch's rules;
    the geometry is already checked). A window covering a whole unpadded plane is the plane mean."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t P = y.shape[2], Q = y.shape[3]
    _check_window(H, W, kh, kw, sh, sw, ph, pw, dh, dw)
    if (not is_max and P == 1 and Q == 1 and kh == H and kw == W and ph == 0 and pw == 0):
        global_avg_pool2d(x, y, nthreads)
        return
    cdef Py_ssize_t planes = N * C, i, q, tid
    nthreads = <int>min(nthreads, planes)   # no idle thread (and no idle workspace) past one per plane
    cdef Py_ssize_t wlen = cf_pool_workspace(W, P, Q, kw, sh, sw, pw, dw)
    # one allocation: the column divisors (Q) then one workspace of wlen per thread
    cdef real *mem = <real *>PyMem_Malloc((Q + nthreads * wlen) * sizeof(real))
    if mem == NULL:
        raise MemoryError(f"pooling workspace of {(Q + nthreads * wlen) * sizeof(real)} bytes")
    cdef real *wdiv = mem
    cdef real *ws = mem + Q
    for q in range(Q):
        wdiv[q] = <real>cf_avg_count(q, W, kw, sw, pw, count_include_pad)
    cdef const real *xp = &x[0, 0, 0, 0]
    cdef real *yp = &y[0, 0, 0, 0]
    cdef int mx = is_max, inc = count_include_pad
    try:
        with nogil:
            for i in prange(planes, num_threads=nthreads, schedule="static"):
                tid = threadid()
                if real is float:
                    cf_pool_plane_f32(xp + i * H * W, yp + i * P * Q, mx, inc, H, W, P, Q, kh, kw, sh, sw,
                                      ph, pw, dh, dw, wdiv, ws + tid * wlen)
                else:
                    cf_pool_plane_f64(xp + i * H * W, yp + i * P * Q, mx, inc, H, W, P, Q, kh, kw, sh, sw,
                                      ph, pw, dh, dw, wdiv, ws + tid * wlen)
    finally:
        PyMem_Free(mem)


def global_avg_pool2d(const real[:, :, :, ::1] x, real[:, :, :, ::1] y, int nthreads):
    """y (N, C, 1, 1) = the mean of each (H, W) plane of x, summed in float64."""
    cdef Py_ssize_t planes = x.shape[0] * x.shape[1], HW = x.shape[2] * x.shape[3], i
    cdef const real *xp = &x[0, 0, 0, 0]
    cdef real *yp = &y[0, 0, 0, 0]
    with nogil:
        for i in prange(planes, num_threads=nthreads, schedule="static"):
            if real is float:
                yp[i] = cf_plane_mean_f32(xp + i * HW, HW)
            else:
                yp[i] = cf_plane_mean_f64(xp + i * HW, HW)


def local_response_norm(const real[:, :, :, ::1] x, real[:, :, :, ::1] y, Py_ssize_t size, double alpha,
                        double beta, double k, int nthreads):
    """y = x / (k + alpha / size * sum of x^2 over the channel window) ** beta (PyTorch's LRN)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], HW = x.shape[2] * x.shape[3], i, n, c, tid
    nthreads = <int>min(nthreads, N * C)
    cdef real *ws = <real *>PyMem_Malloc(nthreads * HW * sizeof(real))   # one plane per thread
    if ws == NULL:
        raise MemoryError(f"LRN workspace of {nthreads * HW * sizeof(real)} bytes")
    cdef const real *xp = &x[0, 0, 0, 0]
    cdef real *yp = &y[0, 0, 0, 0]
    try:
        with nogil:
            for i in prange(N * C, num_threads=nthreads, schedule="static"):
                tid = threadid()
                n = i // C
                c = i - n * C
                if real is float:
                    cf_lrn_plane_f32(xp + n * C * HW, yp + i * HW, c, C, HW, size, alpha, beta, k, ws + tid * HW)
                else:
                    cf_lrn_plane_f64(xp + n * C * HW, yp + i * HW, c, C, HW, size, alpha, beta, k, ws + tid * HW)
    finally:
        PyMem_Free(ws)
