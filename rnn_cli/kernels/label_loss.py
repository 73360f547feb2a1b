"""The classification loss: softmax over K labels and the weighted mean cross-entropy of a batch.

    p_b = softmax(z_b),   loss = sum_b w_b (-log p_b[y_b]) / sum_b w_b

w_b is the example's weight: 1 everywhere gives the plain mean over the batch; with
`--class-weight balanced` the weight of label k is N / (K n_k) (scikit-learn's "balanced"), and
the division by sum_b w_b is torch's CrossEntropyLoss(weight=..., reduction="mean"). Backward:
dz_b = w_b (p_b - onehot(y_b)) / sum_b w_b. The log-sum-exp subtracts the row maximum and is
summed in float64 whatever the logits' type.

`linear_rows` gives inference its logits z = W u + b row by row.

Layouts: logits, probs, dlogits (B, K) float32/float64; y (B,) int32 in [0, K); w (B,) float64
(non-negative, positive sum); nll (B,) float64.
"""

from __future__ import annotations

import math

from rnn_cli.kernels._jit import njit


@njit
def linear_rows(z, u, W, bias):
    """z[b] = W u[b] + bias for every row, each summed in float64 in one fixed order: a row's
    logits do not depend on the rows beside it (BLAS blocks a product differently for another
    number of rows, which moves the last bits), so a line's probabilities do not depend on the
    block it was classified in. u (B, F), W (K, F), bias (K,), z (B, K)."""
    for b in range(z.shape[0]):
        ub = u[b]
        for k in range(W.shape[0]):
            w = W[k]
            s = 0.0
            for i in range(W.shape[1]):
                s += ub[i] * w[i]
            z[b, k] = s + bias[k]


@njit
def softmax_rows(probs, logits):
    """probs[b] = softmax(logits[b]) for every row (prediction: no labels needed)."""
    B = logits.shape[0]
    K = logits.shape[1]
    for b in range(B):
        z = logits[b]
        m = z[0]
        for k in range(1, K):
            m = z[k] if z[k] > m else m
        s = 0.0
        for k in range(K):
            s += math.exp(z[k] - m)
        for k in range(K):
            probs[b, k] = math.exp(z[k] - m) / s


@njit
def label_xent_forward(nll, probs, logits, y, w):
    """Writes probs (B, K) and nll (B,) = -log p_b[y_b]; returns the weighted mean loss."""
    B = logits.shape[0]
    K = logits.shape[1]
    total = 0.0
    wsum = 0.0
    for b in range(B):
        z = logits[b]
        m = z[0]
        for k in range(1, K):
            m = z[k] if z[k] > m else m
        s = 0.0
        for k in range(K):
            s += math.exp(z[k] - m)
        lse = m + math.log(s)
        for k in range(K):
            probs[b, k] = math.exp(z[k] - lse)
        nll[b] = lse - z[y[b]]
        total += w[b] * nll[b]
        wsum += w[b]
    return total / wsum


@njit
def label_xent_backward(dlogits, probs, y, w):
    """Writes dlogits (B, K) = w_b (probs_b - onehot(y_b)) / sum w (dlogits may be probs)."""
    B = probs.shape[0]
    K = probs.shape[1]
    wsum = 0.0
    for b in range(B):
        wsum += w[b]
    for b in range(B):
        c = w[b] / wsum
        for k in range(K):
            dlogits[b, k] = c * probs[b, k]
        dlogits[b, y[b]] -= c
