"""Pure-NumPy float64 twins of the task models' pieces: the shared encoder (every cell, stacked,
bidirectional, ragged lengths), pooling over time and the classification loss.

Same rules as `tests/reference.py`: obvious and slow, no numba, no kernels. The encoder twin runs
each example on its own, from its first to its last real position, one step at a time from the
cell equations (`reference_cells.ref_gru_cell` / `ref_lstm_cell`), and the reverse direction on
the example's reversed copy: nothing of the kernels' padding, lane steps or in-place reversal.
"""

from __future__ import annotations

import math

import numpy as np

from reference import _f64, activation
from reference_cells import ref_gru_cell, ref_lstm_cell


# ------------------------------------------------------------------------------------ encoder
def ref_encoder(p, cell, hidden, layers, bidirectional, inp, lengths, masks=None, act="tanh",
                prefix="enc."):
    """(out (T, B, dirs*H), final_h (L, dirs, B, H), final_c (L, dirs, B, H)) of the encoder.

    p: {name: array} with the encoder's block names (rnn_cli/encoder.py). out is zero past each
    example's length; final_c is zero for the rnn and gru cells. masks: None or the list of
    per-layer input masks [(T, B, D), (T, B, dirs*H), ...] (multiplied in, as inverted dropout).
    """
    inp = _f64(inp)
    T, B, _ = inp.shape
    dirs, H = (2 if bidirectional else 1), hidden
    out = np.zeros((T, B, dirs * H))
    fh, fc = np.zeros((layers, dirs, B, H)), np.zeros((layers, dirs, B, H))
    for b in range(B):
        n = int(lengths[b])
        seq = inp[:n, b]
        for layer in range(layers):
            if masks is not None:
                seq = seq * _f64(masks[layer])[:n, b]
            outs = []
            for d in range(dirs):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                W_ax, W_aa, b_a = (_f64(p[f"{prefix}{k}{sfx}"]) for k in ("W_ax", "W_aa", "b_a"))
                h, c = np.zeros(H), np.zeros(H)
                states = []
                for x in (seq if d == 0 else seq[::-1]):
                    xin = W_ax @ x + b_a
                    if cell == "rnn":
                        h = activation(xin + W_aa @ h, act)
                    elif cell == "gru":
                        h = ref_gru_cell(h, xin, W_aa, _f64(p[f"{prefix}b_hn{sfx}"]))[0]
                    else:
                        h, c = ref_lstm_cell(h, c, xin, W_aa)[:2]
                    states.append(h)
                fh[layer, d, b], fc[layer, d, b] = h, c
                states = np.array(states)
                outs.append(states if d == 0 else states[::-1])
            seq = np.concatenate(outs, axis=1)
        out[:n, b] = seq
    return out, fh, fc


# ------------------------------------------------------------------------------------ pooling
def ref_pool(x, lengths, mode, split=None):
    """(B, W) pooled over each lane's real positions: mean, max, or last (columns [0, split) at
    position len-1, columns [split, W) at position 0: a bidirectional encoder's two ends)."""
    x = _f64(x)
    T, B, W = x.shape
    split = W if split is None else split
    out = np.zeros((B, W))
    for b in range(B):
        n = int(lengths[b])
        if mode == "mean":
            out[b] = x[:n, b].mean(axis=0)
        elif mode == "max":
            out[b] = x[:n, b].max(axis=0)
        else:
            out[b, :split] = x[n - 1, b, :split]
            out[b, split:] = x[0, b, split:]
    return out


# ------------------------------------------------------------------------ classification loss
def ref_label_xent(logits, y, w):
    """(loss, probs (B, K)): the weighted mean cross-entropy sum_i w_i (-log p_i[y_i]) /
    sum_i w_i over a batch of logits (B, K) with labels y (B,) and example weights w (B,)."""
    logits, w = _f64(logits), _f64(w)
    probs = np.zeros_like(logits)
    total = 0.0
    for i in range(logits.shape[0]):
        m = logits[i].max()
        e = np.exp(logits[i] - m)
        probs[i] = e / e.sum()
        total += w[i] * -(logits[i, y[i]] - m - math.log(e.sum()))
    return total / w.sum(), probs
