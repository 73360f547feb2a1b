"""@cuda.jit twins of the CPU training kernels, and host wrappers that keep the CPU names.

What lives here: the column-gather input and its scatter-add gradient, the recurrence forward and
backward (one launch per time step over B*H threads: the step is the sequential dependency), a
tiled shared-memory matmul for the products the CPU path hands to BLAS, softmax + cross-entropy
forward and backward, and deterministic sum reductions. What does not: clipping and the optimizer
updates (`optim.py`), sampling (`sampling.py`), buffer management (`network.py`), the loop
(`train.py`).

Every wrapper takes device arrays (or, under the simulator, anything numba.cuda accepts), launches
and returns without synchronising; shapes and equations are those of the CPU twin named in each
docstring (kernels/cell.py, kernels/output.py). Randomness never enters here.

Launch sizes are read from `THREADS` and `TILE` at call time (tests set them small for the
simulator, stumpy's `config.STUMPY_THREADS_PER_BLOCK` habit); kernels whose shared-memory size
depends on them are built per size by a cached factory. No CUDA `fastmath`: NaN/inf must survive
so the trainer can stop a diverging run. Reductions run in a fixed order (no atomics), so a
result is the same from run to run.
"""

from __future__ import annotations

import functools
import math

from numba import cuda, float32, float64

from rnn_cli.kernels.cell import TANH

THREADS = 256  # threads per block of the 1-D launches
TILE = 16  # matmul tile: TILE x TILE threads per block
PARTIALS = 64  # blocks of the first pass of a sum reduction


def _blocks(n: int) -> int:
    return max(1, (n + THREADS - 1) // THREADS)


# ---------------------------------------------------------------------------------------------
# elementwise helpers


@cuda.jit
def fill_kernel(x, value):
    """x[:] = value for a flat array."""
    i = cuda.grid(1)
    if i < x.shape[0]:
        x[i] = value


def fill(x, value) -> None:
    """Set every element of a contiguous device array (any shape) to `value`."""
    flat = x.reshape(x.size)
    if flat.shape[0]:
        fill_kernel[_blocks(flat.shape[0]), THREADS](flat, value)


@cuda.jit
def add_bias_kernel(C, bias):
    """C[m, n] += bias[n];  C (M,N), bias (N,)."""
    idx = cuda.grid(1)
    N = C.shape[1]
    if idx < C.shape[0] * N:
        C[idx // N, idx % N] += bias[idx % N]


def add_bias(C, bias) -> None:
    add_bias_kernel[_blocks(C.shape[0] * C.shape[1]), THREADS](C, bias)


@cuda.jit
def col_sum_kernel(out, A):
    """out[n] = sum_m A[m, n] (in row order, like numpy's pairwise sum only up to rounding)."""
    n = cuda.grid(1)
    if n < A.shape[1]:
        s = float32(0.0)
        for m in range(A.shape[0]):
            s += A[m, n]
        out[n] = s


def col_sum(out, A) -> None:
    """out (N,) = A (M,N) summed over rows (np.sum(A, axis=0, out=out))."""
    col_sum_kernel[_blocks(A.shape[1]), THREADS](out, A)


# ---------------------------------------------------------------------------------------------
# the cell (twins of kernels/cell.py)


@cuda.jit
def gather_input_forward_kernel(xa, W_ax, b_a, x):
    """xa<t>[b, i] = W_ax[i, x<t>[b]] + b_a[i] (x < 0: the zero vector); one thread per element."""
    idx = cuda.grid(1)
    B = xa.shape[1]
    GH = xa.shape[2]
    if idx < xa.shape[0] * B * GH:
        t = idx // (B * GH)
        b = (idx // GH) % B
        i = idx % GH
        k = x[t, b]
        if k < 0:
            xa[t, b, i] = b_a[i]
        else:
            xa[t, b, i] = W_ax[i, k] + b_a[i]


def gather_input_forward(xa, W_ax, b_a, x) -> None:
    """Twin of cell.gather_input_forward: xa (T,B,GH) out, W_ax (GH,V), b_a (GH,), x (T,B) int32."""
    n = xa.shape[0] * xa.shape[1] * xa.shape[2]
    gather_input_forward_kernel[_blocks(n), THREADS](xa, W_ax, b_a, x)


@cuda.jit
def gather_input_backward_kernel(dW_ax, db_a, dz, x):
    """dW_ax[i, x<t>] += dz<t>[i]; db_a[i] += dz<t>[i]. One thread per row i walks every position
    in (t, b) order: two positions may hold the same token, so threads must not share a column
    entry, and the fixed order makes the sum the CPU's, bit for bit, up to fused multiply-adds."""
    i = cuda.grid(1)
    if i < db_a.shape[0]:
        for t in range(x.shape[0]):
            for b in range(x.shape[1]):
                d = dz[t, b, i]
                db_a[i] += d
                k = x[t, b]
                if k >= 0:
                    dW_ax[i, k] += d


def gather_input_backward(dW_ax, db_a, dz, x) -> None:
    """Twin of cell.gather_input_backward (accumulates): dW_ax (GH,V), db_a (GH,), dz (T,B,GH)."""
    gather_input_backward_kernel[_blocks(db_a.shape[0]), THREADS](dW_ax, db_a, dz, x)


@cuda.jit
def transpose_kernel(out, A):
    """out (N,M) = A (M,N) transposed; one thread per element."""
    idx = cuda.grid(1)
    N = A.shape[1]
    if idx < A.shape[0] * N:
        out[idx % N, idx // N] = A[idx // N, idx % N]


@cuda.jit
def rnn_forward_step_kernel(a, xa, W_aaT, t, act):
    """a<t+1>[b, i] = g(xa<t>[b, i] + sum_j W_aa[i, j] a<t>[b, j]); one thread per (b, i).

    W_aaT[j, i] = W_aa[i, j]: threads i of a warp read one row of it side by side (coalesced),
    where W_aa itself would be read with a stride of H.
    """
    idx = cuda.grid(1)
    H = a.shape[2]
    if idx < a.shape[1] * H:
        b = idx // H
        i = idx % H
        s = xa[t, b, i]
        for j in range(H):
            s += W_aaT[j, i] * a[t, b, j]
        if act == TANH:
            a[t + 1, b, i] = math.tanh(s)
        else:
            a[t + 1, b, i] = s if s > 0.0 else 0.0


def rnn_forward(a, xa, W_aa, act, W_aaT) -> None:
    """Twin of cell.rnn_forward: a (T+1,B,H) in/out (a[0] given), xa (T,B,H), W_aa (H,H);
    W_aaT (H,H) scratch receives W_aa transposed once per call (see the step kernel)."""
    T, B, H = xa.shape
    transpose_kernel[_blocks(H * H), THREADS](W_aaT, W_aa)
    for t in range(T):  # the recurrence: each step needs the whole previous state
        rnn_forward_step_kernel[_blocks(B * H), THREADS](a, xa, W_aaT, t, act)


@cuda.jit
def rnn_backward_step_kernel(dz, da, a, W_aa, t, act):
    """dz<t>[b, i] = (da<t>[b, i] + sum_k W_aa[k, i] dz<t+1>[b, k]) * g'(a<t+1>[b, i]).

    The recurrent term reads dz<t+1>, finished by the previous launch, so no dnext buffer is
    needed; threads i of a warp read W_aa[k, i] side by side (coalesced).
    """
    idx = cuda.grid(1)
    H = a.shape[2]
    if idx < a.shape[1] * H:
        b = idx // H
        i = idx % H
        g = da[t, b, i]
        if t + 1 < da.shape[0]:
            for k in range(H):
                g += W_aa[k, i] * dz[t + 1, b, k]
        out = a[t + 1, b, i]
        if act == TANH:
            dz[t, b, i] = g * (1.0 - out * out)
        else:
            dz[t, b, i] = g if out > 0.0 else 0.0


def rnn_backward(dz, da, a, W_aa, act) -> None:
    """Twin of cell.rnn_backward (without its dnext scratch): dz (T,B,H) out, da (T,B,H) in,
    a (T+1,B,H) from forward, W_aa (H,H). Truncated at the window start."""
    T, B, H = da.shape
    for t in range(T - 1, -1, -1):
        rnn_backward_step_kernel[_blocks(B * H), THREADS](dz, da, a, W_aa, t, act)


# ---------------------------------------------------------------------------------------------
# matmul (what the CPU path gives to BLAS); numba-cuda ships no GEMM without cuBLAS bindings


@functools.lru_cache(maxsize=None)
def _matmul_kernel(tile: int):
    @cuda.jit
    def matmul_kernel(C, A, B, trans_a, trans_b):
        """C (M,N) = op(A) (M,K) @ op(B) (K,N); op = transpose when trans_*. Tiled through shared
        memory: each block loads a tile of op(A) and op(B) per K-step (llm.c's matmul_forward)."""
        sA = cuda.shared.array((tile, tile), float32)
        sB = cuda.shared.array((tile, tile), float32)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        row = cuda.blockIdx.y * tile + ty
        col = cuda.blockIdx.x * tile + tx
        M = C.shape[0]
        N = C.shape[1]
        K = A.shape[0] if trans_a else A.shape[1]
        acc = float32(0.0)
        for k0 in range(0, K, tile):
            ka = k0 + tx
            if row < M and ka < K:
                sA[ty, tx] = A[ka, row] if trans_a else A[row, ka]
            else:
                sA[ty, tx] = 0.0
            kb = k0 + ty
            if kb < K and col < N:
                sB[ty, tx] = B[col, kb] if trans_b else B[kb, col]
            else:
                sB[ty, tx] = 0.0
            cuda.syncthreads()
            for kk in range(tile):
                acc += sA[ty, kk] * sB[kk, tx]
            cuda.syncthreads()
        if row < M and col < N:
            C[row, col] = acc

    return matmul_kernel


def matmul(C, A, B, trans_a: bool = False, trans_b: bool = False) -> None:
    """C = op(A) @ op(B) (overwrites C), float32 2-D device arrays."""
    M, N = C.shape
    grid = ((N + TILE - 1) // TILE, (M + TILE - 1) // TILE)
    _matmul_kernel(TILE)[grid, (TILE, TILE)](C, A, B, trans_a, trans_b)


# ---------------------------------------------------------------------------------------------
# output layer (twins of kernels/output.py)


@cuda.jit
def softmax_xent_forward_kernel(nll, lse, logits, y):
    """Per row r: lse[r] = log sum_k exp(logits[r, k]) (max-subtracted), nll[r] = lse[r] -
    logits[r, y[r]] (0 where y < 0). One thread per row: V is walked serially."""
    r = cuda.grid(1)
    if r < logits.shape[0]:
        V = logits.shape[1]
        m = logits[r, 0]
        for k in range(1, V):
            if logits[r, k] > m:
                m = logits[r, k]
        s = 0.0
        for k in range(V):
            s += math.exp(logits[r, k] - m)
        lse[r] = m + math.log(s)
        nll[r] = lse[r] - logits[r, y[r]] if y[r] >= 0 else 0.0


@cuda.jit
def softmax_xent_backward_kernel(dlogits, logits, lse, y, scale):
    """dlogits = (softmax(logits) - onehot(y)) * scale; rows with y < 0 get 0. Per element."""
    idx = cuda.grid(1)
    V = logits.shape[1]
    if idx < logits.shape[0] * V:
        r = idx // V
        k = idx % V
        if y[r] < 0:
            dlogits[r, k] = 0.0
        else:
            d = math.exp(logits[r, k] - lse[r]) * scale
            if k == y[r]:
                d -= scale
            dlogits[r, k] = d


def softmax_xent_forward(nll, lse, logits, y, total, partials) -> None:
    """Twin of output.softmax_xent_forward; the summed nll goes to total (1,) float64 on the device
    (no host round trip): nll (R,) f64 out, lse (R,) f64 out, logits (R,V), y (R,) int32,
    partials (PARTIALS,) float64 scratch."""
    softmax_xent_forward_kernel[_blocks(logits.shape[0]), THREADS](nll, lse, logits, y)
    sum_into(total, nll, partials)


def softmax_xent_backward(dlogits, logits, lse, y, scale) -> None:
    """Twin of output.softmax_xent_backward (dlogits may alias logits: each thread reads then
    writes only its own element)."""
    n = logits.shape[0] * logits.shape[1]
    softmax_xent_backward_kernel[_blocks(n), THREADS](dlogits, logits, lse, y, scale)


# ---------------------------------------------------------------------------------------------
# deterministic sum reductions (twin of output.sum_squares); clipping and updates: optim.py


@functools.lru_cache(maxsize=None)
def _partial_sum_kernel(nthreads: int):
    @cuda.jit
    def partial_sum_kernel(partials, x, square):
        """partials[block] = sum over this block's grid-stride share of x (of x^2 when square),
        in float64, by a shared-memory tree: a fixed order, so results repeat exactly."""
        buf = cuda.shared.array(nthreads, float64)
        tid = cuda.threadIdx.x
        s = 0.0
        i = cuda.blockIdx.x * nthreads + tid
        while i < x.shape[0]:
            v = float64(x[i])
            s += v * v if square else v
            i += cuda.gridDim.x * nthreads
        buf[tid] = s
        cuda.syncthreads()
        step = nthreads // 2
        while step > 0:
            if tid < step:
                buf[tid] += buf[tid + step]
            cuda.syncthreads()
            step //= 2
        if tid == 0:
            partials[cuda.blockIdx.x] = buf[0]

    return partial_sum_kernel


def _reduce(out, x, square: bool, partials) -> None:
    n_threads = 1 << max(0, THREADS.bit_length() - 1)  # a power of two for the tree
    kern = _partial_sum_kernel(n_threads)
    blocks = min(partials.shape[0], max(1, (x.shape[0] + n_threads - 1) // n_threads))
    kern[blocks, n_threads](partials, x, square)
    kern[1, n_threads](out, partials[:blocks], False)


def sum_into(out, x, partials) -> None:
    """out[0] = sum(x) in float64: out (1,) float64, partials (PARTIALS,) float64 scratch."""
    _reduce(out, x, False, partials)


def sum_squares(out, g, partials) -> None:
    """Twin of output.sum_squares: out[0] = sum g^2 in float64; partials (PARTIALS,) float64."""
    _reduce(out, g, True, partials)
