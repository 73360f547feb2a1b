"""Sparse row updates (`--updates sparse`): the vocabulary-indexed blocks touched by one window.

A word model's V-indexed blocks (a one-hot W_ax's columns, W_emb's rows, and with the class
softmax W_ya's and b_y's rows) get a non-zero gradient only in the rows of the window's words:
the input ids, and the members of the target words' classes. These kernels list those rows and
run the clipping norm and the update rules over them alone; an update also applies the clipping
factor and zeroes the rows it read (one pass over each row instead of three).

A block is addressed as (start, si, sj, width) in a flat buffer: row k's element j is
`start + k*si + j*sj` (W_emb, W_ya (V, n): si = n, sj = 1; a one-hot W_ax (GH, V), whose "rows"
are columns: si = 1, sj = V; b_y: si = 1, width 1). `ids[:n]` are distinct rows, so the update
loops run in parallel over them without two threads writing one place. Each loop has a copy for
sj == 1 with the stride spelled out, which is what lets LLVM vectorise it (measured: Adam over
46k rows of 256, 45 ms strided, see README "Sparse updates" for the contiguous figure).
"""

from __future__ import annotations

import math

import numpy as np

from rnn_cli.kernels._jit import njit, njit_parallel, prange


@njit
def add_inputs(ids, n, mark, x):
    """Append the ids of x (T, B) int32 (skipping -1) not yet marked to ids[n:]; returns the new n.

    mark (V,) uint8 is set for every id listed (clear it with `unmark`)."""
    T = x.shape[0]
    B = x.shape[1]
    for t in range(T):
        for b in range(B):
            k = x[t, b]
            if k >= 0 and mark[k] == 0:
                mark[k] = 1
                ids[n] = k
                n += 1
    return n


@njit
def add_classes(ids, n, mark, cmark, y, word_class, members, offsets):
    """Append the members of the classes of y's words (skipping -1) not yet marked to ids[n:];
    returns the new n. cmark (C,) uint8 is scratch, left clear."""
    R = y.shape[0]
    for r in range(R):
        w = y[r]
        if w < 0:
            continue
        c = word_class[w]
        if cmark[c] != 0:
            continue
        cmark[c] = 1
        for i in range(offsets[c], offsets[c + 1]):
            k = members[i]
            if mark[k] == 0:
                mark[k] = 1
                ids[n] = k
                n += 1
    for r in range(R):
        if y[r] >= 0:
            cmark[word_class[y[r]]] = 0
    return n


@njit
def unmark(mark, ids, n):
    for i in range(n):
        mark[ids[i]] = 0


def _rows_sumsq(g, start, si, sj, width, ids, n):
    """Sum of squares of the listed rows, in float64."""
    s = 0.0
    for i in prange(n):
        base = start + ids[i] * si
        r = 0.0
        if sj == 1:
            gr = g[base:base + width]
            for j in range(width):
                v = np.float64(gr[j])
                r += v * v
        else:
            for j in range(width):
                v = np.float64(g[base + j * sj])
                r += v * v
        s += r
    return s


def _rows_clip_values(g, start, si, sj, width, ids, n, limit):
    for i in prange(n):
        base = start + ids[i] * si
        for j in range(width):
            k = base + j * sj
            g[k] = min(max(g[k], -limit), limit)


def _rows_adam(p, g, m, v, start, si, sj, width, ids, n, c, lr_t, beta1, beta2, eps_t):
    """`optim.adam_update` on the listed rows only (lazy Adam: other rows' moments wait), with
    the gradient scaled by c (the clipping factor) on the way in and zeroed on the way out."""
    for i in prange(n):
        base = start + ids[i] * si
        if sj == 1:
            pr, gr = p[base:base + width], g[base:base + width]
            mr, vr = m[base:base + width], v[base:base + width]
            for j in range(width):
                d = gr[j] * c
                mr[j] = beta1 * mr[j] + (1.0 - beta1) * d
                vr[j] = beta2 * vr[j] + (1.0 - beta2) * d * d
                pr[j] -= lr_t * mr[j] / (math.sqrt(vr[j]) + eps_t)
                gr[j] = 0.0
        else:
            for j in range(width):
                k = base + j * sj
                d = g[k] * c
                m[k] = beta1 * m[k] + (1.0 - beta1) * d
                v[k] = beta2 * v[k] + (1.0 - beta2) * d * d
                p[k] -= lr_t * m[k] / (math.sqrt(v[k]) + eps_t)
                g[k] = 0.0


def _rows_rmsprop(p, g, h, start, si, sj, width, ids, n, c, lr, decay, eps):
    """`optim.rmsprop_update` on the listed rows (lazy), g scaled by c and zeroed."""
    for i in prange(n):
        base = start + ids[i] * si
        for j in range(width):
            k = base + j * sj
            d = g[k] * c
            h[k] = decay * h[k] + (1.0 - decay) * d * d
            p[k] -= lr * d / (math.sqrt(h[k]) + eps)
            g[k] = 0.0


def _rows_adagrad(p, g, h, start, si, sj, width, ids, n, c, lr, eps):
    """`optim.adagrad_update` on the listed rows, g scaled by c and zeroed."""
    for i in prange(n):
        base = start + ids[i] * si
        for j in range(width):
            k = base + j * sj
            d = g[k] * c
            h[k] += d * d
            p[k] -= lr * d / (math.sqrt(h[k]) + eps)
            g[k] = 0.0


def _rows_sgd(p, g, start, si, sj, width, ids, n, c, lr):
    """`optim.sgd_update` on the listed rows, g scaled by c and zeroed."""
    for i in prange(n):
        base = start + ids[i] * si
        for j in range(width):
            k = base + j * sj
            p[k] -= lr * (g[k] * c)
            g[k] = 0.0


rows_sumsq = njit_parallel(_rows_sumsq)
rows_clip_values = njit_parallel(_rows_clip_values)
rows_adam = njit_parallel(_rows_adam)
rows_rmsprop = njit_parallel(_rows_rmsprop)
rows_adagrad = njit_parallel(_rows_adagrad)
rows_sgd = njit_parallel(_rows_sgd)
