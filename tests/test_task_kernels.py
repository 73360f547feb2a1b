"""The classifier's kernels (kernels/pooling.py, kernels/label_loss.py) against their float64 twins
(`tests/reference_tasks.py`), central finite differences, and .py_func."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

import reference_tasks as reft
from conftest import FD_EPS, FD_MAX_REL_ERR, FLOAT64_RTOL, requires_jit, tol
from rnn_cli.kernels import label_loss, pooling, ragged

T, B, W, K = 5, 4, 6, 3
LENGTHS = np.array([5, 1, 3, 2], np.int32)
CASES = [("mean", W), ("max", W), ("last", W), ("last", 3)]  # last, split 3: bidirectional


def pool(x, mode, split):
    out = np.zeros((x.shape[1], x.shape[2]), x.dtype)
    arg = np.zeros((x.shape[1], x.shape[2]), np.int32)
    pooling.pool_forward(out, arg, x, LENGTHS, pooling.MODES[mode], split)
    return out, arg


def numeric(f, x, eps=FD_EPS):
    g = np.zeros(x.size)
    flat = x.reshape(-1)
    for i in range(x.size):
        keep = flat[i]
        flat[i] = keep + eps
        up = f()
        flat[i] = keep - eps
        down = f()
        flat[i] = keep
        g[i] = (up - down) / (2 * eps)
    return g.reshape(x.shape)


@pytest.mark.parametrize("mode,split", CASES)
def test_pool_forward_matches_reference(rng, dtype, mode, split):
    x = rng.standard_normal((T, B, W)).astype(dtype)
    x[4:, 1:] = 100.0  # padding must never be read
    out, arg = pool(x, mode, split)
    assert_allclose(out, reft.ref_pool(x, LENGTHS, mode, split), **tol(dtype))
    if mode == "max":
        assert (arg < LENGTHS[:, None]).all()


@pytest.mark.parametrize("mode,split", CASES)
def test_pool_backward_matches_finite_differences(rng, mode, split):
    x = rng.standard_normal((T, B, W))
    wout = rng.standard_normal((B, W))
    out, arg = pool(x, mode, split)
    dx = np.full_like(x, np.nan)  # overwritten everywhere
    pooling.pool_backward(dx, wout, arg, LENGTHS, pooling.MODES[mode], split)
    num = numeric(lambda: (reft.ref_pool(x, LENGTHS, mode, split) * wout).sum(), x)
    assert_allclose(dx, num, rtol=FD_MAX_REL_ERR, atol=1e-9)
    for b, n in enumerate(LENGTHS):
        assert not dx[n:, b].any()


def test_label_xent_matches_reference_and_finite_differences(rng, dtype):
    logits = (3 * rng.standard_normal((B, K))).astype(dtype)
    y = np.array([0, 2, 1, 2], np.int32)
    w = np.array([1.0, 0.5, 2.0, 1.5])
    nll, probs = np.zeros(B), np.zeros((B, K), dtype)
    loss = label_loss.label_xent_forward(nll, probs, logits, y, w)
    r_loss, r_probs = reft.ref_label_xent(logits, y, w)
    assert_allclose(loss, r_loss, **tol(dtype))
    assert_allclose(probs, r_probs, **tol(dtype))
    p2 = np.zeros_like(probs)
    label_loss.softmax_rows(p2, logits)
    assert_allclose(p2, probs, **tol(dtype))
    d = np.zeros_like(probs)
    label_loss.label_xent_backward(d, probs, y, w)
    if dtype == np.float64:
        lg = logits.copy()
        num = numeric(lambda: reft.ref_label_xent(lg, y, w)[0], lg)
        assert_allclose(d, num, rtol=FD_MAX_REL_ERR, atol=1e-10)
    unweighted = label_loss.label_xent_forward(nll, probs, logits, y, np.ones(B))
    assert_allclose(unweighted, nll.mean(), rtol=FLOAT64_RTOL)
    label_loss.label_xent_backward(probs, probs, y, w)  # in place
    assert_allclose(probs, d, rtol=0)


def test_linear_rows_matches_reference_whatever_the_batch(rng, dtype):
    """z = u W^T + b against float64 NumPy; a row's logits are the same bits alone or in a
    batch (what lets `predict` answer a line the same in any block)."""
    u = rng.standard_normal((9, 2 * W)).astype(dtype)
    Wt, b = rng.standard_normal((K, 2 * W)).astype(dtype), rng.standard_normal(K).astype(dtype)
    z = np.zeros((9, K), dtype)
    label_loss.linear_rows(z, u, Wt, b)
    ref = u.astype(np.float64) @ Wt.astype(np.float64).T + b
    assert_allclose(z, ref, **tol(dtype))
    for r in range(9):
        one = np.zeros((1, K), dtype)
        label_loss.linear_rows(one, u[r:r + 1], Wt, b)
        assert (one[0] == z[r]).all()


def test_fill_lanes_scatters_ids_within_lengths():
    seqs = [np.arange(n, dtype=np.int32) + 10 * i for i, n in enumerate([3, 6, 1, 4])]
    flat = np.concatenate(seqs)
    offsets = np.concatenate([[0], np.cumsum([len(q) for q in seqs])]).astype(np.int64)
    idx, lens = np.array([1, 3, 0], np.int64), np.array([5, 4, 3], np.int32)  # 1 cut to 5
    x = np.full((5, 3), 99, np.int32)
    ragged.fill_lanes(x, flat, offsets, idx, lens)
    ref = np.full((5, 3), -1, np.int32)
    for j, (i, n) in enumerate(zip(idx, lens)):
        ref[:n, j] = seqs[i][:n]
    assert (x == ref).all()


def test_label_xent_is_stable_for_huge_logits():
    logits = np.array([[1e4, -1e4, 0.0]], np.float32)
    nll, probs = np.zeros(1), np.zeros((1, 3), np.float32)
    loss = label_loss.label_xent_forward(nll, probs, logits, np.array([1], np.int32), np.ones(1))
    assert np.isfinite(probs).all() and abs(loss - 2e4) < 1.0


@requires_jit
def test_compiled_equals_py_func(rng):
    x = rng.standard_normal((T, B, W))
    for mode in ("mean", "max", "last"):
        a, b = np.zeros((B, W)), np.zeros((B, W))
        ia, ib = np.zeros((B, W), np.int32), np.zeros((B, W), np.int32)
        pooling.pool_forward(a, ia, x, LENGTHS, pooling.MODES[mode], 2)
        pooling.pool_forward.py_func(b, ib, x, LENGTHS, pooling.MODES[mode], 2)
        assert_allclose(a, b, rtol=FLOAT64_RTOL)
    logits, y = rng.standard_normal((B, K)), np.array([0, 1, 2, 0], np.int32)
    pa, pb = np.zeros((B, K)), np.zeros((B, K))
    la = label_loss.label_xent_forward(np.zeros(B), pa, logits, y, np.ones(B))
    lb = label_loss.label_xent_forward.py_func(np.zeros(B), pb, logits, y, np.ones(B))
    assert_allclose(la, lb, rtol=FLOAT64_RTOL)
