"""Every training kernel against its float64 NumPy twin in tests/reference.py (STYLE §3.4).

Tiny shapes (H=5, V=7, T=4, B=3) so the suite also runs under NUMBA_DISABLE_JIT=1.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import reference as ref
from conftest import (FLOAT64_ATOL, FLOAT64_RTOL, SERIAL_PARALLEL_RTOL, B, H, T, V,
                      requires_jit, tol)
from rnn_cli.kernels import _jit, blas, cell, optim, output

ACTS = [("tanh", cell.TANH), ("relu", cell.RELU)]


def _ids(rng, shape, low=0):
    return rng.integers(low, V, size=shape).astype(np.int32)


def _cell_inputs(rng, dtype, act):
    a = np.zeros((T + 1, B, H), dtype)
    a[0] = rng.uniform(-0.8, 0.8, (B, H)) if act == cell.TANH else rng.uniform(0.0, 0.8, (B, H))
    xa = rng.normal(0.0, 0.7, (T, B, H)).astype(dtype)
    W_aa = rng.normal(0.0, 0.5, (H, H)).astype(dtype)
    return a, xa, W_aa


def test_activation_codes_match_reference():
    assert (cell.TANH, cell.RELU) == (ref.TANH, ref.RELU)


# ------------------------------------------------------------------------------------ recurrence


@pytest.mark.parametrize("act_name,act", ACTS)
def test_rnn_forward_matches_reference(rng, dtype, act_name, act):
    a, xa, W_aa = _cell_inputs(rng, dtype, act)
    expect = ref.ref_rnn_forward(a[0], xa, W_aa, act_name)
    for kernel in (cell.rnn_forward, cell.rnn_forward_serial):
        out = a.copy()
        kernel(out, xa, W_aa, act)
        assert out.dtype == dtype
        assert_allclose(out, expect, **tol(dtype))


@pytest.mark.parametrize("act_name,act", ACTS)
def test_rnn_backward_matches_reference(rng, dtype, act_name, act):
    a, xa, W_aa = _cell_inputs(rng, dtype, act)
    cell.rnn_forward_serial(a, xa, W_aa, act)
    da = rng.normal(0.0, 1.0, (T, B, H)).astype(dtype)
    expect = ref.ref_rnn_backward(da, a, W_aa, act_name)
    if act == cell.RELU:
        assert 0 < np.count_nonzero(expect) < expect.size  # both branches of relu' exercised
    for kernel in (cell.rnn_backward, cell.rnn_backward_serial):
        dz = np.full((T, B, H), np.nan, dtype)  # fully overwritten
        dnext = np.full((B, H), np.nan, dtype)  # scratch, zeroed by the kernel
        kernel(dz, dnext, da, a, W_aa, act)
        assert_allclose(dz, expect, **tol(dtype))


@pytest.mark.parametrize("act_name,act", ACTS)
def test_rnn_serial_equals_parallel(rng, act_name, act):
    a, xa, W_aa = _cell_inputs(rng, np.float64, act)
    a_par, a_ser = a.copy(), a.copy()
    cell.rnn_forward(a_par, xa, W_aa, act)
    cell.rnn_forward_serial(a_ser, xa, W_aa, act)
    assert_allclose(a_par, a_ser, rtol=SERIAL_PARALLEL_RTOL, atol=0)
    da = rng.normal(0.0, 1.0, (T, B, H))
    dz_par, dz_ser = np.zeros((T, B, H)), np.zeros((T, B, H))
    cell.rnn_backward(dz_par, np.zeros((B, H)), da, a_par, W_aa, act)
    cell.rnn_backward_serial(dz_ser, np.zeros((B, H)), da, a_ser, W_aa, act)
    assert_allclose(dz_par, dz_ser, rtol=SERIAL_PARALLEL_RTOL, atol=0)


def test_rnn_forward_streams_are_independent(rng):
    """Stream b of a batch equals the same stream run alone (no cross-talk between threads)."""
    a, xa, W_aa = _cell_inputs(rng, np.float64, cell.TANH)
    whole = a.copy()
    cell.rnn_forward(whole, xa, W_aa, cell.TANH)
    for b in range(B):
        alone = np.ascontiguousarray(a[:, b:b + 1])
        cell.rnn_forward(alone, np.ascontiguousarray(xa[:, b:b + 1]), W_aa, cell.TANH)
        assert_allclose(whole[:, b], alone[:, 0], rtol=SERIAL_PARALLEL_RTOL, atol=0)


@pytest.mark.parametrize("M,N,K", [(3, 5, 4), (7, 300, 600), (16, 1030, 257)])
@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_step_gemm_equals_numpy_product(rng, dtype, M, N, K, beta):
    """The per-step product in tiles of B: several K blocks (beta only on the first) and N blocks,
    ragged edges, C a strided block of a wider array (as the gate rows are)."""
    A = rng.normal(0, 1, (M, K)).astype(dtype)
    Bm = rng.normal(0, 1, (K, N)).astype(dtype)
    C = rng.normal(0, 1, (M, N + 9)).astype(dtype)
    expect = C.copy()
    expect[:, 2:N + 2] = A.astype(np.float64) @ Bm + beta * C[:, 2:N + 2]
    isz = C.itemsize
    blas.step_gemm(dtype == np.float32, M, N, K, A.ctypes.data, K, Bm.ctypes.data, N, beta,
                   C.ctypes.data + 2 * isz, N + 9)
    assert_allclose(C, expect, rtol=1e-4 if dtype == np.float32 else 1e-12,
                    atol=1e-3 if dtype == np.float32 else 1e-10)


# ------------------------------------------------------------------------------------ input gather


@pytest.mark.parametrize("shape", [(3, 5), (32, 32), (70, 33), (96, 40)])
def test_transpose_into_equals_numpy_transpose(rng, dtype, shape):
    """The tiled copy of W_aa^T the BLAS recurrences read: whole tiles and ragged edges."""
    src = rng.normal(0, 1, shape).astype(dtype)
    dst = np.full(shape[::-1], np.nan, dtype)
    cell.transpose_into(dst, src)
    np.testing.assert_array_equal(dst, src.T)


def test_gather_input_forward_equals_onehot_product(rng, dtype):
    W_ax = rng.normal(size=(H, V)).astype(dtype)
    b_a = rng.normal(size=H).astype(dtype)
    x = _ids(rng, (T, B))
    x[1, 2] = -1  # the zero vector input: only the bias
    x[3, 0] = -5
    xa = np.full((T, B, H), np.nan, dtype)
    cell.gather_input_forward(xa, W_ax, b_a, x)
    assert_allclose(xa, ref.ref_gather_input_forward(W_ax, b_a, x), **tol(dtype))
    assert_array_equal(xa[1, 2], b_a)
    assert_array_equal(xa[3, 0], b_a)


def test_gather_input_backward_equals_onehot_product(rng, dtype):
    x = _ids(rng, (T, B))
    x[0, :] = 3  # a token repeated within a window: its column receives several additions
    x[2, 1] = -1  # zero vector input: bias gradient only
    dz = rng.normal(size=(T, B, H)).astype(dtype)
    dW0 = rng.normal(size=(H, V)).astype(dtype)  # the kernel accumulates (+=)
    db0 = rng.normal(size=H).astype(dtype)
    dW, db = dW0.copy(), db0.copy()
    cell.gather_input_backward(dW, db, dz, x)
    eW, eb = ref.ref_gather_input_backward(dz, x, V)
    assert_allclose(dW, dW0.astype(np.float64) + eW, **tol(dtype))
    assert_allclose(db, db0.astype(np.float64) + eb, **tol(dtype))


# ------------------------------------------------------------------------------------ softmax-xent


def _logits(rng, dtype, R=T * B):
    return (rng.normal(0.0, 2.0, (R, V))).astype(dtype)


@pytest.mark.parametrize("n", [1, 15, 16, 17, 100, 10007])
def test_row_max_equals_numpy_max(rng, dtype, n):
    row = rng.normal(0, 5, n).astype(dtype)
    assert output.row_max(row) == row.max()
    row[n // 2] = np.inf
    assert output.row_max(row) == np.inf


def test_softmax_xent_forward_matches_reference(rng, dtype):
    logits = _logits(rng, dtype)
    y = _ids(rng, T * B)
    nll, lse = np.full(T * B, np.nan), np.full(T * B, np.nan)
    total = output.softmax_xent_forward(nll, lse, logits, y)
    e_nll, e_lse, e_total = ref.ref_softmax_xent_forward(logits, y)
    assert_allclose(nll, e_nll, **tol(dtype))
    assert_allclose(lse, e_lse, **tol(dtype))
    assert_allclose(total, e_total, **tol(dtype))


@pytest.mark.parametrize("scale", [1.0, 1.0 / (T * B), 0.0])  # 0: the unfolded branch
def test_softmax_xent_backward_matches_reference(rng, dtype, scale):
    logits = _logits(rng, dtype)
    y = _ids(rng, T * B)
    nll, lse = np.zeros(T * B), np.zeros(T * B)
    output.softmax_xent_forward(nll, lse, logits, y)
    d = np.full_like(logits, np.nan)
    output.softmax_xent_backward(d, logits, lse, y, scale)
    expect = ref.ref_softmax_xent_backward(logits, y, scale)
    assert_allclose(d, expect, **tol(dtype))
    assert_allclose(d.sum(axis=1), 0.0, atol=10 * tol(dtype)["atol"])  # softmax - onehot sums to 0


def test_softmax_xent_backward_in_place(rng, dtype):
    """The network passes the logits buffer as dlogits (aliasing is documented as allowed)."""
    logits = _logits(rng, dtype)
    y = _ids(rng, T * B)
    nll, lse = np.zeros(T * B), np.zeros(T * B)
    output.softmax_xent_forward(nll, lse, logits, y)
    separate = np.zeros_like(logits)
    output.softmax_xent_backward(separate, logits, lse, y, 0.5)
    output.softmax_xent_backward(logits, logits, lse, y, 0.5)
    assert_array_equal(logits, separate)


def test_softmax_xent_unscored_rows(rng, dtype):
    """y < 0: the row adds nothing to the loss and gets a zero gradient."""
    logits = _logits(rng, dtype)
    y = _ids(rng, T * B)
    y[[0, 5, 11]] = -1
    nll, lse = np.full(T * B, np.nan), np.full(T * B, np.nan)
    total = output.softmax_xent_forward(nll, lse, logits, y)
    e_nll, e_lse, e_total = ref.ref_softmax_xent_forward(logits, y)
    assert_array_equal(nll[[0, 5, 11]], 0.0)
    assert_allclose(nll, e_nll, **tol(dtype))
    assert_allclose(lse, e_lse, **tol(dtype))  # lse is still computed for every row
    assert_allclose(total, e_total, **tol(dtype))
    d = np.full_like(logits, np.nan)
    output.softmax_xent_backward(d, logits, lse, y, 1.0)
    assert_array_equal(d[[0, 5, 11]], 0.0)
    assert_allclose(d, ref.ref_softmax_xent_backward(logits, y, 1.0), **tol(dtype))


def test_softmax_xent_huge_logits_stay_finite(dtype):
    logits = np.array([
        [1e4, 0.0, -1e4, 3.0, 1e4 - 1.0, 2.0, 1.0],
        [-1e4, -1e4, -1e4, -1e4, -1e4, -1e4, -1e4 + 2.0],
        [1e4, 1e4, 1e4, 1e4, 1e4, 1e4, 1e4],
    ], dtype)
    y = np.array([2, 6, 3], np.int32)
    nll, lse = np.zeros(3), np.zeros(3)
    total = output.softmax_xent_forward(nll, lse, logits, y)
    assert np.all(np.isfinite(nll)) and np.all(np.isfinite(lse)) and np.isfinite(total)
    e_nll, e_lse, e_total = ref.ref_softmax_xent_forward(logits, y)
    # float32 logits of size 1e4 are only good to their ulp (~1e-3); under NUMBA_DISABLE_JIT,
    # NumPy 2 promotion also keeps `m + log(s)` in float32 (the JIT computes it in float64)
    kw = tol(dtype) if dtype == np.float64 else {"rtol": 0, "atol": 8 * np.finfo(dtype).eps * 1e4}
    assert_allclose(nll, e_nll, **kw)
    assert_allclose(lse, e_lse, **kw)
    assert_allclose(nll[0], 2e4 + np.log1p(np.exp(-1.0)), rtol=1e-7)
    assert_allclose(nll[2], np.log(7.0), **kw)
    d = np.zeros_like(logits)
    output.softmax_xent_backward(d, logits, lse, y, 1.0)
    assert np.all(np.isfinite(d))
    kw = tol(dtype) if dtype == np.float64 else {"rtol": kw["atol"], "atol": 1e-7}  # exp(l - lse)
    assert_allclose(d, ref.ref_softmax_xent_backward(logits, y, 1.0), **kw)


def test_softmax_xent_propagates_nan():
    """fastmath without nnan: a NaN logit must reach the loss (the trainer stops on it)."""
    logits = np.zeros((2, V))
    logits[1, 3] = np.nan
    nll, lse = np.zeros(2), np.zeros(2)
    total = output.softmax_xent_forward(nll, lse, logits, np.array([0, 0], np.int32))
    assert np.isfinite(nll[0]) and np.isnan(nll[1]) and np.isnan(total)


# ------------------------------------------------------------------------------------ clipping


def test_sum_squares(rng, dtype):
    g = rng.normal(0.0, 3.0, 101).astype(dtype)
    s = output.sum_squares(g)
    assert isinstance(s, float)
    assert_allclose(s, ref.ref_sum_squares(g), **tol(dtype))
    assert output.sum_squares(np.zeros(0, dtype)) == 0.0


# Regression: numba's `float(x)` of a float32 is still a float32, so squaring `float(g[i])` rounded
# every product to float32 and overflowed to inf for |g| >= ~1.85e19 (global-norm clipping then
# scaled by 0). The kernel must square in float64, like its Python source does.
def test_sum_squares_float32_accumulates_in_float64(rng):
    g = rng.normal(0.0, 3.0, 101).astype(np.float32)
    assert_allclose(output.sum_squares(g), ref.ref_sum_squares(g), rtol=1e-12)


def test_sum_squares_float32_does_not_overflow():
    g = np.array([3e19, 1.0], np.float32)  # g^2 = 9e38 > float32 max, fine in float64
    assert_allclose(output.sum_squares(g), ref.ref_sum_squares(g), rtol=1e-12)


def test_scale_inplace(rng, dtype):
    g = rng.normal(size=37).astype(dtype)
    expect = g.astype(np.float64) * 0.3
    output.scale_inplace(g, 0.3)
    assert g.dtype == dtype
    assert_allclose(g, expect, **tol(dtype))


def test_clip_values(rng, dtype):
    g = rng.normal(0.0, 4.0, 64).astype(dtype)
    g[:3] = [5.0, -5.0, 2.5]
    expect = ref.ref_clip_values(g, 2.5)
    output.clip_values(g, 2.5)
    assert_allclose(g, expect, **tol(dtype))
    assert g.max() <= 2.5 and g.min() >= -2.5


def test_global_norm_clip_composition(rng):
    """sum_squares + scale_inplace give the trainer's global-norm clipping."""
    g = rng.normal(0.0, 4.0, 50)
    norm = np.sqrt(output.sum_squares(g))
    output.scale_inplace(g, 5.0 / norm)
    assert_allclose(np.linalg.norm(g), 5.0, rtol=1e-12)


# ------------------------------------------------------------------------------------ optimizers

N_STEPS = 5


def _opt_inputs(rng, dtype, n=41):
    p = rng.normal(size=n).astype(dtype)
    grads = [rng.normal(0.0, 1.0, n).astype(dtype) for _ in range(N_STEPS)]
    grads[2][:5] = 0.0  # zero gradients: the update must leave those p unchanged (eps > 0)
    return p, grads


def test_sgd_update(rng, dtype):
    p, grads = _opt_inputs(rng, dtype)
    e = p.astype(np.float64)
    for g in grads:
        optim.sgd_update(p, g, 0.1)
        e = ref.ref_sgd_update(e, g, 0.1)
    assert_allclose(p, e, **tol(dtype))


def test_adagrad_update(rng, dtype):
    p, grads = _opt_inputs(rng, dtype)
    h = np.zeros_like(p)
    e, eh = p.astype(np.float64), np.zeros(p.shape)
    for g in grads:
        optim.adagrad_update(p, g, h, 0.1, 1e-8)
        e, eh = ref.ref_adagrad_update(e, g, eh, 0.1, 1e-8)
    assert_allclose(h, eh, **tol(dtype))
    assert_allclose(p, e, **tol(dtype))


def test_rmsprop_update(rng, dtype):
    p, grads = _opt_inputs(rng, dtype)
    h = np.zeros_like(p)
    e, eh = p.astype(np.float64), np.zeros(p.shape)
    for g in grads:
        optim.rmsprop_update(p, g, h, 0.01, 0.9, 1e-8)
        e, eh = ref.ref_rmsprop_update(e, g, eh, 0.01, 0.9, 1e-8)
    assert_allclose(h, eh, **tol(dtype))
    assert_allclose(p, e, **tol(dtype))


def _adam_scalars(t, lr, b1, b2, eps):
    """The caller's folding of the bias corrections documented in `optim.adam_update`."""
    return lr * np.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t), eps * np.sqrt(1.0 - b2 ** t)


def test_adam_update(rng, dtype):
    lr, b1, b2, eps = 2e-3, 0.9, 0.999, 1e-8
    p, grads = _opt_inputs(rng, dtype)
    m, v = np.zeros_like(p), np.zeros_like(p)
    e, em, ev = p.astype(np.float64), np.zeros(p.shape), np.zeros(p.shape)
    tb, tm, tv = e.copy(), em.copy(), ev.copy()
    for t, g in enumerate(grads, start=1):
        lr_t, eps_t = _adam_scalars(t, lr, b1, b2, eps)
        optim.adam_update(p, g, m, v, lr_t, b1, b2, eps_t)
        e, em, ev = ref.ref_adam_update(e, g, em, ev, lr_t, b1, b2, eps_t)
        tb, tm, tv = ref.ref_adam_textbook(tb, g, tm, tv, t, lr, b1, b2, eps)
    assert_allclose(m, em, **tol(dtype))
    assert_allclose(v, ev, **tol(dtype))
    assert_allclose(p, e, **tol(dtype))
    # the efficient form with the folded scalars is Algorithm 1 with bias-corrected moments
    assert_allclose(e, tb, rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)


# ------------------------------------------------------------------------------------ .py_func


def _pyfunc_cases(rng):
    """(kernel, args) pairs in float64; array arguments are copied per call."""
    act = cell.TANH
    a, xa, W_aa = _cell_inputs(rng, np.float64, act)
    a_done = a.copy()
    cell.rnn_forward_serial(a_done, xa, W_aa, act)
    da = rng.normal(size=(T, B, H))
    x = _ids(rng, (T, B))
    x[0, 0] = -1
    logits = _logits(rng, np.float64)
    y = _ids(rng, T * B)
    y[4] = -1
    lse = np.array(ref.ref_softmax_xent_forward(logits, y)[1])
    p = rng.normal(size=23)
    g = rng.normal(size=23)
    st = rng.uniform(0.1, 1.0, 23)
    return [
        ("rnn_forward", cell.rnn_forward, (a, xa, W_aa, act)),
        ("rnn_forward_serial", cell.rnn_forward_serial, (a, xa, W_aa, cell.RELU)),
        ("rnn_backward", cell.rnn_backward, (np.zeros((T, B, H)), np.zeros((B, H)), da, a_done,
                                             W_aa, act)),
        ("rnn_backward_serial", cell.rnn_backward_serial, (np.zeros((T, B, H)), np.zeros((B, H)),
                                                           da, a_done, W_aa, act)),
        ("gather_input_forward", cell.gather_input_forward,
         (np.zeros((T, B, H)), rng.normal(size=(H, V)), rng.normal(size=H), x)),
        ("gather_input_backward", cell.gather_input_backward,
         (np.zeros((H, V)), np.zeros(H), da, x)),
        ("softmax_xent_forward", output.softmax_xent_forward,
         (np.zeros(T * B), np.zeros(T * B), logits, y)),
        ("softmax_xent_backward", output.softmax_xent_backward,
         (np.zeros_like(logits), logits, lse, y, 0.25)),
        ("sum_squares", output.sum_squares, (g,)),
        ("scale_inplace", output.scale_inplace, (g, 0.7)),
        ("clip_values", output.clip_values, (g, 0.5)),
        ("sgd_update", optim.sgd_update, (p, g, 0.1)),
        ("adagrad_update", optim.adagrad_update, (p, g, st, 0.1, 1e-8)),
        ("rmsprop_update", optim.rmsprop_update, (p, g, st, 0.1, 0.9, 1e-8)),
        ("adam_update", optim.adam_update, (p, g, g * 0.1, st, 1e-3, 0.9, 0.999, 1e-8)),
    ]


_PYFUNC_NAMES = [c[0] for c in _pyfunc_cases(np.random.default_rng(0))]


@requires_jit
@pytest.mark.parametrize("name", _PYFUNC_NAMES)
def test_compiled_equals_py_func(name):
    """The compiled kernel equals its Python source on the same inputs (outputs and result)."""
    kernel, args = {n: (k, a) for n, k, a in _pyfunc_cases(np.random.default_rng(7))}[name]
    copies_c = [np.copy(v) if isinstance(v, np.ndarray) else v for v in args]
    copies_p = [np.copy(v) if isinstance(v, np.ndarray) else v for v in args]
    r_c = kernel(*copies_c)
    r_p = kernel.py_func(*copies_p)
    if r_c is None:
        assert r_p is None
    else:
        assert_allclose(r_c, r_p, rtol=1e-12, atol=1e-14)
    for vc, vp in zip(copies_c, copies_p):
        if isinstance(vc, np.ndarray):
            assert_allclose(vc, vp, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------------------- compile options


def test_fastmath_flags_keep_nan_and_inf():
    assert "nnan" not in _jit.FASTMATH_FLAGS and "ninf" not in _jit.FASTMATH_FLAGS
    assert _jit._OPTIONS["cache"] is True and _jit._OPTIONS["error_model"] == "numpy"


def test_fastmath_is_set_only_in_jit_module():
    """STYLE §3.3: no file but kernels/_jit.py writes `fastmath=` (stumpy `check_fastmath`)."""
    pkg = Path(cell.__file__).resolve().parents[1]
    offenders = [str(f.relative_to(pkg)) for f in pkg.rglob("*.py")
                 if f.name != "_jit.py" and re.search(r"fastmath\s*=", f.read_text("utf-8"))]
    assert offenders == []


@pytest.mark.parametrize("given", [None, "ACTIVE"])
def test_thread_pool_sleeps_between_regions_unless_told_otherwise(given):
    """kernels/_jit.py asks OpenMP for a passive wait policy after a short spin, before the pool
    starts (spinning workers cost several times a step's time on a shared machine, waking one
    costs 60-90 us a region); values in the environment win."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    if given:
        env["OMP_WAIT_POLICY"], env["GOMP_SPINCOUNT"] = given, "5"
    code = ("import os, rnn_cli.kernels._jit\n"
            "print(os.environ['OMP_WAIT_POLICY'], os.environ['GOMP_SPINCOUNT'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ([given, "5"] if given else ["PASSIVE", "2000"])
