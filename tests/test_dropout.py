"""Issue 30's regularisers (`rnn_cli/tasks/lm/dropout.py`): locked (variational) dropout, embedding
dropout and DropConnect on W_aa. Forward and backward of the whole network against the float64
reference with fixed masks and central finite differences; the masks' shapes, values and
statistics; the step masks still drawn exactly as before; old files resume as they trained; the
CUDA trainer refuses what it does not run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from numpy.testing import assert_allclose

import reference_cells as refc
from conftest import (B, FD_EPS, FD_MAX_REL_ERR, FD_MEAN_REL_ERR, FLOAT64_ATOL, FLOAT64_RTOL, H,
                      T, V)
from rnn_cli.config import ModelConfig
from rnn_cli.errors import RnnCliError, UsageError
from rnn_cli.tasks.lm.dropout import expand
from rnn_cli.tasks.lm.network import Network
from test_cells import E, central_differences, make_params, make_window, relative_errors

VARIANTS = {  # name: ModelConfig fields beyond hidden, vocab_size
    "gru-2-embed-all-three": dict(cell="gru", layers=2, embed=E, dropout=0.4,
                                  dropout_mask="locked", embed_dropout=0.3, weight_drop=0.3),
    "lstm-1-tied-locked-weight-drop": dict(cell="lstm", layers=1, embed=H, tie_weights=True,
                                           dropout=0.3, dropout_mask="locked", weight_drop=0.5),
    # no dropout site, so layer 0 takes the folded (V, G*H) table in training too
    "rnn-1-embed-weight-drop-only": dict(cell="rnn", layers=1, embed=E, weight_drop=0.4),
}


def cfg_of(**fields) -> ModelConfig:
    return ModelConfig(hidden=H, vocab_size=V, **fields).validate()


def ref_loss(p, cfg, x, y, state, masks):
    """The reference window loss with the network's masks: site masks repeated over time, and
    W_aa * mask in place of W_aa (DropConnect)."""
    q = p.copy()
    if masks.weights is not None:
        q.W_aa[...] *= np.stack(masks.weights)
    sites = [None if m is None else np.array(expand(m, x.shape[0])) for m in masks]
    return refc.ref_cells_window_loss(q, cfg, x, y, state,
                                      sites if any(m is not None for m in sites) else None)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_network_with_masks_matches_reference_and_finite_differences(variant):
    cfg = cfg_of(**VARIANTS[variant])
    rng = np.random.default_rng(sum(map(ord, variant)))
    p = make_params(cfg, seed=cfg.layers)
    net = Network(p, batch=B, steps=T)
    x, y = make_window(rng, T)
    state = rng.uniform(-0.9, 0.9, (cfg.state_rows, B, H))
    masks = net.draw_masks(rng, x)
    grads = p.zeros_like()
    net.state[...] = state
    loss = net.forward(x, y, masks)
    assert net._tabled == (variant == "rnn-1-embed-weight-drop-only")
    grads.flat[...] = np.nan  # backward must overwrite every element
    net.backward(grads, x, y, 1.0)
    ref, ref_state = ref_loss(p, cfg, x, y, state, masks)
    assert_allclose(loss, ref, rtol=FLOAT64_RTOL)
    assert_allclose(net.state, ref_state, rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)
    # conftest's step: the masks' 1/(1-p) factors sharpen the loss's curvature, and test_cells'
    # 10x step left a truncation error of 3e-9 on a b_a entry of gradient 5e-6 (gru-2)
    numeric = central_differences(p, lambda: ref_loss(p, cfg, x, y, state, masks)[0], FD_EPS)
    err = relative_errors(grads.flat, numeric)
    assert np.all(np.isfinite(grads.flat))
    assert err.max() < FD_MAX_REL_ERR, (err.max(), int(err.argmax()))
    assert err.mean() < FD_MEAN_REL_ERR, err.mean()
    # the dropped recurrent weights have exactly zero gradient (DropConnect's backward)
    dropped = np.stack(masks.weights) == 0
    assert dropped.any() and np.all(grads.W_aa[dropped] == 0.0)
    assert np.abs(numeric.reshape(-1)[p.spans["W_aa"][0]:p.spans["W_aa"][1]]
                  [dropped.ravel()]).max() < 1e-9


def test_evaluation_without_masks_runs_the_undropped_network():
    cfg = cfg_of(**VARIANTS["gru-2-embed-all-three"])
    p = make_params(cfg)
    net = Network(p, batch=B, steps=T)
    x, y = make_window(np.random.default_rng(4), T)
    net.forward(x, y, net.draw_masks(np.random.default_rng(1), x))  # a training window first
    loss = net.forward(x * 0 + 1, y)  # then evaluation: no masks, W_aa itself
    net.reset_state()
    assert_allclose(net.forward(x, y), refc.ref_cells_window_loss(
        p, cfg, x, y, np.zeros((cfg.state_rows, B, H)))[0], rtol=FLOAT64_RTOL)
    assert np.isfinite(loss)


def _stats_net(**fields):
    cfg = ModelConfig(hidden=64, vocab_size=400, **fields).validate()
    return cfg, Network(make_params(cfg, dtype=np.float32), batch=16, steps=12)


def _zero_share_ok(masks: list[np.ndarray], p: float) -> None:
    """Values are 0 or 1/(1-p); the share of zeros is p within 5 standard errors; mean ~ 1."""
    allv = np.concatenate([m.ravel() for m in masks])
    keep = np.float32(1.0 / (1.0 - p))
    assert set(np.unique(allv)) <= {0.0, keep}
    se = np.sqrt(p * (1 - p) / allv.size)
    assert abs(np.mean(allv == 0) - p) < 5 * se
    assert abs(allv.mean() - 1.0) < 5 * se * keep


def test_locked_masks_are_one_per_stream_shared_over_time():
    cfg, net = _stats_net(cell="gru", layers=2, embed=32, dropout=0.35, dropout_mask="locked")
    rng = np.random.default_rng(0)
    x = np.random.default_rng(1).integers(0, 400, (12, 16)).astype(np.int32)
    draws = []
    for _ in range(40):
        m = net.draw_masks(rng, x)
        assert m.weights is None
        assert [s.shape for s in m] == [(1, 16, 32), (1, 16, 64), (1, 16, 64)]
        draws += [s.copy() for s in m]
        # the same at every time step: the network multiplies (T, B, W) by the (1, B, W) mask
        assert np.array_equal(expand(m[1], 12)[5], m[1][0])
    _zero_share_ok(draws, 0.35)
    # streams and units differ (not one mask for the whole window)
    assert len({d[0, :, :8].tobytes() for d in draws[:3]}) == 3
    again = Network(net.params, batch=16, steps=12).draw_masks(np.random.default_rng(0), x)
    assert all(np.array_equal(a, b) for a, b in zip(again, draws[:3]))  # seeded


def test_step_masks_are_drawn_exactly_as_before_the_new_fields():
    """--dropout-mask step (what a file without the field gets) consumes the Generator exactly
    as version 1's draw_masks did, so an old file resumes on the same numbers."""
    cfg, net = _stats_net(cell="lstm", layers=2, embed=32, dropout=0.25)
    assert cfg.dropout_mask == "step"
    got = net.draw_masks(np.random.default_rng(3))
    rng = np.random.default_rng(3)
    for m in got:  # version 1: T x B x W uniforms per site, in site order
        u = rng.random(m.shape, dtype=np.float32)
        assert np.array_equal(m, (u >= 0.25).astype(np.float32) * np.float32(1 / 0.75))
    assert got.weights is None and [m.shape[0] for m in got] == [12, 12, 12]


def test_embed_dropout_drops_whole_words_for_the_window():
    cfg, net = _stats_net(cell="gru", embed=32, embed_dropout=0.2)
    rng = np.random.default_rng(1)
    x = rng.integers(0, 40, (12, 16)).astype(np.int32)  # 40 words, each used many times
    rows = []
    for _ in range(30):
        m0 = net.draw_masks(rng, x)[0][:12]
        assert m0.shape == (12, 16, 32)
        for w in np.unique(x):  # every use of a word in the window: all kept or all dropped
            vals = np.unique(m0[x == w])
            assert vals.size == 1
            rows.append(vals)
    _zero_share_ok(rows, 0.2)
    # with --dropout too: the word's factor times the locked unit mask
    cfg, net = _stats_net(cell="gru", embed=32, dropout=0.3, dropout_mask="locked",
                          embed_dropout=0.2)
    m = net.draw_masks(np.random.default_rng(2), x)
    words = m[0] / np.where(m[0] == 0, 1, m[0])  # 0/1 pattern
    assert set(np.unique(m[0])) <= {0.0, np.float32(1 / 0.7) * np.float32(1 / 0.8),
                                    np.float32(1 / 0.7 / 0.8)}
    assert (words.max(axis=2) <= 1).all()


def test_weight_drop_masks_are_per_layer_and_window():
    cfg, net = _stats_net(cell="lstm", layers=2, embed=32, weight_drop=0.5)
    rng = np.random.default_rng(5)
    first = [w.copy() for w in net.draw_masks(rng).weights]
    second = net.draw_masks(rng).weights
    assert [w.shape for w in first] == [(256, 64), (256, 64)]
    assert not np.array_equal(first[0], second[0]) and not np.array_equal(first[0], first[1])
    _zero_share_ok(first + list(second), 0.5)
    assert all(m is None for m in net.draw_masks(rng))  # no --dropout: no site masks


def test_config_checks_the_new_fields():
    with pytest.raises(UsageError, match="--embed-dropout"):
        ModelConfig(hidden=4, embed_dropout=0.1).validate()  # one-hot input: no rows to drop
    with pytest.raises(UsageError, match="--weight-drop"):
        ModelConfig(hidden=4, weight_drop=1.0).validate()
    with pytest.raises(UsageError, match="--dropout-mask"):
        ModelConfig(hidden=4, dropout_mask="time").validate()


def test_cuda_trainer_refuses_what_it_does_not_run():
    from rnn_cli.cuda.backend import for_model

    cfg = ModelConfig(cell="gru", hidden=8, vocab_size=20, embed=8, weight_drop=0.3).validate()
    with pytest.raises(RnnCliError, match="--weight-drop"):
        for_model("cuda", "cuda", cfg, training=True)
    said = []
    assert for_model("cuda", "auto", cfg, said.append, training=True) == "cpu"
    assert "--weight-drop" in said[0]
    assert for_model("cuda", "cuda", cfg, training=False) == "cuda"  # sampling: nothing dropped
    locked = ModelConfig(cell="gru", hidden=8, vocab_size=20, dropout=0.2,
                         dropout_mask="locked").validate()
    assert for_model("cuda", "cuda", locked, training=True) == "cuda"


def test_old_file_without_the_fields_resumes_as_it_trained(tmp_path):
    """A file written before issue 30 (no dropout_mask, embed_dropout, weight_drop) loads with
    step masks and no other regulariser, and resumes bit for bit as a file that records them."""
    from rnn_cli import checkpoint
    from test_cli import NAMES, rnn

    new, old = tmp_path / "new.npz", tmp_path / "old.npz"
    rnn("train", NAMES, "-o", new, "--cell", "gru", "--hidden", "8", "--embed", "6",
        "--dropout", "0.3", "--dropout-mask", "step", "--steps", "4", "--batch-size", "4",
        "--seq-len", "8")
    with np.load(new, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"][()]))
    for k in ("dropout_mask", "embed_dropout", "weight_drop"):
        del meta["model"][k]
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(old, **arrays)
    m = checkpoint.load(str(old))
    assert (m.cfg.dropout_mask, m.cfg.embed_dropout, m.cfg.weight_drop) == ("step", 0.0, 0.0)
    for f in (new, old):
        rnn("train", NAMES, "-o", f, "--resume", "--steps", "8")
    a, b = checkpoint.load(str(new)), checkpoint.load(str(old))
    assert a.state["step"] == b.state["step"] == 8
    assert np.array_equal(a.params.flat, b.params.flat)


# ------------------------------------------------------------------ word defaults by budget


def _word_cfg(H=256):
    return ModelConfig(cell="gru", hidden=H, embed=H, tie_weights=True, vocab_size=10_000,
                       softmax="classes", classes=100, dropout=0.1).validate()


def test_word_defaults_follow_the_tokens_the_run_will_see():
    from rnn_cli.config import TrainConfig
    from rnn_cli.tasks.lm import budget
    from rnn_cli.tasks.lm.options import WORD_LR

    n, B_, T_ = 930_000, 32, 64  # Penn Treebank's training words, the default batch shape
    cfg = _word_cfg()

    def plan(cap=None, rate=None, **train):
        called = []
        out, why = budget.word_defaults(cfg, TrainConfig(**train), n, B_, T_, {},
                                        (lambda c: called.append(c.hidden) or rate)
                                        if rate else None, cap=cap)
        return out, why, called

    # a few hundred steps: the smallest network, light dropout
    out, why, _ = plan(steps=300)
    assert out == {"hidden": 128, "embed": 128, "dropout": 0.1, "dropout_mask": "locked",
                   "lr": WORD_LR}
    assert "0.661 epochs" in why
    # ten epochs: H 384 (512 would see fewer than 10 tokens per parameter), at its own rate,
    # and the most dropout, one step more from H 384
    out, _, _ = plan(epochs=10.0)
    assert (out["hidden"], out["dropout"], out["lr"]) == (384, 0.5, 4e-3)
    out = plan(epochs=5.0)[0]  # fewer tokens: H 256, less dropout
    assert (out["hidden"], out["dropout"], out["lr"]) == (256, 0.3, WORD_LR)
    out = plan(epochs=40.0)[0]
    assert (out["hidden"], out["lr"]) == (512, 3e-3)
    # ... unless no stopping rule was given: the corpus-size H caps it
    assert plan(epochs=10.0, cap=128)[0]["hidden"] == 128
    assert plan(epochs=10.0, cap=256)[0] == {"hidden": 256, "embed": 256, "dropout": 0.4,
                                             "dropout_mask": "locked", "lr": WORD_LR}
    # a time budget: H 256 is timed once, the other sizes scaled by their FLOPs per token
    out, why, called = plan(max_seconds=900.0, rate=20_000.0)
    assert called == [256] and out["hidden"] == 256 and out["dropout"] == 0.4
    assert "20,000 tok/s" in why
    out, _, _ = plan(max_seconds=1800.0, rate=28_000.0)  # a quiet machine, 30 minutes: H 384
    assert (out["hidden"], out["dropout"], out["lr"]) == (384, 0.5, 4e-3)
    out, _, _ = plan(max_seconds=900.0, rate=8_000.0)  # a busy machine: fewer epochs
    assert (out["hidden"], out["dropout"]) == (256, 0.4)
    assert plan(max_seconds=900.0, rate=4_000.0)[0]["hidden"] == 128  # fewer still: smaller
    assert plan(max_seconds=7200.0, rate=20_000.0)[0]["hidden"] == 512
    assert budget.dropout_for(40.0, 384) == 0.5 and budget.dropout_for(40.0, 256) == 0.4
    assert [budget.word_lr(h) for h in (128, 200, 256, 384, 500, 512, 1024)] == [
        8e-3, 8e-3, 8e-3, 4e-3, 4e-3, 3e-3, 3e-3]


def test_word_defaults_leave_given_flags_alone():
    from rnn_cli.config import TrainConfig
    from rnn_cli.tasks.lm import budget

    given = {"hidden": 200, "dropout": 0.2, "dropout_mask": "step", "lr": 1e-3}
    out, _ = budget.word_defaults(_word_cfg(200), TrainConfig(epochs=40.0), 930_000, 32, 64,
                                  given, None)
    assert out == {}
    out, why = budget.word_defaults(_word_cfg(200), TrainConfig(epochs=40.0, optim="sgd"),
                                    930_000, 32, 64, {"hidden": 200, "optim": "sgd"}, None)
    assert out == {"dropout": 0.4, "dropout_mask": "locked"} and "H 200" in why  # sgd: its lr


def test_word_training_from_the_cli_uses_and_records_the_budget_defaults(tmp_path):
    """`train --level word` with --max-seconds times H 256 first, says what it chose at -v, and
    the file records it; explicit flags win."""
    from rnn_cli import checkpoint
    from rnn_cli.tasks.lm.options import WORD_LR
    from test_cli import SHAKESPEARE, rnn

    text = tmp_path / "words.txt"
    text.write_text(SHAKESPEARE.read_text(encoding="utf-8")[:60_000], encoding="utf-8")
    out = tmp_path / "w.npz"
    proc = rnn("train", text, "--level", "word", "-o", out, "--max-seconds", "3", "-v",
               "--batch-size", "8", "--seq-len", "16")
    err = proc.stderr.decode()
    assert "word defaults by budget: the run will see" in err and "H 256 timed at" in err
    m = checkpoint.load(str(out))
    assert (m.cfg.dropout_mask, m.cfg.hidden, m.train_cfg.lr) == ("locked", 128, WORD_LR)
    assert 0.1 <= m.cfg.dropout <= 0.5
    info = rnn("info", "-m", out).stdout.decode()
    assert f"dropout     {m.cfg.dropout:g}, locked masks" in info
    assert json.loads(rnn("info", "-m", out, "--json").stdout)["regularisers"] == {
        "dropout": m.cfg.dropout, "dropout_mask": "locked", "embed_dropout": 0.0,
        "weight_drop": 0.0}
    proc = rnn("train", text, "--level", "word", "-o", out, "--steps", "2", "--hidden", "16",
               "--dropout", "0.25", "--dropout-mask", "step", "--lr", "0.01",
               "--embed-dropout", "0.1", "--weight-drop", "0.2")
    m = checkpoint.load(str(out))
    assert (m.cfg.hidden, m.cfg.dropout, m.cfg.dropout_mask, m.train_cfg.lr) == (
        16, 0.25, "step", 0.01)
    assert (m.cfg.embed_dropout, m.cfg.weight_drop) == (0.1, 0.2)
    bad = rnn("train", text, "-o", tmp_path / "c.npz", "--steps", "1", "--embed-dropout", "0.1",
              check=False)
    assert bad.returncode == 2 and b"--embed-dropout" in bad.stderr
