"""The example trainer (rnn_cli/tasks/fit.py) on a toy task (a linear softmax classifier in
NumPy: the trainer's own behaviour, no kernels but the optimizer's); tests/test_classify.py runs
it on the real classifier."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnn_cli.errors import TrainingDiverged, UsageError
from rnn_cli.params import ParamSet
from rnn_cli.tasks.fit import Fit, FitConfig, fit_config

D, K = 4, 3


class Toy:
    """Softmax regression: data = (X (N, D), y (N,), lengths (N,))."""

    def __init__(self, seed=0):
        self.params = ParamSet({"W": (K, D), "b": (K,)}, np.float64)
        self.params.flat[:] = np.random.default_rng(seed).normal(0, 0.1, len(self.params))
        self.calls = []

    def lr_scales(self):
        return [("b", 0, None, 2.0)]

    def lengths(self, data):
        return data[2]

    def _loss(self, X, y):
        with np.errstate(all="ignore"):  # the divergence test's inf parameters
            return self._loss_of(X, y)

    def _loss_of(self, X, y):
        z = X @ self.params["W"].T + self.params["b"]
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        return -np.log(p[np.arange(len(y)), y]).mean(), p

    def forward(self, data, idx, rng):
        X, y = data[0][idx], data[1][idx]
        if rng is not None:  # "dropout": uses the run's Generator
            X = X * (rng.random(X.shape) >= 0.1) / 0.9
        self._x, self._y = X, y
        loss, self._p = self._loss(X, y)
        self.calls.append(idx.copy())
        return loss

    def backward(self, grads):
        d = self._p.copy()
        d[np.arange(len(self._y)), self._y] -= 1.0
        d /= len(self._y)
        grads["W"][...] = d.T @ self._x
        grads["b"][...] = d.sum(axis=0)

    def evaluate(self, data):
        loss, p = self._loss(data[0], data[1])
        return {"loss": float(loss), "accuracy": float((p.argmax(1) == data[1]).mean()),
                "table": {"not": "a scalar"}}


def make_data(n, seed):
    W = np.random.default_rng(0).normal(0, 2, (K, D))
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 1, (n, D))
    y = (X @ W.T).argmax(1)
    return X, y, rng.integers(1, 20, n)


TRAIN, VALID = make_data(200, 1), make_data(100, 2)


def test_learns_and_keeps_the_best_by_the_metric():
    task = Toy()
    events = []
    fit = Fit(task, TRAIN, VALID, FitConfig(batch_size=16, lr=0.3, epochs=3, metric="accuracy"))
    summary = fit.run(lambda kind, info: events.append((kind, info)))
    evals = [i for k, i in events if k == "eval"]
    assert len(evals) == 3 and [e["step"] for e in evals] == [13, 26, 39]  # each epoch's end
    assert summary["reason"] == "epochs" and summary["steps"] == 39 and summary["examples"] == 600
    best = max(e["metrics"]["accuracy"] for e in evals)
    assert summary["best"] == best > 0.8 and summary["val_accuracy"] == evals[-1]["value"]
    assert "val_table" not in summary and fit.columns == ["step", "epoch", "train_loss",
                                                          "seconds", "val_loss", "val_accuracy"]
    assert np.asarray(fit.history).shape == (3, 6)
    steps = [i for k, i in events if k == "step"]
    assert steps[0]["lr"] == pytest.approx(0.3) and steps[-1]["lr"] < 0.003  # cosine to ~0


def test_best_flat_is_the_best_validation_not_the_last():
    task = Toy()
    fit = Fit(task, TRAIN, VALID, FitConfig(batch_size=8, lr=3.0, optim="sgd", clip=0,
                                            steps=30, eval_every=3, lr_schedule="constant"))
    seen = []
    fit.run(lambda kind, info: seen.append(info["value"]) if kind == "eval" else None)
    assert fit.best == min(seen)
    keep = task.params.flat.copy()
    task.params.flat[:] = fit.best_flat
    assert task.evaluate(VALID)["loss"] == pytest.approx(fit.best)
    task.params.flat[:] = keep


def test_patience_stops_early():
    fit = Fit(Toy(), TRAIN, VALID, FitConfig(batch_size=8, lr=5.0, optim="sgd", clip=0,
                                             steps=1000, eval_every=1, patience=2,
                                             lr_schedule="constant"))
    summary = fit.run()
    assert summary["reason"] == "patience" and summary["steps"] < 1000 and fit.bad_evals == 2


def _run(steps, resume=None, task=None):
    task = task or Toy()
    fit = Fit(task, TRAIN, VALID, FitConfig(batch_size=16, lr=0.05, steps=12, eval_every=5),
              resume=resume)
    fit.run(should_stop=lambda: fit.step >= steps)
    return task, fit


def test_resume_continues_bit_for_bit():
    whole, fit_whole = _run(12)
    part, fit_part = _run(7)
    state = fit_part.state_dict()
    again = Toy()
    again.params.flat[:] = part.params.flat
    again, fit_again = _run(12, resume=state, task=again)
    assert np.array_equal(again.params.flat, whole.params.flat)
    assert all(np.array_equal(a, b) for a, b in zip(part.calls + again.calls, whole.calls))
    assert len(part.calls) == 7 and fit_again.step == 12
    # (the interrupted run validated at its stop, step 7, which the whole run did not: the best
    # parameters may differ, as the language model's do; the trained ones may not)


def test_divergence_and_bad_config():
    task = Toy()
    task.params.flat[:] = np.inf
    with pytest.raises(TrainingDiverged):
        Fit(task, TRAIN, VALID, FitConfig(steps=3)).run()
    with pytest.raises(UsageError, match="stopping rule"):
        FitConfig().validate()
    with pytest.raises(UsageError, match="unknown training option"):
        fit_config(steps=1, seq_len=3)
    with pytest.raises(UsageError, match="--metric f1"):
        Fit(Toy(), TRAIN, VALID, FitConfig(steps=1, metric="f1")).run()


def test_no_validation_keeps_the_last_parameters():
    task = Toy()
    fit = Fit(task, TRAIN, None, FitConfig(batch_size=50, steps=4))
    summary = fit.run()
    assert np.array_equal(fit.best_flat, task.params.flat) and summary["evaluations"] == 1
    assert math.isnan(fit.history[0][fit.columns.index("train_loss")]) is False


def test_state_before_any_validation():
    fit = Fit(Toy(), TRAIN, VALID, FitConfig(steps=3))
    st = fit.state_dict()
    assert st["history"].shape == (0, 0) and st["state"]["step"] == 0 and st["state"]["best"] is None
