"""The class-factored softmax (`--softmax classes`): kernels against the float64 NumPy twins
(`tests/reference.py`), the network's gradients against central finite differences for every
cell, tying and the embedding, the distribution summing to 1 over the whole vocabulary, the class
assignment, and the sampler / predict / batched scoring using the exact full distribution."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

import reference as ref
from conftest import FD_MAX_REL_ERR, FD_MEAN_REL_ERR, FLOAT64_ATOL, FLOAT64_RTOL, H, T, B, tol
from rnn_cli.tasks.lm.classes import (assign_classes, check_word_class, class_index, default_softmax)
from rnn_cli.config import ModelConfig
from rnn_cli.kernels import class_softmax as cs
from rnn_cli.params import Params
from rnn_cli.tasks.lm.network import Network

V = 11  # a few more words than conftest's V, so that classes have several members
COUNTS = np.array([50, 3, 9, 0, 30, 1, 7, 7, 2, 12, 5])


def make_cfg(cell="rnn", layers=1, embed=0, tie=False, counts=COUNTS, classes=3):
    wc = assign_classes(counts, classes)
    cfg = ModelConfig(level="word", cell=cell, hidden=H, layers=layers, vocab_size=V,
                      embed=H if tie else embed, tie_weights=tie, softmax="classes",
                      classes=int(wc.max()) + 1).validate()
    return cfg, wc


def make_params(cfg, wc, seed=0, dtype=np.float64) -> Params:
    rng = np.random.default_rng(seed)
    p = Params(cfg, np.float64, wc).init(rng)
    for name in ("b_y", "b_c", "b_a"):
        p.views[name][...] += rng.uniform(-0.5, 0.5, p.views[name].shape)
    p.W_yc[...] *= 3.0
    p.W_ya[...] *= 3.0
    return p.copy(dtype)


def window(rng, steps=T, batch=B):
    x = rng.integers(0, V, (steps, batch)).astype(np.int32)
    y = rng.integers(0, V, (steps, batch)).astype(np.int32)
    y[-1, batch - 1] = -1  # a position that is not scored
    return x, y


# ------------------------------------------------------------------------------ classes
def test_classes_by_frequency_cover_the_vocabulary():
    wc = assign_classes(COUNTS, 3)
    assert check_word_class(wc, V, int(wc.max()) + 1) is None
    order = np.argsort(-COUNTS, kind="stable")
    assert np.all(np.diff(wc[order]) >= 0)  # more frequent words never in a later class
    assert wc[0] == 0 and np.bincount(wc).min() >= 1
    members, offsets = class_index(wc)
    assert sorted(members.tolist()) == list(range(V)) and offsets[-1] == V
    for c in range(offsets.shape[0] - 1):
        assert set(wc[members[offsets[c]:offsets[c + 1]]].tolist()) == {c}
    rng = np.random.default_rng(1)  # never more classes than asked, all non-empty
    for _ in range(20):
        counts = rng.integers(0, 1000, rng.integers(2, 300)) ** rng.integers(1, 3)
        C = int(rng.integers(1, 40))
        wc = assign_classes(counts, C)
        assert wc.max() < C and check_word_class(wc, counts.shape[0], int(wc.max()) + 1) is None
    assert assign_classes(np.zeros(5, int), 2).max() == 1  # no counts at all: still C classes
    assert default_softmax("word", 10000) == "classes" and default_softmax("char", 10000) == "full"
    assert default_softmax("word", 500) == "full"


def test_check_word_class_refuses_bad_maps():
    wc = assign_classes(COUNTS, 3)
    assert "int32" in check_word_class(wc.astype(np.int64), V, 3)
    assert "int32" in check_word_class(wc[:-1], V, 3)
    bad = wc.copy()
    bad[0] = 7
    assert "outside" in check_word_class(bad, V, 3)
    bad[0] = -1
    assert "outside" in check_word_class(bad, V, 3)
    assert "without words" in check_word_class(np.zeros(V, np.int32), V, 3)


# ------------------------------------------------------------------------------ kernels
@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "serial"])
def test_class_xent_forward_matches_reference(rng, dtype, parallel):
    cfg, wc = make_cfg()
    p = make_params(cfg, wc, dtype=dtype)
    members, offsets = class_index(wc)
    R = 9
    top = rng.normal(0, 1, (R, H)).astype(dtype)
    y = rng.integers(0, V, R).astype(np.int32)
    y[3] = -1
    zc = (top @ p.W_yc.T + p.b_c).astype(dtype)
    nll, lse_c = np.zeros(R), np.zeros(R)
    pw = np.zeros((R, int(np.diff(offsets).max())), dtype)
    f = cs.class_xent_forward if parallel else cs.class_xent_forward_serial
    total = f(nll, lse_c, pw, zc, top, p.W_ya, p.b_y, members, offsets, wc, y)
    ref_nll, ref_total = ref.ref_class_xent_forward(top, p.W_ya, p.b_y, p.W_yc, p.b_c, wc, y)
    assert_allclose(nll, ref_nll, **tol(dtype))
    assert_allclose(total, ref_total, **tol(dtype))
    zc64 = np.asarray(top, np.float64) @ np.asarray(p.W_yc, np.float64).T + p.b_c
    pc = np.exp(zc64 - zc64.max(axis=1, keepdims=True))
    assert_allclose(zc, pc / pc.sum(axis=1, keepdims=True), **tol(dtype))  # left: P(class)
    assert_allclose(zc.sum(axis=1), 1.0, **tol(dtype))
    for r in range(R):
        if y[r] < 0:
            continue
        c = wc[y[r]]
        n = offsets[c + 1] - offsets[c]
        assert_allclose(pw[r, :n].sum(), 1.0, **tol(dtype))


def test_class_log_probs_is_the_whole_distribution(rng):
    cfg, wc = make_cfg()
    p = make_params(cfg, wc)
    members, offsets = class_index(wc)
    for _ in range(5):
        a = rng.normal(0, 2, H)
        out = np.zeros(V)
        cs.class_log_probs(out, a, p.W_ya, p.b_y, p.W_yc, p.b_c, members, offsets,
                           np.zeros(cfg.classes), np.zeros(V))
        assert_allclose(out, ref.ref_class_log_probs(a, p.W_ya, p.b_y, p.W_yc, p.b_c, wc),
                        rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)
        assert math.fsum(np.exp(out)) == pytest.approx(1.0, abs=1e-12)  # over all V words


# ------------------------------------------------------------------------------ network
VARIANTS = {  # name: (cell, layers, embed, tie)
    "rnn-1": ("rnn", 1, 0, False),
    "gru-2": ("gru", 2, 0, False),
    "lstm-1-tied": ("lstm", 1, 0, True),
    "rnn-1-embed": ("rnn", 1, 3, False),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_network_loss_matches_reference_and_finite_differences(variant, rng):
    cell, layers, embed, tie = VARIANTS[variant]
    cfg, wc = make_cfg(cell, layers, embed, tie)
    p = make_params(cfg, wc, seed=layers)
    net = Network(p, batch=B, steps=T)
    x, y = window(rng)
    loss = net.forward(x, y)
    top = net.a[-1][1:].reshape(T * B, H)
    ref_nll, ref_total = ref.ref_class_xent_forward(top, p.W_ya, p.b_y, p.W_yc, p.b_c, wc,
                                                    y.reshape(-1))
    assert_allclose(loss, ref_total, rtol=FLOAT64_RTOL)
    assert_allclose(net.nll[:T * B], ref_nll, rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)
    grads = p.zeros_like()
    grads.flat[...] = np.nan  # backward must overwrite every element
    net.backward(grads, x, y, 1.0)

    def window_loss():
        net.reset_state()
        return net.forward(x, y)

    eps = 1e-4 if cell != "rnn" else 1e-5
    numeric = np.zeros(len(p))
    for i in range(len(p)):
        keep = p.flat[i]
        p.flat[i] = keep + eps
        up = window_loss()
        p.flat[i] = keep - eps
        down = window_loss()
        p.flat[i] = keep
        numeric[i] = (up - down) / (2 * eps)
    err = np.abs(grads.flat - numeric) / np.maximum(np.abs(grads.flat) + np.abs(numeric), 1e-4)
    assert np.all(np.isfinite(grads.flat))
    assert err.max() < FD_MAX_REL_ERR, (err.max(), int(err.argmax()))
    assert err.mean() < FD_MEAN_REL_ERR, err.mean()
    for name in ("W_yc", "b_c", "W_ya", "b_y"):
        assert np.abs(grads.views[name]).max() > 1e-4, name


def test_parallel_class_kernels_equal_serial(monkeypatch, rng):
    cfg, wc = make_cfg("gru", 1)
    p = make_params(cfg, wc)
    x, y = window(rng)
    out = []
    for mode in ("parallel", "serial"):
        monkeypatch.setenv("RNN_CLI_CLASS_KERNELS", mode)
        net = Network(p, batch=B, steps=T)
        g = p.zeros_like()
        loss = net.forward(x, y)
        net.backward(g, x, y, 0.5)
        out.append((loss, g.flat.copy()))
    assert_allclose(out[0][0], out[1][0], rtol=FLOAT64_RTOL)
    assert_allclose(out[0][1], out[1][1], rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)
