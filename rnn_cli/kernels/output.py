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
    """out = exp(x - shift) for 1-D arrays.

    float32: the vectorisable form above, relative error < 1e-6, results below e^-87 (1.6e-38)
    are clamped there; float64: math.exp (the tests' precision). out may be x, but the compiler
    then cannot prove the loop free of overlaps and runs it scalar: 2.6 against 0.55 ns an
    element measured, so the kernels give it a separate row.
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


@njit
def row_max(row):
    """max(row) for a 1-D array, in 16 interleaved running maxima: one running maximum is a chain
    of dependent compares the compiler cannot vectorise without dropping NaN semantics (1.17 ns
    an element measured at V 10k; 0.57 like this). NaN: as a plain loop, a NaN in row[0] is
    returned and a later one skipped (softmax then still turns it into NaN)."""
    n = row.shape[0]
    acc = np.empty(16, row.dtype)
    for j in range(16):
        acc[j] = row[0]
    n16 = n - n % 16
    for k in range(0, n16, 16):
        for j in range(16):
            v = row[k + j]
            acc[j] = v if v > acc[j] else acc[j]
    m = acc[0]
    for j in range(1, 16):
        if acc[j] > m:
            m = acc[j]
    for k in range(n16, n):
        if row[k] > m:
            m = row[k]
    return m


def _softmax_xent_forward(nll, lse, logits, y):
    """Per-row log-sum-exp and negative log-likelihood; returns their sum (float64).

    nll (R,) out, lse (R,) out, logits (R,V), y (R,) int32 (y < 0: row not scored, nll = 0).
    """
    R = logits.shape[0]
    V = logits.shape[1]
    for r in prange(R):
        row = logits[r]
        m = row_max(row)
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
    # scale > 0 (a mean over scored positions): folded into the exponent, exp(x - lse + ln scale),
    # and the copy multiplies by 1 (scale <= 0: by scale itself)
    log_scale, mult = (math.log(scale), 1.0) if scale > 0.0 else (0.0, scale)
    for r in prange(R):
        d = dlogits[r]
        if y[r] < 0:
            for k in range(V):
                d[k] = 0.0
            continue
        ex = np.empty(V, logits.dtype)  # this thread's row: dlogits may be logits (see exp_shifted)
        exp_shifted(ex, logits[r], lse[r] - log_scale)
        for k in range(V):
            d[k] = ex[k] * mult
        d[y[r]] -= scale


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
