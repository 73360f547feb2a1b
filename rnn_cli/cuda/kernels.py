"""@cuda.jit twins of the CPU training kernels, and host wrappers that keep the CPU names.

What lives here: the column-gather input and its scatter-add gradient, the embedding gather and
its scatter-add, the dropout product, a tiled shared-memory matmul for the products the CPU path
hands to BLAS (and, per time step, the recurrent products: `cells.py`), softmax + cross-entropy
forward and backward, and deterministic sum reductions. What does not: clipping and the optimizer
updates (`optim.py`), the cells' time steps (`cells.py`), sampling (`sampling.py`), buffer
management (`network.py`), the loop (`train.py`).

Every wrapper takes device arrays (or, under the simulator, anything numba.cuda accepts), launches
and returns without synchronising; shapes and equations are those of the CPU twin named in each
docstring (kernels/cell.py, kernels/embed.py, kernels/output.py). Randomness never enters here.

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


THREADS = 256  # threads per block of the 1-D launches
TILE = 16  # matmul: TILE x TILE threads per block ...
REG = 4  # ... each computing REG x REG outputs (a block: a 64 x 64 tile of the product)
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
def col_sum_kernel(out, A, offset):
    """out[n] = sum_m A[m, offset + n] (in row order, like numpy's pairwise sum only up to
    rounding)."""
    n = cuda.grid(1)
    if n < out.shape[0]:
        s = float32(0.0)
        for m in range(A.shape[0]):
            s += A[m, offset + n]
        out[n] = s


def col_sum(out, A, offset: int = 0) -> None:
    """out (N,) = A[:, offset:offset+N] (M, >= offset+N) summed over rows
    (np.sum(A[:, offset:offset+N], axis=0, out=out))."""
    col_sum_kernel[_blocks(out.shape[0]), THREADS](out, A, offset)


@cuda.jit
def mul_kernel(out, a, m):
    """out[i] = a[i] * m[i] for flat arrays (out may alias a)."""
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = a[i] * m[i]


def mul(out, a, m) -> None:
    """out = a * m elementwise (contiguous device arrays of one shape; out may be a): the
    inverted-dropout masks, forward and backward."""
    n = out.size
    if n:
        mul_kernel[_blocks(n), THREADS](out.reshape(n), a.reshape(n), m.reshape(n))


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


def embed_forward(e, W_emb, x) -> None:
    """Twin of embed.embed_forward: e (T,B,E) out, W_emb (V,E), x (T,B) int32."""
    n = e.shape[0] * e.shape[1] * e.shape[2]
    embed_forward_kernel[_blocks(n), THREADS](e, W_emb, x)


@cuda.jit
def embed_backward_kernel(dW_emb, de, x):
    """dW_emb[x<t>, i] += de<t>[i]: one thread per column i walks the positions in (t, b) order
    (two positions may hold one token; the fixed order keeps the sum the CPU's)."""
    i = cuda.grid(1)
    if i < dW_emb.shape[1]:
        for t in range(x.shape[0]):
            for b in range(x.shape[1]):
                k = x[t, b]
                if k >= 0:
                    dW_emb[k, i] += de[t, b, i]


def embed_backward(dW_emb, de, x) -> None:
    """Twin of embed.embed_backward (accumulates): dW_emb (V,E), de (T,B,E), x (T,B) int32."""
    embed_backward_kernel[_blocks(dW_emb.shape[1]), THREADS](dW_emb, de, x)


# ---------------------------------------------------------------------------------------------
# matmul (what the CPU path gives to BLAS); numba-cuda ships no GEMM without cuBLAS bindings


@functools.lru_cache(maxsize=None)
def _matmul_kernel(tile: int, reg: int):
    block = tile * reg  # a block computes a (block x block) tile of C

    @cuda.jit
    def matmul_kernel(C, A, B, trans_a, trans_b):
        """C (M,N) = op(A) (M,K) @ op(B) (K,N); op = transpose when trans_*. Tiled through shared
        memory and registers: (tile x tile) threads per block, each computing reg x reg outputs
        (rows ty + tile*r, columns tx + tile*s: neighbouring threads touch neighbouring columns);
        per K-step of `tile` the block loads a (block x tile) slab of op(A) and a (tile x block)
        slab of op(B), and every value loaded from shared memory feeds `reg` multiply-adds."""
        sA = cuda.shared.array((block, tile), float32)
        sB = cuda.shared.array((tile, block), float32)
        acc = cuda.local.array((reg, reg), float32)
        a_r = cuda.local.array(reg, float32)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        row0 = cuda.blockIdx.y * block
        col0 = cuda.blockIdx.x * block
        M = C.shape[0]
        N = C.shape[1]
        K = A.shape[0] if trans_a else A.shape[1]
        for r in range(reg):
            for c in range(reg):
                acc[r, c] = 0.0
        for k0 in range(0, K, tile):
            # loads: threads next to each other in x read neighbouring addresses of A and B
            # (coalesced) whether or not the operand is transposed
            for r in range(reg):
                if trans_a:  # A (K, M): sA[m, k] = A[k, m]
                    m = row0 + tx + tile * r
                    k = k0 + ty
                    sA[tx + tile * r, ty] = A[k, m] if m < M and k < K else 0.0
                else:
                    m = row0 + ty + tile * r
                    k = k0 + tx
                    sA[ty + tile * r, tx] = A[m, k] if m < M and k < K else 0.0
                if trans_b:  # B (N, K): sB[k, n] = B[n, k]
                    n = col0 + ty + tile * r
                    k = k0 + tx
                    sB[tx, ty + tile * r] = B[n, k] if n < N and k < K else 0.0
                else:
                    n = col0 + tx + tile * r
                    k = k0 + ty
                    sB[ty, tx + tile * r] = B[k, n] if n < N and k < K else 0.0
            cuda.syncthreads()
            for kk in range(tile):
                for r in range(reg):
                    a_r[r] = sA[ty + tile * r, kk]
                for c in range(reg):
                    b = sB[kk, tx + tile * c]
                    for r in range(reg):
                        acc[r, c] += a_r[r] * b
            cuda.syncthreads()
        for r in range(reg):
            row = row0 + ty + tile * r
            if row < M:
                for c in range(reg):
                    col = col0 + tx + tile * c
                    if col < N:
                        C[row, col] = acc[r, c]

    return matmul_kernel


def matmul(C, A, B, trans_a: bool = False, trans_b: bool = False) -> None:
    """C = op(A) @ op(B) (overwrites C), float32 2-D device arrays."""
    M, N = C.shape
    block = TILE * REG
    grid = ((N + block - 1) // block, (M + block - 1) // block)
    _matmul_kernel(TILE, REG)[grid, (TILE, TILE)](C, A, B, trans_a, trans_b)


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
