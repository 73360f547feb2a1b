"""The seed's recurrent cell, forward and backward through time, for a window of B streams.

    a<t> = g(W_aa a<t-1> + W_ax x<t> + b_a),   g = tanh or ReLU

The input term `W_ax x<t> + b_a` is computed before the time loop for the whole window (a column
gather of W_ax for one-hot inputs, see `gather_input_forward`; a matrix product for upper layers),
so the loops here carry only the recurrence: B*H*H multiply-adds per step. The B streams are
independent within a window, so the parallel builds split the batch across threads with no shared
writes (no reduction needed: dW_aa is formed afterwards from the stored dz as one matrix product).

Layouts (all C-contiguous float32 unless stated):
    a      (T+1, B, H)  a[0] is the state carried in from the previous window, a[t] = a<t>
    xa     (T, B, H)    W_ax x<t> + b_a for t = 1..T (row t-1)
    W_aa   (H, H)
    da     (T, B, H)    dLoss/da<t> arriving from above (output layer or next layer)
    dz     (T, B, H)    dLoss/d(pre-activation), written by the backward pass
    dnext  (B, H)       scratch: dLoss/da<t-1> through the recurrence
"""

from __future__ import annotations

import math

import numpy as np

from rnn_cli.kernels._jit import njit, njit_parallel, prange
from rnn_cli.kernels.blas import gemm, step_gemm

TANH = 0
RELU = 1

# tanh for float32 as a rational function (the [13/6] minimax fit used by Eigen's ptanh_float):
# max error 2.6e-7 on [-10, 10], and unlike math.tanh (a scalar libm call) it vectorises.
_F32 = np.float32
_TANH_CLAMP = _F32(7.90531110763549805)
_P13, _P11, _P9, _P7 = _F32(-2.76076847742355e-16), _F32(2.00018790482477e-13), \
    _F32(-8.60467152213735e-11), _F32(5.12229709037114e-08)
_P5, _P3, _P1 = _F32(1.48572235717979e-05), _F32(6.37261928875436e-04), _F32(4.89352455891786e-03)
_Q6, _Q4, _Q2, _Q0 = _F32(1.19825839466702e-06), _F32(1.18534705686654e-04), \
    _F32(2.26843463243900e-03), _F32(4.89352518554385e-03)


@njit
def tanh32(x):
    """tanh of a float32 by the rational fit above (vectorisable, error < 3e-7)."""
    x = _TANH_CLAMP if x > _TANH_CLAMP else x
    x = -_TANH_CLAMP if x < -_TANH_CLAMP else x
    x2 = x * x
    p = x2 * (x2 * (x2 * (x2 * (x2 * (x2 * _P13 + _P11) + _P9) + _P7) + _P5) + _P3) + _P1
    q = x2 * (x2 * (x2 * _Q6 + _Q4) + _Q2) + _Q0
    return x * p / q


@njit
def activate(v, act):
    """v = g(v) in place for a 1-D array: tanh (float64: exact math.tanh) or ReLU."""
    n = v.shape[0]
    if act == RELU:
        for i in range(n):
            v[i] = v[i] if v[i] > 0.0 else 0.0
    elif v.itemsize == 4:
        for i in range(n):
            v[i] = tanh32(v[i])
    else:
        for i in range(n):
            v[i] = math.tanh(v[i])


def _rnn_forward(a, xa, W_aa, act):
    """Run the recurrence over one window; writes a[1:].

    a (T+1,B,H) in/out, xa (T,B,H), W_aa (H,H), act TANH|RELU.
    a<t>[i] = g(xa<t>[i] + sum_j W_aa[i,j] a<t-1>[j])
    """
    T = xa.shape[0]
    B = xa.shape[1]
    H = xa.shape[2]
    for b in prange(B):
        for t in range(T):
            prev = a[t, b]
            out = a[t + 1, b]
            pre = xa[t, b]
            for i in range(H):
                s = pre[i]
                row = W_aa[i]
                for j in range(H):
                    s += row[j] * prev[j]
                out[i] = s
            activate(out, act)


def _rnn_backward(dz, dnext, da, a, W_aa, act):
    """Backpropagate through time over one window (truncated at the window start).

    dz (T,B,H) out, dnext (B,H) scratch, da (T,B,H) in, a (T+1,B,H) from forward, W_aa (H,H).
    dz<t> = (da<t> + W_aa^T dz<t+1>) * g'(a<t>);  g' from the stored output: 1 - a^2 or [a > 0].
    """
    T = da.shape[0]
    B = da.shape[1]
    H = da.shape[2]
    for b in prange(B):
        nxt = dnext[b]
        for i in range(H):
            nxt[i] = 0.0
        for t in range(T - 1, -1, -1):
            out = a[t + 1, b]
            d = dz[t, b]
            up = da[t, b]
            for i in range(H):
                g = up[i] + nxt[i]
                if act == TANH:
                    d[i] = g * (1.0 - out[i] * out[i])
                else:
                    d[i] = g if out[i] > 0.0 else 0.0
            if t == 0:
                break
            # nxt = W_aa^T d, accumulated row by row so the inner loop runs over contiguous memory
            for j in range(H):
                nxt[j] = 0.0
            for i in range(H):
                di = d[i]
                row = W_aa[i]
                for j in range(H):
                    nxt[j] += di * row[j]


rnn_forward = njit_parallel(_rnn_forward)
rnn_backward = njit_parallel(_rnn_backward)
rnn_forward_serial = njit(_rnn_forward)
rnn_backward_serial = njit(_rnn_backward)


def _gather_input_forward(xa, W_ax, b_a, x):
    """One-hot input as a column gather: xa<t> = W_ax[:, x<t>] + b_a (x < 0 means the zero vector).

    xa (T,B,GH) out, W_ax (GH,V), b_a (GH,), x (T,B) int32.
    """
    T = x.shape[0]
    B = x.shape[1]
    GH = b_a.shape[0]
    for t in prange(T):
        for b in range(B):
            k = x[t, b]
            out = xa[t, b]
            if k < 0:
                for i in range(GH):
                    out[i] = b_a[i]
            else:
                for i in range(GH):
                    out[i] = W_ax[i, k] + b_a[i]


def _gather_input_backward(dW_ax, db_a, dz, x):
    """Scatter-add the gradient of the column gather: dW_ax[:, x<t>] += dz<t>; db_a += dz<t>.

    dW_ax (GH,V) accumulated, db_a (GH,) accumulated, dz (T,B,GH), x (T,B) int32. Serial: two
    positions may hold the same token, so the writes would race.
    """
    T = x.shape[0]
    B = x.shape[1]
    GH = db_a.shape[0]
    for t in range(T):
        for b in range(B):
            k = x[t, b]
            d = dz[t, b]
            for i in range(GH):
                db_a[i] += d[i]
            if k >= 0:
                for i in range(GH):
                    dW_ax[i, k] += d[i]


gather_input_forward = njit_parallel(_gather_input_forward)
gather_input_backward = njit(_gather_input_backward)


# ------------------------------------------------------------------------------------------------
# The same recurrence with each step's (B x H) @ (H x H) product done by BLAS (kernels/blas.py).
# The batch is cut into `nchunks` contiguous slices, one per thread; each thread runs the whole
# time loop for its slice, so threads never wait for each other inside a window.

def _chunk(B, nchunks, c):
    size = (B + nchunks - 1) // nchunks
    b0 = c * size
    return b0, min(B, b0 + size)


def _active_end(steps, b0, b1, t):
    """End of the lanes of [b0, b1) still running at step t: one past the last lane b with
    steps[b] > t (lanes sorted longest first make [b0, end) exactly the running ones)."""
    e = b1
    while e > b0 and steps[e - 1] <= t:
        e -= 1
    return e


def _input_row(xa, tab, x, t, b):
    """Position (t, b)'s input term: xa[t, b], or with a folded table (`tab` (V+1, GH), rows
    W_ax^T[v] + b_a and a last row b_a alone, see `embed.table_forward`) its row for x[t, b]: the
    recurrences then read layer 0's input terms from the table, without the (T, B, GH) copy."""
    if tab.shape[0] > 0:
        k = x[t, b]
        return tab[k if k >= 0 else tab.shape[0] - 1]
    return xa[t, b]


def _rnn_forward_gemm(a, xa, tab, x, W_aaT, act, nchunks, steps):
    """As `rnn_forward`; a<t> = g(xa<t> + a<t-1> W_aa^T) with one gemm per step and slice.

    W_aaT (H, H) is a contiguous copy of W_aa^T: OpenBLAS runs a plain product faster than one
    with a transposed operand at these shapes (no repacking of the weights at every call).
    steps (B,) int32: lane b runs steps[b] steps of the window (>= T: all of them); past its end
    its a<t> is zero, and once every lane after it in its slice has ended too it is left out of
    the product. Per-line scoring sorts each slice's lines longest first, so the product shrinks
    as lines end (no work on padding); training passes T for every lane.
    """
    T, B, H = xa.shape[0], xa.shape[1], xa.shape[2]
    single, isz = a.itemsize == 4, a.itemsize
    base, w = a.ctypes.data, W_aaT.ctypes.data
    for c in prange(nchunks):
        b0, b1 = _chunk_bounds(B, nchunks, c)
        if b1 > b0:
            for t in range(T):
                e = _active_end_jit(steps, b0, b1, t)
                for b in range(b0, e):
                    out = a[t + 1, b]
                    pre = input_row(xa, tab, x, t, b)
                    for i in range(H):
                        out[i] = pre[i]
                if e > b0:
                    step_gemm(single, e - b0, H, H, base + (t * B + b0) * H * isz, H, w, H, 1.0,
                              base + ((t + 1) * B + b0) * H * isz, H)
                for b in range(b0, b1):
                    if steps[b] > t:
                        activate(a[t + 1, b], act)
                    else:
                        a[t + 1, b, :] = 0.0


def _rnn_backward_gemm(dz, dnext, da, a, W_aa, act, nchunks):
    """As `rnn_backward`; dnext = dz<t> W_aa with one gemm per step and slice."""
    T, B, H = da.shape[0], da.shape[1], da.shape[2]
    single, isz = a.itemsize == 4, a.itemsize
    zp, np_, w = dz.ctypes.data, dnext.ctypes.data, W_aa.ctypes.data
    for c in prange(nchunks):
        b0, b1 = _chunk_bounds(B, nchunks, c)
        if b1 > b0:
            for b in range(b0, b1):
                for i in range(H):
                    dnext[b, i] = 0.0
            for t in range(T - 1, -1, -1):
                for b in range(b0, b1):
                    out = a[t + 1, b]
                    d = dz[t, b]
                    up = da[t, b]
                    nxt = dnext[b]
                    if act == TANH:
                        for i in range(H):
                            d[i] = (up[i] + nxt[i]) * (1.0 - out[i] * out[i])
                    else:
                        for i in range(H):
                            d[i] = up[i] + nxt[i] if out[i] > 0.0 else 0.0
                if t > 0:
                    step_gemm(single, b1 - b0, H, H, zp + (t * B + b0) * H * isz, H, w, H, 0.0,
                              np_ + b0 * H * isz, H)


def _pgemm(C, A, B, trans_a, trans_b, alpha, beta, nchunks):
    """C = alpha op(A) op(B) + beta C for C-contiguous 2-D arrays, rows of C split over threads.

    op(A) is (M, K): A itself is (M, K), or (K, M) with trans_a; op(B) is (K, N) likewise.
    """
    M, N = C.shape[0], C.shape[1]
    K = A.shape[0] if trans_a else A.shape[1]
    lda, ldb, isz = A.shape[1], B.shape[1], C.itemsize
    single = C.itemsize == 4
    for c in prange(nchunks):
        m0, m1 = _chunk_bounds(M, nchunks, c)
        if m1 > m0:
            offset = m0 if trans_a else m0 * lda
            gemm(single, trans_a, trans_b, m1 - m0, N, K, alpha, A.ctypes.data + offset * isz,
                 lda, B.ctypes.data, ldb, beta, C.ctypes.data + m0 * N * isz, N)


@njit
def transpose_into(dst, src):
    """dst = src^T for 2-D arrays (dst (C, R), src (R, C)), in 32 x 32 tiles: the BLAS recurrences
    read a contiguous W_aa^T, refreshed every window, and numpy's strided copy of a transposed
    view takes about ten times as long at H 512 (5.1 against 0.5 ms for a GRU's 1536 x 512)."""
    R, C = src.shape[0], src.shape[1]
    for i0 in range(0, R, 32):
        i1 = min(R, i0 + 32)
        for j0 in range(0, C, 32):
            j1 = min(C, j0 + 32)
            for j in range(j0, j1):
                for i in range(i0, i1):
                    dst[j, i] = src[i, j]


_chunk_bounds = njit(_chunk)
_active_end_jit = njit(_active_end)
input_row = njit(_input_row)
rnn_forward_gemm = njit_parallel(_rnn_forward_gemm)
rnn_backward_gemm = njit_parallel(_rnn_backward_gemm)
rnn_forward_gemm_serial = njit(_rnn_forward_gemm)
rnn_backward_gemm_serial = njit(_rnn_backward_gemm)
pgemm = njit_parallel(_pgemm)
pgemm_serial = njit(_pgemm)
