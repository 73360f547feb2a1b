"""The matrix products of the device path: cuBLAS when its library loads, numba's tiled kernel
otherwise (and always under the simulator).

    Gemm(stream).gemm(C, A, B, trans_a, trans_b)    C (M,N) = op(A) @ op(B), float32, row-major

Both run on the caller's stream, so they interleave with the numba kernels in launch order and can
be captured into a CUDA graph (graph.py). cuBLAS comes through ctypes from the library that
`cuda.pathfinder` (a dependency of numba-cuda) finds: the toolkit on the machine, or the
`nvidia-cublas` wheel of the `cuda12`/`cuda13` extras; CuPy is not needed. Its handle gets a
fixed workspace (cublasSetWorkspace), so no product allocates memory while a graph is captured.

Precision: float32 products by default (CUBLAS_DEFAULT_MATH: float32 FMA, no tensor cores), which
agree with the CPU path to float32 rounding. RNN_CLI_CUDA_TF32=1 switches the handle to
CUBLAS_TF32_TENSOR_OP_MATH: inputs rounded to TF32 (10-bit mantissa) on the tensor cores, float32
accumulation, what PyTorch's cuDNN RNNs do by default (torch.backends.cudnn.allow_tf32).

The tiled kernel: numba-cuda ships no GEMM, so this is a shared-memory tiled product, (TILE x TILE)
threads per block each computing REG x REG outputs. It reached 0.14-0.23x cuBLAS on an H200 on a
time step's shapes (issue 31: e.g. 64 x 1024 x 4096 at 2.7 against 19.1 TFLOP/s); it is the
fallback, and what the simulator tests exercise.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np
from numba import float32

from rnn_cli.cuda.backend import numba_cuda, setting, simulator_enabled

cuda = numba_cuda()

TILE = 16  # matmul: TILE x TILE threads per block ...
REG = 4  # ... each computing REG x REG outputs (a block: a 64 x 64 tile of the product)
WORKSPACE = 32 << 20  # cuBLAS workspace bytes (NVIDIA's recommendation for Hopper)


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


def matmul(C, A, B, trans_a: bool = False, trans_b: bool = False, stream=0) -> None:
    """C = op(A) @ op(B) (overwrites C), float32 2-D device arrays, on numba's tiled kernel."""
    M, N = C.shape
    block = TILE * REG
    grid = ((N + block - 1) // block, (M + block - 1) // block)
    _matmul_kernel(TILE, REG)[grid, (TILE, TILE), stream](C, A, B, trans_a, trans_b)


# ---------------------------------------------------------------------------------------------
# cuBLAS through ctypes

_OP_N, _OP_T = 0, 1
_DEFAULT_MATH, _TF32_MATH = 0, 3  # cublasMath_t: CUBLAS_DEFAULT_MATH, CUBLAS_TF32_TENSOR_OP_MATH


@functools.lru_cache(maxsize=1)
def _cublas_library():
    """The cuBLAS shared library (ctypes.CDLL) with the prototypes used here; raises OSError."""
    names = []
    try:
        from cuda.pathfinder import load_nvidia_dynamic_lib

        found = load_nvidia_dynamic_lib("cublas")
        if getattr(found, "abs_path", None):
            names.append(found.abs_path)
    except Exception:  # not found there: the loader's own search below
        pass
    names += ["libcublas.so.13", "libcublas.so.12", "libcublas.so"]
    errors = []
    for name in names:
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError as e:
            errors.append(str(e))
    else:
        raise OSError("cuBLAS not found: " + "; ".join(errors[-2:]))
    vp, i, f = ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_float)
    lib.cublasCreate_v2.argtypes = [ctypes.POINTER(vp)]
    lib.cublasDestroy_v2.argtypes = [vp]
    lib.cublasSetStream_v2.argtypes = [vp, vp]
    lib.cublasSetMathMode.argtypes = [vp, i]
    lib.cublasSgemm_v2.argtypes = [vp, i, i, i, i, i, f, vp, i, vp, i, f, vp, i]
    if hasattr(lib, "cublasSetWorkspace_v2"):
        lib.cublasSetWorkspace_v2.argtypes = [vp, vp, ctypes.c_size_t]
    return lib


def _check(status: int, what: str) -> None:
    if status != 0:
        raise RuntimeError(f"{what} failed with cuBLAS status {status}")


def _ptr(a) -> int:
    return a.__cuda_array_interface__["data"][0]


def _ld(a) -> int:
    """Leading dimension (elements) of a row-major 2-D float32 array with unit column stride."""
    if a.strides[1] != 4 and a.shape[1] > 1:
        raise ValueError("cuBLAS products need unit column strides")
    return max(a.strides[0] // 4, a.shape[1], 1)


class Cublas:
    """A cuBLAS handle bound to one stream, with its own workspace and math mode."""

    kind = "cublas"

    def __init__(self, stream, tf32: bool = False):
        lib = _cublas_library()
        self.lib, self.tf32 = lib, tf32
        self.handle = ctypes.c_void_p()
        _check(lib.cublasCreate_v2(ctypes.byref(self.handle)), "cublasCreate")
        self._destroy = lib.cublasDestroy_v2
        _check(lib.cublasSetStream_v2(self.handle, ctypes.c_void_p(int(stream.handle or 0)
                                                                  if stream else 0)),
               "cublasSetStream")
        _check(lib.cublasSetMathMode(self.handle, _TF32_MATH if tf32 else _DEFAULT_MATH),
               "cublasSetMathMode")
        self.workspace = None
        if hasattr(lib, "cublasSetWorkspace_v2"):
            self.workspace = cuda.device_array(WORKSPACE, np.uint8)
            _check(lib.cublasSetWorkspace_v2(self.handle, ctypes.c_void_p(_ptr(self.workspace)),
                                             WORKSPACE), "cublasSetWorkspace")
        self._one, self._zero = ctypes.c_float(1.0), ctypes.c_float(0.0)

    def __del__(self):
        handle = getattr(self, "handle", None)
        if handle is not None and handle.value:
            try:
                self._destroy(handle)
            except Exception:  # interpreter shutdown: the driver may be gone already
                pass

    def gemm(self, C, A, B, trans_a: bool = False, trans_b: bool = False) -> None:
        """C (M,N) = op(A) @ op(B), row-major float32 device arrays (views with unit column
        strides). cuBLAS is column-major: it computes C^T = op(B)^T op(A)^T, reading B's memory as
        its first operand and A's as its second."""
        M, N = C.shape
        K = A.shape[0] if trans_a else A.shape[1]
        if M == 0 or N == 0:
            return
        if K == 0:
            raise ValueError("empty inner dimension")
        _check(self.lib.cublasSgemm_v2(
            self.handle, _OP_T if trans_b else _OP_N, _OP_T if trans_a else _OP_N, N, M, K,
            ctypes.byref(self._one), _ptr(B), _ld(B), _ptr(A), _ld(A), ctypes.byref(self._zero),
            _ptr(C), _ld(C)), "cublasSgemm")


class Tiled:
    """numba's tiled matmul on one stream (the fallback, and the simulator's)."""

    kind = "numba"
    tf32 = False

    def __init__(self, stream=0):
        self.stream = stream

    def gemm(self, C, A, B, trans_a: bool = False, trans_b: bool = False) -> None:
        matmul(C, A, B, trans_a, trans_b, self.stream)


def make_gemm(stream=0):
    """The products for `stream` as RNN_CLI_CUDA_GEMM / RNN_CLI_CUDA_TF32 ask (backend.py): cuBLAS
    when it loads (`auto`, the default; `cublas` insists and raises when it cannot), else tiled."""
    want = setting("GEMM", "auto")
    if want not in ("auto", "cublas", "numba"):
        raise ValueError(f"RNN_CLI_CUDA_GEMM={want!r}: use auto, cublas or numba")
    if want == "numba" or (want == "auto" and simulator_enabled()):
        return Tiled(stream)
    try:
        return Cublas(stream, tf32=setting("TF32", "0") not in ("", "0"))
    except (OSError, RuntimeError, AttributeError):
        if want == "cublas":
            raise
        return Tiled(stream)
