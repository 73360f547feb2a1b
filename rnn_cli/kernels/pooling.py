"""Pooling over time within lengths: a batch's encoder states (T, B, W) -> one vector per lane
(B, W), over the real positions t < len_b only (the classifier's `--pool`).

    mean   out[b] = (1 / len_b) sum_{t < len_b} x[t, b]
    max    out[b, i] = max_{t < len_b} x[t, b, i]; argmax[b, i] keeps the first t reaching it
    last   out[b, :split] = x[len_b - 1, b, :split], out[b, split:] = x[0, b, split:]:
           a bidirectional encoder's forward states end at len_b - 1 and its reverse states at
           position 0, so `split` = H gives [forward final; reverse final] (split = W: the last
           real position for every column, a unidirectional encoder)

Backward writes (overwrites) dx over the whole (T, B, W), exactly zero at every position the
pooling did not read, padding included: the gradient of max goes to the argmax only (a
subgradient at ties, to the first maximum, as torch's max does).

Layouts: x, dx (T, B, W), out, dout (B, W), argmax (B, W) int32, lengths (B,) int32 in [1, T].
"""

from __future__ import annotations

from rnn_cli.kernels._jit import njit

MEAN, MAX, LAST = 0, 1, 2
MODES = {"mean": MEAN, "max": MAX, "last": LAST}


@njit
def pool_forward(out, argmax, x, lengths, mode, split):
    """Writes out (B, W) (and argmax (B, W) for max) from x (T, B, W) within lengths."""
    B = x.shape[1]
    W = x.shape[2]
    for b in range(B):
        n = lengths[b]
        o = out[b]
        if mode == MEAN:
            for i in range(W):
                o[i] = 0.0
            for t in range(n):
                row = x[t, b]
                for i in range(W):
                    o[i] += row[i]
            inv = 1.0 / n
            for i in range(W):
                o[i] *= inv
        elif mode == MAX:
            for i in range(W):
                o[i] = x[0, b, i]
                argmax[b, i] = 0
            for t in range(1, n):
                row = x[t, b]
                for i in range(W):
                    if row[i] > o[i]:
                        o[i] = row[i]
                        argmax[b, i] = t
        else:
            for i in range(W):
                o[i] = x[n - 1, b, i] if i < split else x[0, b, i]


@njit
def pool_backward(dx, dout, argmax, lengths, mode, split):
    """Writes dx (T, B, W): the gradient of the pooled vectors dout (B, W) at x, zero wherever
    the pooling did not read."""
    T = dx.shape[0]
    B = dx.shape[1]
    W = dx.shape[2]
    for t in range(T):
        for b in range(B):
            row = dx[t, b]
            for i in range(W):
                row[i] = 0.0
    for b in range(B):
        n = lengths[b]
        d = dout[b]
        if mode == MEAN:
            inv = 1.0 / n
            for t in range(n):
                row = dx[t, b]
                for i in range(W):
                    row[i] = d[i] * inv
        elif mode == MAX:
            for i in range(W):
                dx[argmax[b, i], b, i] = d[i]
        else:
            for i in range(W):
                if i < split:
                    dx[n - 1, b, i] += d[i]
                else:
                    dx[0, b, i] += d[i]
