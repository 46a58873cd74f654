# Buffers on a 64-byte line (a cache line and a zmm register), cimported by the kernels that allocate
# scratch or repacked weights: malloc's large blocks start 16 bytes past a page, so each 64-byte vector
# access of them spans two lines (the blocked kernels measured 1.05-1.45x slower so). free() releases.
cdef extern from "stdlib.h" nogil:
    int posix_memalign(void **memptr, size_t alignment, size_t size)


cdef inline void *amalloc(size_t size) noexcept nogil:
    cdef void *p = NULL
    if posix_memalign(&p, 64, size if size > 0 else 64) != 0:
        return NULL
    return p
