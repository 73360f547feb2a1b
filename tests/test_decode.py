"""Decoding (kernels/decoder.decoder_step, tasks/translate/decode.py): the one-step kernel against
the float64 reference step, greedy against a reference loop, and beam search against exhaustive
search on a tiny vocabulary (wide enough, its n-best list is the exhaustive one), never below
greedy, K = 1 equal to greedy, a batch equal to its sources one by one."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

import reference_seq2seq as ref
from conftest import tol
from rnn_cli.tasks.translate.decode import Stepper, beam_search, greedy, length_penalty
from rnn_cli.tasks.translate.decoder import Decoder

S, B, H, E, A, V, DF = 4, 3, 3, 2, 3, 4, 4
EOS = 0
SRC_LEN = np.array([4, 2, 3], np.int32)
VARIANTS = [("gru", "additive"), ("lstm", "general"), ("gru", "dot"), ("lstm", "none")]
IDS = [f"{c}-{k}" for c, k in VARIANTS]


def make(cell, kind, seed=0, dtype=np.float64, scale=1.2):
    rng = np.random.default_rng(seed)
    D = H if kind == "dot" else 4
    dec = Decoder(cell, kind, H, E, D, A, V, DF, dtype=dtype)
    params = {k: rng.normal(0, scale, shape).astype(dtype) for k, shape in dec.shapes().items()}
    enc = rng.normal(0, 1, (S, B, D))
    for b, n in enumerate(SRC_LEN):
        enc[n:, b] = 0.0
    fin = rng.normal(0, 1, (B, DF))
    return dec, params, enc.astype(dtype), fin.astype(dtype)


def ref_logp(logits):
    m = logits.max()
    return logits - (m + np.log(np.exp(logits - m).sum()))


@pytest.mark.parametrize("cell,kind", VARIANTS, ids=IDS)
def test_step_matches_reference(cell, kind, dtype):
    dec, p, enc, fin = make(cell, kind, dtype=dtype)
    st = Stepper(dec, p, enc, SRC_LEN, fin)
    lanes = np.array([2, 0, 0, 1])  # several lanes may read one source
    s, c = st.start(lanes)
    rng = np.random.default_rng(3)
    s = (s + rng.normal(0, 0.3, s.shape)).astype(dtype)
    c = (rng.normal(0, 0.5, s.shape) if cell == "lstm" else c).astype(dtype)
    y = np.array([1, 3, -1, 2], np.int32)
    logp, s1, c1, alpha = st.step(s, c, y, lanes)
    s0 = ref.ref_decoder_init(fin, p)
    assert_allclose(st.s0, s0, **tol(dtype))
    for i, b in enumerate(lanes):
        c_in = c[i] if cell == "lstm" else np.zeros(H)
        want = ref.ref_decoder_step(cell, kind, int(y[i]), s[i], c_in, enc[:, b], SRC_LEN[b], p)
        assert_allclose(s1[i], want[0], **tol(dtype, "network"))
        if cell == "lstm":
            assert_allclose(c1[i], want[1], **tol(dtype, "network"))
        assert_allclose(alpha[i], want[2], **tol(dtype, "network"))
        assert_allclose(logp[i], ref_logp(want[4]), **tol(dtype, "network"))


def ref_greedy(cell, kind, p, enc, fin, b, max_len):
    s = ref.ref_decoder_init(fin, p)[b]
    c, y, toks, lp = np.zeros(H), EOS, [], 0.0
    for _ in range(max_len):
        s, c, _, _, logits = ref.ref_decoder_step(cell, kind, y, s, c, enc[:, b], SRC_LEN[b], p)
        logp = ref_logp(logits)
        y = int(np.argmax(logp))
        lp += logp[y]
        if y == EOS:
            return toks, lp, True
        toks.append(y)
    return toks, lp, False


@pytest.mark.parametrize("cell,kind", VARIANTS, ids=IDS)
def test_greedy_matches_reference_loop(cell, kind):
    dec, p, enc, fin = make(cell, kind, seed=4)
    hyps = greedy(Stepper(dec, p, enc, SRC_LEN, fin), EOS, max_len=6)
    for b, h in enumerate(hyps):
        toks, lp, done = ref_greedy(cell, kind, p, enc, fin, b, 6)
        assert (h.tokens, h.finished) == (toks, done)
        assert h.logprob == pytest.approx(lp, rel=1e-9)
        assert h.attention.shape == (len(toks) + done, S)


def exhaustive(cell, kind, p, enc, fin, b, max_len, alpha):
    """Every output (ended by <EOS>, or cut at max_len) with its log P and penalised score."""
    out = []

    def walk(toks, y, s, c, lp):
        s, c, _, _, logits = ref.ref_decoder_step(cell, kind, y, s, c, enc[:, b], SRC_LEN[b], p)
        logp = ref_logp(logits)
        n = len(toks) + 1
        for v in range(V):
            if v == EOS:
                out.append((lp + logp[v], toks, True, n))
            elif n == max_len:
                out.append((lp + logp[v], toks + [v], False, n))
            else:
                walk(toks + [v], v, s, c, lp + logp[v])

    walk([], EOS, ref.ref_decoder_init(fin, p)[b], np.zeros(H), 0.0)
    return sorted(((lp / length_penalty(n, alpha), lp, t, d) for lp, t, d, n in out),
                  key=lambda r: -r[0])


@pytest.mark.parametrize("cell,kind", VARIANTS[:2], ids=IDS[:2])
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_wide_beam_is_exhaustive_search(cell, kind, alpha):
    max_len, n_best = 3, 4
    dec, p, enc, fin = make(cell, kind, seed=5, scale=1.5)
    got = beam_search(Stepper(dec, p, enc, SRC_LEN, fin), EOS, max_len, K=V ** max_len,
                      n_best=n_best, alpha=alpha)
    for b in range(B):
        want = exhaustive(cell, kind, p, enc, fin, b, max_len, alpha)[:n_best]
        assert [h.tokens for h in got[b]] == [w[2] for w in want]
        assert [h.finished for h in got[b]] == [w[3] for w in want]
        assert_allclose([h.score for h in got[b]], [w[0] for w in want], rtol=1e-9)
        assert_allclose([h.logprob for h in got[b]], [w[1] for w in want], rtol=1e-9)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_beam_never_ranks_below_greedy_and_k1_is_greedy(seed, alpha):
    dec, p, enc, fin = make("gru", "additive", seed=seed, scale=1.5)
    st = Stepper(dec, p, enc, SRC_LEN, fin)
    g = greedy(st, EOS, 5)
    one = beam_search(st, EOS, 5, K=1, alpha=alpha)
    for b in range(B):
        assert one[b][0].tokens == g[b].tokens
        assert one[b][0].logprob == pytest.approx(g[b].logprob, rel=1e-12)
    for K in (2, 3):
        beams = beam_search(st, EOS, 5, K=K, alpha=alpha)
        for b in range(B):
            g_score = g[b].logprob / length_penalty(len(g[b].attention), alpha)
            assert beams[b][0].score >= g_score - 1e-12


def test_a_batch_decodes_as_its_sources_one_by_one():
    dec, p, enc, fin = make("lstm", "additive", seed=7, scale=1.5)
    batch = beam_search(Stepper(dec, p, enc, SRC_LEN, fin), EOS, 5, K=3, n_best=2, alpha=0.6)
    for b in range(B):
        one = beam_search(Stepper(dec, p, enc[:, b:b + 1], SRC_LEN[b:b + 1], fin[b:b + 1]),
                          EOS, 5, K=3, n_best=2, alpha=0.6)[0]
        assert [h.tokens for h in one] == [h.tokens for h in batch[b]]
        assert_allclose([h.score for h in one], [h.score for h in batch[b]], rtol=1e-12)
        for h1, h2 in zip(one, batch[b]):
            assert_allclose(h1.attention, h2.attention, rtol=1e-12)


def test_n_best_must_fit_the_beam():
    dec, p, enc, fin = make("gru", "dot")
    with pytest.raises(ValueError, match="n_best"):
        beam_search(Stepper(dec, p, enc, SRC_LEN, fin), EOS, 5, K=2, n_best=3)


def test_topk_rows_matches_a_stable_sort(rng, dtype):
    """kernels/topk.py: the K largest of each row, best first, ties by the lower id; lse; a row
    shorter than K padded with -1 / -inf."""
    from rnn_cli.kernels import topk

    L, Vv = 6, 9
    z = rng.integers(-3, 4, (L, Vv)).astype(dtype)  # many ties
    z[0] = 1.0  # one row all tied
    for K in (1, 4, Vv, Vv + 2):
        tok, lp, lse = np.zeros((L, K), np.int32), np.zeros((L, K)), np.zeros(L)
        topk.topk_rows(tok, lp, lse, z)
        z64 = z.astype(np.float64)
        want_lse = np.log(np.exp(z64 - z64.max(1, keepdims=True)).sum(1)) + z64.max(1)
        np.testing.assert_allclose(lse, want_lse, rtol=1e-6)
        order = np.argsort(-z64, axis=1, kind="stable")[:, :K]
        n = min(K, Vv)
        np.testing.assert_array_equal(tok[:, :n], order[:, :n])
        np.testing.assert_allclose(lp[:, :n], np.take_along_axis(z64, order, 1)[:, :n] -
                                   want_lse[:, None], rtol=1e-6)
        assert (tok[:, n:] == -1).all() and np.isneginf(lp[:, n:]).all()
