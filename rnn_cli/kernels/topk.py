"""The K best tokens of every row of logits, with their log-probabilities: the expansion step of
the translator's beam search (`tasks/translate/decode.py`), without forming the full log-softmax
rows or sorting them.

    lse[l] = log sum_v exp(z[l, v]);   tok[l] = the K largest z[l, :], best first, ties by the
    lower token id;   logp[l, j] = z[l, tok[l, j]] - lse[l]

Per row, one pass of exponentials (`output.exp_shifted`) and one pass that keeps a sorted list of
K: an element enters only when it beats the list's last, so most cost one comparison (K = 1, greedy
decoding: a scan for the first position equal to the row's maximum). A row with fewer than K
tokens fills the rest with token -1 and log-probability -inf.

Layouts: logits (L, V) float32 (float64 in the tests), tok (L, K) int32, logp (L, K) float64,
lse (L,) float64.
"""

from __future__ import annotations

import math

import numpy as np

from rnn_cli.kernels._jit import njit_parallel, prange
from rnn_cli.kernels.output import exp_shifted, row_max


def _topk_rows(tok, logp, lse, logits):
    """Write tok, logp, lse (module docstring) for every row of logits."""
    L, V, K = logits.shape[0], logits.shape[1], tok.shape[1]
    for r in prange(L):
        row = logits[r]
        m = row_max(row)
        ex = np.empty(V, logits.dtype)  # this thread's row of exponentials
        exp_shifted(ex, row, m)
        s = 0.0
        for v in range(V):
            s += ex[v]
        lse[r] = m + math.log(s)
        best = np.empty(K, np.float64)
        ids = tok[r]
        n = 0
        if K == 1:  # greedy: the first position of the maximum
            for v in range(V):
                if row[v] == m:
                    best[0] = row[v]
                    ids[0] = v
                    n = 1
                    break
        for v in range(V if n == 0 else 0):
            x = row[v]
            if n == K and x <= best[K - 1]:
                continue
            p = n if n < K else K - 1  # insert after every value >= x (ties: lower ids first)
            while p > 0 and best[p - 1] < x:
                best[p] = best[p - 1]
                ids[p] = ids[p - 1]
                p -= 1
            best[p] = x
            ids[p] = v
            if n < K:
                n += 1
        for j in range(K):
            if j < n:
                logp[r, j] = best[j] - lse[r]
            else:
                ids[j] = -1
                logp[r, j] = -math.inf


topk_rows = njit_parallel(_topk_rows)
