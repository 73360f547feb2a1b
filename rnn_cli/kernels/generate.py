"""Sampling and scoring steps for every cell (rnn, gru, lstm), depth and input kind (one-hot or
embedding): one compiled step of the stacked network that dispatches on a cell code, and the fused
generate loop built on it (the same shape as `sampling.rnn_generate`, which stays the fast path of
the seed's plain RNN without embedding).

Randomness never lives here: the caller passes one uniform per token.

    state   (S*L, H)   rows 0..L-1: h of each layer; rows L..2L-1: c of each LSTM layer (S = 2)
    W_emb   (V, E)     embedding, or (0, 0) without one
    W_ax0   (G*H, V) one-hot input, or (G*H, E) after an embedding
    W_ax_up (L-1, G*H, H),  W_aa (L, G*H, H),  b_a (L, G*H)
    b_hn    (L, H)     the GRU candidate's recurrent bias, or (0, 0) for other cells
    xin (G*H,), tmp (H,) scratch
"""

from __future__ import annotations

import math

from rnn_cli.kernels._jit import njit
from rnn_cli.kernels.cell import TANH
from rnn_cli.kernels.gru import gru_step
from rnn_cli.kernels.lstm import lstm_step
from rnn_cli.kernels.sampling import draw_token, output_logits

RNN = 0
GRU = 1
LSTM = 2
CELL_CODES = {"rnn": RNN, "gru": GRU, "lstm": LSTM}


@njit
def _rnn_cell_step(h, xin, W_aa, act, tmp):
    H = h.shape[0]
    for i in range(H):
        s = xin[i]
        r = W_aa[i]
        for j in range(H):
            s += r[j] * h[j]
        tmp[i] = math.tanh(s) if act == TANH else (s if s > 0.0 else 0.0)
    for i in range(H):
        h[i] = tmp[i]


@njit
def stack_step(cell, state, x, W_emb, W_ax0, W_ax_up, W_aa, b_a, b_hn, act, xin, tmp):
    """Advance the stacked network's state (S*L, H) by one input token x (x < 0: zero vector)."""
    L = W_aa.shape[0]
    GH = W_aa.shape[1]
    H = state.shape[1]
    E = W_emb.shape[1]
    for l in range(L):
        if l == 0:
            if W_emb.shape[0] > 0:
                for k in range(GH):
                    s = b_a[0, k]
                    if x >= 0:
                        w = W_ax0[k]
                        e = W_emb[x]
                        for j in range(E):
                            s += w[j] * e[j]
                    xin[k] = s
            else:
                for k in range(GH):
                    xin[k] = b_a[0, k] + (W_ax0[k, x] if x >= 0 else 0.0)
        else:
            below = state[l - 1]
            for k in range(GH):
                s = b_a[l, k]
                w = W_ax_up[l - 1, k]
                for j in range(H):
                    s += w[j] * below[j]
                xin[k] = s
        if cell == GRU:
            gru_step(state[l], xin, W_aa[l], b_hn[l], tmp)
        elif cell == LSTM:
            lstm_step(state[l], state[L + l], xin, W_aa[l], tmp)
        else:
            _rnn_cell_step(state[l], xin, W_aa[l], act, tmp)


@njit
def stack_feed(cell, state, ids, W_emb, W_ax0, W_ax_up, W_aa, b_a, b_hn, act, xin, tmp):
    """Feed known tokens through the network (priming); updates `state`."""
    for t in range(ids.shape[0]):
        stack_step(cell, state, ids[t], W_emb, W_ax0, W_ax_up, W_aa, b_a, b_hn, act, xin, tmp)


@njit
def stack_generate(out, uniforms, cell, state, x0, W_emb, W_ax0, W_ax_up, W_aa, b_a, b_hn, act,
                   W_ya, b_y, temperature, top_k, top_p, greedy, ban_id, stop_id, logits, probs,
                   scratch, xin, tmp):
    """Draw up to len(out) tokens, starting by feeding x0; stops early after drawing `stop_id`.

    Same contract as `sampling.rnn_generate`: returns the number drawn; the last drawn token has
    not been fed back yet (the caller passes it as x0 of the next chunk).
    """
    L = W_aa.shape[0]
    x = x0
    for n in range(out.shape[0]):
        stack_step(cell, state, x, W_emb, W_ax0, W_ax_up, W_aa, b_a, b_hn, act, xin, tmp)
        output_logits(logits, state[L - 1], W_ya, b_y)
        x = draw_token(probs, logits, temperature, top_k, top_p, greedy, ban_id, uniforms[n],
                       scratch)
        out[n] = x
        if x == stop_id:
            return n + 1
    return out.shape[0]
