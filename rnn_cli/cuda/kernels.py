"""@cuda.jit twins of the CPU training kernels, and host wrappers that keep the CPU names.

What lives here: the column-gather input and its gradient, the embedding gather and its gradient,
the dropout product, column sums, softmax + cross-entropy forward and backward, and deterministic
sum reductions. What does not: the matrix products (`blas.py`), clipping and the optimizer updates
(`optim.py`), the cells' time steps (`cells.py`), sampling (`sampling.py`), buffer management
(`network.py`), the loop (`train.py`, `step.py`).

Every wrapper takes device arrays (or, under the simulator, anything numba.cuda accepts) and a
`stream` (0: the default stream), launches and returns without synchronising; shapes and equations
are those of the CPU twin named in each docstring (kernels/cell.py, kernels/embed.py,
kernels/output.py). Randomness never enters here.

The gradients of the one-hot input and of the embedding (a scatter-add on the CPU) read the
window's positions sorted by token (`token_order`, done on the host where x already is): one
thread per (token, unit) sums its token's positions in (t, b) order, so nothing races, nothing
needs atomics, and each sum is the CPU's, in the CPU's order.

Launch sizes are read from `THREADS`, `COLS` and `LANES` at call time (tests set them small for
the simulator, stumpy's `config.STUMPY_THREADS_PER_BLOCK` habit); kernels whose shared-memory size
depends on them are built per size by a cached factory. No CUDA `fastmath`: NaN/inf must survive
so the trainer can stop a diverging run. Reductions run in a fixed order (no atomics), so a
result is the same from run to run.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import float32, float64

from rnn_cli.cuda.backend import numba_cuda

cuda = numba_cuda()

THREADS = 256  # threads per block of the 1-D launches
PARTIALS = 64  # blocks of the first pass of a sum reduction
COLS, LANES = 32, 8  # column sums: a block sums COLS columns with LANES threads per column ...
CHUNK_ROWS = 256  # ... over a chunk of this many rows (the chunks' partial sums: a second pass)
MAX_CHUNKS = 16  # at most this many chunks (longer ones beyond MAX_CHUNKS * CHUNK_ROWS rows)


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


def fill(x, value, stream=0) -> None:
    """Set every element of a contiguous device array (any shape) to `value`."""
    flat = x.reshape(x.size)
    if flat.shape[0]:
        fill_kernel[_blocks(flat.shape[0]), THREADS, stream](flat, value)


@cuda.jit
def add_bias_kernel(C, bias):
    """C[m, n] += bias[n];  C (M,N), bias (N,)."""
    idx = cuda.grid(1)
    N = C.shape[1]
    if idx < C.shape[0] * N:
        C[idx // N, idx % N] += bias[idx % N]


def add_bias(C, bias, stream=0) -> None:
    add_bias_kernel[_blocks(C.shape[0] * C.shape[1]), THREADS, stream](C, bias)


@functools.lru_cache(maxsize=None)
def _col_partial_kernel(cols: int, lanes: int):
    @cuda.jit
    def col_partial_kernel(partial, A, offset, rows):
        """partial[chunk, n] = sum of A[m, offset + n] over the chunk's `rows` rows: a block of
        (cols x lanes) threads; lane l sums rows l, l + lanes, ... (coalesced across the columns),
        then lane 0 adds the lanes' sums in lane order."""
        buf = cuda.shared.array((lanes, cols), float32)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        n = cuda.blockIdx.x * cols + tx
        r0 = cuda.blockIdx.y * rows
        r1 = min(A.shape[0], r0 + rows)
        s = float32(0.0)
        if n < partial.shape[1]:
            for m in range(r0 + ty, r1, lanes):
                s += A[m, offset + n]
        buf[ty, tx] = s
        cuda.syncthreads()
        if ty == 0 and n < partial.shape[1]:
            t = float32(0.0)
            for lane in range(lanes):
                t += buf[lane, tx]
            partial[cuda.blockIdx.y, n] = t

    return col_partial_kernel


@cuda.jit
def col_finish_kernel(out, partial, chunks):
    """out[n] = sum over the first `chunks` rows of partial[:, n], in order."""
    n = cuda.grid(1)
    if n < out.shape[0]:
        s = float32(0.0)
        for c in range(chunks):
            s += partial[c, n]
        out[n] = s


def col_sum_scratch(n: int):
    """The scratch `col_sum` needs for sums of up to n columns (MAX_CHUNKS, n) float32."""
    return cuda.device_array((MAX_CHUNKS, max(n, 1)), np.float32)


def col_sum(out, A, offset: int = 0, scratch=None, stream=0) -> None:
    """out (N,) = A[:, offset:offset+N] (M, >= offset+N) summed over rows
    (np.sum(A[:, offset:offset+N], axis=0, out=out)), in two passes: partial sums over chunks
    of rows (many blocks at once), then the chunks' sums in order. scratch: `col_sum_scratch(N)`
    (allocated here when None: not while a graph is captured)."""
    M, N = A.shape[0], out.shape[0]
    chunks = min(MAX_CHUNKS, max(1, -(-M // CHUNK_ROWS)))
    rows = -(-M // chunks)
    if scratch is None:
        scratch = col_sum_scratch(N)
    partial = scratch[:chunks, :N]
    grid = (-(-N // COLS), chunks)
    _col_partial_kernel(COLS, LANES)[grid, (COLS, LANES), stream](partial, A, offset, rows)
    col_finish_kernel[_blocks(N), THREADS, stream](out, partial, chunks)


@cuda.jit
def mul_kernel(out, a, m):
    """out[i] = a[i] * m[i] for flat arrays (out may alias a)."""
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = a[i] * m[i]


def mul(out, a, m, stream=0) -> None:
    """out = a * m elementwise (contiguous device arrays of one shape; out may be a): the
    inverted-dropout masks, forward and backward."""
    n = out.size
    if n:
        mul_kernel[_blocks(n), THREADS, stream](out.reshape(n), a.reshape(n), m.reshape(n))


def token_order(x: np.ndarray, vocab_size: int, out: np.ndarray | None = None) -> np.ndarray:
    """The positions of x (T, B) sorted by token, then the bounds of each token's run:
    out[:R] = positions (flat, (t, b) order within a token; tokens < 0 first),
    out[R + k] = start of token k's run (k = 0..V; out[R + V] = R). int32, (R + V + 1,)."""
    flat = x.reshape(-1)
    R = flat.shape[0]
    out = np.empty(R + vocab_size + 1, np.int32) if out is None else out
    key = flat.astype(np.int16) if vocab_size < 32767 else flat  # int16: numpy's radix sort
    out[:R] = np.argsort(key, kind="stable")
    out[R:] = np.searchsorted(flat[out[:R]], np.arange(vocab_size + 1), "left")
    return out


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


def gather_input_forward(xa, W_ax, b_a, x, stream=0) -> None:
    """Twin of cell.gather_input_forward: xa (T,B,GH) out, W_ax (GH,V), b_a (GH,), x (T,B) int32."""
    n = xa.shape[0] * xa.shape[1] * xa.shape[2]
    gather_input_forward_kernel[_blocks(n), THREADS, stream](xa, W_ax, b_a, x)


@cuda.jit
def onehot_grad_kernel(dW_ax, dz, order, R):
    """dW_ax[i, k] = sum of dz[p, i] over the positions p of token k (order[order[R + k]:
    order[R + k + 1]], in (t, b) order): one thread per (k, i), i fastest (coalesced reads of
    dz's rows)."""
    idx = cuda.grid(1)
    GH = dW_ax.shape[0]
    if idx < GH * dW_ax.shape[1]:
        k = idx // GH
        i = idx % GH
        s = float32(0.0)
        for j in range(order[R + k], order[R + k + 1]):
            s += dz[order[j], i]
        dW_ax[i, k] = s


def gather_input_backward(dW_ax, db_a, dz, order, scratch=None, stream=0) -> None:
    """Twin of cell.gather_input_backward, overwriting (not accumulating): dW_ax (GH,V) and
    db_a (GH,) from dz (T,B,GH) and `token_order(x)` on the device; scratch: col_sum's."""
    T, B, GH = dz.shape
    dz2 = dz.reshape(T * B, GH)
    n = dW_ax.shape[0] * dW_ax.shape[1]
    onehot_grad_kernel[_blocks(n), THREADS, stream](dW_ax, dz2, order, T * B)
    col_sum(db_a, dz2, 0, scratch, stream)


# ---------------------------------------------------------------------------------------------
# the embedding (twins of kernels/embed.py)


@cuda.jit
def embed_forward_kernel(e, W_emb, x):
    """e<t>[b, i] = W_emb[x<t>[b], i] (x < 0: 0); one thread per element."""
    idx = cuda.grid(1)
    B = e.shape[1]
    E = e.shape[2]
    if idx < e.shape[0] * B * E:
        t = idx // (B * E)
        b = (idx // E) % B
        i = idx % E
        k = x[t, b]
        e[t, b, i] = W_emb[k, i] if k >= 0 else 0.0


def embed_forward(e, W_emb, x, stream=0) -> None:
    """Twin of embed.embed_forward: e (T,B,E) out, W_emb (V,E), x (T,B) int32."""
    n = e.shape[0] * e.shape[1] * e.shape[2]
    embed_forward_kernel[_blocks(n), THREADS, stream](e, W_emb, x)


@cuda.jit
def embed_backward_kernel(dW_emb, de, order, R):
    """dW_emb[k, i] += the sum of de[p, i] over the positions p of token k, in (t, b) order
    (`token_order`): one thread per (k, i), i fastest."""
    idx = cuda.grid(1)
    E = dW_emb.shape[1]
    if idx < dW_emb.shape[0] * E:
        k = idx // E
        i = idx % E
        s = dW_emb[k, i]
        for j in range(order[R + k], order[R + k + 1]):
            s += de[order[j], i]
        dW_emb[k, i] = s


def embed_backward(dW_emb, de, order, stream=0) -> None:
    """Twin of embed.embed_backward (accumulates): dW_emb (V,E), de (T,B,E), order: token_order(x)
    on the device."""
    T, B, E = de.shape
    n = dW_emb.shape[0] * E
    embed_backward_kernel[_blocks(n), THREADS, stream](dW_emb, de.reshape(T * B, E), order, T * B)


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


def softmax_xent_forward(nll, lse, logits, y, total, partials, stream=0) -> None:
    """Twin of output.softmax_xent_forward; the summed nll goes to total (1,) float64 on the device
    (no host round trip): nll (R,) f64 out, lse (R,) f64 out, logits (R,V), y (R,) int32,
    partials (PARTIALS,) float64 scratch."""
    softmax_xent_forward_kernel[_blocks(logits.shape[0]), THREADS, stream](nll, lse, logits, y)
    sum_into(total, nll, partials, stream)


def softmax_xent_backward(dlogits, logits, lse, y, scale, stream=0) -> None:
    """Twin of output.softmax_xent_backward (dlogits may alias logits: each thread reads then
    writes only its own element)."""
    n = logits.shape[0] * logits.shape[1]
    softmax_xent_backward_kernel[_blocks(n), THREADS, stream](dlogits, logits, lse, y, scale)


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


def _reduce(out, x, square: bool, partials, stream) -> None:
    n_threads = 1 << max(0, THREADS.bit_length() - 1)  # a power of two for the tree
    kern = _partial_sum_kernel(n_threads)
    blocks = min(partials.shape[0], max(1, (x.shape[0] + n_threads - 1) // n_threads))
    kern[blocks, n_threads, stream](partials, x, square)
    kern[1, n_threads, stream](out, partials[:blocks], False)


def sum_into(out, x, partials, stream=0) -> None:
    """out[0] = sum(x) in float64: out (1,) float64, partials (PARTIALS,) float64 scratch."""
    _reduce(out, x, False, partials, stream)


def sum_squares(out, g, partials, stream=0) -> None:
    """Twin of output.sum_squares: out[0] = sum g^2 in float64; partials (PARTIALS,) float64."""
    _reduce(out, g, True, partials, stream)
