"""The translator's output loss: bias, softmax and label-smoothed cross-entropy, forward and backward,
row by row, each in one pass over the logits (the decoder's R real target positions x V).

    z = logits + b_y,   p = softmax(z),   loss_r = (1 - eps) (-log p[y_r]) + eps mean_v (-log p[v])
    dLoss/dz = scale (p - (1 - eps) onehot(y) - eps / V)        (Szegedy et al. 2016)

Forward adds the bias in place and gives, per row, the log-sum-exp, the negative log-likelihood
of y and the row's mean (-log p[v] = lse - z[v], so the smoothing term is lse - mean(z)).
Backward overwrites the rows with dLoss/dz (dlogits may be logits) and sums them per column into
one row per chunk of rows (the bias gradient: the caller adds the chunks' rows), so the logits
are read once each way. eps = 0 is the plain cross-entropy. The exponentials are
`output.exp_shifted`'s (vectorised float32).

Layouts: logits (R, V) float32 (float64 in the tests), b (V,), y (R,) int32 (every row scored),
nll / lse / mean (R,) float64, db (nchunks, V).
"""

from __future__ import annotations

import math

import numpy as np

from rnn_cli.kernels._jit import njit_parallel, prange
from rnn_cli.kernels.cell import _chunk_bounds
from rnn_cli.kernels.output import exp_shifted, row_max


def _smooth_xent_forward(nll, lse, mean, logits, b, y):
    """logits += b; per row lse, nll = lse - z[y], mean = mean(z); returns sum(nll) (float64)."""
    R, V = logits.shape[0], logits.shape[1]
    for r in prange(R):
        row = logits[r]
        for k in range(V):
            row[k] += b[k]
        m = row_max(row)
        ex = np.empty(V, logits.dtype)  # this thread's row of exponentials
        exp_shifted(ex, row, m)
        s = 0.0
        t = 0.0
        for k in range(V):
            s += ex[k]
            t += row[k]
        lse[r] = m + math.log(s)
        mean[r] = t / V
        nll[r] = lse[r] - row[y[r]]
    total = 0.0
    for r in range(R):
        total += nll[r]
    return total


def _smooth_xent_backward(dlogits, db, logits, lse, y, scale, eps, nchunks):
    """dlogits = scale (softmax(z) - (1 - eps) onehot(y) - eps / V) (may alias logits, z =
    the biased logits of forward); db[c] = the column sums of chunk c's rows of dlogits."""
    R, V = logits.shape[0], logits.shape[1]
    u = scale * eps / V
    hit = scale * (1.0 - eps)
    log_scale = math.log(scale)
    for c in prange(nchunks):
        r0, r1 = _chunk_bounds(R, nchunks, c)
        part = db[c]
        for k in range(V):
            part[k] = 0.0
        ex = np.empty(V, logits.dtype)
        for r in range(r0, r1):
            exp_shifted(ex, logits[r], lse[r] - log_scale)  # scale * p
            d = dlogits[r]
            for k in range(V):
                v = ex[k] - u
                d[k] = v
                part[k] += v
            d[y[r]] -= hit
            part[y[r]] -= hit


smooth_xent_forward = njit_parallel(_smooth_xent_forward)
smooth_xent_backward = njit_parallel(_smooth_xent_backward)
