"""The sampler's kernels (kernels/sampling.py) against tests/reference.py.

Randomness never lives in a kernel: every draw takes a caller-supplied uniform, so the kernel and
the reference see the same numbers and must pick the same tokens.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose, assert_array_equal

import reference as ref
from conftest import FLOAT64_ATOL, FLOAT64_RTOL, H, V, requires_jit, tol
from rnn_cli.config import ModelConfig
from rnn_cli.kernels import cell, sampling
from rnn_cli.params import Params

UNIFORMS = np.concatenate([np.linspace(0.0, 1.0, 101, endpoint=False),
                           np.random.default_rng(11).random(100), [1.0 - 2.0 ** -53]])
ACT = {"tanh": cell.TANH, "relu": cell.RELU}


def draw(logits, temperature=1.0, top_k=0, greedy=False, ban_id=-1, u=0.5, probs=None,
         top_p=1.0):
    probs = np.full(logits.shape[0], np.nan) if probs is None else probs
    scratch = np.zeros(logits.shape[0], logits.dtype)
    tok = sampling.draw_token(probs, logits, temperature, top_k, top_p, greedy, ban_id, u,
                              scratch)
    return int(tok), probs


def distinct_logits(seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return (rng.permutation(V) * 0.37 + rng.normal(0.0, 0.05, V)).astype(dtype)


# ------------------------------------------------------------------------------------ draw_token

DRAW_CASES = [  # temperature, top_k, ban_id (token 5 has the largest logit, 0 the second)
    (1.0, 0, -1), (0.5, 0, -1), (2.0, 0, 3), (1.0, 3, -1), (0.7, 3, 1), (1.0, V, -1),
    (1.3, V - 1, -1), (1.0, 1, -1), (0.7, 3, 0), (1.0, 2, 5), (1.0, 1, 5), (0.9, V - 1, 5),
]


@pytest.mark.parametrize("temperature,top_k,ban_id", DRAW_CASES)
def test_draw_token_matches_reference(temperature, top_k, ban_id):
    logits = distinct_logits(1)
    assert list(np.argsort(logits)[::-1][:2]) == [5, 0]
    for u in UNIFORMS:
        tok, probs = draw(logits, temperature, top_k, False, ban_id, u)
        e_tok, e_probs = ref.ref_draw_token(logits, temperature, top_k, False, ban_id, u)
        assert tok == e_tok, u
        assert_allclose(probs, e_probs, rtol=FLOAT64_RTOL, atol=0)


def test_draw_token_float32_logits():
    """float32 logits: same weights within the float32 tolerance, same token unless u sits
    within that tolerance of a CDF step."""
    logits = distinct_logits(2, np.float32)
    for u in UNIFORMS:
        tok, probs = draw(logits, 0.8, 4, False, -1, u)
        e_tok, e_probs = ref.ref_draw_token(logits, 0.8, 4, False, -1, u)
        assert_allclose(probs, e_probs, **tol(np.float32))
        cdf = np.cumsum(e_probs) / e_probs.sum()
        if np.min(np.abs(cdf - u)) > 1e-4:
            assert tok == e_tok, u


def test_draw_token_empirical_edges():
    """u = 0 draws the first kept token, u -> 1 the last; each token's share of a fine grid of
    uniforms equals its probability."""
    logits = distinct_logits(3)
    _, w = ref.ref_draw_token(logits, 1.0, 0, False, -1, 0.0)
    assert draw(logits, u=0.0)[0] == 0
    assert draw(logits, u=1.0 - 2.0 ** -53)[0] == V - 1
    grid = (np.arange(20000) + 0.5) / 20000
    counts = np.bincount([draw(logits, u=u)[0] for u in grid], minlength=V)
    assert_allclose(counts / grid.size, w / w.sum(), atol=1e-4)


def test_tiny_temperature_is_greedy():
    for seed in range(5):
        logits = distinct_logits(seed)
        for ban_id in (-1, int(np.argmax(logits))):
            best, _ = draw(logits, greedy=True, ban_id=ban_id)
            expect = int(np.argmax(np.where(np.arange(V) == ban_id, -np.inf, logits)))
            assert best == expect
            for u in UNIFORMS[::5]:
                assert draw(logits, 1e-4, 0, False, ban_id, u)[0] == expect


def test_greedy_ignores_u_and_takes_first_of_ties():
    logits = np.array([0.0, 2.0, -1.0, 2.0, 1.0, 2.0, 0.5])
    for u in (0.0, 0.5, 0.99):
        assert draw(logits, greedy=True, u=u)[0] == 1
        assert draw(logits, greedy=True, ban_id=1, u=u)[0] == 3


@pytest.mark.parametrize("top_k", [0, 3])
def test_ban_id_is_never_drawn(top_k):
    for seed in range(4):
        logits = distinct_logits(seed)
        for ban_id in (int(np.argmax(logits)), int(np.argmin(logits)), 2):
            for u in UNIFORMS:
                tok, probs = draw(logits, 1.5, top_k, False, ban_id, u)
                assert tok != ban_id and 0 <= tok < V
                assert probs[ban_id] == 0.0


def test_top_k_one_is_argmax():
    for seed in range(5):
        logits = distinct_logits(seed)
        for u in UNIFORMS[::4]:
            assert draw(logits, 1.0, 1, False, -1, u)[0] == int(np.argmax(logits))


@pytest.mark.parametrize("k", range(1, V))
def test_top_k_keeps_exactly_the_k_largest(k):
    logits = distinct_logits(k)
    _, probs = draw(logits, 1.0, k, False, -1, 0.3)
    assert set(np.flatnonzero(probs > 0.0)) == set(np.argsort(logits)[::-1][:k])
    drawn = {draw(logits, 1.0, k, False, -1, u)[0] for u in UNIFORMS}
    assert drawn == set(np.argsort(logits)[::-1][:k])


def test_top_k_keeps_ties_at_the_cut():
    logits = np.array([3.0, 1.0, 2.0, 2.0, 0.0, 2.0, -1.0])
    _, probs = draw(logits, 1.0, 2, False, -1, 0.3)
    assert set(np.flatnonzero(probs > 0.0)) == {0, 2, 3, 5}


# Regression: the top-k cut once counted the banned token, so with ban_id among the k largest only
# k-1 tokens stayed drawable (top_k=2 with the banned token on top was greedy). Ban first, then keep
# the k largest of the allowed tokens.
@pytest.mark.parametrize("k", [2, 3])
def test_top_k_counts_only_allowed_tokens(k):
    logits = distinct_logits(5)
    ban_id = int(np.argmax(logits))
    drawn = {draw(logits, 1.0, k, False, ban_id, u)[0] for u in UNIFORMS}
    allowed_order = [i for i in np.argsort(logits)[::-1] if i != ban_id]
    assert drawn == set(allowed_order[:k])


# ------------------------------------------------------------------------------------ kth_largest


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_kth_largest_matches_sort_with_ties(data):
    n = data.draw(st.integers(1, 40))
    values = np.array(data.draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n)), np.float64)
    k = data.draw(st.integers(1, n))
    keep = values.copy()
    got = sampling.kth_largest(values, k, np.empty(n))
    assert got == ref.ref_kth_largest(values, k)
    assert_array_equal(values, keep)  # works on the scratch copy


@settings(max_examples=300, deadline=None)
@given(hnp.arrays(st.sampled_from([np.float64, np.float32]), st.integers(1, 40),
                  elements=st.floats(-1e6, 1e6, width=32)), st.data())
def test_kth_largest_matches_sort(values, data):
    k = data.draw(st.integers(1, values.shape[0]))
    got = sampling.kth_largest(values, k, np.empty_like(values))
    assert got == ref.ref_kth_largest(values, k)


# ------------------------------------------------------------------------------------ stepping


def make_params(act, layers, seed=0, dtype=np.float64):
    cfg = ModelConfig(activation=act, hidden=H, layers=layers, vocab_size=V).validate()
    rng = np.random.default_rng(seed)
    p = Params(cfg, np.float64).init(rng)
    p.flat[...] *= 2.5  # a peakier distribution than the initial one
    p.b_a[...] = rng.uniform(0.0, 0.3, p.b_a.shape)
    p.b_y[...] = rng.normal(0.0, 0.5, p.b_y.shape)
    return p.copy(dtype)


def weights(p):
    return p.W_ax, p.W_ax_up, p.W_aa, p.b_a


@pytest.mark.parametrize("act", ["tanh", "relu"])
@pytest.mark.parametrize("layers", [1, 2])
def test_rnn_step_and_output_logits_match_reference(act, layers, dtype):
    p = make_params(act, layers, dtype=dtype)
    a = np.zeros((layers, H), dtype)
    e = np.zeros((layers, H))
    for x in (3, -1, 0, 6, 6):
        sampling.rnn_step(a, x, *weights(p), ACT[act], np.zeros(H, dtype))
        e = ref.ref_rnn_step(e, x, *weights(p), act)
        assert_allclose(a, e, **tol(dtype))
        logits = np.full(V, np.nan, dtype)
        sampling.output_logits(logits, a[-1], p.W_ya, p.b_y)
        assert_allclose(logits, ref.ref_output_logits(a[-1], p.W_ya, p.b_y), **tol(dtype))


@pytest.mark.parametrize("layers", [1, 2])
def test_rnn_feed_equals_repeated_step(layers):
    p = make_params("tanh", layers)
    ids = np.array([-1, 2, 5, 5, 0, 6, 1], np.int32)
    a_feed = np.zeros((layers, H))
    sampling.rnn_feed(a_feed, ids, *weights(p), cell.TANH, np.zeros(H))
    a_step = np.zeros((layers, H))
    e = np.zeros((layers, H))
    for x in ids:
        sampling.rnn_step(a_step, x, *weights(p), cell.TANH, np.zeros(H))
        e = ref.ref_rnn_step(e, x, *weights(p), "tanh")
    assert_array_equal(a_feed, a_step)
    assert_allclose(a_feed, e, rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)


# ------------------------------------------------------------------------------------ rnn_generate


class Gen:
    """rnn_generate with its buffers; `run` returns (count, out, state)."""

    def __init__(self, p, act, temperature=1.0, top_k=0, greedy=False, ban_id=-1, stop_id=-1,
                 top_p=1.0):
        self.p, self.act = p, act
        self.opts = (temperature, top_k, top_p, greedy, ban_id, stop_id)

    def run(self, uniforms, x0, a=None, fill=-7):
        p, dt = self.p, self.p.flat.dtype
        a = np.zeros((p.cfg.layers, H), dt) if a is None else a
        out = np.full(len(uniforms), fill, np.int32)
        n = sampling.rnn_generate(out, np.asarray(uniforms, np.float64), a, x0, p.W_ax, p.W_ax_up,
                                  p.W_aa, p.b_a, p.W_ya, p.b_y, ACT[self.act], *self.opts,
                                  np.zeros(V, dt), np.zeros(V, dt), np.zeros(V, dt),
                                  np.zeros(H, dt))
        return int(n), out, a


def ref_generate(p, act, uniforms, x0, temperature=1.0, top_k=0, greedy=False, ban_id=-1,
                 stop_id=-1):
    """A Python loop of ref_rnn_step + ref_draw_token; returns (tokens, state)."""
    a = np.zeros((p.cfg.layers, H))
    x, toks = x0, []
    for u in uniforms:
        a = ref.ref_rnn_step(a, x, *weights(p), act)
        logits = ref.ref_output_logits(a[-1], p.W_ya, p.b_y)
        x, _ = ref.ref_draw_token(logits, temperature, top_k, greedy, ban_id, u)
        toks.append(x)
        if x == stop_id:
            break
    return np.array(toks), a


GEN_CASES = [  # act, layers, temperature, top_k, greedy, ban_id
    ("tanh", 1, 1.0, 0, False, -1), ("tanh", 2, 0.8, 3, False, -1), ("tanh", 2, 0.8, 0, False, 4),
    ("tanh", 2, 1.0, 3, False, 4), ("relu", 2, 1.2, 0, False, 0), ("relu", 1, 1.0, 0, True, 2),
]


@pytest.mark.parametrize("act,layers,temperature,top_k,greedy,ban_id", GEN_CASES)
def test_rnn_generate_equals_reference_loop(act, layers, temperature, top_k, greedy, ban_id):
    p = make_params(act, layers, seed=layers)
    uniforms = np.random.default_rng(12).random(25)
    gen = Gen(p, act, temperature, top_k, greedy, ban_id)
    n, out, a = gen.run(uniforms, x0=-1)
    e_toks, e_a = ref_generate(p, act, uniforms, -1, temperature, top_k, greedy, ban_id)
    assert n == len(uniforms)
    assert_array_equal(out, e_toks)
    assert_allclose(a, e_a, rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)
    if not greedy:
        assert len(set(out.tolist())) > 1  # the draws did depend on the uniforms


def test_rnn_generate_stop_id_stops_early():
    p = make_params("tanh", 2, seed=3)
    uniforms = np.random.default_rng(13).random(30)
    full, _ = ref_generate(p, "tanh", uniforms, 1)
    stop = int(full[5])
    j = int(np.flatnonzero(full == stop)[0])  # the first time `stop` is drawn
    assert 0 < j < len(uniforms) - 1
    n, out, a = Gen(p, "tanh", stop_id=stop).run(uniforms, x0=1)
    assert n == j + 1
    assert_array_equal(out[:n], full[:n])
    assert_array_equal(out[n:], -7)  # untouched after the stop
    # the stop token was drawn but not fed back: the state saw x0 and out[:n-1]
    e_a = ref.ref_rnn_step(np.zeros((2, H)), 1, *weights(p), "tanh")
    for x in out[:n - 1]:
        e_a = ref.ref_rnn_step(e_a, x, *weights(p), "tanh")
    assert_allclose(a, e_a, rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)


def test_rnn_generate_in_chunks_equals_one_call():
    """The caller streams chunks, passing the last drawn token as the next x0."""
    p = make_params("relu", 2, seed=4)
    uniforms = np.random.default_rng(14).random(20)
    gen = Gen(p, "relu", temperature=0.9, top_k=4)
    n, whole, a_whole = gen.run(uniforms, x0=-1)
    a = np.zeros((2, H))
    n1, first, a = gen.run(uniforms[:7], x0=-1, a=a)
    n2, second, a = gen.run(uniforms[7:], x0=int(first[-1]), a=a)
    assert (n1, n2) == (7, 13)
    assert_array_equal(np.concatenate([first, second]), whole)
    assert_array_equal(a, a_whole)


def test_rnn_generate_float32_equals_kernel_composition():
    """float32 model: rnn_generate equals its own pieces (rnn_step, output_logits, draw_token)."""
    p = make_params("tanh", 2, seed=5, dtype=np.float32)
    uniforms = np.random.default_rng(15).random(15)
    n, out, a = Gen(p, "tanh", temperature=0.9).run(uniforms, x0=-1)
    s = np.zeros((2, H), np.float32)
    logits, probs, scratch = (np.zeros(V, np.float32) for _ in range(3))
    x = -1
    for i, u in enumerate(uniforms):
        sampling.rnn_step(s, x, *weights(p), cell.TANH, np.zeros(H, np.float32))
        sampling.output_logits(logits, s[-1], p.W_ya, p.b_y)
        x = sampling.draw_token(probs, logits, 0.9, 0, 1.0, False, -1, u, scratch)
        assert out[i] == x
    assert_array_equal(a, s)


# ------------------------------------------------------------------------------------ .py_func


@requires_jit
def test_sampling_kernels_equal_py_func():
    p = make_params("tanh", 2, seed=6)
    logits = distinct_logits(6)
    for u in UNIFORMS[::10]:
        args = (1.0, 3, 0.8, False, 1, u)
        pc, pp = np.zeros(V), np.zeros(V)
        assert sampling.draw_token(pc, logits, *args, np.zeros(V)) == \
            sampling.draw_token.py_func(pp, logits, *args, np.zeros(V))
        assert_allclose(pc, pp, rtol=1e-12)
    for k in range(1, V + 1):
        assert sampling.kth_largest(logits, k, np.zeros(V)) == \
            sampling.kth_largest.py_func(logits, k, np.zeros(V))
    ids = np.array([-1, 3, 2, 6], np.int32)
    for fn in (sampling.rnn_feed,):
        ac, ap = np.zeros((2, H)), np.zeros((2, H))
        fn(ac, ids, *weights(p), cell.TANH, np.zeros(H))
        fn.py_func(ap, ids, *weights(p), cell.TANH, np.zeros(H))
        assert_allclose(ac, ap, rtol=1e-12, atol=1e-14)
    ac, ap = np.zeros((2, H)), np.zeros((2, H))
    sampling.rnn_step(ac, 4, *weights(p), cell.RELU, np.zeros(H))
    sampling.rnn_step.py_func(ap, 4, *weights(p), cell.RELU, np.zeros(H))
    assert_allclose(ac, ap, rtol=1e-12, atol=1e-14)
    lc, lp = np.zeros(V), np.zeros(V)
    sampling.output_logits(lc, ac[-1], p.W_ya, p.b_y)
    sampling.output_logits.py_func(lp, ac[-1], p.W_ya, p.b_y)
    assert_allclose(lc, lp, rtol=1e-12, atol=1e-14)
    uniforms = np.random.default_rng(16).random(12)
    results = []
    for fn in (sampling.rnn_generate, sampling.rnn_generate.py_func):
        out, a = np.zeros(12, np.int32), np.zeros((2, H))
        n = fn(out, uniforms, a, -1, p.W_ax, p.W_ax_up, p.W_aa, p.b_a, p.W_ya, p.b_y, cell.TANH,
               0.9, 0, 0.7, False, -1, -1, np.zeros(V), np.zeros(V), np.zeros(V), np.zeros(H))
        results.append((n, out, a))
    assert results[0][0] == results[1][0]
    assert_array_equal(results[0][1], results[1][1])
    assert_allclose(results[0][2], results[1][2], rtol=1e-12, atol=1e-14)
