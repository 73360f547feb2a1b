"""`--updates sparse` (`rnn_cli/tasks/lm/sparse.py`, `kernels/rows.py`): the rows a window touches, the row
kernels against float64 NumPy twins in both layouts, and whole training steps against a float64
NumPy reference of the rule (the dense network's gradient, clipped, then lazy Adam over the
touched rows): every variant of V-indexed blocks, the gradient left zero, SGD equal to the dense
path. The CLI side (flag, model file, resume) is in test_class_softmax_cli.py and test_faults.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from conftest import H, T, B, tol
from rnn_cli.config import ModelConfig, TrainConfig, use_sparse
from rnn_cli.kernels import rows
from rnn_cli.optimizer import ADAM_BETAS, Optimizer, clip_gradients, lr_pieces
from rnn_cli.params import Params
from rnn_cli.tasks.lm.classes import assign_classes
from rnn_cli.tasks.lm.network import Network
from rnn_cli.tasks.lm.sparse import IN, OUT, RowUpdates, row_blocks

V = 13
COUNTS = np.array([50, 3, 9, 0, 30, 1, 7, 7, 2, 12, 5, 1, 4])

# (cell, embed, tie, softmax): which blocks are updated by rows
VARIANTS = {
    "one-hot classes": ("rnn", 0, False, "classes"),  # W_ax columns, W_ya, b_y rows
    "embed classes": ("gru", 4, False, "classes"),  # W_emb by inputs, W_ya, b_y by classes
    "tied classes": ("lstm", H, True, "classes"),  # W_emb by both, b_y by classes
    "one-hot full": ("rnn", 0, False, "full"),  # W_ax columns only
    "tied full": ("gru", H, True, "full"),  # nothing but dense blocks
}


def make(variant, seed=0):
    cell, embed, tie, softmax = VARIANTS[variant]
    wc = assign_classes(COUNTS, 4) if softmax == "classes" else None
    cfg = ModelConfig(level="word", cell=cell, hidden=H, vocab_size=V, embed=embed,
                      tie_weights=tie, softmax=softmax,
                      classes=int(wc.max()) + 1 if wc is not None else 0).validate()
    p = Params(cfg, np.float32, wc).init(np.random.default_rng(seed))
    return cfg, p


def window(rng, wc=None):
    x = rng.integers(0, V // 2, (T, B)).astype(np.int32)  # half the words: untouched rows
    y = rng.integers(0, V, (T, B)).astype(np.int32)
    if wc is not None:  # targets from two of the classes: the others' rows are untouched
        y = rng.choice(np.flatnonzero(wc <= 1), (T, B)).astype(np.int32)
    y[-1, -1] = -1  # not scored
    x[0, 0] = -1  # the zero input of a line start
    return x, y


def touched(cfg, wc, x, y, sides):
    """The reference: rows touched by inputs and by the classes of the targets."""
    out = set()
    if sides & IN:
        out |= {int(k) for k in x.ravel() if k >= 0}
    if sides & OUT:
        classes = {int(wc[k]) for k in y.ravel() if k >= 0}
        out |= {int(w) for w in range(cfg.vocab_size) if wc[w] in classes}
    return out


def test_use_sparse_by_flag_and_auto():
    big = ModelConfig(level="word", vocab_size=50_000, softmax="classes", classes=500)
    assert use_sparse("auto", big) and use_sparse("sparse", big) and not use_sparse("dense", big)
    assert not use_sparse("auto", ModelConfig(level="word", vocab_size=5_000, softmax="classes",
                                              classes=70))
    assert not use_sparse("auto", ModelConfig(level="word", vocab_size=50_000))  # full softmax
    assert not use_sparse("auto", ModelConfig(level="char", vocab_size=65))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_touch_lists_each_row_once(variant, rng):
    cfg, p = make(variant)
    net = Network(p, batch=B, steps=T)
    ru = RowUpdates(p, lr_pieces(p, "adam"), net)
    x, y = window(rng, p.word_class)
    ru.touch(x, y)
    expect_blocks = {"one-hot classes": {"W_ax", "W_ya", "b_y"}, "embed classes":
                     {"W_emb", "W_ya", "b_y"}, "tied classes": {"W_emb", "b_y"},
                     "one-hot full": {"W_ax"}, "tied full": set()}[variant]
    assert set(ru.blocks) == expect_blocks
    for name, (*_, ids, n) in ru._each():
        listed = ids[:n].tolist()
        assert len(listed) == len(set(listed))
        assert set(listed) == touched(cfg, p.word_class, x, y, ru.blocks[name][4]), name
    assert not ru.mark.any()


@pytest.mark.parametrize("layout", ["rows", "columns"])
@pytest.mark.parametrize("rule", ["adam", "sgd", "adagrad", "rmsprop"])
def test_row_kernels_match_reference(rule, layout, rng):
    n_rows, width, off = 9, 6, 3
    size = off + n_rows * width + 2
    si, sj = (width, 1) if layout == "rows" else (1, n_rows)
    p, g, m, v = (rng.standard_normal(size).astype(np.float32) for _ in range(4))
    v = np.abs(v)
    ids = np.array([7, 0, 4, 2, 5], np.int32)
    n = 4  # ids[n:] are not listed: their rows stay as they are
    c, lr = 0.6, 0.01
    P, G, M, Vv = (a.astype(np.float64) for a in (p, g, m, v))
    idx = np.array([off + k * si + j * sj for k in ids[:n] for j in range(width)])
    d = G[idx] * c
    if rule == "adam":
        b1, b2, eps = ADAM_BETAS
        M[idx] = b1 * M[idx] + (1 - b1) * d
        Vv[idx] = b2 * Vv[idx] + (1 - b2) * d * d
        P[idx] -= lr * M[idx] / (np.sqrt(Vv[idx]) + eps)
        rows.rows_adam(p, g, m, v, off, si, sj, width, ids, n, c, lr, b1, b2, eps)
    elif rule == "sgd":
        P[idx] -= lr * d
        rows.rows_sgd(p, g, off, si, sj, width, ids, n, c, lr)
    elif rule == "adagrad":
        Vv[idx] += d * d
        P[idx] -= lr * d / (np.sqrt(Vv[idx]) + 1e-8)
        rows.rows_adagrad(p, g, v, off, si, sj, width, ids, n, c, lr, 1e-8)
    else:
        Vv[idx] = 0.99 * Vv[idx] + 0.01 * d * d
        P[idx] -= lr * d / (np.sqrt(Vv[idx]) + 1e-8)
        rows.rows_rmsprop(p, g, v, off, si, sj, width, ids, n, c, lr, 0.99, 1e-8)
    G[idx] = 0.0
    assert_allclose(p, P, **tol(np.float32))
    assert_allclose(v, Vv, **tol(np.float32))
    if rule == "adam":
        assert_allclose(m, M, **tol(np.float32))
    np.testing.assert_array_equal(g, G.astype(np.float32))  # listed rows zero, others as given


@pytest.mark.parametrize("layout", ["rows", "columns"])
def test_rows_sumsq_and_clip_values(layout, rng):
    n_rows, width = 8, 5
    si, sj = (width, 1) if layout == "rows" else (1, n_rows)
    g = (3 * rng.standard_normal(n_rows * width)).astype(np.float32)
    ids = np.array([5, 1, 6], np.int32)
    idx = np.array([k * si + j * sj for k in ids for j in range(width)])
    want = float(np.sum(g[idx].astype(np.float64) ** 2))
    assert_allclose(rows.rows_sumsq(g, 0, si, sj, width, ids, 3), want, rtol=1e-12)
    G = g.copy()
    G[idx] = np.clip(G[idx], -1.5, 1.5)
    rows.rows_clip_values(g, 0, si, sj, width, ids, 3, 1.5)
    np.testing.assert_array_equal(g, G)


def reference_step(p64, g, s, t, pieces, blocks_ids, clip, mode, lr, name):
    """float64 NumPy: clip the dense gradient g, then the rule on the dense part and, for the
    row blocks, on the touched rows alone (lazy)."""
    g = g.astype(np.float64)
    norm = math.sqrt(float(np.sum(g * g)))
    if mode == "norm" and norm > clip:
        g *= clip / norm
    elif mode == "value":
        g = np.clip(g, -clip, clip)
    factor = np.zeros_like(g)
    for a, b, f in pieces:
        factor[a:b] = f
    on = np.ones(g.shape[0], bool)
    for idx in blocks_ids:
        on[idx[0]] = False
    for idx in blocks_ids:
        on[idx[1]] = True  # a row block: the touched rows only
    b1, b2, eps = ADAM_BETAS
    if name == "adam":
        c1, c2 = 1 - b1 ** t, 1 - b2 ** t
        s["m"][on] = b1 * s["m"][on] + (1 - b1) * g[on]
        s["v"][on] = b2 * s["v"][on] + (1 - b2) * g[on] ** 2
        p64[on] -= (lr * factor[on] * math.sqrt(c2) / c1 * s["m"][on]
                    / (np.sqrt(s["v"][on]) + eps * math.sqrt(c2)))
    else:
        p64[on] -= lr * factor[on] * g[on]


@pytest.mark.parametrize("mode", ["norm", "value"])
@pytest.mark.parametrize("name", ["adam", "sgd"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_sparse_steps_match_reference(variant, name, mode, rng):
    """Three steps of the sparse path == the float64 reference of lazy Adam (or SGD) on the dense
    network's gradients; the V-indexed gradient blocks are left all zero after each step."""
    cfg, p = make(variant, seed=3)
    tcfg = TrainConfig(optim=name, lr=0.05, clip=0.5 if mode == "norm" else 0.02, clip_mode=mode)
    pieces = lr_pieces(p, name)
    dense_p = p.copy()
    net, ref_net = Network(p, batch=B, steps=T), Network(dense_p, batch=B, steps=T)
    net.zeroed_rows = True
    ru = RowUpdates(p, pieces, net)
    opt = Optimizer(tcfg, len(p), pieces=pieces)
    g, ref_g = p.zeros_like(), p.zeros_like()
    p64 = p.flat.astype(np.float64)
    state = {"m": np.zeros(len(p)), "v": np.zeros(len(p))}
    blocks = row_blocks(p)
    skipped = 0
    for t in range(1, 4):
        x, y = window(rng, p.word_class)
        dense_p.flat[...] = p64  # the reference's gradient at the reference's parameters
        ref_net.forward(x, y)
        ref_net.backward(ref_g, x, y, 1.0 / (T * B))
        ids = []
        for start, si, sj, width, sides in blocks.values():
            rows_ = sorted(touched(cfg, p.word_class, x, y, sides))
            span = np.array([start + k * si + j * sj for k in range(V) for j in range(width)])
            sel = np.array([start + k * si + j * sj for k in rows_ for j in range(width)], int)
            ids.append((span, sel))
            skipped += len(sel) < len(span)
        reference_step(p64, ref_g.flat, state, t, pieces, ids, tcfg.clip, mode, tcfg.lr, name)

        net.forward(x, y)
        net.backward(g, x, y, 1.0 / (T * B))
        ru.touch(x, y)
        norm = ru.clip(g.flat, tcfg.clip, mode)
        opt.update(p.flat, g.flat, ru)
        assert_allclose(norm, np.linalg.norm(ref_g.flat.astype(np.float64)), rtol=1e-5)
        assert_allclose(p.flat, p64, rtol=1e-4, atol=1e-6)
        for span, _ in ids:
            assert not g.flat[span].any()
    assert skipped or not blocks  # some rows were left out: the lazy rule was exercised


@pytest.mark.parametrize("variant", ["one-hot classes", "embed classes"])
def test_sparse_sgd_equals_the_dense_path(variant, rng):
    """SGD moves an untouched row by nothing either way: the two paths agree to rounding."""
    cfg, p = make(variant, seed=4)
    tcfg = TrainConfig(optim="sgd", lr=0.5, clip=0.3)
    pieces = lr_pieces(p, "sgd")
    q = p.copy()
    a, b = Network(p, batch=B, steps=T), Network(q, batch=B, steps=T)
    a.zeroed_rows = True
    ru = RowUpdates(p, pieces, a)
    oa, ob = Optimizer(tcfg, len(p), pieces=pieces), Optimizer(tcfg, len(q), pieces=pieces)
    ga, gb = p.zeros_like(), q.zeros_like()
    for _ in range(4):
        x, y = window(rng, p.word_class)
        a.forward(x, y)
        a.backward(ga, x, y, 0.1)
        ru.touch(x, y)
        ru.clip(ga.flat, tcfg.clip, "norm")
        oa.update(p.flat, ga.flat, ru)
        b.forward(x, y)
        b.backward(gb, x, y, 0.1)
        clip_gradients(gb.flat, tcfg.clip, "norm")
        ob.update(q.flat, gb.flat)
    assert_allclose(p.flat, q.flat, **tol(np.float32, "network"))
