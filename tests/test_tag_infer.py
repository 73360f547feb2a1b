"""Block tagging (rnn_cli/tasks/tag/infer.py): a loaded Tagger tags a block of sentences at
once, batched by length, with layer 0's input terms from its per-string cache and the character
encoder over folded character tables. The tags and the probabilities it prints (6 decimals) are
those of sentence-at-a-time tagging and of the plain forward (no cache, no folding): mixed
lengths, unseen words and characters, repeated strings, an empty sentence; softmax and --crf
(LSTM), a GRU; the gemm and the loop recurrences; a cold cache, a warm one, and one too small to hold them."""

from __future__ import annotations

import numpy as np
import pytest

from rnn_cli.tasks.tag import data as tagdata
from rnn_cli.tasks.tag import infer
from rnn_cli.tasks.tag.evaluate import run_all
from rnn_cli.tasks.tag.reader import Sentence
from rnn_cli.tasks.tag.run import TagRun
from rnn_cli.tasks.tag.tagger import Tagger
from test_tag_run import TINY, write_corpus

PRINTED = 1e-6  # --probs prints 6 decimals: a rounding may move the last one, no more

WORDS = ("then Ada met Teddy Roosevelt in Oslo Harry Potter said New York Zyxwv Pottr naïve "
         "#nlp Qx-77 the a saw").split()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("infer")
    train = write_corpus(tmp / "train.tsv", n=60)
    out = {}
    for kind, kw in (("softmax", {}), ("crf", {"crf": True}), ("gru", {"cell": "gru"})):
        run = TagRun.start(train, steps=12, **kw, **TINY)
        run.run()
        out[kind] = str(tmp / f"{kind}.npz")
        run.save(out[kind])
    return out


def sentences() -> list[list[str]]:
    rng = np.random.default_rng(5)
    lens = [3, 1, 12, 0, 7, 2, 30, 5, 5, 1, 9, 4] * 3
    return [[str(w) for w in rng.choice(WORDS, n)] for n in lens]


def plain(tagger: Tagger, sents: list[list[str]]):
    """The plain forward of the whole list (no cache, no folded tables)."""
    net, cache = tagger.net, tagger.net.cache
    net.cache = None
    try:
        data = tagdata.encode([Sentence(s, None, 0) for s in sents], tagger.words, tagger.chars,
                              tagger.tagset)
        paths, chosen, _ = run_all(net, data, probs=True)
    finally:
        net.cache = cache
    return [[tagger.tags[k] for k in p.tolist()] for p in paths], [c.tolist() for c in chosen]


def same(got, tags, probs):
    assert [t.tags for t in got] == tags
    for t, p in zip(got, probs):
        assert len(t.probs) == len(p)
        assert np.abs(np.array(t.probs) - np.array(p)).max(initial=0.0) <= PRINTED


@pytest.mark.parametrize("kind", ["softmax", "crf", "gru"])
@pytest.mark.parametrize("recurrence", ["gemm", "loops"])
def test_block_tagging_equals_sentence_at_a_time(models, kind, recurrence, monkeypatch):
    monkeypatch.setenv("RNN_CLI_RECURRENCE", recurrence)
    sents = sentences()
    tagger = Tagger.load(models[kind])
    assert tagger.net.enc.recurrence == recurrence
    tags, probs = plain(tagger, sents)
    assert any(len(t) for t in tags) and [len(t) for t in tags] == [len(s) for s in sents]
    block = tagger.tag_tokens(sents, probs=True)  # a cold cache, then a warm one
    same(block, tags, probs)
    assert len(tagger.net.cache) == len({w for s in sents for w in s})
    same(tagger.tag_tokens(sents, probs=True), tags, probs)
    one = Tagger.load(models[kind])  # sentence at a time, from a cold cache
    same(list(one.tag_sentences((Sentence(s, None, 0) for s in sents), probs=True,
                                batch_size=1)), tags, probs)
    monkeypatch.setattr(infer, "CACHE_BYTES", 1)  # room for one string: the rest each block
    small = Tagger.load(models[kind])
    assert small.net.cache.cap == 1
    same(small.tag_tokens(sents, probs=True), tags, probs)
    same(small.tag_tokens(sents, probs=True), tags, probs)
    assert len(small.net.cache) == 1


def test_char_vectors_over_folded_tables_equal_the_plain_encoder(models):
    tagger = Tagger.load(models["softmax"])
    names = list(dict.fromkeys(WORDS))
    infer.prepare(tagger.net)
    got = infer.char_vectors(tagger.net, names, tagger.chars)
    data = tagdata.encode([Sentence(names, None, 0)], tagger.words, tagger.chars, tagger.tagset)
    b = data.batch(np.array([0]))
    want = tagger.net.char_vectors(b.cx, b.clens)
    row = {n: i for i, n in enumerate(b.names)}
    np.testing.assert_allclose(got, want[[row[n] for n in names]], rtol=1e-5, atol=1e-6)
