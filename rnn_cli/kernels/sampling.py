"""Sampling novel sequences from the seed's RNN: a<0> = 0, draw from y_hat, feed it back.

`rnn_generate` runs the whole loop in compiled code for a chunk of tokens (the caller streams the
chunks), so the cost per character is a few matrix-vector products, not a Python round trip.
Randomness never lives here: the caller passes one uniform in [0, 1) per token to draw.

Stacked layers use block layouts (views into the flat parameter buffer):
    a       (L, H)        hidden state per layer, in/out
    W_ax0   (H, V)        layer 0 input weights (one-hot input: a column gather)
    W_ax_up (L-1, H, H)   input weights of layers 1..L-1 (shape (0, H, H) for one layer)
    W_aa    (L, H, H),  b_a (L, H),  W_ya (V, H),  b_y (V,)
"""

from __future__ import annotations

import math

import numpy as np

from rnn_cli.kernels._jit import njit
from rnn_cli.kernels.cell import activate


@njit
def kth_largest(values, k, scratch, exclude=-1):
    """The k-th largest of `values` (k >= 1) leaving out index `exclude`, by quickselect on a copy
    in `scratch` (no allocation)."""
    n = values.shape[0]
    for i in range(n):
        scratch[i] = values[i]
    if exclude >= 0:
        scratch[exclude] = -np.inf
    lo = 0
    hi = n - 1
    want = k - 1  # index in descending order
    while lo < hi:
        pivot = scratch[(lo + hi) // 2]
        i = lo
        j = hi
        while i <= j:
            while scratch[i] > pivot:
                i += 1
            while scratch[j] < pivot:
                j -= 1
            if i <= j:
                tmp = scratch[i]
                scratch[i] = scratch[j]
                scratch[j] = tmp
                i += 1
                j -= 1
        if want <= j:
            hi = j
        elif want >= i:
            lo = i
        else:
            break
    return scratch[want]


@njit
def _sift_down(heap, i, n):
    """Restore the max-heap property of heap[:n] below position i."""
    while True:
        c = 2 * i + 1
        if c >= n:
            return
        if c + 1 < n and heap[c + 1] > heap[c]:
            c += 1
        if heap[c] <= heap[i]:
            return
        tmp = heap[i]
        heap[i] = heap[c]
        heap[c] = tmp
        i = c


@njit
def nucleus_cut(logits, cut, m, temperature, top_p, ban_id, scratch):
    """The smallest logit the nucleus keeps: walking the allowed logits >= `cut` from the largest
    down, the first at which the mass of exp((logit - m) / T) reaches top_p of their total.

    A max-heap in `scratch` (no allocation): O(V) to build, O(log V) per token of the nucleus, so a
    small nucleus costs about one pass over the vocabulary. Ties at the returned logit are kept by
    the caller (`logits >= cut`), as top-k keeps them.
    """
    V = logits.shape[0]
    n = 0
    total = 0.0
    for k in range(V):
        if k != ban_id and logits[k] >= cut:
            scratch[n] = logits[k]
            n += 1
            total += math.exp((logits[k] - m) / temperature)
    for i in range(n // 2 - 1, -1, -1):
        _sift_down(scratch, i, n)
    target = top_p * total
    acc = 0.0
    v = scratch[0]
    while n > 0:
        v = scratch[0]
        acc += math.exp((v - m) / temperature)
        if acc >= target:
            return v
        n -= 1
        scratch[0] = scratch[n]
        _sift_down(scratch, 0, n)
    return v  # rounding kept acc just below the target: every allowed token stays


@njit
def draw_token(probs, logits, temperature, top_k, top_p, greedy, ban_id, u, scratch):
    """Turn one row of logits into probabilities and draw a token with the uniform `u`.

    The order (documented in the README): ban_id gets 0; softmax(logits / T); top-k keeps the k
    largest allowed logits (ties included); top-p (nucleus, top_p < 1) then keeps the smallest set
    of the most probable remaining tokens whose renormalised mass reaches top_p (ties at the cut
    included); draw by inverse CDF with u. greedy: the first argmax of the allowed tokens.
    probs (V,) out: the distribution drawn from (unnormalised weights). Returns the token id.
    """
    V = logits.shape[0]
    best = -1
    for k in range(V):
        if k != ban_id and (best < 0 or logits[k] > logits[best]):
            best = k
    if greedy:
        return best
    cut = -math.inf
    if 0 < top_k < V:
        cut = kth_largest(logits, top_k, scratch, ban_id)
    m = logits[best]
    if top_p < 1.0:
        cut = nucleus_cut(logits, cut, m, temperature, top_p, ban_id, scratch)
    total = 0.0
    for k in range(V):
        if k == ban_id or logits[k] < cut:
            probs[k] = 0.0
        else:
            probs[k] = math.exp((logits[k] - m) / temperature)
            total += probs[k]
    target = u * total
    acc = 0.0
    last = best
    for k in range(V):
        if probs[k] > 0.0:
            acc += probs[k]
            last = k
            if acc > target:
                return k
    return last  # rounding left target just above the sum: take the last allowed token


@njit
def rnn_step(a, x, W_ax0, W_ax_up, W_aa, b_a, act, h_tmp):
    """Advance the stacked RNN state `a` (L,H) by one input token x (x < 0: the zero vector)."""
    L = a.shape[0]
    H = a.shape[1]
    for l in range(L):
        for i in range(H):
            s = b_a[l, i]
            if l == 0:
                if x >= 0:
                    s += W_ax0[i, x]
            else:
                w = W_ax_up[l - 1, i]
                for j in range(H):
                    s += w[j] * a[l - 1, j]
            r = W_aa[l, i]
            for j in range(H):
                s += r[j] * a[l, j]
            h_tmp[i] = s
        activate(h_tmp[:H], act)
        for i in range(H):
            a[l, i] = h_tmp[i]


@njit
def output_logits(logits, a_top, W_ya, b_y):
    """logits = W_ya a + b_y for one state (V,)."""
    V = W_ya.shape[0]
    H = W_ya.shape[1]
    for k in range(V):
        s = b_y[k]
        r = W_ya[k]
        for j in range(H):
            s += r[j] * a_top[j]
        logits[k] = s


@njit
def rnn_feed(a, ids, W_ax0, W_ax_up, W_aa, b_a, act, h_tmp):
    """Feed a sequence of known tokens through the network (priming); updates the state `a`."""
    for t in range(ids.shape[0]):
        rnn_step(a, ids[t], W_ax0, W_ax_up, W_aa, b_a, act, h_tmp)


@njit
def rnn_generate(out, uniforms, a, x0, W_ax0, W_ax_up, W_aa, b_a, W_ya, b_y, act,
                 temperature, top_k, top_p, greedy, ban_id, stop_id, logits, probs, scratch,
                 h_tmp):
    """Draw up to len(out) tokens, starting by feeding x0; stops early after drawing `stop_id`.

    out (N,) int32 out, uniforms (N,) float64, a (L,H) state in/out. Returns the number drawn; the
    last drawn token has not yet been fed back (the caller passes it as x0 of the next chunk).
    """
    x = x0
    for n in range(out.shape[0]):
        rnn_step(a, x, W_ax0, W_ax_up, W_aa, b_a, act, h_tmp)
        output_logits(logits, a[a.shape[0] - 1], W_ya, b_y)
        x = draw_token(probs, logits, temperature, top_k, top_p, greedy, ban_id, uniforms[n],
                       scratch)
        out[n] = x
        if x == stop_id:
            return n + 1
    return out.shape[0]
