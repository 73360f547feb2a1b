"""Attention over encoder states, forward and backward: Luong's dot and general, Bahdanau's additive.

For lane b, a query q (one per decoder step) and the encoder states h_j = enc[j, b] (D,) at the
source positions j < n_b = src_len[b] (positions past a source's end get weight exactly 0):

    dot       e_j = q . h_j                     q = s<t-1> (needs D == H), keys = enc itself
    general   e_j = q . k_j,   k_j = W_a h_j    q = s<t-1>                   (Luong et al. 2015)
    additive  e_j = v . tanh(q + k_j),          q = W_q s<t-1>, k_j = W_k h_j + b_k  (Bahdanau 2015)
    alpha_j = exp(e_j - max e) / sum_{i < n_b} exp(e_i - max e),   ctx = sum_j alpha_j h_j

The keys k_j do not depend on the decoder, so they are formed once per batch for every position by
one window-sized product (`keys_forward`: keys = enc W^T + b), and their gradient goes back through
one product after the decoder's time loop (`keys_backward`); inside the loop only the per-lane work
is left (`attend_lane` / `attend_lane_backward`, called by the batched kernels below and by the
decoder, `kernels/decoder.py`). The additive scores' tanh(q + k_j) are not stored: the backward pass
recomputes them (S*A values a step and lane; storing them for a window would take T*B*S*A floats).

Backward, from dctx (D,):  dalpha_j = dctx . h_j,   de_j = alpha_j (dalpha_j - sum_i alpha_i dalpha_i)
    denc_j += alpha_j dctx;   bilinear: dq += de_j k_j, dk_j += de_j q
    additive: u_j = tanh(q + k_j): dv += de_j u_j, dq += de_j v (1 - u_j^2), dk_j += the same
All gradients accumulate (+=). With dot attention the keys are the encoder states, so the caller
passes denc as dkeys too (both are sums, so the aliasing is harmless).

Layouts (C-contiguous; float32 in use, float64 in the tests):
    enc (S, B, D), keys (S, B, K) with K = D (dot), H (general), A (additive); src_len (B,) int32
    query (B, K), alpha (B, S), ctx (B, D), v (A,) (additive; else empty)
    dv (B, A): one row per lane, summed over lanes by the caller (threads never share a row)
"""

from __future__ import annotations

import math

from rnn_cli.kernels._jit import njit, njit_parallel, prange
from rnn_cli.kernels.cell import pgemm, tanh32

NONE = 0
DOT = 1
GENERAL = 2
ADDITIVE = 3
KINDS = {"none": NONE, "dot": DOT, "general": GENERAL, "additive": ADDITIVE}


@njit
def _score_additive(query, key, v):
    """v . tanh(query + key) for 1-D rows (float32: the vectorisable rational tanh)."""
    s = 0.0
    if query.itemsize == 4:
        for a in range(query.shape[0]):
            s += v[a] * tanh32(query[a] + key[a])
    else:
        for a in range(query.shape[0]):
            s += v[a] * math.tanh(query[a] + key[a])
    return s


@njit
def attend_lane(alpha, ctx, query, keys, enc, b, n, additive, v):
    """Attention of lane b: alpha (S,) and ctx (D,) written; query (K,), keys (S,B,K), enc (S,B,D),
    n = src_len[b] (clamped to S; n <= 0 gives alpha = 0 and ctx = 0)."""
    S = enc.shape[0]
    D = enc.shape[2]
    K = keys.shape[2]
    n = min(n, S)
    for j in range(S):
        alpha[j] = 0.0
    for i in range(D):
        ctx[i] = 0.0
    if n <= 0:
        return
    for j in range(n):
        key = keys[j, b]
        if additive:
            alpha[j] = _score_additive(query, key, v)
        else:
            s = 0.0
            for k in range(K):
                s += query[k] * key[k]
            alpha[j] = s
    m = alpha[0]
    for j in range(1, n):
        if alpha[j] > m:
            m = alpha[j]
    total = 0.0
    for j in range(n):
        alpha[j] = math.exp(alpha[j] - m)
        total += alpha[j]
    inv = 1.0 / total
    for j in range(n):
        alpha[j] *= inv
        w = alpha[j]
        h = enc[j, b]
        for i in range(D):
            ctx[i] += w * h[i]


@njit
def attend_lane_backward(dquery, dkeys, denc, dv, dctx, alpha, query, keys, enc, b, n, additive,
                         v):
    """Backward of `attend_lane` for lane b (module docstring): dquery (K,), dkeys (S,B,K),
    denc (S,B,D), dv (A,) accumulated; dctx (D,), alpha (S,) from forward, query, keys, enc, v."""
    S = enc.shape[0]
    D = enc.shape[2]
    K = keys.shape[2]
    n = min(n, S)
    if n <= 0:
        return
    g = 0.0
    for j in range(n):
        h = enc[j, b]
        s = 0.0
        for i in range(D):
            s += dctx[i] * h[i]
        g += alpha[j] * s
    for j in range(n):
        w = alpha[j]
        h = enc[j, b]
        s = 0.0
        for i in range(D):
            s += dctx[i] * h[i]
        de = w * (s - g)
        dh = denc[j, b]
        for i in range(D):
            dh[i] += w * dctx[i]
        key = keys[j, b]
        dk = dkeys[j, b]
        if additive:
            single = query.itemsize == 4
            for k in range(K):
                u = tanh32(query[k] + key[k]) if single else math.tanh(query[k] + key[k])
                dv[k] += de * u
                dp = de * v[k] * (1.0 - u * u)
                dquery[k] += dp
                dk[k] += dp
        else:
            for k in range(K):
                dquery[k] += de * key[k]
                dk[k] += de * query[k]


def _attention_forward(alpha, ctx, query, keys, enc, src_len, kind, v):
    """One query per lane: alpha (B,S), ctx (B,D) written; query (B,K). kind DOT/GENERAL/ADDITIVE."""
    B = enc.shape[1]
    for b in prange(B):
        attend_lane(alpha[b], ctx[b], query[b], keys, enc, b, src_len[b], kind == ADDITIVE, v)


def _attention_backward(dquery, dkeys, denc, dv, dctx, alpha, query, keys, enc, src_len, kind, v):
    """Backward of `attention_forward`: dquery (B,K), dkeys (S,B,K), denc (S,B,D), dv (B,A) all
    accumulated; dctx (B,D) in. Lanes are independent (prange, no shared writes)."""
    B = enc.shape[1]
    for b in prange(B):
        attend_lane_backward(dquery[b], dkeys, denc, dv[b], dctx[b], alpha[b], query[b], keys,
                             enc, b, src_len[b], kind == ADDITIVE, v)


# parallel builds only (no serial twins): each build of a kernel costs the test suite compile time
attention_forward = njit_parallel(_attention_forward)
attention_backward = njit_parallel(_attention_backward)


def keys_forward(keys, enc, W, b_k, nchunks):
    """keys = enc W^T + b_k for every position (one product for the batch; plain Python around
    `cell.pgemm`, so no compiled build of its own).

    keys (S,B,K) out, enc (S,B,D), W (K,D), b_k (K,) or empty (no bias: general attention).
    """
    S, B, K = keys.shape
    if not (keys.flags.c_contiguous and enc.flags.c_contiguous):
        raise ValueError("keys_forward needs C-contiguous keys and enc")
    k2 = keys.reshape(S * B, K)
    pgemm(k2, enc.reshape(S * B, enc.shape[2]), W, False, True, 1.0, 0.0, nchunks)
    if b_k.shape[0] > 0:
        k2 += b_k


def keys_backward(dW, db_k, denc, dkeys, enc, W, nchunks):
    """Gradients of `keys_forward`: dW (K,D) += dkeys^T enc, db_k (K,) += sum of dkeys rows (if
    not empty), denc (S,B,D) += dkeys W. dkeys (S,B,K) in (zero at positions past the ends)."""
    S, B, K = dkeys.shape
    D = enc.shape[2]
    if not all(x.flags.c_contiguous for x in (denc, dkeys, enc)):
        raise ValueError("keys_backward needs C-contiguous denc, dkeys and enc")
    d2 = dkeys.reshape(S * B, K)
    pgemm(dW, d2, enc.reshape(S * B, D), True, False, 1.0, 1.0, nchunks)
    pgemm(denc.reshape(S * B, D), d2, W, False, False, 1.0, 1.0, nchunks)
    if db_k.shape[0] > 0:
        db_k += d2.sum(axis=0)
