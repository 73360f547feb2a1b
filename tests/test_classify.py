"""The classifier's engine (rnn_cli/tasks/classify): the network's gradients against finite
differences, training through the example trainer (learning, best model, class weights, exact
resume), model files, prediction and test metrics. Tiny sizes."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from conftest import FD_EPS, FD_MAX_REL_ERR, FLOAT32_RTOL
from rnn_cli import checkpoint
from rnn_cli.errors import ModelFileError, UsageError
from rnn_cli.tasks.classify.predict import Classifier
from rnn_cli.tasks.classify.run import ClassifyRun
from rnn_cli.tasks.classify.model import (ClassifierNet, ClassifyConfig, Encoded, encode_block,
                                          encode_texts)
from rnn_cli.tasks.classify.run import balanced_weights

WORDS = "the a film movie was is very quite rather plot actor scene".split()
TINY = dict(level="word", hidden=6, embed=6, batch_size=8, seed=3, lr=0.01)


def corpus(tmp_path, n=240, seed=0, name="train.txt", skew=False) -> str:
    """Lines whose label is given by one cue word among filler words (learnable in seconds)."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        lab = 0 if skew and rng.random() < 0.8 else int(rng.integers(0, 3))
        words = list(rng.choice(WORDS, int(rng.integers(2, 9))))
        words.insert(int(rng.integers(0, len(words))), ["good", "bad", "meh"][lab])
        lines.append(f"__label__{['pos', 'neg', 'mid'][lab]} " + " ".join(words))
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


# ------------------------------------------------------------------------------------ network
@pytest.mark.parametrize("cell,pool", [("lstm", "last"), ("gru", "mean"), ("rnn", "max")])
def test_network_gradients_match_finite_differences(cell, pool):
    """Every parameter (embedding, both directions of both layers, head), weighted loss."""
    cfg = ClassifyConfig(cell=cell, hidden=3, layers=2, embed=4, pool=pool)
    net = ClassifierNet(cfg, 9, ["a", "b", "c"], dtype=np.float64, recurrence="gemm")
    net.init(np.random.default_rng(0))
    net.weights = np.array([1.0, 0.5, 2.0])
    rng = np.random.default_rng(1)
    lens = [5, 2, 4, 1]
    data = Encoded([rng.integers(0, 9, n).astype(np.int32) for n in lens], np.array(lens),
                   np.array([0, 2, 1, 2], np.int32), ["a", "c", "b", "c"])
    idx = np.array([0, 2, 1, 3])
    net.forward(data, idx, None)
    grads = net.params.zeros_like()
    grads.flat[:] = np.nan
    net.backward(grads)
    p, num = net.params.flat, np.zeros(len(net.params))
    for i in range(len(p)):
        keep = p[i]
        p[i] = keep + FD_EPS * 10
        up = net.forward(data, idx, None)
        p[i] = keep - FD_EPS * 10
        num[i] = (up - net.forward(data, idx, None)) / (20 * FD_EPS)
        p[i] = keep
    err = np.abs(grads.flat - num) / np.maximum(np.abs(grads.flat) + np.abs(num), 1e-4)
    assert err.max() < FD_MAX_REL_ERR, (err.max(), int(err.argmax()))


def test_probabilities_do_not_depend_on_the_batch():
    cfg = ClassifyConfig(cell="lstm", hidden=4, embed=3, pool="mean")
    net = ClassifierNet(cfg, 9, ["a", "b"]).init(np.random.default_rng(0))
    rng = np.random.default_rng(2)
    lens = [7, 3, 5, 1, 6]
    data = Encoded([rng.integers(0, 9, n).astype(np.int32) for n in lens], np.array(lens),
                   np.full(5, -1, np.int32), [""] * 5)
    together = net.probs(data, np.arange(5)).copy()
    for i in range(5):
        assert_allclose(net.probs(data, np.array([i]))[0], together[i], rtol=FLOAT32_RTOL[
            "network"], atol=1e-6)


@pytest.mark.parametrize("level,lower,tokenizer", [("word", True, "words"),
                                                   ("word", False, "space"), ("char", True, None),
                                                   ("char", False, None)])
def test_encode_block_gives_the_ids_of_encode_texts(level, lower, tokenizer):
    """A block encoded at once (prediction) = its texts one by one: ids, lengths, unknown
    tokens; a text of no token is one <UNK> that is not counted as unknown."""
    from rnn_cli.vocab import build_vocab

    vocab = build_vocab("The film was GOOD, isn't it?\nbad plot ÉTÉ\n", level, lower=lower,
                        tokenizer=tokenizer or "words")
    texts = ["The film was good", "", "zzz the", "ÉTÉ İstanbul!", "x", "bad plot, bad " * 9,
             "\u00a0", "isn't it?"]
    flat, lengths, unknown = encode_block(vocab, texts)
    seqs, unk = encode_texts(vocab, texts)
    assert lengths.tolist() == [len(q) for q in seqs] and unknown.tolist() == unk
    assert flat.dtype == np.int32 and flat.tolist() == np.concatenate(seqs).tolist()
    assert encode_block(vocab, [])[0].shape == (0,)
    for more in (["the film\nbad plot", "x"], ["", "\u00a0"]):  # a text of lines; no token
        flat, lengths, unknown = encode_block(vocab, more)
        seqs, unk = encode_texts(vocab, more)
        assert flat.tolist() == np.concatenate(seqs).tolist() and unknown.tolist() == unk


@pytest.mark.parametrize("cell,hidden,layers,bidirectional,pool", [
    ("lstm", 40, 2, True, "max"), ("gru", 33, 1, True, "last"), ("rnn", 8, 1, False, "mean"),
    ("lstm", 6, 1, True, "last")])  # the BLAS recurrences (H >= 32) and the loop kernels
def test_folded_input_tables_give_the_same_probabilities(cell, hidden, layers, bidirectional,
                                                         pool):
    """Inference on layer 0's folded tables (emb W_ax^T + b_a per token) = the plain forward."""
    cfg = ClassifyConfig(cell=cell, hidden=hidden, layers=layers, bidirectional=bidirectional,
                         embed=7, pool=pool)
    net = ClassifierNet(cfg, 11, ["a", "b", "c"]).init(np.random.default_rng(0))
    rng = np.random.default_rng(1)
    lens = [7, 3, 5, 1, 6]
    data = Encoded([rng.integers(0, 11, n).astype(np.int32) for n in lens], np.array(lens),
                   np.full(5, -1, np.int32), [""] * 5)
    idx = np.array([0, 4, 2, 1, 3])
    plain = net.probs(data, idx).copy()
    assert net.fold_inputs().fold and net._tables is None
    assert_allclose(net.probs(data, idx), plain, rtol=FLOAT32_RTOL["network"], atol=1e-7)
    assert net._tables is not None and net._tables[0].shape == (12, cfg.encoder_spec().shapes()[
        "enc.b_a_l0"][0])
    with pytest.raises(ValueError, match="no backward after a forward on folded tables"):
        net.enc.backward(net.params.zeros_like(), None)


# ------------------------------------------------------------------------------------ training
def test_learns_keeps_the_best_and_round_trips(tmp_path):
    run = ClassifyRun.start(corpus(tmp_path), epochs=6, pool="max", **TINY)
    events = []
    summary = run.run(lambda kind, info: events.append(kind))
    assert summary["best"] >= 0.9 and summary["metric"] == "accuracy"
    assert summary["reason"] == "epochs" and events.count("eval") == 6
    assert summary["train_examples"] == 216 and summary["valid_examples"] == 24
    path = str(tmp_path / "m.npz")
    run.save(path)
    clf = Classifier.load(path)
    assert clf.labels == ["mid", "neg", "pos"]
    texts = ["the film was good", "bad plot", "a meh scene"]
    assert [r.labels[0][0] for r in clf.predict(texts)] == ["pos", "neg", "mid"]
    keep = run.net.params.flat.copy()
    run.net.params.flat[:] = run.fit.best_flat  # the file holds the best parameters
    assert_allclose(clf.probs(texts), run.net.predict_all(clf._encoded(texts)[0]), rtol=1e-6)
    run.net.params.flat[:] = keep
    with pytest.raises(ModelFileError, match="is a classification model; use `rnn-cli predict`"):
        checkpoint.load(path)


def test_resume_continues_bit_for_bit(tmp_path):
    data = corpus(tmp_path)
    opts = dict(TINY, steps=40, eval_every=10, dropout=0.2)
    whole = ClassifyRun.start(data, **opts)
    whole.run()
    part = ClassifyRun.start(data, **opts)
    part.run(should_stop=lambda: part.fit.step >= 25)
    path = str(tmp_path / "part.npz")
    part.save(path)
    again = ClassifyRun.resume(path, data, steps=40)
    again.run()
    assert again.fit.step == 40 and np.array_equal(again.net.params.flat, whole.net.params.flat)
    with pytest.raises(UsageError, match="whose hidden is 6"):
        ClassifyRun.resume(path, data, hidden=8)


def test_class_weight_balanced(tmp_path):
    y = np.array([0, 0, 0, 1])
    assert_allclose(balanced_weights(y, 2), [4 / 6, 4 / 2])
    run = ClassifyRun.start(corpus(tmp_path, skew=True), steps=2, class_weight="balanced",
                            **TINY)
    counts = np.bincount(run.data["train"].y, minlength=3)
    assert_allclose(run.net.weights * counts, counts.sum() / 3)
    with pytest.raises(UsageError, match="--class-weight"):
        ClassifyRun.start(corpus(tmp_path), steps=2, class_weight="inverse", **TINY)


def test_notices_for_cut_and_unseen_labels(tmp_path):
    valid = tmp_path / "valid.txt"
    valid.write_text("__label__pos good film\n__label__wow a new label\n")
    long = tmp_path / "long.txt"
    long.write_text(open(corpus(tmp_path)).read() + "__label__pos " + "good " * 50 + "\n")
    run = ClassifyRun.start(str(long), valid=str(valid), steps=3, max_len=20, **TINY)
    notes = []
    summary = run.run(lambda kind, info: notes.append(info["message"]) if kind == "warning"
                      else None)
    assert any("--max-len 20 cut 1 of 241 train examples (30 tokens" in n for n in notes)
    assert any("1 valid example(s) have a label the model never saw" in n for n in notes)
    assert summary["valid_examples"] == 2


def test_single_class_and_unknown_options(tmp_path):
    one = tmp_path / "one.txt"
    one.write_text("__label__x a b\n__label__x c d\n")
    with pytest.raises(Exception, match="at least two labels"):
        ClassifyRun.start(str(one), steps=1, val_frac=0.0)
    with pytest.raises(UsageError, match="unknown option"):
        ClassifyRun.start(str(one), steps=1, seq_len=5)


# ------------------------------------------------------------------------------------ predict
@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clf")
    run = ClassifyRun.start(corpus(tmp), epochs=4, max_len=6, **TINY)
    run.run()
    path = str(tmp / "m.npz")
    run.save(path)
    return path


def test_predict_top_k_threshold_blank_lines_and_gold_labels(model_path):
    clf = Classifier.load(model_path)
    lines = ["__label__neg the film was good\n", "\n", "pos\tbad plot\r\n", "zzz qqq",
             "the " * 10 + "good"]
    out = list(clf.predict(lines, k=3))
    assert [r.lineno for r in out] == [1, 2, 3, 4, 5] and out[1].blank and out[1].labels == []
    assert out[0].labels[0][0] == "pos" and out[2].labels[0][0] == "neg"  # text alone
    assert len(out[0].labels) == 3 and abs(sum(p for _, p in out[0].labels) - 1) < 1e-5
    assert out[3].unknown == 2 and out[4].cut and not out[0].cut
    huge = next(clf.predict(["the " * 2_500_000 + "good"]))  # a 10 MB line: cut, answered
    assert huge.cut and huge.labels
    strict = list(clf.predict(lines, k=3, threshold=0.999))
    assert all(p >= 0.999 for r in strict for _, p in r.labels)
    with pytest.raises(UsageError):
        list(clf.predict(lines, k=0))


def test_predict_streams_one_batch_at_a_time(model_path):
    clf = Classifier.load(model_path)

    def lines():
        yield "good film"
        raise AssertionError("read past the first line before answering it")
    first = next(iter(clf.predict(lines(), batch_size=1)))
    assert first.lineno == 1 and first.labels[0][0] == "pos"


def test_test_metrics_count_unseen_labels(model_path, tmp_path):
    gold = tmp_path / "gold.txt"
    gold.write_text("__label__pos good\n__label__neg bad film\n__label__new good plot\n")
    m = Classifier.load(model_path).test(str(gold))
    assert m["n"] == 3 and m["unseen"] == {"new": 1} and m["accuracy"] == pytest.approx(2 / 3)
    assert len(m["confusion"]) == 3 and m["per_label"]["new"]["support"] == 1
    assert m["loss"] == m["loss"] and m["warnings"] == []
