"""The example trainer of the task models (classify, tag, translate): epochs over batches of
examples made by length (`batching.py`), validation by the task's own metric, the best
parameters kept, early stopping. Never prints; progress goes to an `on_event(kind, info)`
callback, as the language model's trainer (`train.py`) reports it.

A task plugs in through a small protocol (`ExampleTask`): it owns its parameters (a ParamSet),
turns a batch of example indices of its data into a loss (`forward`), writes the gradients of
that loss (`backward`), and measures a data set (`evaluate` -> {"loss": ..., "accuracy": ...}).
What a step does here: the batch's forward and backward, gradient clipping over the flat buffer,
one optimizer update with the task's per-block learning rates (`optimizer.task_lr_pieces`),
the learning rate on its schedule (cosine from --lr to 0 over the run: the first of --steps,
--epochs, --max-seconds, as for the language model).

Validation: every `eval_every` steps, or (eval_every 0, the default) at the end of every epoch,
and once at the end of the run. The validation set's `metric` decides what is best ("loss":
lower is better, any other: higher); the best parameters so far are kept (`best_flat`), and with
`patience` N the run stops after N validations in a row without improvement. A resumed run
(`state_dict` / `Fit(..., resume=...)`) continues bit for bit: step, batch position, the
dropout Generator, optimizer moments, best parameters and the patience count.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from rnn_cli.batching import ExampleBatches
from rnn_cli.errors import TrainingDiverged, UsageError
from rnn_cli.kernels import _jit
from rnn_cli.optimizer import Optimizer, clip_gradients, lr_factor, task_lr_pieces
from rnn_cli.params import ParamSet

LOWER_IS_BETTER = frozenset({"loss"})


@dataclass(frozen=True)
class FitConfig:
    """How a task model is trained (field = the `rnn-cli train` flag, `_` for `-`)."""

    batch_size: int = 32  # examples per batch, at most
    max_tokens: int = 0  # padded positions per batch, at most (0: no cap)
    lr: float = 2e-3
    optim: str = "adam"
    clip: float = 5.0  # 0 disables clipping
    clip_mode: str = "norm"
    steps: int = 0  # stop after this many steps in all (0: no limit)
    epochs: float = 0.0  # ... this many epochs (0: no limit)
    max_seconds: float = 0.0  # ... this many seconds of this invocation (0: no limit)
    eval_every: int = 0  # validate every N steps; 0: at the end of every epoch
    metric: str = "loss"  # the validation metric that picks the best model
    patience: int = 0  # stop after N validations without improvement (0: never)
    lr_schedule: str = "cosine"
    seed: int = 1234

    def validate(self) -> "FitConfig":
        for name in ("batch_size",):
            if getattr(self, name) < 1:
                raise UsageError(f"--batch-size must be a positive integer (got {self.batch_size})")
        for name in ("max_tokens", "steps", "eval_every", "patience", "seed"):
            if getattr(self, name) < 0:
                raise UsageError(f"--{name.replace('_', '-')} must be 0 or more "
                                 f"(got {getattr(self, name)})")
        for name in ("lr", "clip", "epochs", "max_seconds"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (name == "lr" and value == 0):
                raise UsageError(f"--{name.replace('_', '-')} must be a finite number "
                                 f"{'> 0' if name == 'lr' else '>= 0'} (got {value})")
        if self.optim not in ("adam", "sgd", "adagrad", "rmsprop") or \
                self.clip_mode not in ("norm", "value") or \
                self.lr_schedule not in ("cosine", "constant"):
            raise UsageError("unknown --optim, --clip-mode or --lr-schedule")
        if not (self.steps or self.epochs or self.max_seconds):
            raise UsageError("no stopping rule", hint="pass --steps, --epochs or --max-seconds")
        return self


class ExampleTask(Protocol):
    """What the trainer needs from a task model."""

    params: ParamSet  # the parameters forward and backward read (the trainer updates them)

    def lr_scales(self) -> list[tuple[str, int, int | None, float]]:
        """Blocks (or parts) moving at another rate (`optimizer.task_lr_pieces`)."""

    def lengths(self, data: Any) -> np.ndarray:
        """(N,) length of every example of `data` (what batching sorts by)."""

    def forward(self, data: Any, idx: np.ndarray, rng: np.random.Generator | None) -> float:
        """The mean loss of the examples `idx` of `data` (dropout from `rng` when given)."""

    def backward(self, grads: ParamSet) -> None:
        """Write the gradient of the last forward's loss into `grads` (every block)."""

    def evaluate(self, data: Any) -> dict:
        """Metrics of `data` with the current parameters, "loss" among them; scalar values
        (floats) go into the history, others (per-label tables) only into events."""


class Fit:
    """One training run of `task` on `train`, validated on `valid` (None: no validation; the
    last parameters are then the ones kept). `resume`: a `state_dict()` of an earlier run,
    whose latest parameters the task's params already hold."""

    def __init__(self, task: ExampleTask, train: Any, valid: Any, cfg: FitConfig,
                 resume: dict | None = None):
        self.task, self.train, self.valid, self.cfg = task, train, valid, cfg.validate()
        self.params = task.params
        self.grads = self.params.zeros_like()
        self.lower = cfg.metric in LOWER_IS_BETTER
        self.lengths = np.asarray(task.lengths(train), np.int64)
        self.batches = ExampleBatches(self.lengths, cfg.batch_size, cfg.seed, cfg.max_tokens)
        r = resume or {}
        st = r.get("state", {})
        self.step, self.examples = int(st.get("step", 0)), int(st.get("examples", 0))
        self.seconds = float(st.get("seconds", 0.0))
        self.best, self.best_step = st.get("best"), int(st.get("best_step", 0))
        self.bad_evals = int(st.get("bad_evals", 0))
        if "batches" in st:
            self.batches.load_state_dict(st["batches"])
        self.opt = Optimizer(cfg, len(self.params), r.get("opt"), step=self.step,
                             pieces=task_lr_pieces(self.params, task.lr_scales()))
        self.rng = np.random.default_rng(cfg.seed)
        if r.get("rng_state"):
            self.rng.bit_generator.state = r["rng_state"]
        best_flat = r.get("best_flat")
        self.best_flat = (self.params.flat if best_flat is None else best_flat).copy()
        self.history: list[list[float]] = [list(row) for row in r.get("history", [])]
        self.columns: list[str] = list(r.get("history_columns", []))
        self.eval_seconds, self.evaluations = 0.0, 0
        self.last_metrics: dict = {}

    # ------------------------------------------------------------------ the run
    def progress(self, elapsed: float) -> float:
        """How far the run is towards its end, 0..1 (the furthest of its stopping rules)."""
        cfg, f = self.cfg, 0.0
        if cfg.steps:
            f = max(f, self.step / cfg.steps)
        if cfg.epochs:
            f = max(f, self.batches.epochs_done() / cfg.epochs)
        if cfg.max_seconds:
            f = max(f, elapsed / cfg.max_seconds)
        return min(f, 1.0)

    def train_step(self, elapsed: float) -> tuple[float, int]:
        """One optimizer step on the next batch: (its mean loss, its real tokens)."""
        cfg = self.cfg
        self.opt.lr = cfg.lr * lr_factor(cfg.lr_schedule, self.progress(elapsed))
        idx = self.batches.next()
        loss = self.task.forward(self.train, idx, self.rng)
        self.task.backward(self.grads)
        clip_gradients(self.grads.flat, cfg.clip, cfg.clip_mode)
        self.opt.update(self.params.flat, self.grads.flat)
        self.step += 1
        self.examples += idx.shape[0]
        return loss, int(self.lengths[idx].sum())

    def _stop_reason(self, wall0: float, should_stop) -> str:
        cfg = self.cfg
        if cfg.steps and self.step >= cfg.steps:
            return "steps"
        if cfg.epochs and self.batches.epochs_done() >= cfg.epochs - 1e-9:
            return "epochs"
        if cfg.max_seconds and time.perf_counter() - wall0 >= cfg.max_seconds:
            return "max-seconds"
        if cfg.patience and self.bad_evals >= cfg.patience:
            return "patience"
        return "interrupted" if should_stop() else ""

    def run(self, on_event=lambda kind, info: None, should_stop=lambda: False) -> dict:
        """Train until a stopping rule or `should_stop()`; returns the summary (what `--json`
        prints). Events: ("step", info) after every step, ("eval", info) after each
        validation. TrainingDiverged when the loss stops being finite (best parameters kept)."""
        wall0, step_time, n_tok, ex0 = time.perf_counter(), 0.0, 0, self.examples
        recent, reason, first_step = [], "", self.step
        while not (reason := self._stop_reason(wall0, should_stop)):
            t0 = time.perf_counter()
            loss, tokens = self.train_step(t0 - wall0)
            step_time += time.perf_counter() - t0
            n_tok += tokens
            if not math.isfinite(loss):
                raise TrainingDiverged(f"the training loss became {loss} at step {self.step}",
                                       hint="lower --lr (e.g. by 10x) or clip harder (--clip 1);"
                                            " the best model so far was kept")
            recent.append(loss)
            elapsed = time.perf_counter() - wall0
            on_event("step", {"step": self.step, "loss": loss, "lr": self.opt.lr,
                              "epoch": self.batches.epochs_done(), "elapsed": elapsed,
                              "progress": self.progress(elapsed),
                              "examples_per_sec": (self.examples - ex0) / max(step_time, 1e-9),
                              "tok_s": n_tok / max(step_time, 1e-9)})
            every = self.cfg.eval_every
            if (every and self.step % every == 0) or (not every and self.batches.at_epoch_end):
                self._validate(on_event, recent, wall0)
                recent = []
        if recent or self.step == first_step or not self.history:
            self._validate(on_event, recent, wall0)
        self.seconds += time.perf_counter() - wall0
        rate = (lambda n: round(n / step_time, 1) if step_time else 0.0)
        scalars = {"val_" + k: v for k, v in self.last_metrics.items() if _scalar(v)}
        return {"reason": reason, "steps": self.step, "epochs": self.batches.epochs_done(),
                "examples": self.examples, "seconds": round(time.perf_counter() - wall0, 3),
                "eval_seconds": round(self.eval_seconds, 3), "evaluations": self.evaluations,
                "examples_per_sec": rate(self.examples - ex0), "tokens_per_sec": rate(n_tok),
                "metric": self.cfg.metric, "best": self.best, "best_step": self.best_step,
                "threads": _jit.get_threads(), **scalars}

    # ------------------------------------------------------------------ validation
    def _validate(self, on_event, recent: list[float], wall0: float) -> None:
        """Measure the validation set, keep the parameters if they are the best so far."""
        train_loss = float(np.mean(recent)) if recent else math.nan
        t0 = time.perf_counter()
        metrics = self.task.evaluate(self.valid) if self.valid is not None else {}
        self.eval_seconds += time.perf_counter() - t0
        self.evaluations += 1
        if not np.isfinite(self.params.flat).all() or not math.isfinite(
                metrics.get("loss", 0.0)):
            raise TrainingDiverged(f"the parameters or the validation loss stopped being finite "
                                   f"at step {self.step}",
                                   hint="lower --lr (e.g. by 10x) or clip harder (--clip 1); "
                                        "the last good model was kept")
        value = metrics.get(self.cfg.metric)
        if self.valid is not None and value is None:
            raise UsageError(f"--metric {self.cfg.metric} is not one of this task's metrics "
                             f"({', '.join(k for k, v in metrics.items() if _scalar(v))})")
        improved = value is None or self.best is None or (
            value < self.best if self.lower else value > self.best)
        if improved:
            self.best, self.best_step, self.bad_evals = value, self.step, 0
            self.best_flat[:] = self.params.flat
        else:
            self.bad_evals += 1
        self.last_metrics = metrics
        scalars = {k: float(v) for k, v in metrics.items() if _scalar(v)}
        row = {"step": float(self.step), "epoch": self.batches.epochs_done(),
               "train_loss": train_loss,
               "seconds": self.seconds + time.perf_counter() - wall0,
               **{"val_" + k: v for k, v in scalars.items()}}
        if not self.columns:
            self.columns = list(row)
        self.history.append([row.get(c, math.nan) for c in self.columns])
        on_event("eval", {"step": self.step, "epoch": row["epoch"], "train_loss": train_loss,
                          "val_loss": scalars.get("loss", math.nan), "metrics": metrics,
                          "metric": self.cfg.metric, "value": value, "best": improved,
                          "best_value": self.best, "bad_evals": self.bad_evals,
                          "lr": self.opt.lr})

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """What a resumed run needs besides the latest parameters (task.params): the training
        state (JSON-able), the optimizer moments, the dropout Generator, the best parameters,
        and the history."""
        state = {"step": self.step, "examples": self.examples, "seconds": self.seconds,
                 "batches": self.batches.state_dict(), "best": self.best,
                 "best_step": self.best_step, "bad_evals": self.bad_evals}
        return {"state": state, "opt": {k: v.copy() for k, v in self.opt.state.items()},
                "rng_state": self.rng.bit_generator.state, "best_flat": self.best_flat.copy(),
                "history": np.asarray(self.history, np.float64).reshape(
                    len(self.history), len(self.columns)),
                "history_columns": list(self.columns)}


def _scalar(v) -> bool:
    return isinstance(v, (float, int, np.floating, np.integer)) and not isinstance(v, bool)


def fit_config(**options) -> FitConfig:
    """A FitConfig from keyword options (unknown names are an error), validated."""
    names = {f.name for f in dataclasses.fields(FitConfig)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise UsageError(f"unknown training option(s): {', '.join(unknown)}")
    return FitConfig(**options).validate()


def check_resume(path: str, cfg: Any, model_opts: dict) -> None:
    """`--resume` continues the architecture in the file: an architecture flag that names another
    value (the first one) is a usage error."""
    clash = [k for k, v in model_opts.items() if getattr(cfg, k) != v]
    if clash:
        raise UsageError(f"--resume continues {path}, whose {clash[0]} is "
                         f"{getattr(cfg, clash[0])!r}, not {model_opts[clash[0]]!r}",
                         hint="drop the architecture flags, or train a new model with -o")
