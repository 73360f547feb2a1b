"""The recurrent cells on the device (rnn, gru, lstm): twins of kernels/cell.py, gru.py, lstm.py.

A time step is two launches: the recurrent product of the whole batch as one matrix product
(`blas.py`: cuBLAS, or numba's tiled kernel), then one fused elementwise kernel over B*H threads
that adds the input terms (the whole window's, computed before the loop) and applies every gate.
The step is the sequential dependency, so the loop over t stays on the host (one pair of launches
per step, queued without synchronising; the trainer replays them as one CUDA graph, step.py).

    forward, step t:   hh = a<t> W_aa^T  (B, G*H)      then the cell's gate kernel writes a<t+1>
                       (and c<t+1>, gates<t> for backward)
    backward, step t:  dn = rec<t+1> W_aa (B, H)       rec: dz (rnn, lstm) or dhh (gru), the
                       gradient of the recurrent products, finished by the previous step
                       then the cell's kernel writes dz<t> (and dhh<t>, dcarry<t>)

The equations, gate order and layouts are the CPU kernels' (see their docstrings): GRU r, z, n
with b_hn inside the reset product (torch's), LSTM i, f, g, o with gates (T, B, 5H) = [i, f, g,
o, tanh(c)]. Where the CPU backward carries dLoss/dh<t-1> (GRU) or dLoss/dc<t-1> (LSTM) in a
(B, H) scratch, the device stores it per step in `dcarry` (T, B, H) and step t reads row t+1.
Sums run in another order than the CPU's, so results agree to float32 rounding, not bit for bit.
"""

from __future__ import annotations

import math

from rnn_cli.cuda import kernels as ck
from rnn_cli.cuda.backend import numba_cuda
from rnn_cli.kernels.cell import TANH

cuda = numba_cuda()


@cuda.jit(device=True)
def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


# ---------------------------------------------------------------------------------------------
# forward: one thread per (b, i); hh (B, G*H) holds a<t> W_aa^T


@cuda.jit
def rnn_step_kernel(a, xa, hh, t, act):
    """a<t+1>[b, i] = g(xa<t>[b, i] + hh[b, i])."""
    idx = cuda.grid(1)
    H = a.shape[2]
    if idx < a.shape[1] * H:
        b = idx // H
        i = idx % H
        s = xa[t, b, i] + hh[b, i]
        if act == TANH:
            a[t + 1, b, i] = math.tanh(s)
        else:
            a[t + 1, b, i] = s if s > 0.0 else 0.0


@cuda.jit
def gru_step_kernel(a, gates, xa, hh, b_hn, t):
    """The GRU step of kernels/gru.py; gates<t> = [r, z, n, hn]."""
    idx = cuda.grid(1)
    H = a.shape[2]
    if idx < a.shape[1] * H:
        b = idx // H
        i = idx % H
        r = _sigmoid(xa[t, b, i] + hh[b, i])
        z = _sigmoid(xa[t, b, H + i] + hh[b, H + i])
        hn = hh[b, 2 * H + i] + b_hn[i]
        n = math.tanh(xa[t, b, 2 * H + i] + r * hn)
        gates[t, b, i] = r
        gates[t, b, H + i] = z
        gates[t, b, 2 * H + i] = n
        gates[t, b, 3 * H + i] = hn
        a[t + 1, b, i] = (1.0 - z) * n + z * a[t, b, i]


@cuda.jit
def lstm_step_kernel(a, c, gates, xa, hh, t):
    """The LSTM step of kernels/lstm.py; gates<t> = [i, f, g, o, tanh(c<t>)]."""
    idx = cuda.grid(1)
    H = a.shape[2]
    if idx < a.shape[1] * H:
        b = idx // H
        i = idx % H
        ig = _sigmoid(xa[t, b, i] + hh[b, i])
        fg = _sigmoid(xa[t, b, H + i] + hh[b, H + i])
        gg = math.tanh(xa[t, b, 2 * H + i] + hh[b, 2 * H + i])
        og = _sigmoid(xa[t, b, 3 * H + i] + hh[b, 3 * H + i])
        cc = fg * c[t, b, i] + ig * gg
        tc = math.tanh(cc)
        c[t + 1, b, i] = cc
        a[t + 1, b, i] = og * tc
        gates[t, b, i] = ig
        gates[t, b, H + i] = fg
        gates[t, b, 2 * H + i] = gg
        gates[t, b, 3 * H + i] = og
        gates[t, b, 4 * H + i] = tc


def forward(cell: str, a, c, gates, xa, W_aa, b_hn, act, hh, gemm, stream=0) -> None:
    """Run one layer over a window: a (T+1,B,H) in/out (a[0] given), c (T+1,B,H) in/out (lstm;
    c[0] given), gates (T,B,4H gru | 5H lstm) out, xa (T,B,G*H) input terms, W_aa (G*H,H),
    b_hn (H,) (gru), act (rnn), hh (B,G*H) scratch; gemm: a `blas` product on `stream`. Unused
    arguments may be None."""
    T = xa.shape[0]
    n = a.shape[1] * a.shape[2]
    launch = (ck._blocks(n), ck.THREADS, stream)
    for t in range(T):
        gemm.gemm(hh, a[t], W_aa, trans_b=True)
        if cell == "gru":
            gru_step_kernel[launch](a, gates, xa, hh, b_hn, t)
        elif cell == "lstm":
            lstm_step_kernel[launch](a, c, gates, xa, hh, t)
        else:
            rnn_step_kernel[launch](a, xa, hh, t, act)


# ---------------------------------------------------------------------------------------------
# backward: one thread per (b, i); dn (B, H) holds rec<t+1> W_aa (not read at the last step)


@cuda.jit
def rnn_back_kernel(dz, da, dn, a, t, act):
    """dz<t> = (da<t> + dz<t+1> W_aa) * g'(a<t+1>)."""
    idx = cuda.grid(1)
    H = a.shape[2]
    if idx < a.shape[1] * H:
        b = idx // H
        i = idx % H
        g = da[t, b, i]
        if t + 1 < da.shape[0]:
            g += dn[b, i]
        out = a[t + 1, b, i]
        if act == TANH:
            dz[t, b, i] = g * (1.0 - out * out)
        else:
            dz[t, b, i] = g if out > 0.0 else 0.0


@cuda.jit
def gru_back_kernel(dz, dhh, dcarry, da, dn, a, gates, t):
    """kernels/gru.py's backward step; dcarry<t> = dLoss/dh<t> (read by step t-1 for the
    direct path h<t-1> -> h<t>: dh<t-1> = da + dcarry<t> z<t> + dhh<t> W_aa)."""
    idx = cuda.grid(1)
    H = a.shape[2]
    if idx < a.shape[1] * H:
        b = idx // H
        i = idx % H
        dh = da[t, b, i]
        if t + 1 < da.shape[0]:
            dh += dcarry[t + 1, b, i] * gates[t + 1, b, H + i] + dn[b, i]
        dcarry[t, b, i] = dh
        r = gates[t, b, i]
        z = gates[t, b, H + i]
        n = gates[t, b, 2 * H + i]
        hn = gates[t, b, 3 * H + i]
        dng = dh * (1.0 - z) * (1.0 - n * n)
        dr = dng * hn * r * (1.0 - r)
        dzg = dh * (a[t, b, i] - n) * z * (1.0 - z)
        dz[t, b, i] = dr
        dz[t, b, H + i] = dzg
        dz[t, b, 2 * H + i] = dng
        dhh[t, b, i] = dr
        dhh[t, b, H + i] = dzg
        dhh[t, b, 2 * H + i] = dng * r


@cuda.jit
def lstm_back_kernel(dz, dcarry, da, dn, c, gates, t):
    """kernels/lstm.py's backward step; dcarry<t> = dLoss/dc<t> (step t-1 reads dcarry<t> f<t>)."""
    idx = cuda.grid(1)
    H = c.shape[2]
    if idx < c.shape[1] * H:
        b = idx // H
        i = idx % H
        dh = da[t, b, i]
        cn = 0.0
        if t + 1 < da.shape[0]:
            dh += dn[b, i]
            cn = dcarry[t + 1, b, i] * gates[t + 1, b, H + i]
        ig = gates[t, b, i]
        fg = gates[t, b, H + i]
        gg = gates[t, b, 2 * H + i]
        og = gates[t, b, 3 * H + i]
        tc = gates[t, b, 4 * H + i]
        dc = cn + dh * og * (1.0 - tc * tc)
        dcarry[t, b, i] = dc
        dz[t, b, i] = dc * gg * ig * (1.0 - ig)
        dz[t, b, H + i] = dc * c[t, b, i] * fg * (1.0 - fg)
        dz[t, b, 2 * H + i] = dc * ig * (1.0 - gg * gg)
        dz[t, b, 3 * H + i] = dh * tc * og * (1.0 - og)


def backward(cell: str, dz, dhh, dcarry, da, a, c, gates, W_aa, act, dn, gemm, stream=0) -> None:
    """Backpropagate one layer through the window (truncated at its start): dz (T,B,G*H) out,
    dhh (T,B,3H) out (gru: the gradient of the recurrent products), dcarry (T,B,H) scratch
    (gru, lstm), da (T,B,H) in, a / c / gates from forward, W_aa (G*H,H), dn (B,H) scratch;
    gemm: a `blas` product on `stream`. dLoss/dW_aa is then dhh^T a[:T] (gru) or dz^T a[:T], one
    product by the caller."""
    T = da.shape[0]
    n = da.shape[1] * da.shape[2]
    launch = (ck._blocks(n), ck.THREADS, stream)
    rec = dhh if cell == "gru" else dz
    for t in range(T - 1, -1, -1):
        if t + 1 < T:
            gemm.gemm(dn, rec[t + 1], W_aa)
        if cell == "gru":
            gru_back_kernel[launch](dz, dhh, dcarry, da, dn, a, gates, t)
        elif cell == "lstm":
            lstm_back_kernel[launch](dz, dcarry, da, dn, c, gates, t)
        else:
            rnn_back_kernel[launch](dz, da, dn, a, t, act)
