"""The long short-term memory cell, forward and backward through time for a window of B streams.

Formulation: Hochreiter & Schmidhuber 1997 with forget gate (Gers et al. 2000), no peepholes, as
PyTorch's `nn.LSTM`; gate blocks in PyTorch's order i, f, g, o:

    i = sigmoid(xi + W_hi h<t-1>),  f = sigmoid(xf + W_hf h<t-1>)
    g = tanh(xg + W_hg h<t-1>),     o = sigmoid(xo + W_ho h<t-1>)
    c<t> = f * c<t-1> + i * g,      h<t> = o * tanh(c<t>)

The input terms x* = W_ax x<t> + b_a (one (T, B, 4H) array `xa`, like the RNN's) are formed outside
the time loop; one pass over h<t-1> per step feeds all four products of W_aa = [W_hi; W_hf; W_hg;
W_ho]. Biases are initialised as PyTorch's (`params.py`: no forget-gate offset, which measured
worse at equal steps). Parallel builds split the batch.

Layouts (C-contiguous, float32 in use, float64 in the tests):
    a      (T+1, B, H)   a[0] carried in, a[t] = h<t>
    c      (T+1, B, H)   c[0] carried in, c[t] = c<t>
    gates  (T, B, 5H)    per step [i, f, g, o, tanh(c<t>)], stored for backward
    xa     (T, B, 4H),  W_aa (4H, H)
    dz     (T, B, 4H)    dLoss/dxa = dLoss/d(W_aa h<t-1>), written by backward
    dnext  (B, H), dcnext (B, H)   scratch: dLoss/dh<t-1>, dLoss/dc<t-1> through the recurrence
"""

from __future__ import annotations

import math

from rnn_cli.kernels._jit import njit, njit_parallel, prange


@njit
def lstm_lane_backward(d, nxt, cnx, up, cp, gt, H):
    """The LSTM's pointwise backward of one lane at one step (every LSTM backward: this module's
    loops, `gated_gemm`'s BLAS recurrence, the translator's decoder): from up = dLoss/dh<t> (the
    layer above), nxt = dLoss/dh<t> (through the recurrence), cnx = dLoss/dc<t>, cp = c<t-1> and
    gt = [i, f, g, o, tanh(c<t>)], writes d = dLoss/d(pre-activations) and cnx = dLoss/dc<t-1>."""
    for i in range(H):
        ig = gt[i]
        fg = gt[H + i]
        gg = gt[2 * H + i]
        og = gt[3 * H + i]
        tc = gt[4 * H + i]
        dh = up[i] + nxt[i]
        dc = cnx[i] + dh * og * (1.0 - tc * tc)
        d[i] = dc * gg * ig * (1.0 - ig)
        d[H + i] = dc * cp[i] * fg * (1.0 - fg)
        d[2 * H + i] = dc * ig * (1.0 - gg * gg)
        d[3 * H + i] = dh * tc * og * (1.0 - og)
        cnx[i] = dc * fg


def _lstm_forward(a, c, gates, xa, W_aa):
    """Run the LSTM over one window; writes a[1:], c[1:] and gates."""
    T = xa.shape[0]
    B = xa.shape[1]
    H = a.shape[2]
    for b in prange(B):
        for t in range(T):
            prev = a[t, b]
            pre = xa[t, b]
            gt = gates[t, b]
            for i in range(H):
                wi = W_aa[i]
                wf = W_aa[H + i]
                wg = W_aa[2 * H + i]
                wo = W_aa[3 * H + i]
                si = pre[i]
                sf = pre[H + i]
                sg = pre[2 * H + i]
                so = pre[3 * H + i]
                for j in range(H):
                    p = prev[j]
                    si += wi[j] * p
                    sf += wf[j] * p
                    sg += wg[j] * p
                    so += wo[j] * p
                ig = 1.0 / (1.0 + math.exp(-si))
                fg = 1.0 / (1.0 + math.exp(-sf))
                gg = math.tanh(sg)
                og = 1.0 / (1.0 + math.exp(-so))
                cc = fg * c[t, b, i] + ig * gg
                tc = math.tanh(cc)
                c[t + 1, b, i] = cc
                a[t + 1, b, i] = og * tc
                gt[i] = ig
                gt[H + i] = fg
                gt[2 * H + i] = gg
                gt[3 * H + i] = og
                gt[4 * H + i] = tc


def _lstm_backward(dz, dnext, dcnext, da, c, gates, W_aa):
    """Backpropagate through time over one window (truncated at the window start).

    da (T,B,H) in: dLoss/dh<t> from above; c (T+1,B,H) and gates from forward. Writes dz (T,B,4H).
        dh = da<t> + dnext;  dc = dcnext + dh o (1 - tanh(c)^2)
        dz = [dc g i(1-i), dc c<t-1> f(1-f), dc i (1-g^2), dh tanh(c) o(1-o)]
        dcnext <- dc f;  dnext <- W_aa^T dz
    """
    T = da.shape[0]
    B = da.shape[1]
    H = da.shape[2]
    for b in prange(B):
        nxt = dnext[b]
        cnx = dcnext[b]
        for i in range(H):
            nxt[i] = 0.0
            cnx[i] = 0.0
        for t in range(T - 1, -1, -1):
            gt = gates[t, b]
            up = da[t, b]
            d = dz[t, b]
            lstm_lane_backward(d, nxt, cnx, up, c[t, b], gt, H)
            if t == 0:
                break
            for j in range(H):
                nxt[j] = 0.0
            # nxt = W_aa^T dz, row by row so the inner loop runs over contiguous memory
            for k in range(4 * H):
                dk = d[k]
                row = W_aa[k]
                for j in range(H):
                    nxt[j] += dk * row[j]


lstm_forward = njit_parallel(_lstm_forward)
lstm_backward = njit_parallel(_lstm_backward)
lstm_forward_serial = njit(_lstm_forward)
lstm_backward_serial = njit(_lstm_backward)


@njit
def lstm_step(h, c, xin, W_aa, tmp):
    """One LSTM step for one stream (sampling/scoring): h, c (H,) in/out, xin (4H,) input terms,
    W_aa (4H,H), tmp (H,) scratch (h<t-1> is read until every unit is done)."""
    H = h.shape[0]
    for i in range(H):
        wi = W_aa[i]
        wf = W_aa[H + i]
        wg = W_aa[2 * H + i]
        wo = W_aa[3 * H + i]
        si = xin[i]
        sf = xin[H + i]
        sg = xin[2 * H + i]
        so = xin[3 * H + i]
        for j in range(H):
            p = h[j]
            si += wi[j] * p
            sf += wf[j] * p
            sg += wg[j] * p
            so += wo[j] * p
        ig = 1.0 / (1.0 + math.exp(-si))
        fg = 1.0 / (1.0 + math.exp(-sf))
        og = 1.0 / (1.0 + math.exp(-so))
        cc = fg * c[i] + ig * math.tanh(sg)
        c[i] = cc  # c<t-1>[i] is only read by unit i
        tmp[i] = og * math.tanh(cc)
    for i in range(H):
        h[i] = tmp[i]
