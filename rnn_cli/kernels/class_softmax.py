"""The class-factored softmax of the output layer (Mikolov et al. 2011, RNNLM's `-class`).

Every word w belongs to one class c(w) (classes by unigram frequency, `tasks/lm/classes.py`), and

    P(w | a) = P(c(w) | a) * P(w | c(w), a)
    P(c | a) = softmax_c(W_yc a + b_c)
    P(w | c, a) = softmax over the words of c of (W_ya a + b_y)

which is still an exactly normalised distribution over the whole vocabulary, while a training or
scoring step only computes the C class logits and the logits of the target's class: about
H (C + V/C) multiply-adds per token instead of H V.

The class logits (R, C) are one BLAS product outside the kernels (like the full softmax's
logits), turned into P(class | a) in place by the forward kernel; here: the log-sum-exps, the
target class's word logits, their gradients, and the full distribution for sampling and
`predict`. The vocabulary keeps its order; an index map groups it:

    word_class (V,) int32   class of every word id
    members    (V,) int32   word ids grouped by class (class c: members[offsets[c]:offsets[c+1]])
    offsets    (C+1,) int32
    zc (R, C) class logits, top (R, H), W_ya (V, H), b_y (V,), y (R,) int32 (y < 0: not scored)
    pw (R, M) per row, P(w | c(y), a) of the M >= |c| words of the target's class, in members order
    lse_c (R,) float64, nll (R,) float64
"""

from __future__ import annotations

import math

import numpy as np

from rnn_cli.kernels._jit import njit, njit_parallel, prange
from rnn_cli.kernels.output import exp_shifted


def _class_xent_forward(nll, lse_c, pw, zc, top, W_ya, b_y, members, offsets, word_class, y):
    """nll[r] = -log P(y[r] | a_r) = lse_c - zc[c] + lse_w - z_w(y); returns the sum (float64).

    zc is overwritten by P(class | a) (every row, for backward); leaves lse_c (every row) and the
    target class's word probabilities P(w | c(y), a) in pw (scored rows)."""
    R = zc.shape[0]
    C = zc.shape[1]
    H = top.shape[1]
    for r in prange(R):
        zr = zc[r]
        m = zr[0]
        for k in range(1, C):
            if zr[k] > m:
                m = zr[k]
        yr = y[r]
        c = word_class[yr] if yr >= 0 else 0
        zcy = zr[c]
        ez = np.empty(C, zc.dtype)  # out of place: vectorised (see output.exp_shifted)
        exp_shifted(ez, zr, m)  # vectorised float32 exp (math.exp in float64)
        s = 0.0
        for k in range(C):
            s += ez[k]
        lse_c[r] = m + math.log(s)
        inv = 1.0 / s
        for k in range(C):
            zr[k] = ez[k] * inv
        if yr < 0:
            nll[r] = 0.0
            continue
        o0 = offsets[c]
        n = offsets[c + 1] - o0
        a = top[r]
        p = pw[r, :n]
        zy = 0.0
        for k in range(n):
            w = members[o0 + k]
            row = W_ya[w]
            z = b_y[w]
            for j in range(H):
                z += row[j] * a[j]
            p[k] = z
            if w == yr:
                zy = z
        zmax = p[0]
        for k in range(1, n):
            if p[k] > zmax:
                zmax = p[k]
        ep = np.empty(n, pw.dtype)
        exp_shifted(ep, p, zmax)
        s = 0.0
        for k in range(n):
            s += ep[k]
        inv = 1.0 / s
        for k in range(n):
            p[k] = ep[k] * inv
        nll[r] = lse_c[r] - zcy + zmax + math.log(s) - zy
    total = 0.0
    for r in range(R):
        total += nll[r]
    return total


def _class_xent_backward(dzc, pc, word_class, y, scale):
    """dzc = (P(class | a) - onehot(c(y))) * scale row by row, from the probabilities forward
    left in pc (dzc may alias pc; 0 where y < 0)."""
    R = pc.shape[0]
    C = pc.shape[1]
    for r in prange(R):
        yr = y[r]
        if yr < 0:
            for k in range(C):
                dzc[r, k] = 0.0
            continue
        for k in range(C):
            dzc[r, k] = pc[r, k] * scale
        dzc[r, word_class[yr]] -= scale


def _class_words_backward(dW_ya, db_y, da, pw, top, W_ya, members, offsets, word_class, y,
                          scale, rows, starts):
    """The word half: dz_w = (P(w | c, a) - [w = y]) * scale for the words of the target class
    (written over pw);
    dW_ya[w] += dz_w a, db_y[w] += dz_w, da[r] += dz_w W_ya[w] (accumulated: zero dW_ya, db_y
    first and put the class half into da).

    One class per task (`rows[starts[c]:starts[c+1]]` are its rows, from `group_rows`): the rows
    of W_ya a class touches belong to it alone and every row r to one class, so no two threads
    write the same place.
    """
    C = offsets.shape[0] - 1
    H = top.shape[1]
    for c in prange(C):
        o0 = offsets[c]
        n = offsets[c + 1] - o0
        for i in range(starts[c], starts[c + 1]):
            r = rows[i]
            yr = y[r]
            a = top[r]
            d = da[r]
            for k in range(n):
                w = members[o0 + k]
                pw[r, k] = pw[r, k] * scale - (scale if w == yr else 0.0)
                g = pw[r, k]  # dz_w, in the arrays' dtype (a float64 g would not vectorise)
                db_y[w] += g
                dw = dW_ya[w]
                for j in range(H):  # two loops: one store stream each, so both vectorise
                    dw[j] += g * a[j]
                row = W_ya[w]
                for j in range(H):
                    d[j] += g * row[j]


class_xent_forward = njit_parallel(_class_xent_forward)
class_xent_backward = njit_parallel(_class_xent_backward)
class_words_backward = njit_parallel(_class_words_backward)
class_xent_forward_serial = njit(_class_xent_forward)
class_xent_backward_serial = njit(_class_xent_backward)
class_words_backward_serial = njit(_class_words_backward)


@njit
def group_rows(rows, starts, fill, y, word_class):
    """Counting sort of the scored rows by their target's class: class c's rows are
    rows[starts[c]:starts[c+1]] (rows (R,) int32 out, starts (C+1,) int32 out, fill (C,) int32
    scratch)."""
    C = starts.shape[0] - 1
    for c in range(C + 1):
        starts[c] = 0
    for r in range(y.shape[0]):
        if y[r] >= 0:
            starts[word_class[y[r]] + 1] += 1
    for c in range(C):
        starts[c + 1] += starts[c]
    for c in range(C):
        fill[c] = starts[c]
    for r in range(y.shape[0]):
        if y[r] >= 0:
            c = word_class[y[r]]
            rows[fill[c]] = r
            fill[c] += 1


@njit
def class_log_probs(out, a, W_ya, b_y, W_yc, b_c, members, offsets, zc, zw):
    """out[w] = log P(w | a) = log P(c(w) | a) + log P(w | c(w), a) for every word (V,): the
    exact full distribution, for sampling and `predict`. zc (C,), zw (M,) scratch."""
    C = W_yc.shape[0]
    H = a.shape[0]
    m = -np.inf
    for c in range(C):
        z = b_c[c]
        for j in range(H):
            z += W_yc[c, j] * a[j]
        zc[c] = z
        if z > m:
            m = z
    s = 0.0
    for c in range(C):
        s += math.exp(zc[c] - m)
    lse_c = m + math.log(s)
    for c in range(C):
        o0 = offsets[c]
        n = offsets[c + 1] - o0
        zmax = -np.inf
        for k in range(n):
            w = members[o0 + k]
            z = b_y[w]
            for j in range(H):
                z += W_ya[w, j] * a[j]
            zw[k] = z
            if z > zmax:
                zmax = z
        s = 0.0
        for k in range(n):
            s += math.exp(zw[k] - zmax)
        base = zc[c] - lse_c - zmax - math.log(s)
        for k in range(n):
            out[members[o0 + k]] = zw[k] + base
