"""General matrix products callable from compiled kernels: numpy's own OpenBLAS, else a fallback.

The recurrence needs a (B x H) @ (H x H) product at every time step, and Python cannot afford a
round trip per step, so the kernels call `gemm` directly. The symbol is the ILP64 CBLAS
`?gemm` that numpy's wheels bundle (`scipy_cblas_sgemm64_` in numpy >= 2, `cblas_sgemm64_` in
numpy 1.2x); it is registered with LLVM under a fixed name, so compiled kernels refer to it by
name and stay cacheable. Where no such library is found (another numpy build), the same names
point at compiled loops (`_fallback_*`), slower but equal. Our kernels split work across
numba's threads themselves, so OpenBLAS is asked for one thread: two thread pools spinning on
the same cores would fight.

`gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)` on row-major data:
C (M x N) = alpha * op(A) @ op(B) + beta * C, pointers as integers (`arr.ctypes.data`).
"""

from __future__ import annotations

import ctypes
import glob
import os

import llvmlite.binding as llvm
import numba
import numpy as np
from numba import types

from rnn_cli.kernels._jit import njit

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
_I, _L, _P = types.int32, types.int64, types.intp
_SIG32 = types.void(_I, _I, _I, _L, _L, _L, types.float32, _P, _L, _P, _L, types.float32, _P, _L)
_SIG64 = types.void(_I, _I, _I, _L, _L, _L, types.float64, _P, _L, _P, _L, types.float64, _P, _L)
_CANDIDATES = (("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_", "scipy_openblas_set_num_threads64_"),
               ("cblas_sgemm64_", "cblas_dgemm64_", "openblas_set_num_threads64_"))


def _find_openblas():
    """(library, (sgemm, dgemm, set_threads) names) of numpy's bundled ILP64 OpenBLAS, or None."""
    here = os.path.dirname(np.__file__)
    paths = glob.glob(os.path.join(here + ".libs", "*openblas*")) + \
        glob.glob(os.path.join(here, ".dylibs", "*openblas*")) + \
        glob.glob(os.path.join(here, "..", "scipy_openblas64", "lib", "*openblas*"))
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for names in _CANDIDATES:
            if all(hasattr(lib, n) for n in names[:2]):
                return lib, names
    return None


def _fallback(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ta, tb):
    for i in range(M):
        for j in range(N):
            s = 0.0
            for k in range(K):
                a = A[k * lda + i] if ta else A[i * lda + k]
                b = B[j * ldb + k] if tb else B[k * ldb + j]
                s += a * b
            C[i * ldc + j] = alpha * s + (beta * C[i * ldc + j] if beta != 0.0 else 0.0)


def _make_fallback(dtype, sig):
    loops = numba.njit(cache=True)(_fallback)

    def body(order, transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc):
        a = numba.carray(_as_ptr(A, dtype), (K * lda + M * lda,))
        b = numba.carray(_as_ptr(B, dtype), (N * ldb + K * ldb,))
        c = numba.carray(_as_ptr(C, dtype), (M * ldc,))
        loops(M, N, K, alpha, a, lda, b, ldb, beta, c, ldc, transa == TRANS, transb == TRANS)
    return numba.cfunc(sig, cache=True)(body)


_LIB = None if os.environ.get("RNN_CLI_NO_OPENBLAS") else _find_openblas()
if _LIB is not None:
    lib, (s_name, d_name, t_name) = _LIB
    _sgemm_addr = ctypes.cast(getattr(lib, s_name), ctypes.c_void_p).value
    _dgemm_addr = ctypes.cast(getattr(lib, d_name), ctypes.c_void_p).value
    if hasattr(lib, t_name):
        getattr(lib, t_name).argtypes = [ctypes.c_int]
        getattr(lib, t_name)(1)
    BACKEND = f"openblas ({s_name})"
else:
    from numba.core.extending import intrinsic

    @intrinsic
    def _as_ptr(typingctx, addr, dtype):  # pragma: no cover - only without numpy's OpenBLAS
        ty = dtype.dtype if hasattr(dtype, "dtype") else dtype
        sig = types.CPointer(ty)(addr, dtype)

        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], context.get_value_type(types.CPointer(ty)))
        return sig, codegen

    _sgemm_addr = _make_fallback(np.float32, _SIG32).address
    _dgemm_addr = _make_fallback(np.float64, _SIG64).address
    BACKEND = "compiled loops (numpy's OpenBLAS not found)"

llvm.add_symbol("rnn_cli_sgemm", _sgemm_addr)
llvm.add_symbol("rnn_cli_dgemm", _dgemm_addr)
_sgemm = types.ExternalFunction("rnn_cli_sgemm", _SIG32)
_dgemm = types.ExternalFunction("rnn_cli_dgemm", _SIG64)

if numba.config.DISABLE_JIT:  # plain-Python mode: call the same symbols through ctypes
    _ARGS = [ctypes.c_int] * 3 + [ctypes.c_int64] * 3
    _s = ctypes.CFUNCTYPE(None, *_ARGS, ctypes.c_float, ctypes.c_void_p, ctypes.c_int64,
                          ctypes.c_void_p, ctypes.c_int64, ctypes.c_float, ctypes.c_void_p,
                          ctypes.c_int64)(_sgemm_addr)
    _d = ctypes.CFUNCTYPE(None, *_ARGS, ctypes.c_double, ctypes.c_void_p, ctypes.c_int64,
                          ctypes.c_void_p, ctypes.c_int64, ctypes.c_double, ctypes.c_void_p,
                          ctypes.c_int64)(_dgemm_addr)
    _sgemm, _dgemm = _s, _d


@njit
def gemm(single, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc):
    """C = alpha op(A) op(B) + beta C, row-major, pointers as ints; `single`: float32 data."""
    ta = TRANS if trans_a else NO_TRANS
    tb = TRANS if trans_b else NO_TRANS
    if single:
        _sgemm(ROW_MAJOR, ta, tb, M, N, K, np.float32(alpha), A, lda, B, ldb, np.float32(beta),
               C, ldc)
    else:
        _dgemm(ROW_MAJOR, ta, tb, M, N, K, np.float64(alpha), A, lda, B, ldb, np.float64(beta),
               C, ldc)


# elements of the weight operand packed by one `step_gemm` call: 16k (64 kB in float32)
STEP_TILE = 16384


@njit
def step_gemm(single, M, N, K, A, lda, B, ldb, beta, C, ldc):
    """C (M x N) = A (M x K) @ B (K x N) + beta C, as `gemm`, in tiles of B of at most
    STEP_TILE elements (K in blocks of up to 256 rows, N in blocks of STEP_TILE // that).

    For the recurrences' per-step products, where M is a slice of the batch (16-32 rows) and B
    the recurrent weights. OpenBLAS packs the whole of B into a buffer at every call; once B and
    its packed copy outgrow the core's L2 cache (W_aa^T of an LSTM H 256 is 1 MB), every step
    reads both from L3 and two threads doing so slow each other down. Tiles keep the packed
    block and its source in L2: an LSTM H 256 step's product went from about 100-120 to about
    70 us a thread (H 512: 490-800 to about 300), measured on 2 cores (AMD EPYC, 1 MB of L2 a
    core). The tiles depend on N and K only, never on M or the thread count.
    """
    isz = 4 if single else 8
    kb = min(K, 256)
    nb = STEP_TILE // kb  # >= 64, as kb <= 256
    for q0 in range(0, N, nb):
        q1 = min(N, q0 + nb)
        for r0 in range(0, K, kb):
            r1 = min(K, r0 + kb)
            gemm(single, False, False, M, q1 - q0, r1 - r0, 1.0, A + r0 * isz, lda,
                 B + (r0 * ldb + q0) * isz, ldb, beta if r0 == 0 else 1.0, C + q0 * isz, ldc)
