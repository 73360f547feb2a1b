"""Training behaviour: overfitting, reproducibility, model files, both recurrence paths."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from rnn_cli import checkpoint
from rnn_cli.config import ModelConfig, TrainConfig
from rnn_cli.params import Params
from rnn_cli.tasks.lm.network import Network, sequence_nll
from rnn_cli.tasks.lm.sample import SampleConfig, Sampler
from rnn_cli.tasks.lm.train import Trainer, start_id
from rnn_cli.vocab import build_vocab

TEXT30 = "the quick brown fox jumps over"  # 30 characters


def _trainer(text, hidden=5, steps=300, lr=0.05, batch=1, seq=29, seed=0, act="tanh"):
    vocab = build_vocab(text, "char")
    ids, _ = vocab.encode(text)
    cfg = ModelConfig(hidden=hidden, vocab_size=len(vocab), activation=act).validate()
    tcfg = TrainConfig(batch_size=batch, seq_len=seq, lr=lr, steps=steps, eval_every=steps,
                       val_frac=0.0, seed=seed).validate()
    rng = np.random.default_rng(seed)
    model = checkpoint.Model(cfg, vocab, Params(cfg).init(rng), tcfg)
    return Trainer(model, tcfg, ids, ids[:0], rng)


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_tiny_model_overfits_a_30_character_string(act):
    trainer = _trainer(TEXT30, hidden=16, steps=400, act=act)
    first = trainer.train_step()
    trainer.run()
    last = np.mean([trainer.train_step() for _ in range(5)])
    assert first > 2.0 and last < 0.1, (first, last)


def test_same_seed_same_training_and_different_seed_differs():
    a, b, c = (_trainer(TEXT30 * 3, hidden=8, steps=20, seed=s, seq=16) for s in (1, 1, 2))
    for t in (a, b, c):
        t.run()
    assert np.array_equal(a.params.flat, b.params.flat)
    assert not np.array_equal(a.params.flat, c.params.flat)


def test_saved_and_loaded_model_gives_identical_probabilities(tmp_path):
    trainer = _trainer(TEXT30 * 4, hidden=8, steps=30, seq=16)
    trainer.run()
    path = tmp_path / "m.npz"
    checkpoint.save(trainer.to_model(), str(path))
    loaded = checkpoint.load(str(path), "char")
    ids, _ = loaded.vocab.encode(TEXT30)
    out1, out2 = np.zeros(len(ids)), np.zeros(len(ids))
    net1 = Network(trainer.to_model().params, 1, 7, parallel=False)
    net2 = Network(loaded.params, 1, 7, parallel=False)
    sequence_nll(net1, ids, start_id(loaded.vocab), out1)
    sequence_nll(net2, ids, start_id(loaded.vocab), out2)
    assert np.array_equal(out1, out2)
    assert loaded.vocab == trainer.model.vocab and loaded.cfg == trainer.model.cfg
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_sampling_reproduces_and_argmax_is_greedy():
    trainer = _trainer(TEXT30 * 4, hidden=16, steps=300, seq=16, lr=0.01)
    trainer.run()
    s = Sampler(trainer.to_model())

    def draw(**kw):
        x0, _ = s.prime("the ")
        sc = SampleConfig(length=40, **kw)
        return "".join(s.generate(sc, np.random.default_rng(kw.pop("seed", 0)), x0))
    greedy = draw(greedy=True)
    assert draw(temperature=1e-4) == greedy  # temperature -> 0 is argmax
    assert draw(temperature=1.0, top_k=1) == greedy
    assert TEXT30[4:20] in "the " + greedy  # it learned the string


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("rec", ["gemm", "loops"])
def test_recurrence_paths_agree(rec, cell):
    cfg = ModelConfig(hidden=40, layers=2, vocab_size=11, cell=cell).validate()
    p = Params(cfg).init(np.random.default_rng(0))
    x = np.random.default_rng(1).integers(0, 11, (6, 5)).astype(np.int32)
    y = np.random.default_rng(2).integers(0, 11, (6, 5)).astype(np.int32)
    ref, other = Network(p, 5, 6, recurrence="loops"), Network(p, 5, 6, recurrence=rec)
    g1, g2 = p.zeros_like(), p.zeros_like()
    l1, l2 = ref.forward(x, y), other.forward(x, y)
    ref.backward(g1, x, y, 0.1)
    other.backward(g2, x, y, 0.1)
    assert math.isclose(l1, l2, rel_tol=1e-6)
    np.testing.assert_allclose(g2.flat, g1.flat, rtol=1e-4, atol=1e-6)


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1",
                    reason="the fallback is compiled code (a numba cfunc)")
def test_blas_fallback_equals_openblas():
    """Without numpy's OpenBLAS the kernels call compiled loops; same numbers."""
    code = ("import numpy as np\nfrom rnn_cli.kernels import blas\n"
            "from rnn_cli.config import ModelConfig\nfrom rnn_cli.params import Params\n"
            "from rnn_cli.tasks.lm.network import Network\n"
            "cfg = ModelConfig(hidden=33, layers=2, vocab_size=9).validate()\n"
            "p = Params(cfg, np.float64).init(np.random.default_rng(0))\n"
            "x = np.random.default_rng(1).integers(0, 9, (5, 3)).astype(np.int32)\n"
            "net = Network(p, 3, 5, recurrence='gemm')\n"
            "print(blas.BACKEND.split()[0], repr(net.forward(x, x)))\n")
    outs = []
    for env in ({}, {"RNN_CLI_NO_OPENBLAS": "1"}):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env={**os.environ, **env}, check=True)
        outs.append(proc.stdout.split())
    assert outs[0][0] == "openblas" and outs[1][0] == "compiled"
    assert math.isclose(float(outs[0][1]), float(outs[1][1]), rel_tol=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_gemm_recurrence_equals_loops_in_float64(cell):
    """The BLAS-per-step kernels compute the same function as the loop kernels, whose gradients
    the finite-difference tests check: equal to float64 rounding, in parallel and serial builds."""
    cfg = ModelConfig(hidden=33, layers=2, vocab_size=9, cell=cell).validate()
    p = Params(cfg, np.float64).init(np.random.default_rng(4))
    x = np.random.default_rng(5).integers(0, 9, (5, 4)).astype(np.int32)
    y = np.random.default_rng(6).integers(0, 9, (5, 4)).astype(np.int32)
    results = []
    for rec, parallel in (("loops", False), ("gemm", True), ("gemm", False)):
        net = Network(p, 4, 5, parallel=parallel, recurrence=rec)
        net.state[...] = np.random.default_rng(7).standard_normal(net.state.shape) * 0.5
        g = p.zeros_like()
        loss = net.forward(x, y)
        net.backward(g, x, y, 0.5)
        results.append((loss, g.flat.copy(), net.state.copy()))
    for loss, grad, state in results[1:]:
        assert math.isclose(loss, results[0][0], rel_tol=1e-12)
        np.testing.assert_allclose(grad, results[0][1], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(state, results[0][2], rtol=1e-10, atol=1e-12)


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1", reason="about compiled code")
def test_parallel_build_is_not_replaced_by_a_cached_serial_one(tmp_path):
    """numba names cache files after the function: the serial twin compiled (and cached) first
    must not be what the parallel build loads in the next process."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    setup = ("import numpy as np\nfrom rnn_cli.kernels import cell\n"
             "A = np.ones((64, 8), np.float32); C = np.zeros((64, 64), np.float32)\n")
    subprocess.run([sys.executable, "-c", setup + "cell.pgemm_serial(C, A, A, False, True, 1.0,"
                    " 0.0, 2)"], env=env, check=True)
    code = setup + ("cell.pgemm(C, A, A, False, True, 1.0, 0.0, 2)\nimport numba\n"
                    "print(numba.threading_layer())\nassert (C == 8).all()")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-500:]  # threading_layer() raises if nothing ran


def _val_trainer(steps, eval_every, budget):
    text = TEXT30 * 8
    vocab = build_vocab(text, "char")
    ids, _ = vocab.encode(text)
    cfg = ModelConfig(hidden=8, vocab_size=len(vocab), cell="gru").validate()
    tcfg = TrainConfig(batch_size=2, seq_len=8, steps=steps, eval_every=eval_every,
                       val_frac=0.0, seed=0).validate()
    rng = np.random.default_rng(0)
    model = checkpoint.Model(cfg, vocab, Params(cfg).init(rng), tcfg)
    trainer = Trainer(model, tcfg, ids[:150], ids[150:], rng)
    trainer.eval_budget = budget
    return trainer, ids[150:], vocab


@pytest.mark.parametrize("budget", [None, 1.0, 1e-12], ids=["every", "generous", "tiny"])
def test_validation_budget_skips_only_intermediate_validations(budget):
    """--eval-every given (no budget) or a budget the validations fit in: every due validation
    runs; a budget they do not fit in: only the last one. Each figure is the exact one-stream
    score (what `score --total` computes), and the summary reports the seconds spent."""
    trainer, val_ids, vocab = _val_trainer(steps=12, eval_every=3, budget=budget)
    summary = trainer.run()
    expect_steps = [12] if budget == 1e-12 else [3, 6, 9, 12]
    assert [int(r[0]) for r in trainer.history] == expect_steps
    assert summary["evaluations"] == len(expect_steps)
    assert 0.0 < trainer.eval_seconds and summary["eval_seconds"] <= summary["seconds"]
    net = Network(trainer.params, 1, 64, parallel=False)
    exact = sequence_nll(net, val_ids, start_id(vocab)) / len(val_ids)
    assert math.isclose(summary["val_loss"], exact, rel_tol=1e-6)
    assert summary["best_val_loss"] <= summary["val_loss"]


def _rates(tcfg_changes, steps=10):
    """The learning rate of every update of a short run."""
    trainer = _trainer(TEXT30 * 3, hidden=4, steps=steps, seq=8, lr=0.01)
    trainer.tcfg = TrainConfig(**{**vars(trainer.tcfg), **tcfg_changes}).validate()
    rates = []
    trainer.run(lambda kind, info: rates.append(trainer.opt.lr) if kind == "step" else None)
    return rates, trainer


def test_cosine_schedule_falls_from_lr_to_zero_over_the_steps():
    from rnn_cli.optimizer import lr_factor

    assert [lr_factor("cosine", f) for f in (0.0, 0.5, 1.0)] == pytest.approx([1.0, 0.5, 0.0])
    rates, trainer = _rates({"lr_schedule": "cosine"})
    expect = [0.01 * 0.5 * (1 + math.cos(math.pi * k / 10)) for k in range(10)]
    assert rates == pytest.approx(expect, rel=1e-12)
    assert trainer.opt.base_lr == 0.01  # what the model file stores as the rate to resume from
    assert trainer.to_model().state["lr"] == 0.01


def test_constant_schedule_keeps_the_rate():
    rates, _ = _rates({"lr_schedule": "constant"})
    assert rates == [0.01] * 10


def test_progress_is_the_furthest_of_steps_epochs_and_seconds():
    _, trainer = _rates({"lr_schedule": "constant"}, steps=4)
    per_epoch = trainer.batches.tokens_per_epoch
    assert trainer.progress(0.0) == pytest.approx(1.0)  # 4 of 4 steps
    trainer.tcfg = TrainConfig(**{**vars(trainer.tcfg), "steps": 8, "max_seconds": 10.0})
    assert trainer.progress(2.0) == pytest.approx(0.5)  # steps lead
    assert trainer.progress(7.5) == pytest.approx(0.75)  # the clock leads
    assert trainer.progress(99.0) == 1.0
    epochs = 2 * trainer.tokens / per_epoch
    trainer.tcfg = TrainConfig(**{**vars(trainer.tcfg), "steps": 0, "max_seconds": 0.0,
                                  "epochs": epochs})
    assert trainer.progress(0.0) == pytest.approx(0.5)
