"""Attention kernels (kernels/attention.py) against the float64 twin in tests/reference_seq2seq.py
and central finite differences: dot, general and additive, on ragged source lengths."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import reference_seq2seq as ref
from conftest import FD_EPS, FLOAT64_ATOL, FLOAT64_RTOL, requires_jit, tol
from rnn_cli.kernels import attention as att

S, B, H, A = 5, 4, 3, 4
LENGTHS = np.array([5, 2, 1, 3], np.int32)  # one full, one of length 1, ragged in between
KINDS = ["dot", "general", "additive"]


def make(rng, kind, dtype=np.float64):
    """(s (B,H), enc (S,B,D) zero past each end, params) for `kind`."""
    D = H if kind == "dot" else 2 * H
    enc = rng.normal(0, 1, (S, B, D))
    for b, n in enumerate(LENGTHS):
        enc[n:, b] = 0.0  # as the encoder leaves them
    p = {"W_a": rng.normal(0, 0.6, (H, D)), "W_q": rng.normal(0, 0.6, (A, H)),
         "W_k": rng.normal(0, 0.6, (A, D)), "b_k": rng.normal(0, 0.3, A),
         "v": rng.normal(0, 0.8, A)}
    s = rng.normal(0, 1, (B, H))
    return s.astype(dtype), enc.astype(dtype), {k: w.astype(dtype) for k, w in p.items()}


class Layer:
    """The whole attention layer from the kernels: keys once, then query, alpha, ctx (forward);
    and from dctx the gradients of s, enc and the layer's weights (backward)."""

    def __init__(self, kind, p):
        self.kind, self.p = kind, p
        self.fwd, self.bwd = att.attention_forward, att.attention_backward

    def forward(self, s, enc, lengths):
        p, dt = self.p, enc.dtype
        self.s, self.enc, self.lengths = s, enc, lengths
        empty = np.zeros(0, dt)
        if self.kind == "dot":
            self.keys, self.query = enc, s
        else:
            W, bias = (p["W_a"], empty) if self.kind == "general" else (p["W_k"], p["b_k"])
            self.keys = np.zeros((S, B, W.shape[0]), dt)
            att.keys_forward(self.keys, enc, W, bias, 2)
            self.query = np.ascontiguousarray(s @ p["W_q"].T) if self.kind == "additive" else s
        self.v = p["v"] if self.kind == "additive" else empty
        self.alpha = np.zeros((B, S), dt)
        self.ctx = np.zeros((B, enc.shape[2]), dt)
        self.fwd(self.alpha, self.ctx, self.query, self.keys, enc, lengths, att.KINDS[self.kind],
                 self.v)
        return self.alpha, self.ctx

    def backward(self, dctx):
        p, enc, dt = self.p, self.enc, self.enc.dtype
        dquery = np.zeros_like(self.query)
        denc = np.zeros_like(enc)
        dkeys = denc if self.kind == "dot" else np.zeros_like(self.keys)
        dv = np.zeros((B, self.v.shape[0]), dt)
        self.bwd(dquery, dkeys, denc, dv, dctx, self.alpha, self.query, self.keys, enc,
                 self.lengths, att.KINDS[self.kind], self.v)
        g = {"s": dquery, "enc": denc}
        if self.kind == "general":
            g["W_a"] = np.zeros_like(p["W_a"])
            att.keys_backward(g["W_a"], np.zeros(0, dt), denc, dkeys, enc, p["W_a"], 2)
        if self.kind == "additive":
            g["W_k"], g["b_k"] = np.zeros_like(p["W_k"]), np.zeros_like(p["b_k"])
            att.keys_backward(g["W_k"], g["b_k"], denc, dkeys, enc, p["W_k"], 2)
            g["W_q"] = dquery.T @ self.s
            g["s"] = dquery @ p["W_q"]
            g["v"] = dv.sum(axis=0)
        return g


@pytest.mark.parametrize("kind", KINDS)
def test_forward_matches_reference_and_masks_padding(rng, dtype, kind):
    s, enc, p = make(rng, kind, dtype)
    alpha, ctx = Layer(kind, p).forward(s, enc, LENGTHS)
    want_alpha, want_ctx = ref.ref_attention(s, enc, LENGTHS, kind, p)
    assert_allclose(alpha, want_alpha, **tol(dtype))
    assert_allclose(ctx, want_ctx, **tol(dtype))
    for b, n in enumerate(LENGTHS):
        assert_array_equal(alpha[b, n:], 0.0)  # exactly: padded positions get no weight
        assert alpha[b, :n].sum() == pytest.approx(1.0, rel=1e-6)


def _fd(f, x, eps=FD_EPS):
    g = np.zeros_like(x)
    for i in np.ndindex(*x.shape):
        keep = x[i]
        x[i] = keep + eps
        up = f()
        x[i] = keep - eps
        down = f()
        x[i] = keep
        g[i] = (up - down) / (2 * eps)
    return g


@pytest.mark.parametrize("kind", KINDS)
def test_backward_matches_finite_differences(rng, kind):
    """d/d(s, enc, weights) of sum(R * ctx) for a fixed random R, against the reference's loss."""
    s, enc, p = make(rng, kind)
    R = rng.normal(0, 1, (B, enc.shape[2]))
    layer = Layer(kind, p)
    layer.forward(s, enc, LENGTHS)
    grads = layer.backward(R.copy())
    def loss():
        return float((ref.ref_attention(s, enc, LENGTHS, kind, p)[1] * R).sum())
    wrt = {"s": s, "enc": enc} | {k: p[k] for k in grads if k not in ("s", "enc")}
    assert set(wrt) == set(grads)
    for name, x in wrt.items():
        numeric = _fd(loss, x)
        assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-8, err_msg=name)
    for b, n in enumerate(LENGTHS):
        assert_array_equal(grads["enc"][n:, b], 0.0)  # padding gets exactly no gradient


def test_empty_source_gives_zero_context_and_no_gradient(rng):
    s, enc, p = make(rng, "additive")
    lengths = np.array([0, 2, 0, 5], np.int32)
    layer = Layer("additive", p)
    alpha, ctx = layer.forward(s, enc, lengths)
    assert not alpha[[0, 2]].any() and not ctx[[0, 2]].any()
    g = layer.backward(np.ones_like(ctx))
    assert not g["s"][[0, 2]].any() and np.isfinite(g["enc"]).all()


def test_kind_codes():
    assert att.KINDS == {"none": 0, "dot": 1, "general": 2, "additive": 3}


@requires_jit
@pytest.mark.parametrize("kind", KINDS)
def test_compiled_equals_py_func(rng, kind):
    s, enc, p = make(rng, kind)
    outs = []
    for fwd, bwd in ((att.attention_forward, att.attention_backward),
                     (att.attention_forward.py_func, att.attention_backward.py_func)):
        layer = Layer(kind, p)
        layer.fwd, layer.bwd = fwd, bwd
        alpha, ctx = layer.forward(s, enc, LENGTHS)
        g = layer.backward(np.linspace(-1, 1, ctx.size).reshape(ctx.shape))
        outs.append(np.concatenate([alpha.ravel(), ctx.ravel()] + [g[k].ravel() for k in sorted(g)]))
    assert_allclose(outs[0], outs[1], rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)
