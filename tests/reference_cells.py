"""Pure-NumPy float64 twins of the gated-cell kernels (GRU, LSTM), the embedding, and the whole
stacked network with any cell, embedding, weight tying and dropout masks (issue 7).

Same rules as `tests/reference.py` (whose helpers this builds on): obvious and slow, written from
the cell equations, no numba, no kernels; every function returns new float64 arrays.
"""

from __future__ import annotations

import math

import numpy as np

from reference import _f64, _views, activation, onehot, ref_softmax


# ------------------------------------------------------------------------------------ gated cells
# GRU: PyTorch's formulation (reset gate applied to W_hn h + b_hn), blocks r, z, n.
# LSTM: PyTorch's, blocks i, f, g, o, no peepholes. See rnn_cli/kernels/gru.py and lstm.py.


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


def ref_gru_cell(h, xin, W_aa, b_hn):
    """One GRU step for one stream: returns (h_new, r, z, n, hn)."""
    h, xin, W_aa, b_hn = _f64(h), _f64(xin), _f64(W_aa), _f64(b_hn)
    H = h.shape[0]
    hh = W_aa @ h
    r = _sigmoid(xin[:H] + hh[:H])
    z = _sigmoid(xin[H:2 * H] + hh[H:2 * H])
    hn = hh[2 * H:] + b_hn
    n = np.tanh(xin[2 * H:] + r * hn)
    return (1.0 - z) * n + z * h, r, z, n, hn


def ref_gru_forward(a0, xa, W_aa, b_hn):
    """(a (T+1, B, H), gates (T, B, 4H) = [r, z, n, hn]) over a window."""
    xa = _f64(xa)
    T, B, _ = xa.shape
    H = np.asarray(a0).shape[-1]
    a = np.zeros((T + 1, B, H))
    gates = np.zeros((T, B, 4 * H))
    a[0] = a0
    for t in range(T):
        for b in range(B):
            a[t + 1, b], *g = ref_gru_cell(a[t, b], xa[t, b], W_aa, b_hn)
            gates[t, b] = np.concatenate(g)
    return a, gates


def ref_gru_backward(da, a, gates, W_aa):
    """(dz, dhh) (T, B, 3H): gradients of the input terms and of the recurrent products W_aa h."""
    da, a, gates, W_aa = _f64(da), _f64(a), _f64(gates), _f64(W_aa)
    T, B, H = da.shape
    dz = np.zeros((T, B, 3 * H))
    dhh = np.zeros((T, B, 3 * H))
    for b in range(B):
        dnext = np.zeros(H)
        for t in range(T - 1, -1, -1):
            r, z, n, hn = (gates[t, b, k * H:(k + 1) * H] for k in range(4))
            dh = da[t, b] + dnext
            dn_pre = dh * (1.0 - z) * (1.0 - n ** 2)
            dr_pre = dn_pre * hn * r * (1.0 - r)
            dz_pre = dh * (a[t, b] - n) * z * (1.0 - z)
            dz[t, b] = np.concatenate([dr_pre, dz_pre, dn_pre])
            dhh[t, b] = np.concatenate([dr_pre, dz_pre, dn_pre * r])
            dnext = dh * z + W_aa.T @ dhh[t, b]
    return dz, dhh


def ref_lstm_cell(h, c, xin, W_aa):
    """One LSTM step for one stream: returns (h_new, c_new, i, f, g, o, tanh(c_new))."""
    h, c, xin, W_aa = _f64(h), _f64(c), _f64(xin), _f64(W_aa)
    H = h.shape[0]
    s = xin + W_aa @ h
    i, f, o = _sigmoid(s[:H]), _sigmoid(s[H:2 * H]), _sigmoid(s[3 * H:])
    g = np.tanh(s[2 * H:3 * H])
    c_new = f * c + i * g
    return o * np.tanh(c_new), c_new, i, f, g, o, np.tanh(c_new)


def ref_lstm_forward(a0, c0, xa, W_aa):
    """(a (T+1, B, H), c (T+1, B, H), gates (T, B, 5H) = [i, f, g, o, tanh(c)]) over a window."""
    xa = _f64(xa)
    T, B, _ = xa.shape
    H = np.asarray(a0).shape[-1]
    a, c = np.zeros((T + 1, B, H)), np.zeros((T + 1, B, H))
    gates = np.zeros((T, B, 5 * H))
    a[0], c[0] = a0, c0
    for t in range(T):
        for b in range(B):
            a[t + 1, b], c[t + 1, b], *g = ref_lstm_cell(a[t, b], c[t, b], xa[t, b], W_aa)
            gates[t, b] = np.concatenate(g)
    return a, c, gates


def ref_lstm_backward(da, c, gates, W_aa):
    """dz (T, B, 4H): gradient of the input terms (= of the recurrent products) over a window."""
    da, c, gates, W_aa = _f64(da), _f64(c), _f64(gates), _f64(W_aa)
    T, B, H = da.shape
    dz = np.zeros((T, B, 4 * H))
    for b in range(B):
        dh_next, dc_next = np.zeros(H), np.zeros(H)
        for t in range(T - 1, -1, -1):
            i, f, g, o, tc = (gates[t, b, k * H:(k + 1) * H] for k in range(5))
            dh = da[t, b] + dh_next
            dc = dc_next + dh * o * (1.0 - tc ** 2)
            dz[t, b] = np.concatenate([dc * g * i * (1.0 - i), dc * c[t, b] * f * (1.0 - f),
                                       dc * i * (1.0 - g ** 2), dh * tc * o * (1.0 - o)])
            dc_next = dc * f
            dh_next = W_aa.T @ dz[t, b]
    return dz


def ref_embed_forward(W_emb, x):
    """e (T, B, E) = onehot(x) @ W_emb (zero rows for x < 0)."""
    return onehot(x, np.asarray(W_emb).shape[0]) @ _f64(W_emb)


def ref_cells_window_loss(params, cfg, x, y, state, masks=None):
    """Summed cross-entropy of one window of the stacked network for any cell, embedding, tying
    and dropout masks, written step by step from the cell equations (no kernels, no BLAS tricks).

    state (S*L, B, H): h of each layer, then (LSTM) c of each layer. masks: None or a list
    [m_emb (T,B,E) or None, m_1 .. m_{L-1} (T,B,H) for the inputs of upper layers, m_L (T,B,H)
    before the output layer]. Returns (loss, new state).
    """
    p = {k: _f64(v) for k, v in _views(params).items()}
    x, y = np.asarray(x), np.asarray(y)
    T, B = x.shape
    L, H, V = cfg.layers, cfg.hidden, cfg.vocab_size
    inp = ref_embed_forward(p["W_emb"], x) if cfg.embed else onehot(x, V)  # (T, B, E or V)
    if masks is not None and cfg.embed:
        inp = inp * masks[0]
    h = np.array(state[:L], dtype=np.float64)
    c = np.array(state[L:], dtype=np.float64)
    loss = 0.0
    for t in range(T):
        for b in range(B):
            below = inp[t, b]
            for layer in range(L):
                W_in = p["W_ax"] if layer == 0 else p["W_ax_up"][layer - 1]
                if layer > 0 and masks is not None:
                    below = below * masks[layer][t, b]
                xin = W_in @ below + p["b_a"][layer]
                if cfg.cell == "rnn":
                    h[layer, b] = activation(xin + p["W_aa"][layer] @ h[layer, b], cfg.activation)
                elif cfg.cell == "gru":
                    h[layer, b] = ref_gru_cell(h[layer, b], xin, p["W_aa"][layer],
                                               p["b_hn"][layer])[0]
                else:
                    h[layer, b], c[layer, b], *_ = ref_lstm_cell(h[layer, b], c[layer, b], xin,
                                                                 p["W_aa"][layer])
                below = h[layer, b]
            if masks is not None:
                below = below * masks[L][t, b]
            logits = p["W_ya"] @ below + p["b_y"]
            if y[t, b] >= 0:
                loss -= math.log(ref_softmax(logits)[y[t, b]])
    return loss, np.concatenate([h, c]) if cfg.cell == "lstm" else h


def ref_cells_step(params, cfg, state, x):
    """One sampling step of the stacked network from state (S*L, H) with input id x; new state."""
    st = np.asarray(state, np.float64)[:, None, :]
    xx = np.array([[x]])
    _, new = ref_cells_window_loss(params, cfg, xx, np.full((1, 1), -1), st)
    return new[:, 0, :]
