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

# exp for float32 rows that vectorises (math.exp is a scalar libm call, and at word level the
# softmax's 2 x R x V exponentials cost a third of a training step): Cody-Waite reduction
# x = e ln2 + r, exp(r) by its Taylor polynomial (|r| <= ln2/2), 2^e added to the exponent bits.
_F = np.float32
_LOG2E, _LN2_HI, _LN2_LO = _F(1.4426950408889634), _F(0.693359375), _F(-2.12194440e-4)
_EXP_MIN, _HALF, _ONE = _F(-87.0), _F(0.5), _F(1.0)
_E2, _E3, _E4 = _F(1 / 2), _F(1 / 6), _F(1 / 24)
_E5, _E6, _E7 = _F(1 / 120), _F(1 / 720), _F(1 / 5040)


@njit
def exp_shifted(out, x, shift):
    """out = exp(x - shift) for 1-D arrays (out may be x).

    float32: the vectorisable form above, relative error < 1e-6, results below e^-87 (1.6e-38)
    are clamped there; float64: math.exp (the tests' precision).
    """
    n = x.shape[0]
    if out.itemsize == 4:
        bits = out.view(np.int32)
        s = _F(shift)
        for k in range(n):
            v = x[k] - s
            v = _EXP_MIN if v < _EXP_MIN else v
            e = np.floor(v * _LOG2E + _HALF)
            r = (v - e * _LN2_HI) - e * _LN2_LO
            out[k] = _ONE + r * (_ONE + r * (_E2 + r * (_E3 + r * (_E4 + r * (_E5 + r * (
                _E6 + r * _E7))))))
            bits[k] += np.int32(e) << 23
    else:
        for k in range(n):
            out[k] = math.exp(x[k] - shift)


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
        ex = np.empty(V, logits.dtype)  # one row of exponentials (this thread's)
        exp_shifted(ex, row, m)
        s = 0.0
        for k in range(V):
            s += ex[k]
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
        d = dlogits[r]
        exp_shifted(d, logits[r], lse[r])
        for k in range(V):
            d[k] *= scale
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
