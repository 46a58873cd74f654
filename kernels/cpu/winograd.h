/* winograd.h: 3x3 stride-1 convolution on the blocked layout by Winograd's minimal filtering,
   F(m x m, 3 x 3) with m = 2 (a 4 x 4 transform) or m = 4 (6 x 6), float32.

   For an output tile of m x m pixels, the (m+2) x (m+2) input window d and the filter g:
       Y = A^T [ (G g G^T) . (B^T d B) ] A
   (. elementwise over the A = (m+2)^2 transform points xi). Over channels this is, per point xi, a
   matrix product M_xi[tile, k] = sum_c V_xi[tile, c] U_xi[c, k]: (m+2)^2 / m^2 multiplies per output
   and tap pair instead of 9 (2.25x fewer at m = 2, 4x fewer at m = 4). U = G g G^T is computed once
   at plan time in float64 (kernels/blocked.py, WinogradWeights) and packed as the 1x1 convolution
   weights of bconv (per xi: [kb][cb][ci 16][ko 16]), so the products run on bconv's register tiles.

   Work item: a run of `tb` consecutive tiles of the batch (tiles numbered over images, tile rows,
   tile columns, so small planes at batch > 1 still make full runs). An item transforms the inputs
   of its tiles for every input block into V (xi, cb, tile, 16), multiplies into M (xi, kb, tile, 16)
   point by point (U_xi stays in L2 while it serves all the item's tiles), then transforms each tile
   back, adds the bias and the residual, applies the activation and stores the pixels inside the
   output. V and M are a per-thread scratch (kept by the OS thread and grown when needed: the steady
   state allocates nothing, and two callers never share one). Every output's reduction order is
   fixed by the geometry and the tile, never by the thread count.

   Input pixels past the buffer (a tile that overhangs the plane's end) are read as zeros: they
   only reach outputs past the plane, which are not stored, and zeros keep them finite.
*/
#ifndef CONVFORGE_WINOGRAD_H
#define CONVFORGE_WINOGRAD_H

#include "blocked.h"
#include "scratch.h"

#define BW_AMAX 6                     /* the largest transform (m = 4) */
#define BW_SCRATCH (128 * 1024)       /* V and M of an item where U stays in L2 (measured best of
                                         128 KB .. 768 KB on 64 channels at 56x56 and 224x224) */
#define BW_SCRATCH_BIG (16 << 20)     /* the most of them where U streams */
#define BW_RUN_BIG 96                 /* tiles per run that amortise a streamed U (48 flops/byte) */

typedef struct {
    ptrdiff_t xn, xc, xr, yn, yc, yr, rn, rc, rr;
    ptrdiff_t N, Cb, Kb, P, Q;
    ptrdiff_t x0;        /* offset of tile (0, 0)'s window corner (row -pt, column -pl) from x's origin */
    ptrdiff_t hl, wl;    /* rows and columns of x readable from that corner */
    ptrdiff_t yh;
    int act, m;
    /* the plan */
    ptrdiff_t tp, tq;    /* tile rows and columns of a plane */
    ptrdiff_t tb;        /* tiles per run */
    ptrdiff_t nkg, kgb;  /* groups of output blocks per run, blocks per group */
    ptrdiff_t items;     /* runs x groups */
    int kb, np;          /* the products' register tile */
    btcost cost;         /* bconv's tile cost model, as the caller sets it for this CPU */
} bwino;

/* ---------------------------------------------------------------- the 1-D transforms */

/* v = B^T d over one line of the window */
B_INLINE void bw_in1(const int M, const bv *d, bv *v)
{
    if (M == 2) {
        v[0] = d[0] - d[2];
        v[1] = d[1] + d[2];
        v[2] = d[2] - d[1];
        v[3] = d[1] - d[3];
    } else {
        /* interpolation points 0, 1, -1, 2, -2 and infinity */
        const bv t0 = d[4] - 4.0f * d[2], t1 = d[3] - 4.0f * d[1];
        const bv t2 = d[4] - d[2], t3 = 2.0f * (d[3] - d[1]);
        v[0] = 4.0f * d[0] - 5.0f * d[2] + d[4];
        v[1] = t0 + t1;
        v[2] = t0 - t1;
        v[3] = t2 + t3;
        v[4] = t2 - t3;
        v[5] = 4.0f * d[1] - 5.0f * d[3] + d[5];
    }
}

/* y = A^T t over one line of the transformed tile (m outputs) */
B_INLINE void bw_out1(const int M, const bv *t, bv *y)
{
    if (M == 2) {
        y[0] = t[0] + t[1] + t[2];
        y[1] = t[1] - t[2] - t[3];
    } else {
        const bv s1 = t[1] + t[2], d1 = t[1] - t[2], s2 = t[3] + t[4], d2 = t[3] - t[4];
        y[0] = t[0] + s1 + s2;
        y[1] = d1 + 2.0f * d2;
        y[2] = s1 + 4.0f * s2;
        y[3] = d1 + 8.0f * d2 + t[5];
    }
}

/* ---------------------------------------------------------------- the plan */

/* The products' tile (kb blocks x np tiles, the cheapest per output block by bconv's cost model)
   and the run of tiles per item. Every item reads all of U once, so where U is larger than a core's
   L2 share the output blocks are shared out between the threads first (each reads its part of U)
   and the runs are as long as the threads allow, up to BW_RUN_BIG tiles (U then comes from L3 or
   memory once per run, and the scratch, written and read once in order, may spill to L3 at little
   cost); where U stays in L2 the runs keep V and M small beside it and give every thread several
   items. */
static void bwino_plan(bwino *g, int nthreads)
{
    const ptrdiff_t A = (ptrdiff_t)(g->m + 2) * (g->m + 2);
    g->tp = b_cdiv(g->P, g->m), g->tq = b_cdiv(g->Q, g->m);
    const ptrdiff_t tiles = g->N * g->tp * g->tq;
    const ptrdiff_t per_tile = A * (g->Cb + g->Kb) * BL * (ptrdiff_t)sizeof(float);
    const ptrdiff_t ubytes = A * g->Cb * g->Kb * BL * BL * (ptrdiff_t)sizeof(float);
    ptrdiff_t tb;
    g->nkg = 1;
    if (ubytes > B_L2_SHARE) {
        /* the output blocks shared out first: each thread then reads only its part of U */
        int kb = BKB_MAX;
        while (g->Kb % kb) kb--;
        for (ptrdiff_t d = nthreads < g->Kb / kb ? nthreads : g->Kb / kb; d >= 1; d--)
            if ((g->Kb / kb) % d == 0) { g->nkg = d; break; }
        tb = b_cdiv(tiles, b_cdiv(nthreads, g->nkg));
        if (tb > BW_RUN_BIG) tb = b_cdiv(tiles, b_cdiv(tiles, BW_RUN_BIG));
        while (tb * per_tile > BW_SCRATCH_BIG && tb > 1) tb = b_cdiv(tb, 2);
    } else {
        tb = BW_SCRATCH / per_tile;
        const ptrdiff_t share = b_cdiv(tiles, 2 * (ptrdiff_t)nthreads);
        if (tb > share) tb = share;
        if (tb > 4 * BNP_MAX) tb = 4 * BNP_MAX;
    }
    if (tb < 1) tb = 1;
    g->kgb = g->Kb / g->nkg;
    ptrdiff_t best = -1;
    for (int kb = BKB_MAX; kb >= 1; kb--) {
        if (g->kgb % kb) continue;
        for (int np = 1; np <= b_npmax(kb); np++) {
            const ptrdiff_t t = tb < np ? np : tb;
            const ptrdiff_t cost = b_cdiv(t, np) * b_tile_cost(&g->cost, kb, np) * 64 / kb / t;
            if (best < 0 || cost < best) best = cost, g->kb = kb, g->np = np;
        }
    }
    if (tb < g->np) tb = g->np;
    tb = b_cdiv(tb, g->np) * g->np;                    /* whole register tiles */
    g->tb = tb;
    g->items = b_cdiv(tiles, tb) * g->nkg;
}

/* ---------------------------------------------------------------- one work item */

/* V[xi][cb][j] for the item's tiles j (t0 + j), every input block */
B_INLINE void bw_input(const bwino *g, const int M, const float *restrict x, ptrdiff_t t0, ptrdiff_t nt,
                       float *restrict V)
{
    enum { AL = BW_AMAX };
    const int A = M + 2;
    const ptrdiff_t vx = g->Cb * g->tb * BL;          /* between transform points */
    for (ptrdiff_t j = 0; j < nt; j++) {
        const ptrdiff_t t = t0 + j, n = t / (g->tp * g->tq), tr = (t / g->tq) % g->tp, tc = t % g->tq;
        const ptrdiff_t r0 = tr * M, c0 = tc * M;
        const int inside = r0 + A <= g->hl && c0 + A <= g->wl;
        for (ptrdiff_t cb = 0; cb < g->Cb; cb++) {
            const float *xw = x + n * g->xn + cb * g->xc + g->x0 + r0 * g->xr + c0 * BL;
            bv e[AL][AL];
            for (int r = 0; r < A; r++) {
                bv d[AL];
                for (int c = 0; c < A; c++)
                    d[c] = inside || (r0 + r < g->hl && c0 + c < g->wl) ? BLD(xw + r * g->xr + c * BL) : (bv){0};
                bw_in1(M, d, e[r]);                    /* the row: d B */
            }
            float *vj = V + cb * g->tb * BL + j * BL;
            for (int c = 0; c < A; c++) {
                bv col[AL], v[AL];
                for (int r = 0; r < A; r++) col[r] = e[r][c];
                bw_in1(M, col, v);                     /* the column: B^T (d B) */
                for (int r = 0; r < A; r++) BST(vj + (r * A + c) * vx, v[r]);
            }
        }
    }
}

/* the tiles' outputs of blocks k0 .. k0 + kgb - 1 from M: y = act(A^T M A + bias [+ res]), pixels
   inside the plane only */
B_INLINE void bw_output(const bwino *g, const int M, const int ACT, const float *restrict Mx, const float *bias,
                        const float *res, float *restrict y, ptrdiff_t t0, ptrdiff_t nt, ptrdiff_t k0)
{
    enum { AL = BW_AMAX };
    const int A = M + 2;
    const ptrdiff_t mx = g->kgb * g->tb * BL;
    for (ptrdiff_t j = 0; j < nt; j++) {
        const ptrdiff_t t = t0 + j, n = t / (g->tp * g->tq), tr = (t / g->tq) % g->tp, tc = t % g->tq;
        const ptrdiff_t p0 = tr * M, q0 = tc * M;
        const int rows = g->P - p0 < M ? (int)(g->P - p0) : M, cols = g->Q - q0 < M ? (int)(g->Q - q0) : M;
        for (ptrdiff_t k = k0; k < k0 + g->kgb; k++) {
            const float *mj = Mx + (k - k0) * g->tb * BL + j * BL;
            bv e[AL][4];
            for (int r = 0; r < A; r++) {
                bv line[AL];
                for (int c = 0; c < A; c++) line[c] = BLD(mj + (r * A + c) * mx);
                bw_out1(M, line, e[r]);                /* the row: M A */
            }
            const bv b = BLD(bias + k * BL);
            float *yk = y + n * g->yn + k * g->yc + p0 * g->yr + q0 * BL;
            const float *rk = res ? res + n * g->rn + k * g->rc + p0 * g->rr + q0 * BL : NULL;
            for (int c = 0; c < cols && c < M; c++) {
                bv col[AL], out[4];
                for (int r = 0; r < A; r++) col[r] = e[r][c];
                bw_out1(M, col, out);                  /* the column: A^T (M A) */
                for (int r = 0; r < rows && r < M; r++) {
                    bv v = out[r] + b;
                    if (rk) v += BLD(rk + r * g->rr + c * BL);
                    BST(yk + r * g->yr + c * BL, b_vact(v, ACT));
                }
            }
        }
    }
}

/* M_xi = V_xi U_xi for every point and output blocks k0 .. k0 + kgb - 1, on bconv's 1x1 register
   tiles (the run's tiles as one row of pixels). */
static void bw_products(const bwino *g, int A2, const float *V, const float *U, float *Mx, ptrdiff_t nt,
                        ptrdiff_t k0)
{
    static const float zero[BKB_MAX * BL];
    bconv c;
    memset(&c, 0, sizeof c);
    c.Cb = g->Cb, c.CI = BL, c.Kb = g->Kb, c.R = c.S = 1, c.sh = c.sw = c.dh = c.dw = 1;
    c.ps = BL, c.cs = 1, c.xc = g->tb * BL, c.yc = g->tb * BL;
    const bepi e = {zero, NULL, 0, 0, 1, 1};
    for (int xi = 0; xi < A2; xi++) {
        const float *vx = V + xi * g->Cb * g->tb * BL;
        const float *ux = U + (ptrdiff_t)xi * g->Kb * g->Cb * BL * BL;
        float *mx = Mx + xi * g->kgb * g->tb * BL;
        for (ptrdiff_t k = 0; k < g->kgb; k += g->kb)
            for (ptrdiff_t j = 0; j < nt; j += g->np) {
                const int np = (int)(nt - j < g->np ? nt - j : g->np);
                bconv_tile_s1(&c, g->kb, np, vx, ux + (k0 + k) * g->Cb * BL * BL, 0, j, 0, g->Cb,
                              mx + k * g->tb * BL + j * BL, &e);
            }
    }
}

B_INLINE int bw_item_m(const bwino *g, const int M, const float *x, const float *U, const float *bias,
                       const float *res, float *y, ptrdiff_t item)
{
    const int A2 = (M + 2) * (M + 2);
    const ptrdiff_t tiles = g->N * g->tp * g->tq, t0 = item / g->nkg * g->tb, k0 = item % g->nkg * g->kgb;
    const ptrdiff_t nt = tiles - t0 < g->tb ? tiles - t0 : g->tb;
    float *V = (float *)b_scratch((size_t)(A2 * (g->Cb + g->kgb) * g->tb * BL) * sizeof(float));
    if (!V) return 1;
    float *Mx = V + A2 * g->Cb * g->tb * BL;
    bw_input(g, M, x, t0, nt, V);
    bw_products(g, A2, V, U, Mx, nt, k0);
    switch (g->act) {
    case 1: bw_output(g, M, 1, Mx, bias, res, y, t0, nt, k0); break;
    case 2: bw_output(g, M, 2, Mx, bias, res, y, t0, nt, k0); break;
    case 3: bw_output(g, M, 3, Mx, bias, res, y, t0, nt, k0); break;
    case 4: bw_output(g, M, 4, Mx, bias, res, y, t0, nt, k0); break;
    default: bw_output(g, M, 0, Mx, bias, res, y, t0, nt, k0); break;
    }
    return 0;
}

/* Work item `item` of the plan; 1 when the scratch could not be allocated (nothing written). */
static int bwino_item(const bwino *g, const float *x, const float *U, const float *bias, const float *res,
                      float *y, ptrdiff_t item)
{
    return g->m == 2 ? bw_item_m(g, 2, x, U, bias, res, y, item) : bw_item_m(g, 4, x, U, bias, res, y, item);
}

#endif
