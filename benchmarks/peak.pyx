# cython: language_level=3
"""The machine's measured ceilings: peak FMA rate (GFLOP/s) and memory bandwidth (GB/s).

The loops live in peak.h (C with vector intrinsics for the ISA this build targets). Each probe is
calibrated to run about `seconds`, repeated, and every thread's best run is kept: a ceiling is the
most the machine did, not its typical rate. The threads time themselves, and the rate at n threads is
the sum of their rates, so a thread the OS parks for a while (on a machine shared with other
processes) costs its own run, not everyone's.
"""
import numpy as np
from libc.stdint cimport int64_t

cdef extern from "peak.h" nogil:
    const char *peak_isa()
    int peak_lanes_f32()
    int peak_lanes_f64()
    int peak_chains()
    void peak_fma_seconds(int64_t iters, int nthreads, int f64, double *sink, double *seconds)
    void copy_seconds(float *dst, const float *src, int64_t n, int reps, int nthreads, double *seconds)
    void sum_seconds(const float *src, int64_t n, int reps, int nthreads, double *sink, double *seconds)

MAX_THREADS = 1024
cdef int FMA, COPY = 1, SUM = 2


def isa():
    """The vector ISA the FMA loop was compiled for: 'avx512', 'avx2' or 'scalar'."""
    return peak_isa().decode()


def _check(nthreads, seconds, repeats):
    if not 1 <= nthreads <= MAX_THREADS:
        raise ValueError(f"nthreads must be in [1, {MAX_THREADS}], got {nthreads}")
    if not seconds > 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")


cdef class _Probe:
    """One loop of peak.h with its arrays; run(size) fills `seconds` (one entry per thread)."""
    cdef int kind, nthreads, f64
    cdef int64_t n
    cdef float[::1] src, dst
    cdef double[::1] sink, seconds

    def __init__(self, int kind, int nthreads, int f64=0, int64_t n=0):
        self.kind, self.nthreads, self.f64, self.n = kind, nthreads, f64, n
        self.sink = np.zeros(nthreads)
        self.seconds = np.zeros(nthreads)
        if kind != FMA:
            self.src = np.full(n, 1.0, dtype=np.float32)      # written, so every page is mapped
            self.dst = np.full(n if kind == COPY else 1, 2.0, dtype=np.float32)

    cdef void run(self, int64_t size) noexcept nogil:
        if self.kind == FMA:
            peak_fma_seconds(size, self.nthreads, self.f64, &self.sink[0], &self.seconds[0])
        elif self.kind == COPY:
            copy_seconds(&self.dst[0], &self.src[0], self.n, <int>size, self.nthreads, &self.seconds[0])
        else:
            sum_seconds(&self.src[0], self.n, <int>size, self.nthreads, &self.sink[0], &self.seconds[0])

    def best_seconds(self, double seconds, int repeats):
        """Calibrate the size (steps or passes) to about `seconds`, then run `repeats` times. ->
        (size, best seconds of each thread)."""
        cdef int64_t size = 1 << 10 if self.kind == FMA else 1
        with nogil:
            self.run(size)                                   # first touch, warm-up
        while max(self.seconds) < seconds / 4 and size < (1 << 40 if self.kind == FMA else 1 << 28):
            size *= 2
            with nogil:
                self.run(size)
        size = max(1, <int64_t>(size * seconds / max(max(self.seconds), 1e-9)))
        best = np.full(self.nthreads, np.inf)
        for _ in range(repeats):
            with nogil:
                self.run(size)
            best = np.minimum(best, np.asarray(self.seconds))
        return size, best


def _slices(int64_t n, int nthreads):
    """Elements of each thread's slice, as peak_slice splits n."""
    return np.array([n * (t + 1) // nthreads - n * t // nthreads for t in range(nthreads)], dtype=np.float64)


def fma_gflops(dtype="float32", int nthreads=1, double seconds=0.1, int repeats=5):
    """Peak GFLOP/s of fused multiply-adds (2 FLOPs each) on nthreads threads."""
    _check(nthreads, seconds, repeats)
    if np.dtype(dtype) == np.float32:
        f64, lanes = 0, peak_lanes_f32()
    elif np.dtype(dtype) == np.float64:
        f64, lanes = 1, peak_lanes_f64()
    else:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    iters, best = _Probe(FMA, nthreads, f64).best_seconds(seconds, repeats)
    return float(np.sum(2.0 * iters * peak_chains() * lanes / best)) / 1e9


def copy_gbps(Py_ssize_t nbytes, int nthreads=1, double seconds=0.1, int repeats=5):
    """Copy bandwidth in GB/s (bytes read + bytes written per second) of a copy of `nbytes` bytes
    split over nthreads threads."""
    _check(nthreads, seconds, repeats)
    cdef int64_t n = max(nbytes // 4, 1024)
    reps, best = _Probe(COPY, nthreads, 0, n).best_seconds(seconds, repeats)
    return float(np.sum(2.0 * 4 * _slices(n, nthreads) * reps / best)) / 1e9


def read_gbps(Py_ssize_t nbytes, int nthreads=1, double seconds=0.1, int repeats=5):
    """Read-only bandwidth in GB/s: a sum over `nbytes` bytes split over nthreads threads."""
    _check(nthreads, seconds, repeats)
    cdef int64_t n = max(nbytes // 4, 1024)
    reps, best = _Probe(SUM, nthreads, 0, n).best_seconds(seconds, repeats)
    return float(np.sum(4.0 * _slices(n, nthreads) * reps / best)) / 1e9
