"""Pure-NumPy float64 twins of the translator's kernels: attention (dot, general, additive), the
attentional decoder (GRU / LSTM, teacher forced) with its loss, and one decoding step.

Same rules as `tests/reference.py`: obvious and slow, written from the equations in
`rnn_cli/kernels/attention.py` and `kernels/decoder.py`, no numba, no kernels; every function
returns new float64 arrays. Parameters come as a dict of arrays named as the decoder's
(`rnn_cli/tasks/translate/decoder.py`).
"""

from __future__ import annotations

import numpy as np

from reference import _f64


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def ref_attend(s, enc, n, kind, p):
    """(alpha (S,), ctx (D,)) of one lane: s (H,) the decoder state, enc (S, D), n its length."""
    s, enc = _f64(s), _f64(enc)
    S = enc.shape[0]
    alpha = np.zeros(S)
    if n <= 0:
        return alpha, np.zeros(enc.shape[1])
    h = enc[:n]
    if kind == "dot":
        e = h @ s
    elif kind == "general":
        e = (h @ _f64(p["W_a"]).T) @ s
    else:
        q = _f64(p["W_q"]) @ s
        k = h @ _f64(p["W_k"]).T + _f64(p["b_k"])
        e = np.tanh(q + k) @ _f64(p["v"])
    w = np.exp(e - e.max())
    alpha[:n] = w / w.sum()
    return alpha, alpha[:n] @ h


def ref_attention(s, enc, src_len, kind, p):
    """Batched `ref_attend`: s (B, H), enc (S, B, D) -> alpha (B, S), ctx (B, D)."""
    out = [ref_attend(s[b], np.asarray(enc)[:, b], int(src_len[b]), kind, p)
           for b in range(np.asarray(s).shape[0])]
    return np.array([a for a, _ in out]), np.array([c for _, c in out])


# ------------------------------------------------------------------------------------ decoder


def _cell(cell, x_terms, s, c, p):
    """One step: x_terms = the input terms (G*H,) with biases; returns (s_new, c_new)."""
    H = s.shape[0]
    hh = _f64(p["W_aa"]) @ s
    if cell == "gru":
        r = _sigmoid(x_terms[:H] + hh[:H])
        z = _sigmoid(x_terms[H:2 * H] + hh[H:2 * H])
        n = np.tanh(x_terms[2 * H:] + r * (hh[2 * H:] + _f64(p["b_hn"])))
        return (1.0 - z) * n + z * s, c
    g = x_terms + hh
    i, f, o = _sigmoid(g[:H]), _sigmoid(g[H:2 * H]), _sigmoid(g[3 * H:])
    c_new = f * c + i * np.tanh(g[2 * H:3 * H])
    return o * np.tanh(c_new), c_new


def ref_decoder_init(fin, p):
    """s0 = tanh(W_br fin + b_br) per lane: fin (B, Df) -> (B, H)."""
    return np.tanh(_f64(fin) @ _f64(p["W_br"]).T + _f64(p["b_br"]))


def ref_decoder_step(cell, kind, y_prev, s, c, enc, n, p, out_mask=1.0):
    """One step of one lane: returns (s_new, c_new, alpha, ctx, logits).

    e = W_emb[y_prev] (zeros for y_prev < 0); ctx from the attention of s (the previous state);
    input [e; ctx]; logits = W_ya [s_new; ctx; e] + b_y, or with W_o in p (the projection)
    W_ya o + b_y, o = tanh(W_o [s_new; ctx; e] + b_o) * out_mask; without W_ya in p the output
    matrix is p["W_out"] (the tied embedding, undropped).
    """
    W_emb = _f64(p["W_emb"])
    e = W_emb[y_prev] if y_prev >= 0 else np.zeros(W_emb.shape[1])
    if kind == "none":
        alpha, ctx = np.zeros(np.asarray(enc).shape[0]), np.zeros(0)
    else:
        alpha, ctx = ref_attend(s, enc, n, kind, p)
    x_terms = _f64(p["W_ax"]) @ e + _f64(p["b_a"])
    if ctx.size:
        x_terms = x_terms + _f64(p["W_cx"]) @ ctx
    s_new, c_new = _cell(cell, x_terms, _f64(s), _f64(c), p)
    feat = np.concatenate([s_new, ctx, e])
    if "W_o" in p:  # the output projection o = tanh(W_o feat + b_o), dropped out by out_mask
        feat = np.tanh(_f64(p["W_o"]) @ feat + _f64(p["b_o"])) * out_mask
    W_out = _f64(p["W_ya"]) if "W_ya" in p else _f64(p["W_out"])  # W_out: the tied W_emb
    return s_new, c_new, alpha, ctx, W_out @ feat + _f64(p["b_y"])


def ref_decoder_loss(cell, kind, enc, src_len, fin, y_in, y_out, p, emb_mask=None, eps=0.0,
                     out_mask=None):
    """Mean negative log-likelihood over the real target tokens (y_out >= 0) of a teacher-forced
    batch: enc (S, B, D), fin (B, Df), y_in / y_out (T, B) int; also (logits (T, B, V), alpha
    (T, B, S)). emb_mask (T, B, E) multiplies the target embeddings (dropout), if given; eps:
    label smoothing, each token's loss (1 - eps) nll + eps mean_v (-log p[v]); out_mask (T, B, P)
    multiplies the projection's output. A tied model (no W_ya) reads W_emb as its output matrix."""
    if "W_ya" not in p:
        p = dict(p, W_out=p["W_emb"])
    enc = _f64(enc)
    T, B = np.asarray(y_in).shape
    s0 = ref_decoder_init(fin, p)
    H = s0.shape[1]
    V = np.asarray(p["b_y"]).shape[0]
    logits = np.zeros((T, B, V))
    alpha = np.zeros((T, B, enc.shape[0]))
    total, count = 0.0, 0
    for b in range(B):
        s, c = s0[b], np.zeros(H)
        for t in range(T):
            if y_out[t, b] < 0:
                continue
            q = dict(p)
            if emb_mask is not None:  # the dropped-out embedding of this position
                q["W_emb"] = np.array(_f64(p["W_emb"]))
                if y_in[t, b] >= 0:
                    q["W_emb"][y_in[t, b]] = _f64(p["W_emb"])[y_in[t, b]] * emb_mask[t, b]
            om = 1.0 if out_mask is None else _f64(out_mask[t, b])
            s, c, alpha[t, b], _, logits[t, b] = ref_decoder_step(
                cell, kind, int(y_in[t, b]), s, c, enc[:, b], int(src_len[b]), q, om)
            row = logits[t, b]
            m = row.max()
            lse = m + np.log(np.exp(row - m).sum())
            total += (1.0 - eps) * (lse - row[y_out[t, b]]) + eps * (lse - row.mean())
            count += 1
    return total / max(count, 1), logits, alpha
