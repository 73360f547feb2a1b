"""`--softmax classes` end to end: the model file records it (old files load as full softmax,
a hostile class map is refused), train / --resume / score / predict / sample use it, the
sampler and `predict` see the exact full distribution, batched scoring equals one line at a time,
and the CUDA path refuses it cleanly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clihelp import SHAKESPEARE, TINY, assert_clean_error, assert_usage_error, ok, rnn
from rnn_cli import checkpoint
from rnn_cli.errors import RnnCliError
from rnn_cli.tasks.lm import score
from rnn_cli.tasks.lm.sample import SampleConfig, Sampler

CLASSES = ("--level", "word", "--softmax", "classes", "--classes", "6", "--cell", "gru",
           "--embed", "8", "--tie-weights")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "words.txt"
    path.write_text(SHAKESPEARE.read_text(encoding="utf-8")[:30_000], encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def class_model(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "classes.npz"
    ok(rnn("train", corpus, "-o", out, *TINY, *CLASSES, "--steps", "6", "--eval-every", "3",
           "-q"))
    return out


def arrays_of(path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def test_model_file_records_the_classes_and_resume_continues(class_model, corpus, tmp_path):
    a = arrays_of(class_model)
    meta = json.loads(str(a["meta"][()]))
    assert meta["model"]["softmax"] == "classes" and 1 < meta["model"]["classes"] <= 6
    wc = a["softmax.word_class"]
    assert wc.dtype == np.int32 and wc.shape == (meta["model"]["vocab_size"],)
    assert a["param.W_yc"].shape == (meta["model"]["classes"], 8)
    m = checkpoint.load(str(class_model))
    assert m.cfg.softmax == "classes" and np.array_equal(m.params.word_class, wc)
    resumed = tmp_path / "r.npz"
    resumed.write_bytes(class_model.read_bytes())
    ok(rnn("train", corpus, "-o", resumed, *TINY, "--level", "word", "--steps", "9", "--resume",
           "-q"))
    r = checkpoint.load(str(resumed))
    assert r.state["step"] == 9 and np.array_equal(r.params.word_class, wc)
    err = assert_clean_error(rnn("train", corpus, "-o", resumed, *TINY, "--level", "word",
                                 "--softmax", "full", "--steps", "12", "--resume"), 2)
    assert "--softmax full conflicts" in err


def test_old_files_load_as_full_softmax_and_bad_maps_are_refused(class_model, corpus, tmp_path):
    full = tmp_path / "full.npz"
    ok(rnn("train", corpus, "-o", full, *TINY, "--level", "word", "--softmax", "full",
           "--steps", "2", "-q"))
    a = arrays_of(full)
    meta = json.loads(str(a["meta"][()]))
    for k in ("softmax", "classes"):  # a file written before the class softmax existed
        meta["model"].pop(k)
    a["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "old.npz", **a)
    assert checkpoint.load(str(tmp_path / "old.npz")).cfg.softmax == "full"

    a = arrays_of(class_model)
    cases = {"missing": None, "range": a["softmax.word_class"] + 100,
             "dtype": a["softmax.word_class"].astype(np.float32)}
    for name, value in cases.items():
        b = dict(a)
        if value is None:
            b.pop("softmax.word_class")
        else:
            b["softmax.word_class"] = value
        np.savez(tmp_path / f"{name}.npz", **b)
        err = assert_clean_error(rnn("sample", "-m", tmp_path / f"{name}.npz", "-n", "3"), 1)
        assert "softmax.word_class" in err


def test_score_predict_sample_use_the_full_distribution(class_model):
    m = checkpoint.load(str(class_model))
    scorer = score.Scorer(m)
    ctx, _ = m.vocab.encode("the king is", final_eos=False)
    probs = scorer.next_probs(ctx)
    assert probs.shape == (len(m.vocab),) and probs.sum() == pytest.approx(1.0, abs=1e-6)
    nll = np.zeros(ctx.shape[0] + 1)
    for y in range(0, len(m.vocab), max(1, len(m.vocab) // 25)):  # the scorer's P(y) is probs[y]
        scorer.sentence_nll(np.append(ctx, y).astype(np.int32), out=nll)
        assert np.exp(-nll[-1]) == pytest.approx(probs[y], rel=1e-5)
    sampler = Sampler(m)  # the sampler's logits after the same context: log of the same row
    x, _ = sampler.prime("the king is")
    list(sampler.generate(SampleConfig(length=1), np.random.default_rng(0), x))
    assert np.exp(sampler.logits.astype(np.float64)).sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(np.exp(sampler.logits), probs, rtol=1e-4, atol=1e-7)
    lines = [(i, line + "\n") for i, line in enumerate(
        ["the king is dead", "long live the king", "", "to be or not to be"] * 5, 1)]
    one = list(score.score_lines(scorer, lines))
    many = list(score.score_lines(scorer, lines, batch=3))
    assert [r.lineno for r in many] == [r.lineno for r in one]
    for a, b in zip(many, one):
        assert a.logprob == pytest.approx(b.logprob, rel=1e-5)
    res = ok(rnn("predict", "-m", class_model, "the king", "-k", "3", "--json"))
    nxt = json.loads(res.stdout)["next"]
    assert len(nxt) == 3 and nxt[0]["prob"] >= nxt[1]["prob"] >= nxt[2]["prob"] > 0
    res = ok(rnn("sample", "-m", class_model, "--lines", "2", "--seed", "3"))
    assert res.stdout.decode().count("\n") == 2


def test_cuda_refuses_the_class_softmax():
    from rnn_cli.config import ModelConfig
    from rnn_cli.cuda.backend import for_model

    cfg = ModelConfig(level="word", cell="rnn", vocab_size=10, softmax="classes", classes=3)
    with pytest.raises(RnnCliError, match="full softmax only"):
        for_model("cuda", "cuda", cfg)
    assert for_model("cuda", "auto", cfg, lambda msg: None) == "cpu"


def test_cuda_refuses_sparse_updates():
    from rnn_cli.config import ModelConfig
    from rnn_cli.cuda.backend import for_model

    cfg = ModelConfig(level="word", cell="rnn", vocab_size=10)
    with pytest.raises(RnnCliError, match="--updates sparse runs on the CPU"):
        for_model("cuda", "cuda", cfg, sparse=True)
    notices = []
    assert for_model("cuda", "auto", cfg, notices.append, sparse=True) == "cpu"
    assert "sparse" in notices[0]
    assert for_model("cuda", "cuda", cfg) == "cuda"


def test_sparse_updates_from_the_cli(corpus, tmp_path):
    """--updates sparse trains, is recorded (info says so), resumes; auto is dense on this small
    vocabulary; a file written before the flag existed trained (and resumes) dense."""
    out = tmp_path / "sparse.npz"
    res = ok(rnn("train", corpus, "-o", out, *TINY, *CLASSES, "--updates", "sparse", "--steps",
                 "4", "-q", "--json"))
    assert json.loads(res.stdout.decode().splitlines()[-1])["sparse_updates"] is True
    m = checkpoint.load(str(out))
    assert m.train_cfg.updates == "sparse"
    info = json.loads(ok(rnn("info", "-m", out, "--json")).stdout)
    assert info["sparse_updates"] is True and info["train_config"]["updates"] == "sparse"
    assert "(sparse rows)" in ok(rnn("info", "-m", out)).stdout.decode()
    ok(rnn("train", corpus, "-o", out, *TINY, "--level", "word", "--steps", "6", "--resume",
           "-q"))
    assert checkpoint.load(str(out)).train_cfg.updates == "sparse"

    auto = tmp_path / "auto.npz"
    res = ok(rnn("train", corpus, "-o", auto, *TINY, *CLASSES, "--steps", "2", "-q", "--json"))
    assert json.loads(res.stdout.decode().splitlines()[-1])["sparse_updates"] is False
    info = json.loads(ok(rnn("info", "-m", auto, "--json")).stdout)
    assert info["train_config"]["updates"] == "auto" and info["sparse_updates"] is False

    a = arrays_of(auto)
    meta = json.loads(str(a["meta"][()]))
    meta["train"].pop("updates")  # a file written before --updates existed
    a["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "old.npz", **a)
    assert checkpoint.load(str(tmp_path / "old.npz")).train_cfg.updates == "dense"
    assert_usage_error(rnn("train", corpus, "-o", tmp_path / "x.npz", *TINY, *CLASSES,
                           "--updates", "rows", "--steps", "2"), "--updates")
