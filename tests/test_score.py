"""score.py: sentence log-probabilities by the chain rule, the next-token distribution, --total.

Models here are built by hand or randomly initialised (no training), so every test runs in
milliseconds once the kernels are compiled; the trained-model properties are in test_cli_query.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnn_cli import checkpoint
from rnn_cli.config import ModelConfig
from rnn_cli.errors import CorpusError
from rnn_cli.params import Params
from rnn_cli.tasks.lm import score
from rnn_cli.tasks.lm.network import sequence_nll
from rnn_cli.tasks.lm.train import eval_network
from rnn_cli.vocab import UNK, Vocab, build_vocab

TEXT = "the cat sat on the mat\nthe dog sat on the log\na cat and a dog\n"


def random_model(level: str, hidden: int = 8, seed: int = 0, text: str = TEXT, **cfg_kw):
    vocab = build_vocab(text, level)
    cfg = ModelConfig(level=level, hidden=hidden, vocab_size=len(vocab), **cfg_kw).validate()
    params = Params(cfg).init(np.random.default_rng(seed))
    params.b_y[...] = np.random.default_rng(seed + 1).normal(size=len(vocab))  # not uniform
    return checkpoint.Model(cfg, vocab, params)


def hand_model():
    """V = 2 ("a", <UNK>), H = 2, every weight chosen by hand; no "\\n", so x<1> = 0."""
    vocab = Vocab("char", ("a", UNK))
    cfg = ModelConfig(level="char", hidden=2, vocab_size=2)
    p = Params(cfg)
    p.W_ax[...] = [[0.5, -1.0], [0.25, 2.0]]
    p.W_aa[0] = [[0.75, -0.5], [1.5, 0.125]]
    p.b_a[0] = [0.1, -0.3]
    p.W_ya[...] = [[1.0, -2.0], [-0.5, 0.25]]
    p.b_y[...] = [0.2, -0.1]
    return checkpoint.Model(cfg, vocab, p)


def test_hand_built_two_token_model_gives_the_hand_computed_probability():
    m = hand_model()
    W_ax, W_aa, b_a = (np.asarray(v, np.float64) for v in (m.params.W_ax, m.params.W_aa[0],
                                                            m.params.b_a[0]))
    W_ya, b_y = np.asarray(m.params.W_ya, np.float64), np.asarray(m.params.b_y, np.float64)

    def softmax(z):
        e = np.exp(z - z.max())
        return e / e.sum()

    # "aa": a<1> = tanh(b_a) (x<1> = 0), P(a); a<2> = tanh(W_aa a<1> + W_ax[:, a] + b_a), P(a)
    a1 = np.tanh(b_a)
    p1 = softmax(W_ya @ a1 + b_y)
    a2 = np.tanh(W_aa @ a1 + W_ax[:, 0] + b_a)
    p2 = softmax(W_ya @ a2 + b_y)
    expected = math.log(p1[0]) + math.log(p2[0])
    (r,) = score.score_lines(score.Scorer(m), [(1, "aa\n")])
    assert r.n == 2 and r.ids.tolist() == [0, 0]
    assert r.logprob == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(np.exp(-r.nll), [p1[0], p2[0]], rtol=1e-6)
    # and the next-token distribution after "aa"
    a3 = np.tanh(W_aa @ a2 + W_ax[:, 0] + b_a)
    probs = score.Scorer(m).next_probs(np.array([0, 0], np.int32))
    np.testing.assert_allclose(probs, softmax(W_ya @ a3 + b_y), rtol=1e-6)


@pytest.mark.parametrize("level", ["char", "word"])
def test_chain_rule_per_token_sum_is_the_line_total(level):
    m = random_model(level)
    scorer = score.Scorer(m)
    lines = [(i + 1, line) for i, line in enumerate(TEXT.splitlines())]
    for r in score.score_lines(scorer, lines):
        # the line total from sequence_nll's return value equals the sum of its per-token terms
        assert -scorer.sentence_nll(r.ids) == pytest.approx(r.logprob, rel=1e-12)
        assert r.perplexity == pytest.approx(math.exp(-r.logprob / r.n), rel=1e-12)
        assert r.ids[-1] == m.vocab.eos_id  # ends with <EOS> / "\n", as in training
        # the product of the conditional probabilities, one at a time from predict's row
        logp = 0.0
        for i in range(r.n):
            logp += math.log(scorer.next_probs(r.ids[:i])[r.ids[i]])
        # (float32 logits from BLAS products of another row count: equal to float32 precision)
        assert logp == pytest.approx(r.logprob, rel=1e-6)


@pytest.mark.parametrize("level", ["char", "word"])
def test_predict_row_is_the_softmax_row_the_scorer_uses(level):
    m = random_model(level, seed=3)
    scorer = score.Scorer(m)
    ctx, _ = m.vocab.encode("the cat sat on", final_eos=False) if level == "word" \
        else m.vocab.encode("the cat sat on")
    probs = scorer.next_probs(ctx)
    assert probs.shape == (len(m.vocab),) and probs.sum() == pytest.approx(1.0, abs=1e-6)
    nll = np.zeros(ctx.shape[0] + 1)
    for y in range(len(m.vocab)):  # score ctx + y: the last per-token term is -log probs[y]
        ids = np.append(ctx, y).astype(np.int32)
        scorer.sentence_nll(ids, out=nll)
        assert math.exp(-nll[-1]) == pytest.approx(probs[y], rel=1e-12)
    top = score.top_k(probs, 3)
    assert list(probs[top]) == sorted(probs, reverse=True)[:3]
    # context longer than one scoring window: the row is still the last position's
    long_ctx = np.tile(ctx, 300 // ctx.shape[0] + 1).astype(np.int32)[:257]
    probs2 = scorer.next_probs(long_ctx)
    ids = np.append(long_ctx, 0).astype(np.int32)
    nll = np.zeros(ids.shape[0])
    scorer.sentence_nll(ids, out=nll)
    assert math.exp(-nll[-1]) == pytest.approx(probs2[0], rel=1e-12)


def test_total_is_one_sequence_nll_whatever_the_chunking(monkeypatch):
    m = random_model("char", seed=5)
    text = TEXT * 40  # 2,400 characters: several scoring windows
    ids_all, _ = m.vocab.encode(text)
    net = eval_network(m.params)  # the scorer's own construction: the same windows and products
    expected = sequence_nll(net, ids_all, m.vocab.eos_id)
    for windows in (1, 3, 64):
        monkeypatch.setattr(score, "FLUSH_WINDOWS", windows)
        total = score.TotalScore(score.Scorer(m))
        for line in text.splitlines(keepends=True):
            total.add(*score.total_ids(m.vocab, line))
        s = total.finish()
        assert s["tokens"] == ids_all.shape[0] and s["oov"] == 0
        assert -s["logprob"] == expected  # the same windows, so the same floats
        assert s["perplexity"] == pytest.approx(math.exp(expected / ids_all.shape[0]))


def test_total_ids_concatenate_to_encode_of_the_text():
    for level in ("char", "word"):
        vocab = build_vocab(TEXT, level)
        text = TEXT + "\nno newline at the end"  # a blank line and an unterminated last line
        lines = text.splitlines(keepends=True)
        ref, unk = vocab.encode(text)
        parts = [score.total_ids(vocab, line) for line in lines]
        ids = np.concatenate([p[0] for p in parts])
        assert ids.tolist() == ref.tolist() and sum(p[1] for p in parts) == unk
        for block in (1, 2, 1024):
            parts = list(score.total_blocks(vocab, enumerate(lines, 1), block))
            assert np.concatenate([p[0] for p in parts]).tolist() == ref.tolist()
            assert sum(p[1] for p in parts) == unk and sum(p[2] for p in parts) == len(lines)


def test_unknown_tokens_and_empty_input():
    m = random_model("word")
    scorer = score.Scorer(m)
    (r,) = score.score_lines(scorer, [(1, "the zebra sat\n")])
    assert r.unknown == 1 and m.vocab.symbols[r.ids[1]] == "<UNK>"
    with pytest.raises(CorpusError, match="line 2: every token is unknown"):
        list(score.score_lines(scorer, [(1, "the cat\n"), (2, "zebra giraffe\n")]))
    with pytest.raises(CorpusError, match="nothing to score"):
        list(score.score_lines(scorer, [(1, "\n"), (2, "   \n")]))
    total = score.TotalScore(scorer)
    with pytest.raises(CorpusError, match="no tokens"):
        total.finish()


# ----------------------------------------------------------------- batched per-line scoring
LONG = ("the cat sat on the mat and the dog sat on the log " * 12).strip()


@pytest.mark.parametrize("level,hidden,kw", [
    ("char", 8, {}), ("word", 8, {}), ("char", 40, {}), ("char", 40, {"cell": "gru"}),
    ("word", 40, {"cell": "lstm", "embed": 16, "layers": 2})])
def test_batched_scoring_equals_one_line_at_a_time(level, hidden, kw, monkeypatch):
    """H 40: the batch runs the BLAS recurrences, lines longest first in each thread's lanes,
    each lane stopped at its line's end (`Network.lane_steps`); one line at a time loops."""
    m = random_model(level, hidden=hidden, seed=7, **kw)
    scorer = score.Scorer(m)
    lines = TEXT.splitlines() * 5 + [LONG, "the", "", "a cat", LONG[:40]]
    numbered = [(i + 1, line + "\n") for i, line in enumerate(lines)]
    seq = list(score.score_lines(scorer, numbered))
    monkeypatch.setattr(score, "READ_AHEAD", 2)
    for batch, rows in ((2, None), (3, None), (64, None), (4, 4 * len(m.vocab) * 5)):
        if rows:  # windows of 5 steps: long lines span several windows, state carried
            monkeypatch.setattr(score, "LOGIT_ROWS", rows)
        got = list(score.score_lines(scorer, numbered, batch=batch))
        assert [r.lineno for r in got] == [r.lineno for r in seq]  # input order, blanks skipped
        for a, b in zip(got, seq):
            assert a.ids.tolist() == b.ids.tolist() and a.line == b.line
            assert a.logprob == pytest.approx(b.logprob, rel=1e-5)
            np.testing.assert_allclose(a.nll, b.nll, rtol=1e-5, atol=1e-6)


def test_batched_scoring_streams_and_stops_at_a_bad_line():
    m = random_model("word", seed=4)
    scorer = score.Scorer(m)

    def endless():  # an input that never ends: results must still come out
        i = 0
        while True:
            i += 1
            yield i, ("the cat sat\n" if i % 2 else "a dog and a cat on the mat\n")

    first = []
    for r in score.score_lines(scorer, endless(), batch=4):
        first.append(r)
        if len(first) == 50:
            break
    assert [r.lineno for r in first] == list(range(1, 51))
    # a line of unknown words: every line before it is yielded, then the error
    lines = [(i, "the cat sat\n") for i in range(1, 6)] + [(6, "zebra giraffe\n")]
    got = []
    with pytest.raises(CorpusError, match="line 6: every token is unknown"):
        for r in score.score_lines(scorer, lines, batch=4):
            got.append(r.lineno)
    assert got == [1, 2, 3, 4, 5]


def test_cli_batch_default_matches_score_module():
    from rnn_cli import cli_query

    assert cli_query.BATCH_LINES == score.BATCH_LINES  # kept apart so --help never loads numpy
