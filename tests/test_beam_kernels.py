"""Nucleus (top-p) draws, prime scoring and beam search (kernels/sampling.py, kernels/beam.py)
against the float64 references in tests/reference.py, brute force, and their properties: the
nucleus reaches P with a minimal set; beam search is never less probable than greedy; K = 1 is
--argmax; a large enough beam is exhaustive search."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

import reference as ref
import reference_cells as refc
from conftest import FLOAT64_ATOL, FLOAT64_RTOL, H, V, requires_jit
from rnn_cli.config import ModelConfig
from rnn_cli.kernels import beam, generate, sampling
from rnn_cli.params import Params
from rnn_cli.tasks.lm.network import ACTIVATIONS, Network, sequence_nll

VARIANTS = {  # cell, layers, embed, activation
    "rnn-1": ("rnn", 1, 0, "tanh"), "rnn-2-relu": ("rnn", 2, 0, "relu"),
    "gru-2": ("gru", 2, 0, "tanh"), "lstm-2-embed": ("lstm", 2, 4, "tanh"),
    "rnn-1-embed": ("rnn", 1, 4, "tanh"),
}


def make(variant, seed=0, dtype=np.float64):
    cell, layers, emb, act = VARIANTS[variant]
    cfg = ModelConfig(cell=cell, hidden=H, layers=layers, vocab_size=V, embed=emb,
                      activation=act).validate()
    rng = np.random.default_rng(seed)
    p = Params(cfg, np.float64).init(rng)
    p.flat[...] *= 2.5  # a peakier distribution than the initial one
    p.b_y[...] = rng.normal(0.0, 0.7, p.b_y.shape)
    return cfg, p.copy(dtype)


def net_args(cfg, p):
    dt = p.flat.dtype
    W_emb = p.W_emb if cfg.embed else np.zeros((0, 0), dt)
    b_hn = p.b_hn if cfg.cell == "gru" else np.zeros((0, 0), dt)
    return (W_emb, p.W_ax, p.W_ax_up, p.W_aa, p.b_a, b_hn, ACTIVATIONS[cfg.activation])


def ref_network(cfg, p):
    """(step, logits_of) of the float64 reference network."""
    if cfg.cell == "rnn" and not cfg.embed:
        def step(state, x):
            return ref.ref_rnn_step(state, x, p.W_ax, p.W_ax_up, p.W_aa, p.b_a, cfg.activation)
    else:
        def step(state, x):
            return refc.ref_cells_step(p, cfg, state, x)
    return step, lambda state: ref.ref_output_logits(state[cfg.layers - 1], p.W_ya, p.b_y)


class Beam:
    """beam_search with its buffers for one model."""

    def __init__(self, cfg, p, K, N):
        dt, R = p.flat.dtype, cfg.state_rows
        self.cfg, self.p, self.K, self.N = cfg, p, K, N
        self.bufs = (np.zeros((2, K, R, H), dt), np.zeros((N, K), np.int32),
                     np.zeros((N, K), np.int32), np.zeros(K * V), np.zeros(K * V),
                     np.zeros(K, np.int64), np.zeros((2, K)), np.zeros((R, H), dt))
        self.scratch = (np.zeros(V, dt), np.zeros(cfg.gates * H, dt), np.zeros(H, dt))

    def run(self, x0=-1, stop_id=-1, ban_id=-1, alpha=0.0, state=None, fn=beam.beam_search):
        cfg, p = self.cfg, self.p
        state = np.zeros((cfg.state_rows, H), p.flat.dtype) if state is None else state
        out = np.full(self.N, -7, np.int32)
        *net, act = net_args(cfg, p)
        n, lp, fin = fn(out, self.K, state, x0, stop_id, ban_id, alpha,
                        generate.CELL_CODES[cfg.cell], *net, act, p.W_ya, p.b_y, *self.bufs,
                        *self.scratch)
        return list(out[:n]), lp, fin, state


def logprob_of(cfg, p, toks, x0=-1):
    """ln P(toks | x0) by the reference network."""
    step, logits_of = ref_network(cfg, p)
    st, total, x = np.zeros((cfg.state_rows, H)), 0.0, x0
    for t in toks:
        st = step(st, x)
        total += ref.ref_log_softmax(logits_of(st))[t]
        x = t
    return total


# ------------------------------------------------------------------------------------ top-p


@pytest.mark.parametrize("temperature,top_k,top_p,ban_id", [
    (1.0, 0, 0.5, -1), (0.7, 0, 0.9, 5), (1.5, 4, 0.3, -1), (1.0, 3, 0.99, 0), (2.0, 0, 1e-6, 2),
    (1.0, 0, 0.999999, -1)])
def test_top_p_draw_matches_reference(temperature, top_k, top_p, ban_id):
    logits = (np.random.default_rng(3).permutation(V) * 0.37).astype(np.float64)
    for u in np.concatenate([np.linspace(0, 1, 57, endpoint=False), [1 - 2.0 ** -53]]):
        probs, scratch = np.zeros(V), np.zeros(V)
        tok = sampling.draw_token(probs, logits, temperature, top_k, top_p, False, ban_id, u,
                                  scratch)
        e_tok, e_w = ref.ref_draw_token(logits, temperature, top_k, False, ban_id, u, top_p)
        assert tok == e_tok
        assert_allclose(probs, e_w, rtol=FLOAT64_RTOL, atol=0)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(-8, 8), min_size=2, max_size=30), st.floats(0.01, 1.0),
       st.floats(0.2, 3.0), st.integers(0, 30), st.data())
def test_top_p_keeps_the_smallest_set_reaching_p(values, top_p, temperature, top_k, data):
    """Property: the kept tokens hold >= P of the (temperature, top-k) distribution, and dropping
    the least probable kept logit (all its ties) leaves < P: no smaller set of top tokens would do."""
    logits = np.array(values)
    n = logits.shape[0]
    ban_id = data.draw(st.integers(-1, n - 1))
    top_k = min(top_k, n)
    probs = np.zeros(n)
    sampling.draw_token(probs, logits, temperature, top_k, top_p, False, ban_id, 0.5, np.zeros(n))
    _, before = ref.ref_draw_token(logits, temperature, top_k, False, ban_id, 0.5)
    kept = probs > 0.0
    assert kept.any() and (ban_id < 0 or not kept[ban_id])
    assert set(np.flatnonzero(kept)) <= set(np.flatnonzero(before > 0.0))
    total = before.sum()
    mass = before[kept].sum() / total
    assert mass >= top_p * (1 - 1e-12) or kept.sum() == (before > 0).sum()
    smallest = logits[kept].min()
    assert before[kept & (logits > smallest)].sum() / total < top_p * (1 + 1e-12)
    assert all(kept[logits >= smallest] | ~(before > 0)[logits >= smallest])  # ties kept


def test_top_p_one_changes_nothing_and_tiny_p_is_greedy():
    logits = np.random.default_rng(4).normal(0, 2, V)
    for u in np.linspace(0, 1, 31, endpoint=False):
        a = sampling.draw_token(np.zeros(V), logits, 0.8, 3, 1.0, False, 1, u, np.zeros(V))
        b, _ = ref.ref_draw_token(logits, 0.8, 3, False, 1, u)
        assert a == b
        g = sampling.draw_token(np.zeros(V), logits, 0.8, 0, 1e-9, False, -1, u, np.zeros(V))
        assert g == int(np.argmax(logits))


# ------------------------------------------------------------------------------------ prime


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_feed_logprob_matches_reference_and_score_path(variant):
    cfg, p = make(variant, seed=1)
    ids = np.random.default_rng(2).integers(0, V, 13).astype(np.int32)
    for start in (-1, 3):
        feed = np.concatenate([[start], ids[:-1]]).astype(np.int32)
        state = np.zeros((cfg.state_rows, H))
        *net, act = net_args(cfg, p)
        lp = beam.feed_logprob(generate.CELL_CODES[cfg.cell], state, feed, ids, *net, act,
                               p.W_ya, p.b_y, np.zeros(V), np.zeros(cfg.gates * H), np.zeros(H))
        assert_allclose(lp, logprob_of(cfg, p, list(ids), start), rtol=FLOAT64_RTOL)
        nll = sequence_nll(Network(p, batch=1, steps=4, parallel=False), ids, start)
        assert_allclose(lp, -nll, rtol=1e-9)  # what `score` computes
        step, _ = ref_network(cfg, p)
        e = np.zeros((cfg.state_rows, H))
        for x in feed:
            e = step(e, x)
        assert_allclose(state, e, rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)


# ------------------------------------------------------------------------------------ beam search


BEAM_CASES = [  # variant, K, N, stop_id, ban_id, alpha, x0
    ("rnn-1", 3, 9, -1, -1, 0.0, -1), ("rnn-2-relu", 4, 8, 2, 0, 0.0, 2),
    ("gru-2", 2, 10, 1, 6, 0.0, 1), ("lstm-2-embed", 5, 7, 3, -1, 0.7, -1),
    ("rnn-1-embed", 3, 12, 0, 4, 1.0, 0), ("gru-2", 1, 6, -1, 3, 0.0, 5),
]


@pytest.mark.parametrize("variant,K,N,stop_id,ban_id,alpha,x0", BEAM_CASES)
def test_beam_search_matches_reference(variant, K, N, stop_id, ban_id, alpha, x0):
    cfg, p = make(variant, seed=K + N)
    toks, lp, fin, state = Beam(cfg, p, K, N).run(x0, stop_id, ban_id, alpha)
    step, logits_of = ref_network(cfg, p)
    e_toks, e_lp, e_fin, e_state = ref.ref_beam_search(step, logits_of,
                                                       np.zeros((cfg.state_rows, H)), x0, K, N,
                                                       stop_id, ban_id, alpha)
    assert toks == e_toks and fin == e_fin
    assert ban_id not in toks
    assert_allclose(lp, e_lp, rtol=FLOAT64_RTOL)
    assert_allclose(lp, logprob_of(cfg, p, toks, x0), rtol=FLOAT64_RTOL)
    assert_allclose(state, e_state, rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)
    if stop_id >= 0 and fin:
        assert toks[-1] == stop_id and stop_id not in toks[:-1]
    else:
        assert len(toks) == N


@pytest.mark.parametrize("variant", ["rnn-1", "gru-2", "lstm-2-embed"])
def test_wide_beam_is_exhaustive_search(variant):
    """K >= V**N keeps every sequence: the result is the most probable of all V**N (fixed length),
    or of all lines of <= N tokens ending at the stop symbol."""
    cfg, p = make(variant, seed=9)
    N = 3
    toks, lp, _, _ = Beam(cfg, p, V ** N, N).run(x0=2)
    scores = {seq: logprob_of(cfg, p, seq, 2) for seq in itertools.product(range(V), repeat=N)}
    best = max(scores, key=scores.get)
    assert tuple(toks) == best and np.isclose(lp, scores[best], rtol=1e-12)
    stop = 1
    lines = [seq + (stop,) for n in range(N) for seq in itertools.product(
        [v for v in range(V) if v != stop], repeat=n)]
    line_scores = {seq: logprob_of(cfg, p, seq, 2) for seq in lines}
    best_line = max(line_scores, key=line_scores.get)
    toks, lp, fin, _ = Beam(cfg, p, V ** N, N).run(x0=2, stop_id=stop)
    assert fin and tuple(toks) == best_line and np.isclose(lp, line_scores[best_line], rtol=1e-12)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("stop_id", [-1, 2])
def test_beam_one_is_the_greedy_sampler(variant, stop_id):
    """K = 1 gives the tokens and state of the fused greedy sampler (float32, bit for bit)."""
    cfg, p = make(variant, seed=4, dtype=np.float32)
    N, ban = 15, 6
    toks, lp, fin, state = Beam(cfg, p, 1, N).run(x0=0, stop_id=stop_id, ban_id=ban)
    a = np.zeros((cfg.state_rows, H), np.float32)
    out = np.zeros(N, np.int32)
    f32 = (np.zeros(V, np.float32), np.zeros(V), np.zeros(V, np.float32))
    *net, act = net_args(cfg, p)
    if cfg.cell == "rnn" and not cfg.embed:
        n = sampling.rnn_generate(out, np.zeros(N), a, 0, *net[1:5], p.W_ya, p.b_y, act, 1.0, 0,
                                  1.0, True, ban, stop_id, *f32, np.zeros(H, np.float32))
    else:
        n = generate.stack_generate(out, np.zeros(N), generate.CELL_CODES[cfg.cell], a, 0, *net,
                                    act, p.W_ya, p.b_y, 1.0, 0, 1.0, True, ban, stop_id, *f32,
                                    np.zeros(cfg.gates * H, np.float32), np.zeros(H, np.float32))
    assert toks == list(out[:n])
    assert_array_equal(state, a)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(list(VARIANTS)), st.integers(0, 10 ** 6), st.integers(1, 6),
       st.integers(1, 10), st.sampled_from([-1, 0, 3]))
def test_beam_is_never_less_probable_than_greedy(variant, seed, K, N, stop_id):
    """Property (alpha = 0): ln P(beam K) >= ln P(greedy) for the same search (fixed length, or a
    line ending at stop_id), and ln P(beam K) equals the reference network's score of its tokens."""
    cfg, p = make(variant, seed=seed)
    g_toks, g_lp, g_fin, _ = Beam(cfg, p, 1, N).run(x0=1, stop_id=stop_id)
    toks, lp, fin, _ = Beam(cfg, p, K, N).run(x0=1, stop_id=stop_id)
    assert_allclose(lp, logprob_of(cfg, p, toks, 1), rtol=1e-10)
    if stop_id < 0 or g_fin:
        assert fin or stop_id < 0
        assert lp >= g_lp - 1e-12


def test_beam_state_continues_like_feeding_the_tokens():
    """The returned state is the winner's with its last token not fed: feeding x0 and toks[:-1]
    from the start state gives it (so the next line starts from toks[-1])."""
    cfg, p = make("gru-2", seed=5)
    toks, _, _, state = Beam(cfg, p, 3, 8).run(x0=4)
    step, _ = ref_network(cfg, p)
    e = np.zeros((cfg.state_rows, H))
    for x in [4] + toks[:-1]:
        e = step(e, x)
    assert_allclose(state, e, rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)


# ------------------------------------------------------------------------------------ .py_func


@requires_jit
def test_beam_kernels_equal_py_func():
    cfg, p = make("lstm-2-embed", seed=6)
    b = Beam(cfg, p, 3, 8)
    got = b.run(x0=1, stop_id=2)
    py = b.run(x0=1, stop_id=2, fn=beam.beam_search.py_func)
    assert got[0] == py[0] and got[2] == py[2]
    assert_allclose(got[1], py[1], rtol=1e-12)
    logits = np.random.default_rng(7).normal(0, 1, V)
    args = (logits, -np.inf, logits.max(), 0.8, 0.6, 2)
    assert sampling.nucleus_cut(*args, np.zeros(V)) == sampling.nucleus_cut.py_func(*args,
                                                                                   np.zeros(V))
    assert_allclose(beam.log_sum_exp(logits), beam.log_sum_exp.py_func(logits), rtol=1e-12)
