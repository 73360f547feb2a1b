"""The tagger's network (rnn_cli/tasks/tag/model.py, data.py): its scores against a float64 twin
run one sentence and one word at a time, the whole loss's gradient (character encoder, word
encoder, softmax or CRF) against finite differences, batches that change nothing, decoding that
never breaks the tag scheme, probabilities, and the vocabularies and batches it reads. Tiny
sizes, float64 unless said."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

import reference_tag as ref
from conftest import FD_EPS, FD_MAX_REL_ERR, FLOAT32_RTOL, FLOAT64_ATOL, FLOAT64_RTOL
from rnn_cli.tasks.tag import data as tagdata
from rnn_cli.tasks.tag.model import FORMAT, TagConfig, TaggerNet, param_shapes
from rnn_cli.tasks.tag.reader import Sentence
from rnn_cli.tasks.tag.tagset import TagSet, is_valid, repair

WORDS = ("Harry Potter and Hermione Granger invented a new spell . He said , Teddy Roosevelt "
         "was great #nlp Pottr").split()
TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def sentences(rng, lengths=(5, 2, 4, 1, 3), tags=TAGS) -> list[Sentence]:
    return [Sentence([str(w) for w in rng.choice(WORDS, n)],
                     [str(t) for t in rng.choice(tags, n)], 1) for n in lengths]


def setup(rng, cfg_kw, lengths=(5, 2, 4, 1, 3), dtype=np.float64, recurrence="gemm"):
    sents = sentences(rng, lengths)
    words = tagdata.build_word_vocab(sents, lower=True, min_count=1)
    chars = tagdata.build_char_vocab(sents)
    ts = TagSet(TAGS)
    cfg = TagConfig(**{"hidden": 3, "embed": 4, "char_embed": 3, "char_hidden": 2,
                       "dropout": 0.0, "scheme": ts.scheme, **cfg_kw})
    net = TaggerNet(cfg, len(words), len(chars), ts.tags, dtype=dtype, recurrence=recurrence)
    net.init(np.random.default_rng(1))
    if cfg.crf:  # not the zeros of a new model: every term of the CRF in play
        for name in ("crf.trans", "crf.start", "crf.end"):
            net.params[name][...] = rng.normal(0, 1, net.params[name].shape)
    gold = [repair(s.tags, ts.scheme) for s in sents]
    return net, tagdata.encode(sents, words, chars, ts, gold), sents


# ------------------------------------------------------------------------------------ forward
@pytest.mark.parametrize("kw", [dict(cell="lstm", layers=2), dict(cell="gru"),
                                dict(cell="rnn", activation="relu", char_hidden=0)])
def test_scores_match_the_one_word_at_a_time_twin(rng, kw):
    net, data, _ = setup(rng, kw)
    idx = np.array([2, 0, 4, 1, 3])
    em = net.scores(data.batch(idx), None)
    p = {k: np.asarray(v) for k, v in net.params.views.items()}
    off, tc, to = data.offsets, data.type_chars, data.type_offsets
    sents = [(data.words[off[i]:off[i + 1]],
              [tc[to[t]:to[t + 1]] for t in data.types[off[i]:off[i + 1]]]) for i in idx]
    for j, want in enumerate(ref.ref_tagger_scores(p, net.cfg, sents)):
        L = want.shape[0]
        assert_allclose(em[:L, j], want, rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)


def test_batch_composition_and_float32(rng):
    """A sentence's scores do not depend on what shares its batch (padding, shared words)."""
    net, data, _ = setup(rng, dict(cell="lstm"), lengths=(6, 1, 3, 6, 2), dtype=np.float32)
    whole = net.scores(data.batch(np.array([0, 3, 2, 4, 1])), None).copy()
    for j, i in enumerate([0, 3, 2, 4, 1]):
        alone = net.scores(data.batch(np.array([i])), None)
        L = int(data.lengths[i])
        assert_allclose(whole[:L, j], alone[:L, 0], rtol=FLOAT32_RTOL["network"], atol=1e-5)


# ------------------------------------------------------------------------------------ gradients
@pytest.mark.parametrize("kw", [dict(cell="lstm", crf=True), dict(cell="gru", layers=2),
                                dict(cell="lstm", crf=True, dropout=0.3, char_hidden=0)])
def test_loss_gradient_matches_finite_differences(rng, kw):
    """Every parameter: character embeddings and encoder, word embeddings, both directions of
    the word encoder, the output layer, the CRF's transitions (dropout masks held fixed)."""
    net, data, _ = setup(rng, kw)
    idx = np.array([0, 2, 4, 1, 3])

    def loss():
        return net.forward(data, idx, np.random.default_rng(7) if net.cfg.dropout else None)

    loss()
    grads = net.params.zeros_like()
    grads.flat[:] = np.nan
    net.backward(grads)
    p, num = net.params.flat, np.zeros(len(net.params))
    for i in range(len(p)):
        keep = p[i]
        p[i] = keep + FD_EPS * 10
        up = loss()
        p[i] = keep - FD_EPS * 10
        num[i] = (up - loss()) / (20 * FD_EPS)
        p[i] = keep
    err = np.abs(grads.flat - num) / np.maximum(np.abs(grads.flat) + np.abs(num), 1e-4)
    assert err.max() < FD_MAX_REL_ERR, (err.max(), int(err.argmax()))
    if net.cfg.crf:
        assert np.abs(grads["crf.trans"]).sum() > 0


def test_loss_is_the_mean_per_token(rng):
    """softmax: mean -log p over tokens; CRF: sum over sentences of -log P(y | x) / tokens."""
    for crf in (False, True):
        net, data, _ = setup(rng, dict(cell="gru", crf=crf))
        idx = np.array([0, 1, 2, 3, 4])
        loss = net.forward(data, idx, None)
        b = data.batch(idx)
        em = net.scores(b, None).copy()
        if crf:
            tr, st, en = (np.asarray(net.params[n]) + m for n, m in
                          zip(("crf.trans", "crf.start", "crf.end"), net.masks))
            want = ref.ref_crf_nll(em, b.lens, b.y, tr, st, en).sum()
        else:
            want = ref.ref_token_xent(em, b.lens, b.y)[0].sum()
        assert loss == pytest.approx(want / b.lens.sum(), rel=1e-10)


# ------------------------------------------------------------------------------------ decoding
@pytest.mark.parametrize("crf", [False, True])
def test_decoding_never_breaks_the_scheme(rng, crf):
    net, data, _ = setup(rng, dict(cell="lstm", crf=crf), lengths=(7, 1, 4, 6, 2, 5))
    net.params["out.b"][...] = [0.0, -3.0, 4.0, -3.0, 4.0]  # I- tags the favourites
    paths, probs, _ = net.run_all(data, probs=True)
    for path, pr in zip(paths, probs):
        assert is_valid([TAGS[k] for k in path], "BIO")
        assert ((pr > 0) & (pr <= 1 + 1e-12)).all()
    b = data.batch(np.arange(6))
    P = net.tag_probs(net.scores(b, None), b.lens)
    for j, L in enumerate(b.lens):
        assert_allclose(P[:L, j].sum(axis=1), 1.0, rtol=1e-12)
        assert (P[L:, j] == 0).all()
        if crf:  # a forbidden first tag has probability exactly 0
            assert P[0, j, 2] == 0.0 and P[0, j, 4] == 0.0


def test_a_set_without_scheme_takes_each_tokens_best(rng):
    sents = sentences(rng, tags=["NOUN", "VERB", "DET"])
    ts = TagSet.from_sentences([s.tags for s in sents])
    words, chars = tagdata.build_word_vocab(sents, False), tagdata.build_char_vocab(sents)
    cfg = TagConfig(hidden=3, embed=4, char_embed=2, char_hidden=2, scheme=ts.scheme)
    net = TaggerNet(cfg, len(words), len(chars), ts.tags).init(np.random.default_rng(0))
    data = tagdata.encode(sents, words, chars, ts)
    b = data.batch(np.arange(5))
    em = net.scores(b, None)
    path = net.decode(em, b.lens)
    for j, L in enumerate(b.lens):
        assert (path[:L, j] == em[:L, j].argmax(axis=1)).all() and (path[L:, j] == -1).all()
    assert ts.scheme == "none" and net.evaluate(data)["accuracy"] >= 0


# ------------------------------------------------------------------------------------ data
def test_vocabularies():
    sents = [Sentence(["The", "the", "THE", "cat", "New York", "<unk>", "zq"], ["O"] * 7, 1),
             Sentence(["the", "cat", "x"], ["O"] * 3, 9)]
    words = tagdata.build_word_vocab(sents, lower=True, min_count=2)
    assert set(words.symbols) == {"the", "cat", "<UNK>", "<EOS>"}  # a space: never a word
    assert tagdata.build_word_vocab(sents, lower=False, min_count=1, vocab_size=2).symbols == \
        ("<EOS>", "<UNK>", "cat", "the")
    chars = tagdata.build_char_vocab(sents)
    assert "q" not in chars.index and "t" in chars.index and chars.symbols[-1] == "<UNK>"
    data = tagdata.encode(sents, words, chars, TagSet(["O", "B-X"]))
    assert data.unknown_words == 4 and data.lengths.tolist() == [7, 3]
    assert data.types.tolist() == [0, 1, 2, 3, 4, 5, 6, 1, 3, 7]  # the same string, one type


def test_batches_share_words_and_put_the_longest_first():
    sents = [Sentence(["a", "bbb", "a"], ["O", "B-X", "O"], 1), Sentence(["cc"], ["Z"], 5)]
    ts = TagSet(["O", "B-X"])
    words = tagdata.build_word_vocab(sents, False)
    chars = tagdata.build_char_vocab(sents + sents)
    data = tagdata.encode(sents, words, chars, ts)
    assert data.unseen_tags == {"Z": 1}
    b = data.batch(np.array([0, 1]))
    assert b.lens.tolist() == [3, 1] and b.clens.tolist() == [3, 2, 1]
    assert b.slot[:, 0].tolist() == [2, 0, 2] and b.slot[:, 1].tolist() == [1, -1, -1]
    assert b.y.tolist() == [[0, -1], [1, -1], [0, -1]] and b.x[1:, 1].tolist() == [-1, -1]
    assert b.cx[:, 2].tolist() == [chars.index["a"], -1, -1]
    for a in (b.x, b.slot, b.cx, b.clens, b.y, b.lens):
        assert a.dtype == np.int32 and a.flags.c_contiguous


def test_model_file_shapes_and_config():
    cfg = TagConfig(crf=True, char_hidden=0, scheme="BIO")
    shapes = param_shapes(cfg, 10, 5, 3)
    assert "char_emb" not in shapes and shapes["crf.trans"] == (3, 3)
    assert shapes["enc.W_ax_l0"] == (4 * 128, 100)
    with pytest.raises(Exception, match="--char-hidden"):
        TagConfig(char_hidden=-1).validate()
    assert FORMAT.check_config({"crf": True, "future_field": 1})["crf"] is True


# ------------------------------------------------------------------------------------ inference
def test_cached_inference_equals_the_plain_forward(rng, monkeypatch):
    """A loaded tagger's layer-0 input terms come from a per-string cache (infer.py): the same
    scores as the plain forward, from a cold cache, a warm one and a full one."""
    from rnn_cli.encoder import GATES
    from rnn_cli.tasks.tag import infer

    for kw in (dict(cell="lstm", layers=2), dict(cell="gru", char_hidden=0)):
        net, data, _ = setup(rng, kw, lengths=(6, 1, 3, 6, 2), dtype=np.float32)
        idx = np.array([0, 3, 2, 4, 1])
        plain = net.scores(data.batch(idx), None).copy()
        net.cache = infer.TypeCache(net.spec.dirs, GATES[net.spec.cell] * net.spec.hidden,
                                    np.float32)
        for _ in range(2):  # cold, then every string cached
            assert_allclose(net.scores(data.batch(idx), None), plain,
                            rtol=FLOAT32_RTOL["network"], atol=1e-5)
        assert len(net.cache) == len(set(data.type_names))
        monkeypatch.setattr(infer, "CACHE_BYTES", 1)  # room for one string: the rest computed
        net.cache = infer.TypeCache(net.spec.dirs, GATES[net.spec.cell] * net.spec.hidden,
                                    np.float32)
        assert_allclose(net.scores(data.batch(idx), None), plain,
                        rtol=FLOAT32_RTOL["network"], atol=1e-5)
        assert len(net.cache) == 1
        monkeypatch.undo()
