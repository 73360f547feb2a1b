"""The output layer's softmax and cross-entropy, row by row, and gradient clipping helpers.

    y_hat<t> = softmax(W_ya a<t> + b_y),   loss = sum_t -log y_hat<t>[y<t>]

The logits themselves (a window's R x H by H x V product) are formed by BLAS outside the kernels;
here each row gets a max-subtracted log-sum-exp (stable for any logit size), its negative
log-likelihood in float64, and on the way back `dlogits = (y_hat - onehot(y)) * scale`.

Layouts: logits (R, V) float32, y (R,) int32, nll (R,) float64, lse (R,) float64.
"""

from __future__ import annotations

import math

import numpy as np

from rnn_cli.kernels._jit import njit, njit_parallel, prange


def _softmax_xent_forward(nll, lse, logits, y):
    """Per-row log-sum-exp and negative log-likelihood; returns their sum (float64).

    nll (R,) out, lse (R,) out, logits (R,V), y (R,) int32 (y < 0: row not scored, nll = 0).
    """
    R = logits.shape[0]
    V = logits.shape[1]
    for r in prange(R):
        row = logits[r]
        m = row[0]
        for k in range(1, V):
            if row[k] > m:
                m = row[k]
        s = 0.0
        for k in range(V):
            s += math.exp(row[k] - m)
        lse[r] = m + math.log(s)
        nll[r] = lse[r] - row[y[r]] if y[r] >= 0 else 0.0
    total = 0.0
    for r in range(R):
        total += nll[r]
    return total


def _softmax_xent_backward(dlogits, logits, lse, y, scale):
    """dlogits = (softmax(logits) - onehot(y)) * scale, row by row (dlogits may alias logits).

    dlogits (R,V) out, logits (R,V), lse (R,) from forward, y (R,) int32, scale: dLoss/dnll.
    """
    R = logits.shape[0]
    V = logits.shape[1]
    for r in prange(R):
        c = lse[r]
        for k in range(V):
            dlogits[r, k] = math.exp(logits[r, k] - c) * scale
        if y[r] >= 0:
            dlogits[r, y[r]] -= scale
        else:
            for k in range(V):
                dlogits[r, k] = 0.0


softmax_xent_forward = njit_parallel(_softmax_xent_forward)
softmax_xent_backward = njit_parallel(_softmax_xent_backward)


@njit
def sum_squares(g):
    """Sum of squares of a flat float32 buffer, accumulated in float64 (for the global norm)."""
    s = 0.0
    for i in range(g.shape[0]):
        v = np.float64(g[i])
        s += v * v
    return s


@njit
def scale_inplace(g, c):
    """g *= c for a flat buffer."""
    for i in range(g.shape[0]):
        g[i] *= c


@njit
def clip_values(g, limit):
    """Clip every element of a flat buffer to [-limit, limit] (the seed's `np.clip` clipping)."""
    for i in range(g.shape[0]):
        if g[i] > limit:
            g[i] = limit
        elif g[i] < -limit:
            g[i] = -limit
