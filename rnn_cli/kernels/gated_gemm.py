"""GRU and LSTM recurrences with each step's recurrent product done by BLAS (kernels/blas.py).

Same cells, layouts and results as `gru.py` and `lstm.py` (whose docstrings give the equations);
as for the RNN (`cell.rnn_forward_gemm`), the batch is cut into `nchunks` slices, one per thread,
each running the whole window, and the forward pass reads a contiguous copy of W_aa^T, WT (H, G*H).
The products land straight in the stored gate rows (ldc = 4H or 5H); the nonlinearities then run
as vectorisable loops (float32: the rational tanh of `cell.tanh32` and
sigmoid(x) = (1 + tanh(x/2)) / 2; float64: the exact math functions, for the tests).
"""

from __future__ import annotations

import math

import numpy as np

from rnn_cli.kernels._jit import njit, njit_parallel, prange
from rnn_cli.kernels.blas import step_gemm
from rnn_cli.kernels.cell import _active_end_jit, _chunk_bounds, input_row, tanh32
from rnn_cli.kernels.gru import gru_lane_backward
from rnn_cli.kernels.lstm import lstm_lane_backward

# float32 constants: a Python float literal is a float64 in numba, and would promote the float32
# gate math to float64 (twice the vector width's work, and a float64 division in tanh32)
_HALF32, _ONE32 = np.float32(0.5), np.float32(1.0)


@njit
def _gates_forward(g, c_prev, c_out, h_out, H):
    """g (5H,) holds the 4 pre-activations; writes the gates, tanh(c), c<t>, h<t> (one stream)."""
    if g.itemsize == 4:
        for i in range(H):
            ig = _HALF32 + _HALF32 * tanh32(_HALF32 * g[i])
            fg = _HALF32 + _HALF32 * tanh32(_HALF32 * g[H + i])
            gg = tanh32(g[2 * H + i])
            og = _HALF32 + _HALF32 * tanh32(_HALF32 * g[3 * H + i])
            cc = fg * c_prev[i] + ig * gg
            tc = tanh32(cc)
            g[i] = ig
            g[H + i] = fg
            g[2 * H + i] = gg
            g[3 * H + i] = og
            g[4 * H + i] = tc
            c_out[i] = cc
            h_out[i] = og * tc
    else:
        for i in range(H):
            ig = 1.0 / (1.0 + math.exp(-g[i]))
            fg = 1.0 / (1.0 + math.exp(-g[H + i]))
            gg = math.tanh(g[2 * H + i])
            og = 1.0 / (1.0 + math.exp(-g[3 * H + i]))
            cc = fg * c_prev[i] + ig * gg
            tc = math.tanh(cc)
            g[i] = ig
            g[H + i] = fg
            g[2 * H + i] = gg
            g[3 * H + i] = og
            g[4 * H + i] = tc
            c_out[i] = cc
            h_out[i] = og * tc


def _lstm_forward_gemm(a, c, gates, xa, tab, x, WT, nchunks, steps):
    """As `lstm.lstm_forward` (WT = W_aa^T, (H, 4H)), with one gemm per step and slice; tab, x
    and steps (B,) as in `cell.rnn_forward_gemm` (a lane past its end: a<t> = c<t> = 0)."""
    T, B, H = xa.shape[0], xa.shape[1], a.shape[2]
    single, isz = a.itemsize == 4, a.itemsize
    ap, gp, w = a.ctypes.data, gates.ctypes.data, WT.ctypes.data
    for ch in prange(nchunks):
        b0, b1 = _chunk_bounds(B, nchunks, ch)
        if b1 > b0:
            for t in range(T):
                e = _active_end_jit(steps, b0, b1, t)
                for b in range(b0, e):
                    g = gates[t, b]
                    pre = input_row(xa, tab, x, t, b)
                    for k in range(4 * H):
                        g[k] = pre[k]
                if e > b0:
                    step_gemm(single, e - b0, 4 * H, H, ap + (t * B + b0) * H * isz, H,
                              w, 4 * H, 1.0, gp + (t * B + b0) * 5 * H * isz, 5 * H)
                for b in range(b0, b1):
                    if steps[b] > t:
                        _gates_forward(gates[t, b], c[t, b], c[t + 1, b], a[t + 1, b], H)
                    else:
                        a[t + 1, b, :] = 0.0
                        c[t + 1, b, :] = 0.0


def _lstm_backward_gemm(dz, dnext, dcnext, da, c, gates, W_aa, nchunks):
    """As `lstm.lstm_backward`, with dnext = dz<t> W_aa as one gemm per step and slice."""
    T, B, H = da.shape[0], da.shape[1], da.shape[2]
    single, isz = da.itemsize == 4, da.itemsize
    zp, npp, w = dz.ctypes.data, dnext.ctypes.data, W_aa.ctypes.data
    for ch in prange(nchunks):
        b0, b1 = _chunk_bounds(B, nchunks, ch)
        if b1 > b0:
            for b in range(b0, b1):
                for i in range(H):
                    dnext[b, i] = 0.0
                    dcnext[b, i] = 0.0
            for t in range(T - 1, -1, -1):
                for b in range(b0, b1):
                    gt = gates[t, b]
                    up = da[t, b]
                    d = dz[t, b]
                    nxt = dnext[b]
                    cnx = dcnext[b]
                    cp = c[t, b]
                    lstm_lane_backward(d, nxt, cnx, up, cp, gt, H)
                if t > 0:
                    step_gemm(single, b1 - b0, H, 4 * H, zp + (t * B + b0) * 4 * H * isz, 4 * H,
                              w, H, 0.0, npp + b0 * H * isz, H)


lstm_forward_gemm = njit_parallel(_lstm_forward_gemm)
lstm_backward_gemm = njit_parallel(_lstm_backward_gemm)
lstm_forward_gemm_serial = njit(_lstm_forward_gemm)
lstm_backward_gemm_serial = njit(_lstm_backward_gemm)


@njit
def _sig(x):
    """sigmoid of a float32 in float32: (1 + tanh(x/2)) / 2."""
    return _HALF32 + _HALF32 * tanh32(_HALF32 * x)


@njit
def _gru_gates_forward(g, pre, b_hn, prev, out, H):
    """g (4H,) holds the 3 recurrent products; writes [r, z, n, hn] and h<t> (one stream)."""
    if g.itemsize == 4:
        for i in range(H):
            hn = g[2 * H + i] + b_hn[i]
            r = _sig(pre[i] + g[i])
            z = _sig(pre[H + i] + g[H + i])
            n = tanh32(pre[2 * H + i] + r * hn)
            g[i] = r
            g[H + i] = z
            g[2 * H + i] = n
            g[3 * H + i] = hn
            out[i] = (_ONE32 - z) * n + z * prev[i]
    else:
        for i in range(H):
            hn = g[2 * H + i] + b_hn[i]
            r = 1.0 / (1.0 + math.exp(-(pre[i] + g[i])))
            z = 1.0 / (1.0 + math.exp(-(pre[H + i] + g[H + i])))
            n = math.tanh(pre[2 * H + i] + r * hn)
            g[i] = r
            g[H + i] = z
            g[2 * H + i] = n
            g[3 * H + i] = hn
            out[i] = (1.0 - z) * n + z * prev[i]


def _gru_forward_gemm(a, gates, xa, tab, x, WT, b_hn, nchunks, steps):
    """As `gru.gru_forward` (WT = W_aa^T, (H, 3H)), with one gemm per step and slice; tab, x and
    steps (B,) as in `cell.rnn_forward_gemm` (a lane past its end: a<t> = 0)."""
    T, B, H = xa.shape[0], xa.shape[1], a.shape[2]
    single, isz = a.itemsize == 4, a.itemsize
    ap, gp, w = a.ctypes.data, gates.ctypes.data, WT.ctypes.data
    for ch in prange(nchunks):
        b0, b1 = _chunk_bounds(B, nchunks, ch)
        if b1 > b0:
            for t in range(T):
                e = _active_end_jit(steps, b0, b1, t)
                if e > b0:
                    step_gemm(single, e - b0, 3 * H, H, ap + (t * B + b0) * H * isz, H,
                              w, 3 * H, 0.0, gp + (t * B + b0) * 4 * H * isz, 4 * H)
                for b in range(b0, b1):
                    if steps[b] > t:
                        _gru_gates_forward(gates[t, b], input_row(xa, tab, x, t, b), b_hn,
                                           a[t, b], a[t + 1, b], H)
                    else:
                        a[t + 1, b, :] = 0.0


def _gru_backward_gemm(dz, dhh, dnext, da, a, gates, W_aa, nchunks):
    """As `gru.gru_backward`, with dnext += dhh<t> W_aa as one gemm per step and slice."""
    T, B, H = da.shape[0], da.shape[1], da.shape[2]
    single, isz = da.itemsize == 4, da.itemsize
    hp, npp, w = dhh.ctypes.data, dnext.ctypes.data, W_aa.ctypes.data
    for ch in prange(nchunks):
        b0, b1 = _chunk_bounds(B, nchunks, ch)
        if b1 > b0:
            for b in range(b0, b1):
                for i in range(H):
                    dnext[b, i] = 0.0
            for t in range(T - 1, -1, -1):
                for b in range(b0, b1):
                    prev = a[t, b]
                    gt = gates[t, b]
                    up = da[t, b]
                    d = dz[t, b]
                    dh2 = dhh[t, b]
                    nxt = dnext[b]
                    gru_lane_backward(d, dh2, nxt, up, prev, gt, H)
                if t > 0:
                    step_gemm(single, b1 - b0, H, 3 * H, hp + (t * B + b0) * 3 * H * isz, 3 * H,
                              w, H, 1.0, npp + b0 * H * isz, H)


gru_forward_gemm = njit_parallel(_gru_forward_gemm)
gru_backward_gemm = njit_parallel(_gru_backward_gemm)
gru_forward_gemm_serial = njit(_gru_forward_gemm)
gru_backward_gemm_serial = njit(_gru_backward_gemm)
