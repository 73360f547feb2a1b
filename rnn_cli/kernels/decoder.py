"""The attentional decoder's time loop (GRU or LSTM), teacher forced, forward and backward.

Architecture (Bahdanau et al. 2015 as in bentrevett/pytorch-seq2seq notebook 3): at step t the
attention reads the previous state, the cell reads the target embedding and the context, and the
output layer reads all three,

    ctx<t> = attend(s<t-1>, enc)                  (kernels/attention.py; none: no context, D = 0)
    s<t>   = cell(W_ax e<t> + W_cx ctx<t> + b_a, s<t-1>)     e<t> = W_emb[y<t-1>] (y<0> = <EOS>)
    logits = W_ya [s<t>; ctx<t>; e<t>] + b_y

The parts that do not depend on the recurrence are window-sized products done by the engine
(`tasks/translate/decoder.py`): W_ax e<t> + b_a for every step before the loop, the keys of the
attention, the output layer and every weight gradient after it. The loop here carries what must
be sequential: per step and slice of lanes (one slice a thread, the whole window each, as
`cell.rnn_forward_gemm`), the query product (additive), the attention, the context's input
product W_cx ctx<t>, the recurrent product, the gates; backward the same in reverse.

One buffer holds the features the output layer reads, so that layer is one product:
    feat (T+1, B, F), F = H + D + E: feat[t+1, b] = [s<t+1>; ctx<t+1>; e<t+1>] for step t
    (0-based), feat[0, b, :H] = s<0> (the engine's bridge from the encoder), the rest of row 0 zero.
The engine writes the e part (and s<0>) before the loop; the kernel writes s and ctx.

Lanes: steps (B,) int32 is each lane's target length. A lane past its end is left out of the
products once every later lane of its slice has ended too (lanes sorted longest first make the
products shrink), and its s, ctx, alpha (LSTM: c) are zero; backward, its gradients are zero, so
padding never reaches the loss or the weights.

Layouts (C-contiguous; float32 in use, float64 in the tests):
    xi (T,B,GH) input terms W_ax e<t> + b_a;  gates (T,B,GW): GRU GW = 4H [r, z, n, hn],
    LSTM GW = 5H [i, f, g, o, tanh c];  cs (T+1,B,H) LSTM cell states (cs[0] = c<0>), else empty
    alpha (T,B,S);  q (T,B,A) additive queries W_q s<t-1>, else empty;  xc (B,GH) GRU scratch
    enc (S,B,D), keys (S,B,K), src_len (B,) int32;  W_aaT (H,GH), W_cxT (D,GH), W_qT (H,A):
    contiguous transposed copies (plain products run faster); b_hn (H,) GRU; v (A,) additive
    Backward: dfeat (T+1,B,F) in (rows 1.. from the output layer; its ctx part becomes the whole
    dLoss/dctx), dxi (T,B,GH) out, dhh (T,B,GH) out (GRU: gradient of W_aa s<t-1>; LSTM: unused),
    dq (T,B,A) out, dnext / dcnext (B,H) out: dLoss/ds<0>, dLoss/dc<0>; dkeys, denc, dv
    accumulated as in attention.py; W_aa (GH,H), W_cx (GH,D), W_q (A,H) untransposed.
"""

from __future__ import annotations

import math

from rnn_cli.kernels._jit import njit_parallel, prange
from rnn_cli.kernels.attention import ADDITIVE, NONE, attend_lane, attend_lane_backward
from rnn_cli.kernels.blas import gemm, step_gemm
from rnn_cli.kernels.cell import _active_end_jit, _chunk_bounds
from rnn_cli.kernels.gated_gemm import _gates_forward, _gru_gates_forward
from rnn_cli.kernels.generate import GRU, LSTM
from rnn_cli.kernels.gru import gru_lane_backward
from rnn_cli.kernels.lstm import lstm_lane_backward
from rnn_cli.kernels.output import row_max

__all__ = ["GRU", "LSTM", "decoder_forward", "decoder_backward", "decoder_step",
           "log_softmax_rows", "pgemm_rows"]


def _decoder_forward(feat, gates, cs, alpha, q, xi, xc, enc, keys, src_len, steps, W_aaT, W_cxT,
                     W_qT, b_hn, v, cell, kind, nchunks):
    """Run the decoder over the window (module docstring); writes feat's s and ctx parts, gates,
    cs[1:], alpha, q."""
    T, B, F = xi.shape[0], xi.shape[1], feat.shape[2]
    H, GH, D, A = W_aaT.shape[0], W_aaT.shape[1], W_cxT.shape[0], W_qT.shape[1]
    GW = gates.shape[2]
    single, isz = feat.itemsize == 4, feat.itemsize
    fp, gp, qp, xcp = feat.ctypes.data, gates.ctypes.data, q.ctypes.data, xc.ctypes.data
    wa, wc, wq = W_aaT.ctypes.data, W_cxT.ctypes.data, W_qT.ctypes.data
    additive = kind == ADDITIVE
    for ch in prange(nchunks):
        b0, b1 = _chunk_bounds(B, nchunks, ch)
        if b1 <= b0:
            continue
        for t in range(T):
            e = _active_end_jit(steps, b0, b1, t)
            M = e - b0
            sp = fp + (t * B + b0) * F * isz  # s<t-1> of the slice's first lane, rows F apart
            cp = fp + ((t + 1) * B + b0) * F * isz + H * isz  # ctx<t>
            if M > 0 and kind != NONE:
                if additive:
                    step_gemm(single, M, A, H, sp, F, wq, A, 0.0, qp + (t * B + b0) * A * isz, A)
                for b in range(b0, e):
                    query = q[t, b] if additive else feat[t, b, :H]
                    attend_lane(alpha[t, b], feat[t + 1, b, H:H + D], query, keys, enc, b,
                                src_len[b], additive, v)
            if M > 0 and cell == GRU:
                for b in range(b0, e):
                    xc[b] = xi[t, b]
                if D > 0:
                    step_gemm(single, M, GH, D, cp, F, wc, GH, 1.0, xcp + b0 * GH * isz, GH)
                step_gemm(single, M, GH, H, sp, F, wa, GH, 0.0, gp + (t * B + b0) * GW * isz, GW)
                for b in range(b0, e):
                    _gru_gates_forward(gates[t, b], xc[b], b_hn, feat[t, b, :H],
                                       feat[t + 1, b, :H], H)
            elif M > 0:
                for b in range(b0, e):
                    gates[t, b, :GH] = xi[t, b]
                gq = gp + (t * B + b0) * GW * isz
                if D > 0:
                    step_gemm(single, M, GH, D, cp, F, wc, GH, 1.0, gq, GW)
                step_gemm(single, M, GH, H, sp, F, wa, GH, 1.0, gq, GW)
                for b in range(b0, e):
                    _gates_forward(gates[t, b], cs[t, b], cs[t + 1, b], feat[t + 1, b, :H], H)
            for b in range(b0, b1):
                if steps[b] <= t:
                    feat[t + 1, b, :H + D] = 0.0
                    alpha[t, b, :] = 0.0
                    if cell == LSTM:
                        cs[t + 1, b, :] = 0.0


def _decoder_backward(dfeat, dxi, dhh, dq, dnext, dcnext, dkeys, denc, dv, feat, gates, cs, alpha,
                      q, enc, keys, src_len, steps, W_aa, W_cx, W_q, v, cell, kind, nchunks):
    """Backpropagate through the window (module docstring). Per step and slice: the gates, then
    dctx += dxi W_cx, ds<t-1> from the recurrence, the attention, and (additive) dq W_q."""
    T, B, F = dxi.shape[0], dxi.shape[1], feat.shape[2]
    GH, H, D, A = W_aa.shape[0], W_aa.shape[1], W_cx.shape[1], W_q.shape[0]
    single, isz = feat.itemsize == 4, feat.itemsize
    dfp, dxp, dhp, dqp, dnp = (dfeat.ctypes.data, dxi.ctypes.data, dhh.ctypes.data,
                               dq.ctypes.data, dnext.ctypes.data)
    wa, wc, wq = W_aa.ctypes.data, W_cx.ctypes.data, W_q.ctypes.data
    additive = kind == ADDITIVE
    for ch in prange(nchunks):
        b0, b1 = _chunk_bounds(B, nchunks, ch)
        if b1 <= b0:
            continue
        for b in range(b0, b1):
            dnext[b, :] = 0.0
            if cell == LSTM:
                dcnext[b, :] = 0.0
        for t in range(T - 1, -1, -1):
            e = _active_end_jit(steps, b0, b1, t)
            M = e - b0
            for b in range(b0, b1):
                if additive:
                    dq[t, b, :] = 0.0
                if steps[b] <= t:
                    dxi[t, b, :] = 0.0
                    if cell == GRU:
                        dhh[t, b, :] = 0.0
                elif cell == GRU:
                    gru_lane_backward(dxi[t, b], dhh[t, b], dnext[b], dfeat[t + 1, b, :H],
                                       feat[t, b, :H], gates[t, b], H)
                else:
                    lstm_lane_backward(dxi[t, b], dnext[b], dcnext[b], dfeat[t + 1, b, :H],
                                        cs[t, b], gates[t, b], H)
            if M <= 0:
                continue
            row = (t * B + b0) * GH * isz
            if D > 0:
                step_gemm(single, M, D, GH, dxp + row, GH, wc, D, 1.0,
                          dfp + ((t + 1) * B + b0) * F * isz + H * isz, F)
            if cell == GRU:
                step_gemm(single, M, H, GH, dhp + row, GH, wa, H, 1.0, dnp + b0 * H * isz, H)
            else:
                step_gemm(single, M, H, GH, dxp + row, GH, wa, H, 0.0, dnp + b0 * H * isz, H)
            if kind == NONE:
                continue
            for b in range(b0, e):
                if steps[b] > t:
                    dquery = dq[t, b] if additive else dnext[b]
                    query = q[t, b] if additive else feat[t, b, :H]
                    attend_lane_backward(dquery, dkeys, denc, dv[b], dfeat[t + 1, b, H:H + D],
                                         alpha[t, b], query, keys, enc, b, src_len[b], additive,
                                         v)
            if additive:
                step_gemm(single, M, H, A, dqp + (t * B + b0) * A * isz, A, wq, H, 1.0,
                          dnp + b0 * H * isz, H)


# Parallel builds only: with nchunks = 1 they run on the calling thread, and a serial twin of
# each would double what these kernels cost the test suite to compile.
decoder_forward = njit_parallel(_decoder_forward)
decoder_backward = njit_parallel(_decoder_backward)


def _decoder_step(feat, gates, cs, alpha, q, xc, y_prev, lane_src, enc, keys, src_len, W_emb,
                  W_axT, b_a, W_aaT, W_cxT, W_qT, b_hn, v, cell, kind, nchunks):
    """One decoding step for L lanes (hypotheses), each reading the source lane_src[l] of enc.

    feat (2,L,F): row 0 holds s<t-1> (its s part; written by the caller), row 1 receives
    [s<t>; ctx<t>; e<t>] for the output layer; cs (2,L,H) likewise for the LSTM (else empty);
    alpha (L,S) out; gates (L,GW), xc (L,GH), q (L,A) scratch; y_prev (L,) int32 the previous
    tokens (< 0: zero embedding); W_emb (V,E), W_axT (E,GH), b_a (GH,), the rest as in
    `decoder_forward`. The same arithmetic as a step of the teacher-forced loop.
    """
    L, F = y_prev.shape[0], feat.shape[2]
    H, GH, D, A = W_aaT.shape[0], W_aaT.shape[1], W_cxT.shape[0], W_qT.shape[1]
    E, GW = W_emb.shape[1], gates.shape[1]
    single, isz = feat.itemsize == 4, feat.itemsize
    fp, gp, qp, xcp = feat.ctypes.data, gates.ctypes.data, q.ctypes.data, xc.ctypes.data
    wx, wa, wc, wq = W_axT.ctypes.data, W_aaT.ctypes.data, W_cxT.ctypes.data, W_qT.ctypes.data
    additive = kind == ADDITIVE
    for ch in prange(nchunks):
        l0, l1 = _chunk_bounds(L, nchunks, ch)
        M = l1 - l0
        if M <= 0:
            continue
        sp = fp + l0 * F * isz
        np1 = fp + (L + l0) * F * isz  # row 1 of the slice's first lane
        for l in range(l0, l1):
            k = y_prev[l]
            if k >= 0:
                feat[1, l, H + D:] = W_emb[k]
            else:
                feat[1, l, H + D:] = 0.0
        if kind != NONE:
            if additive:
                step_gemm(single, M, A, H, sp, F, wq, A, 0.0, qp + l0 * A * isz, A)
            for l in range(l0, l1):
                query = q[l] if additive else feat[0, l, :H]
                src = lane_src[l]
                attend_lane(alpha[l], feat[1, l, H:H + D], query, keys, enc, src, src_len[src],
                            additive, v)
        # input terms (GRU: in xc; LSTM: straight into the gates) and the recurrent product
        dst = xcp + l0 * GH * isz if cell == GRU else gp + l0 * GW * isz
        ldd = GH if cell == GRU else GW
        for l in range(l0, l1):
            if cell == GRU:
                xc[l] = b_a
            else:
                gates[l, :GH] = b_a
        step_gemm(single, M, GH, E, np1 + (H + D) * isz, F, wx, GH, 1.0, dst, ldd)
        if D > 0:
            step_gemm(single, M, GH, D, np1 + H * isz, F, wc, GH, 1.0, dst, ldd)
        if cell == GRU:
            step_gemm(single, M, GH, H, sp, F, wa, GH, 0.0, gp + l0 * GW * isz, GW)
            for l in range(l0, l1):
                _gru_gates_forward(gates[l], xc[l], b_hn, feat[0, l, :H], feat[1, l, :H], H)
        else:
            step_gemm(single, M, GH, H, sp, F, wa, GH, 1.0, gp + l0 * GW * isz, GW)
            for l in range(l0, l1):
                _gates_forward(gates[l], cs[0, l], cs[1, l], feat[1, l, :H], H)


decoder_step = njit_parallel(_decoder_step)


def _log_softmax_rows(out, logits):
    """out[r] = logits[r] - logsumexp(logits[r]) (float64 out), rows over threads."""
    R, V = logits.shape[0], logits.shape[1]
    for r in prange(R):
        row = logits[r]
        m = row_max(row)
        s = 0.0
        for k in range(V):
            s += math.exp(row[k] - m)
        lse = m + math.log(s)
        for k in range(V):
            out[r, k] = row[k] - lse


log_softmax_rows = njit_parallel(_log_softmax_rows)


def _pgemm_ptr(single, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
               nchunks):
    """`gemm` with the M rows of C split over threads (pointers as ints, as `blas.gemm`)."""
    isz = 4 if single else 8
    for c in prange(nchunks):
        m0, m1 = _chunk_bounds(M, nchunks, c)
        if m1 > m0:
            offset = m0 if trans_a else m0 * lda
            gemm(single, trans_a, trans_b, m1 - m0, N, K, alpha, A + offset * isz, lda, B, ldb,
                 beta, C + m0 * ldc * isz, ldc)


_pgemm_ptr_parallel = njit_parallel(_pgemm_ptr)


def pgemm_rows(C, A, B, trans_a, trans_b, alpha, beta, nchunks):
    """As `cell.pgemm` (C = alpha op(A) op(B) + beta C, rows of C split over threads) for 2-D
    views whose rows are contiguous but may lie further apart than their length (a column block
    of a wider buffer, e.g. the s part of `feat`): leading dimensions come from the row strides.
    One compiled signature for every layout (the arrays are passed as pointers)."""
    isz = C.itemsize
    for X in (C, A, B):
        if X.dtype != C.dtype or X.ndim != 2 or (X.shape[1] > 1 and X.strides[1] != isz):
            raise ValueError("pgemm_rows needs 2-D arrays of one dtype with contiguous rows")
    M, N = C.shape
    K = A.shape[0] if trans_a else A.shape[1]
    if (B.shape[1] if trans_b else B.shape[0]) != K or (A.shape[1] if trans_a else A.shape[0]) \
            != M or (B.shape[0] if trans_b else B.shape[1]) != N:
        raise ValueError(f"pgemm_rows: shapes {C.shape} {A.shape} {B.shape} do not fit")
    if M == 0 or N == 0:
        return
    if K == 0:  # op(A) op(B) is all zeros
        if beta == 0.0:
            C[...] = 0.0
        else:
            C *= beta
        return
    ld = [max(X.strides[0] // isz, X.shape[1], 1) for X in (A, B, C)]
    _pgemm_ptr_parallel(isz == 4, trans_a, trans_b, M, N, K, float(alpha), A.ctypes.data, ld[0],
                        B.ctypes.data, ld[1], float(beta), C.ctypes.data, ld[2], nchunks)
