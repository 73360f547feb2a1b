"""Issue 7 from the command line: --cell/--layers/--dropout/--embed/--tie-weights/--lr-decay,
--valid/--test, model files recording them, and older model files still loading."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rnn_cli import checkpoint
from test_cli import NAMES, SHAKESPEARE, rnn


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cells")
    text = SHAKESPEARE.read_text(encoding="utf-8")[:60000]
    (d / "train.txt").write_text(text[:50000], encoding="utf-8")
    (d / "valid.txt").write_text(text[50000:55000], encoding="utf-8")
    (d / "test.txt").write_text(text[55000:], encoding="utf-8")
    return d


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_train_gated_stack_then_sample(files, cell):
    out = files / f"{cell}.npz"
    proc = rnn("train", files / "train.txt", "-o", out, "--cell", cell, "--layers", "2",
               "--hidden", "16", "--dropout", "0.2", "--tie-weights", "--steps", "30",
               "--eval-every", "15", "--batch-size", "4", "--seq-len", "16", "--lr-decay", "2",
               "--valid", files / "valid.txt", "--test", files / "test.txt", "--json",
               "--seed", "2")
    s = json.loads(proc.stdout.decode().splitlines()[-1])
    assert s["L"] == 2 and s["steps"] == 30
    assert math.isclose(s["test_ppl"], math.exp(s["test_loss"]), rel_tol=1e-9)
    assert 0 < s["test_loss"] < math.log(s["V"]) and s["test_tokens"] == 5000 or s[
        "test_tokens"] > 0
    m = checkpoint.load(str(out))
    assert (m.cfg.cell, m.cfg.layers, m.cfg.dropout, m.cfg.embed, m.cfg.tie_weights) == (
        cell, 2, 0.2, 16, True)
    assert m.state["val_tokens"] == 45000 or m.train_cfg.valid  # the file, not a tail split
    assert m.state["train_tokens"] == 50000
    text = rnn("sample", "-m", out, "-n", "50", "--seed", "1").stdout.decode()
    assert len(text.rstrip("\n")) == 50
    again = rnn("sample", "-m", out, "-n", "50", "--seed", "1").stdout.decode()
    assert again == text


def test_resume_keeps_cell_and_rejects_a_conflicting_one(files):
    out = files / "resume.npz"
    rnn("train", NAMES, "-o", out, "--cell", "lstm", "--hidden", "8", "--steps", "4",
        "--eval-every", "2", "--batch-size", "4", "--seq-len", "8")
    rnn("train", NAMES, "-o", out, "--resume", "--steps", "8")
    m = checkpoint.load(str(out))
    assert m.cfg.cell == "lstm" and m.state["step"] == 8
    proc = rnn("train", NAMES, "-o", out, "--resume", "--steps", "9", "--cell", "gru", check=False)
    assert proc.returncode == 2 and b"--cell" in proc.stderr


def test_tie_weights_needs_embed_equal_hidden(files):
    proc = rnn("train", NAMES, "-o", files / "x.npz", "--hidden", "8", "--embed", "4",
               "--tie-weights", "--steps", "1", check=False)
    assert proc.returncode == 2 and b"--tie-weights" in proc.stderr


def test_old_model_file_without_new_fields_loads_and_samples_the_same(files):
    """A model file written before issue 7 (no dropout/embed/tie_weights in its config)."""
    out = files / "old.npz"
    rnn("train", NAMES, "-o", out, "--cell", "rnn", "--hidden", "8", "--steps", "3",
        "--batch-size", "4", "--seq-len", "8")
    before = rnn("sample", "-m", out, "-n", "40", "--seed", "5").stdout
    with np.load(out, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"][()]))
    for k in ("dropout", "embed", "tie_weights"):
        del meta["model"][k]
    for k in ("lr_decay", "valid", "test", "lr_schedule"):
        del meta["train"][k]
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(out, **arrays)
    m = checkpoint.load(str(out))
    assert (m.cfg.dropout, m.cfg.embed, m.cfg.tie_weights) == (0.0, 0, False)
    assert m.train_cfg.lr_schedule == "constant"  # how files without the field were trained
    assert rnn("sample", "-m", out, "-n", "40", "--seed", "5").stdout == before


def test_lr_decay_divides_on_plateau():
    from rnn_cli.checkpoint import Model
    from rnn_cli.config import ModelConfig, TrainConfig
    from rnn_cli.params import Params
    from rnn_cli.tasks.lm.train import Trainer
    from rnn_cli.vocab import build_vocab

    vocab = build_vocab("abcab\n", "char")
    cfg = ModelConfig(cell="gru", hidden=4, vocab_size=len(vocab)).validate()
    tcfg = TrainConfig(batch_size=2, seq_len=4, lr=0.5, lr_decay=4.0, steps=6, eval_every=1,
                       lr_schedule="constant")
    ids = np.arange(60, dtype=np.int32) % len(vocab)
    tr = Trainer(Model(cfg, vocab, Params(cfg).init(np.random.default_rng(0))), tcfg, ids, ids[:9],
                 np.random.default_rng(0))
    vals = iter([3.0, 2.0, 2.5, 1.0, 1.0, 0.5, 0.4])
    tr.evaluate = lambda: next(vals)  # a fixed validation curve with two plateaus
    lrs = []
    tr.run(lambda kind, info: lrs.append((info["best"], info["lr"])) if kind == "eval" else None)
    lr = 0.5
    for best, got in lrs:  # divided exactly at the evaluations that did not improve
        lr = lr if best else lr / 4.0
        assert got == pytest.approx(lr)
    assert [b for b, _ in lrs][:6] == [True, True, False, True, False, True]
    assert tr.opt.base_lr == pytest.approx(0.5 / 16)
    m = tr.to_model()  # a resume continues the decayed rate, unless --lr changed
    assert Trainer(m, tcfg, ids, ids[:9], np.random.default_rng(0)).opt.lr == tr.opt.base_lr
    other = TrainConfig(**{**vars(tcfg), "lr": 0.1})
    assert Trainer(m, other, ids, ids[:9], np.random.default_rng(0)).opt.lr == 0.1


def test_defaults_scale_with_corpus_size():
    from rnn_cli.tasks.lm.options import scaled_defaults

    assert scaled_defaults("char", 50_000, {}) == {"cell": "gru", "hidden": 128, "dropout": 0.0}
    assert scaled_defaults("char", 1_000_000, {}) == {"cell": "gru", "hidden": 512,
                                                      "dropout": 0.3}
    assert scaled_defaults("char", 400_000, {})["hidden"] == 256
    assert scaled_defaults("word", 1_000_000, {})["hidden"] == 256
    assert scaled_defaults("char", 5_000_000, {"cell": "rnn"}) == {"hidden": 512, "dropout": 0.3}
    assert scaled_defaults("word", 5_000_000, {})["dropout"] == 0.1
    word = scaled_defaults("word", 900_000, {"hidden": 200})
    assert word == {"cell": "gru", "dropout": 0.1, "tie_weights": True, "embed": 200}
    assert "tie_weights" not in scaled_defaults("word", 900_000, {"embed": 64})
    assert scaled_defaults("char", 50_000, {"tie_weights": True})["embed"] == 128
    assert scaled_defaults("char", 50_000, {"activation": "relu"})["cell"] == "rnn"
    with pytest.raises(Exception, match="--activation"):
        scaled_defaults("char", 50_000, {"activation": "relu", "cell": "gru"})
