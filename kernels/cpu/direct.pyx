"""Direct convolution on the CPU: no im2col workspace, register-tiled and vectorised (direct.h).

conv2d(x, w, bias, y, sh, sw, pad_top, pad_left, dh, dw, groups, act, nthreads) follows the
contract in kernels/_conv.py. The call plans the work (direct_make_plan), repacks the weights once
into the blocked layout of the chosen path (in parallel, one block per prange iteration), then runs
the plan's independent work items over an OpenMP prange. Every output element belongs to one item
and is reduced in a fixed order, so the result is bit-identical for any thread count.

conv2d_simple has the same signature and always runs the simple path: the obviously-correct
version that the fast paths are tested against (and the kernel of the AVX2 and generic builds).
"""
from cython.parallel cimport prange, threadid
from libc.stdlib cimport free

from kernels.cpu.amem cimport amalloc

cdef extern from "direct.h" nogil:
    ctypedef struct direct_plan:
        Py_ssize_t N, C, H, W, K, R, S, P, Q
        Py_ssize_t sh, sw, pt, pl, dh, dw, G, Cg, Kg
        int act
        int path
        int flat
        Py_ssize_t items, npack, packed, scratch
    void direct_make_plan(direct_plan *p, Py_ssize_t itemsize, int simple)
    void direct_pack_f32(const direct_plan *p, const float *w, float *wp, Py_ssize_t blk)
    void direct_pack_f64(const direct_plan *p, const double *w, double *wp, Py_ssize_t blk)
    void direct_item_f32(const direct_plan *p, const float *x, const float *w, const float *wp,
                         const float *bias, float *y, Py_ssize_t item, float *scratch)
    void direct_item_f64(const direct_plan *p, const double *x, const double *w, const double *wp,
                         const double *bias, double *y, Py_ssize_t item, double *scratch)

ctypedef fused real:
    float
    double

PATHS = ("simple", "wvec", "kvec")


cdef int _plan(direct_plan *p, tuple xs, tuple ws, tuple ys, Py_ssize_t sh, Py_ssize_t sw,
               Py_ssize_t pad_top, Py_ssize_t pad_left, Py_ssize_t dh, Py_ssize_t dw,
               Py_ssize_t groups, int act, Py_ssize_t itemsize, int simple) except -1:
    """Fill the geometry of the plan and check that the arrays agree with it."""
    p.N, p.C, p.H, p.W = xs
    p.K, p.Cg, p.R, p.S = ws
    p.P, p.Q = ys[2], ys[3]
    p.sh, p.sw, p.pt, p.pl, p.dh, p.dw, p.G = sh, sw, pad_top, pad_left, dh, dw, groups
    if min(sh, sw, dh, dw, groups) < 1 or min(pad_top, pad_left) < 0:
        raise ValueError("stride, dilation and groups must be >= 1 and padding >= 0")
    if p.Cg * groups != p.C or p.K % groups:
        raise ValueError(f"w {ws} does not fit x {xs} with groups={groups}")
    if ys[0] != p.N or ys[1] != p.K:
        raise ValueError(f"y {ys} does not fit x {xs} and w {ws}")
    if act not in (0, 1, 2):
        raise ValueError(f"act must be 0, 1 or 2, got {act}")
    # canonical geometries only (kernels/canonical.py): the row buffer and the index arithmetic are
    # sized by padding, stride and dilation, which must stay of the order of the input
    if max(pad_top, sh, dh) > 2 * p.H + 8 or max(pad_left, sw, dw) > 2 * p.W + 8:
        raise ValueError(f"padding, stride and dilation must be at most 2*H + 8 and 2*W + 8 (x {xs}): got "
                         f"padding ({pad_top}, {pad_left}), stride ({sh}, {sw}), dilation ({dh}, {dw}); "
                         f"kernels.conv2d rewrites larger ones")
    p.Kg = p.K // groups
    p.act = act
    direct_make_plan(p, itemsize, simple)
    return 0


def _run(const real[:, :, :, ::1] x, const real[:, :, :, ::1] w, bias, real[:, :, :, ::1] y,
         Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pad_top, Py_ssize_t pad_left, Py_ssize_t dh,
         Py_ssize_t dw, Py_ssize_t groups, int act, int nthreads, int simple):
    cdef direct_plan p
    cdef const real[::1] b
    cdef const real *bp = NULL
    cdef real *wp = NULL
    cdef real *scratch
    cdef Py_ssize_t i, nscratch
    _plan(&p, (x.shape[0], x.shape[1], x.shape[2], x.shape[3]), (w.shape[0], w.shape[1], w.shape[2], w.shape[3]),
          (y.shape[0], y.shape[1], y.shape[2], y.shape[3]), sh, sw, pad_top,
          pad_left, dh, dw, groups, act, sizeof(real), simple)
    if nthreads < 1:
        raise ValueError(f"nthreads must be >= 1, got {nthreads}")
    if bias is not None:
        b = bias
        if b.shape[0] != p.K:
            raise ValueError(f"bias must have shape ({p.K},), got ({b.shape[0]},)")
        bp = &b[0]
    if y.shape[0] * y.shape[1] * y.shape[2] * y.shape[3] == 0:
        return
    # repacked weights, and one row buffer per thread for the kvec path (the slot of a thread is its
    # OpenMP thread id, below nthreads)
    nscratch = p.scratch + 1
    wp = <real *> amalloc((p.packed + nthreads * nscratch) * sizeof(real))
    if wp == NULL:
        raise MemoryError("direct: no memory for the repacked weights and row buffers")
    try:
        with nogil:
            if p.packed > 0:
                for i in prange(p.npack, schedule="static", num_threads=nthreads):
                    if real is float:
                        direct_pack_f32(&p, &w[0, 0, 0, 0], wp, i)
                    else:
                        direct_pack_f64(&p, &w[0, 0, 0, 0], wp, i)
            for i in prange(p.items, schedule="guided", num_threads=nthreads):
                scratch = wp + p.packed + threadid() * nscratch
                if real is float:
                    direct_item_f32(&p, &x[0, 0, 0, 0], &w[0, 0, 0, 0], wp, bp, &y[0, 0, 0, 0], i, scratch)
                else:
                    direct_item_f64(&p, &x[0, 0, 0, 0], &w[0, 0, 0, 0], wp, bp, &y[0, 0, 0, 0], i, scratch)
    finally:
        free(wp)


def conv2d(x, w, bias, y, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pad_top, Py_ssize_t pad_left,
           Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups, int act, int nthreads):
    """y = act(conv(x, w) + bias), the fastest path for the shape (kernels/_conv.py has the contract)."""
    _run(x, w, bias, y, sh, sw, pad_top, pad_left, dh, dw, groups, act, nthreads, 0)


def conv2d_simple(x, w, bias, y, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pad_top, Py_ssize_t pad_left,
                  Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups, int act, int nthreads):
    """The same convolution by the simple path (one output plane per work item)."""
    _run(x, w, bias, y, sh, sw, pad_top, pad_left, dh, dw, groups, act, nthreads, 1)


def plan_path(x_shape, w_shape, y_shape, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw,
              Py_ssize_t groups, itemsize=4):
    """Which path conv2d takes for a geometry: 'simple', 'wvec' (row vectors), 'wflat' (vectors over
    the flattened output plane) or 'kvec' (for tests and benchmarks)."""
    cdef direct_plan p
    _plan(&p, tuple(x_shape), tuple(w_shape), tuple(y_shape), sh, sw, 0, 0, dh, dw, groups, 0,
          itemsize, 0)
    return "wflat" if p.flat else PATHS[p.path]
