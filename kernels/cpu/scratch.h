/* scratch.h: a per-thread scratch buffer for kernels whose work items need one (Winograd's transform
   buffers, AMX's converted input). Each OS thread keeps its own, grown when a larger one is asked
   for and freed when the thread ends: the steady state allocates nothing, and two callers (two
   Python threads, each with its OpenMP team) never share one. Each translation unit that includes
   this header has its own key, so kernels of different modules never share a buffer either. */
#ifndef CONVFORGE_SCRATCH_H
#define CONVFORGE_SCRATCH_H

#include <pthread.h>
#include <stdlib.h>

static pthread_key_t b_scratch_key;
static pthread_once_t b_scratch_once = PTHREAD_ONCE_INIT;

typedef struct { size_t n; void *p; } b_scratch_buf;

static void b_scratch_release(void *b)
{
    free(((b_scratch_buf *)b)->p);
    free(b);
}

static void b_scratch_make_key(void) { (void)pthread_key_create(&b_scratch_key, b_scratch_release); }

/* This OS thread's scratch of at least `bytes` bytes (64-byte aligned), or NULL when out of memory. */
static void *b_scratch(size_t bytes)
{
    (void)pthread_once(&b_scratch_once, b_scratch_make_key);
    b_scratch_buf *b = (b_scratch_buf *)pthread_getspecific(b_scratch_key);
    if (!b) {
        b = (b_scratch_buf *)calloc(1, sizeof *b);
        if (!b || pthread_setspecific(b_scratch_key, b)) { free(b); return NULL; }
    }
    if (b->n < bytes) {
        free(b->p);
        b->n = 0;
        b->p = aligned_alloc(64, (bytes + 63) / 64 * 64);
        if (!b->p) return NULL;
        b->n = bytes;
    }
    return b->p;
}

#endif /* CONVFORGE_SCRATCH_H */
