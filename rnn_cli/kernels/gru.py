"""The gated recurrent unit, forward and backward through time for a window of B streams.

Formulation: PyTorch's `nn.GRU` (Cho et al. 2014 with the reset gate applied *after* the recurrent
product, as in cuDNN), gate blocks in the order r, z, n:

    r<t> = sigmoid(xr<t> + W_hr h<t-1>)                  xr = W_ir x<t> + b_ir + b_hr
    z<t> = sigmoid(xz<t> + W_hz h<t-1>)                  xz = W_iz x<t> + b_iz + b_hz
    n<t> = tanh(xn<t> + r<t> * (W_hn h<t-1> + b_hn))     xn = W_in x<t> + b_in
    h<t> = (1 - z<t>) * n<t> + z<t> * h<t-1>

The input terms x* (one (T, B, 3H) array `xa`, exactly like the RNN's) are formed outside the time
loop; the recurrent bias of the candidate, b_hn, must stay separate because r multiplies it. All
three recurrent products read one (3H, H) block W_aa = [W_hr; W_hz; W_hn], so one pass over h<t-1>
per step. Parallel builds split the batch across threads (no shared writes).

Layouts (C-contiguous, float32 in use, float64 in the tests):
    a      (T+1, B, H)   a[0] carried in, a[t] = h<t>
    gates  (T, B, 4H)    per step [r, z, n, hn] with hn = W_hn h<t-1> + b_hn, stored for backward
    xa     (T, B, 3H)    input terms
    W_aa   (3H, H),  b_hn (H,)
    dz     (T, B, 3H)    dLoss/dxa (the gradient of the input terms), written by backward
    dhh    (T, B, 3H)    dLoss/d(W_aa h<t-1>) per block (differs from dz in the n block: * r)
    dnext  (B, H)        scratch, dLoss/dh<t-1> through the recurrence
"""

from __future__ import annotations

import math

from rnn_cli.kernels._jit import njit, njit_parallel, prange


@njit
def gru_lane_backward(d, dh2, nxt, up, prev, gt, H):
    """The GRU's pointwise backward of one lane at one step (every GRU backward: this
    module's loops, `gated_gemm`'s BLAS recurrence, the translator's decoder): from up =
    dLoss/dh<t> (the layer above) and nxt = dLoss/dh<t> (through the recurrence), prev = h<t-1>
    and gt = [r, z, n, hn], writes d = dLoss/d(input terms), dh2 = dLoss/d(W_aa h<t-1>) and
    nxt = the direct path dh * z."""
    for i in range(H):
        r = gt[i]
        z = gt[H + i]
        n = gt[2 * H + i]
        hn = gt[3 * H + i]
        dh = up[i] + nxt[i]
        dn = dh * (1.0 - z) * (1.0 - n * n)
        dr = dn * hn * r * (1.0 - r)
        dzg = dh * (prev[i] - n) * z * (1.0 - z)
        d[i] = dr
        d[H + i] = dzg
        d[2 * H + i] = dn
        dh2[i] = dr
        dh2[H + i] = dzg
        dh2[2 * H + i] = dn * r
        nxt[i] = dh * z  # the direct path h<t-1> -> h<t>


def _gru_forward(a, gates, xa, W_aa, b_hn):
    """Run the GRU over one window; writes a[1:] and gates."""
    T = xa.shape[0]
    B = xa.shape[1]
    H = a.shape[2]
    for b in prange(B):
        for t in range(T):
            prev = a[t, b]
            out = a[t + 1, b]
            pre = xa[t, b]
            gt = gates[t, b]
            for i in range(H):
                wr = W_aa[i]
                wz = W_aa[H + i]
                wn = W_aa[2 * H + i]
                sr = pre[i]
                sz = pre[H + i]
                hn = b_hn[i]
                for j in range(H):
                    p = prev[j]
                    sr += wr[j] * p
                    sz += wz[j] * p
                    hn += wn[j] * p
                r = 1.0 / (1.0 + math.exp(-sr))
                z = 1.0 / (1.0 + math.exp(-sz))
                n = math.tanh(pre[2 * H + i] + r * hn)
                gt[i] = r
                gt[H + i] = z
                gt[2 * H + i] = n
                gt[3 * H + i] = hn
                out[i] = (1.0 - z) * n + z * prev[i]


def _gru_backward(dz, dhh, dnext, da, a, gates, W_aa):
    """Backpropagate through time over one window (truncated at the window start).

    da (T,B,H) in: dLoss/dh<t> from above. Writes dz, dhh (T,B,3H); dnext (B,H) scratch.
        dh = da<t> + dnext;  dn = dh (1-z) (1-n^2);  dzg = dh (h<t-1> - n) ... see module docstring
        dnext <- dh z + W_aa^T dhh
    """
    T = da.shape[0]
    B = da.shape[1]
    H = da.shape[2]
    for b in prange(B):
        nxt = dnext[b]
        for i in range(H):
            nxt[i] = 0.0
        for t in range(T - 1, -1, -1):
            prev = a[t, b]
            gt = gates[t, b]
            up = da[t, b]
            d = dz[t, b]
            dh2 = dhh[t, b]
            gru_lane_backward(d, dh2, nxt, up, prev, gt, H)
            if t == 0:
                break
            # nxt += W_aa^T dhh, row by row so the inner loop runs over contiguous memory
            for k in range(3 * H):
                dk = dh2[k]
                row = W_aa[k]
                for j in range(H):
                    nxt[j] += dk * row[j]


gru_forward = njit_parallel(_gru_forward)
gru_backward = njit_parallel(_gru_backward)
gru_forward_serial = njit(_gru_forward)
gru_backward_serial = njit(_gru_backward)


@njit
def gru_step(h, xin, W_aa, b_hn, tmp):
    """One GRU step for one stream (sampling/scoring): h (H,) in/out, xin (3H,) input terms,
    W_aa (3H,H), b_hn (H,), tmp (H,) scratch (h<t-1> is read until every unit is done)."""
    H = h.shape[0]
    for i in range(H):
        wr = W_aa[i]
        wz = W_aa[H + i]
        wn = W_aa[2 * H + i]
        sr = xin[i]
        sz = xin[H + i]
        hn = b_hn[i]
        for j in range(H):
            p = h[j]
            sr += wr[j] * p
            sz += wz[j] * p
            hn += wn[j] * p
        r = 1.0 / (1.0 + math.exp(-sr))
        z = 1.0 / (1.0 + math.exp(-sz))
        n = math.tanh(xin[2 * H + i] + r * hn)
        tmp[i] = (1.0 - z) * n + z * h[i]
    for i in range(H):
        h[i] = tmp[i]
