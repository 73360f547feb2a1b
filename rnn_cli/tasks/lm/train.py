"""Trainer: the Python loop over optimizer steps around the compiled kernels. Never prints.

One step = one window of B streams x T tokens: forward, backward through time, gradient clipping,
update. The hidden state is carried from window to window (truncated BPTT) and reset at each
epoch start. Progress is reported through an `on_event(kind, info)` callback (minGPT's trainer
callbacks), so the CLI decides what the user sees; `should_stop()` lets it stop cleanly (Ctrl-C).
"""

from __future__ import annotations

import collections
import math
import time

import numpy as np

from rnn_cli.checkpoint import Model
from rnn_cli.config import ModelConfig, TrainConfig, use_sparse
from rnn_cli.corpus import release_pages
from rnn_cli.errors import TrainingDiverged
from rnn_cli.kernels import _jit
from rnn_cli.optimizer import Optimizer, clip_gradients, lr_factor, lr_pieces
from rnn_cli.params import Params
from rnn_cli.tasks.lm.classes import parallel_class_kernels
from rnn_cli.tasks.lm.network import Network, sequence_nll
from rnn_cli.tasks.lm.sparse import RowUpdates
from rnn_cli.tasks.lm.windows import Batches

EVAL_WINDOW = 512  # window length of evaluation / scoring (results do not depend on it)
HELD_OUT_CHUNK = EVAL_WINDOW * 2048  # held-out ids read at a time (whole windows)
EVAL_BUDGET = 0.1  # share of the wall time that `rnn-cli train`'s default validation cadence may use
def eval_network(params: Params) -> Network:
    """The one forward path of validation and `score`: one stream, windows of EVAL_WINDOW, the
    window-sized products split over the threads (same construction, so the same numbers)."""
    return Network(params, 1, EVAL_WINDOW, parallel=True)


def start_id(vocab) -> int:
    """First input of a scored sequence: the end-of-line symbol (else the seed's zero vector)."""
    return vocab.eos_id if vocab.eos_id is not None else -1


def warm_up(cfg: ModelConfig, sparse: bool = False) -> float:
    """Compile (or load from cache) every kernel a run uses, on a tiny network; returns seconds.
    sparse: also the row kernels of --updates sparse."""
    t0 = time.perf_counter()
    classes = cfg.softmax == "classes"
    tiny = ModelConfig(**{**vars(cfg), "hidden": 2, "vocab_size": 3,
                          "embed": 2 if cfg.embed else 0, "classes": 2 if classes else 0})
    p = Params(tiny, word_class=np.array([0, 1, 1], np.int32) if classes else None)
    p.init(np.random.default_rng(0))
    g = p.zeros_like()
    x = np.zeros((2, 1), np.int32)
    for table in (True, False):  # layer 0's input terms: the (V, G*H) table or the direct path
        net = Network(p, 1, 2, parallel=True, embed_table=table)
        if classes:  # the builds the real network (C = cfg.classes) will pick
            net.use_class_kernels(parallel_class_kernels(cfg.classes, net.threads))
        net.forward(x, x, net.draw_masks(np.random.default_rng(0), x))
        net.backward(g, x, x, 1.0)
    clip_gradients(g.flat, 1.0, "norm")
    clip_gradients(g.flat, 1.0, "value")
    rows = RowUpdates(p, [(0, len(p), 1.0)], net) if sparse else None
    for name in ("adam", "sgd", "adagrad", "rmsprop"):
        if rows is not None:
            rows.touch(x, x)
            rows.clip(g.flat, 1.0, "norm")
        Optimizer(TrainConfig(optim=name), len(p)).update(p.flat.copy(), g.flat, rows)
    if rows is not None:
        rows.clip(g.flat, 1.0, "value")
    sequence_nll(Network(p, 1, 2, parallel=False), np.zeros(3, np.int32), 0)
    return time.perf_counter() - t0


class Trainer:
    """Trains `model` (params, vocab, config) on train ids, validating on val ids."""

    def __init__(self, model: Model, tcfg: TrainConfig, train_ids: np.ndarray,
                 val_ids: np.ndarray, rng: np.random.Generator, test_ids: np.ndarray | None = None):
        self.model, self.tcfg, self.rng = model, tcfg, rng
        self.test_ids = test_ids
        self.params = model.params if model.resume_flat is None else _with_flat(model)
        self.grads = self.params.zeros_like()
        st = model.state
        self.step, self.tokens = int(st.get("step", 0)), int(st.get("tokens", 0))
        self.seconds = float(st.get("seconds", 0.0))
        self.best_val = float(st.get("best_val", math.inf))
        self.opt = Optimizer(tcfg, len(self.params), model.opt, step=self.step,
                             pieces=lr_pieces(self.params, tcfg.optim))
        if st.get("lr_base") == tcfg.lr:  # same --lr as before: continue the decayed rate
            self.opt.base_lr = self.opt.lr = float(st.get("lr", tcfg.lr))
        self.batches = Batches(train_ids, tcfg.batch_size, tcfg.seq_len)
        if "batches" in st:
            self.batches.load_state_dict(st["batches"])
        self.net = Network(self.params, tcfg.batch_size, tcfg.seq_len)
        self.rows = None  # --updates sparse: zeroing, clipping, update by rows (sparse.py)
        if use_sparse(tcfg.updates, model.cfg):
            self.rows = RowUpdates(self.params, self.opt.pieces, self.net)
            self.net.zeroed_rows = True
        if "carry" in st:  # the hidden state carried into the next window
            self.net.state[...] = np.asarray(st["carry"], np.float32).reshape(self.net.state.shape)
        self.val_ids = val_ids
        self.eval_net = eval_network(self.params)
        self.history = [list(r) for r in model.history]
        self.best_flat = model.params.flat.copy()
        # None: validate every --eval-every steps. A share (EVAL_BUDGET, what the CLI sets when
        # --eval-every is not given): skip a due validation while it and the final one would
        # take more than that share of the run's wall time. Every validation that runs is the
        # exact one-stream figure of `score --total`; the last one always runs.
        self.eval_budget: float | None = None
        self.eval_seconds, self.evaluations, self._eval_cost = 0.0, 0, None

    def evaluate(self) -> float:
        """Mean nats per token on the validation ids (nan when there are none)."""
        if self.val_ids.shape[0] == 0:
            return math.nan
        return self._held_out_nll(self.params, self.val_ids) / self.val_ids.shape[0]

    def _held_out_nll(self, params: Params, ids: np.ndarray) -> float:
        """Summed nll of held-out ids, exactly as `score` computes it (one stream, state carried).

        Not split into parallel streams from zero states (word_language_model's eval batches): a
        zero state in mid-text is not what `score` sees. (Version 1's LSTMs could also lock into
        a garbage mode from an unlucky zero-state start, 6.9 nats/char where 19 of 20 other starts
        gave 2.3-2.4; gone with the torch-style initialisation, README "The LSTM from a zero
        state", tests/test_zero_state.py.)
        """
        net = self.eval_net if params is self.params else eval_network(params)
        total, prev = 0.0, start_id(self.model.vocab)
        for a in range(0, ids.shape[0], HELD_OUT_CHUNK):  # the same windows and sum as at once
            part = ids[a:a + HELD_OUT_CHUNK]
            total = sequence_nll(net, part, prev, reset=a == 0, total=total)
            prev = int(part[-1])
            release_pages(part)  # a memory-mapped tail is read once, not kept resident
        return total

    def progress(self, elapsed: float) -> float:
        """How far the run is towards its end, 0..1: the furthest of step / --steps, tokens /
        (--epochs x tokens per epoch) and this invocation's elapsed seconds / --max-seconds."""
        tcfg, f = self.tcfg, 0.0
        if tcfg.steps:
            f = max(f, self.step / tcfg.steps)
        if tcfg.epochs:
            f = max(f, self.tokens / (tcfg.epochs * self.batches.tokens_per_epoch))
        if tcfg.max_seconds:
            f = max(f, elapsed / tcfg.max_seconds)
        return min(f, 1.0)

    def set_rate(self, elapsed: float) -> None:
        """The next update's learning rate: the (plateau-decayed) base rate times the schedule."""
        f = lr_factor(self.tcfg.lr_schedule, self.progress(elapsed))
        self.opt.lr = self.opt.base_lr * f

    def train_step(self) -> float:
        """One optimizer step on the next window; returns its mean nats per token."""
        tcfg, b = self.tcfg, self.batches
        x, y, reset = b.next_window()
        if reset:
            self.net.reset_state()
        R = x.shape[0] * x.shape[1]
        loss = self.net.forward(x, y, self.net.draw_masks(self.rng, x)) / R
        self.net.backward(self.grads, x, y, 1.0 / R)
        if self.rows is None:
            clip_gradients(self.grads.flat, tcfg.clip, tcfg.clip_mode)
            self.opt.update(self.params.flat, self.grads.flat)
        else:
            self.rows.touch(x, y)
            self.rows.clip(self.grads.flat, tcfg.clip, tcfg.clip_mode)
            self.opt.update(self.params.flat, self.grads.flat, self.rows)
        self.step += 1
        self.tokens += R
        return loss

    def run(self, on_event=lambda kind, info: None, should_stop=lambda: False) -> dict:
        """Train until --steps, --epochs or --max-seconds (the first reached) or `should_stop()`.

        Events: ("step", info) after every step, ("eval", info) after each evaluation. Raises
        TrainingDiverged when the loss stops being finite (the best parameters are kept).
        """
        tcfg = self.tcfg
        if not (tcfg.steps or tcfg.epochs or tcfg.max_seconds):
            raise ValueError("no stopping rule")  # the CLI always sets one
        n_train = self.batches.tokens_per_epoch
        wall0, step_time, step_tokens = time.perf_counter(), 0.0, 0
        recent, reason, first_step = [], "", self.step
        tail = collections.deque(maxlen=50)  # the summary's train loss: mean of the last 50 steps
        while True:
            if tcfg.steps and self.step >= tcfg.steps:
                reason = "steps"
            elif tcfg.epochs and self.tokens >= tcfg.epochs * n_train:
                reason = "epochs"
            elif tcfg.max_seconds and time.perf_counter() - wall0 >= tcfg.max_seconds:
                reason = "max-seconds"
            elif should_stop():
                reason = "interrupted"
            if reason:
                break
            t0 = time.perf_counter()
            self.set_rate(t0 - wall0)
            loss = self.train_step()
            dt = time.perf_counter() - t0
            step_time += dt
            step_tokens += self.batches.batch_size * self.batches.seq_len
            if not math.isfinite(loss):
                raise TrainingDiverged(
                    f"the training loss became {loss} at step {self.step}",
                    hint="lower --lr (e.g. by 10x) or clip harder (--clip 1); the best model so "
                         "far was kept")
            recent.append(loss)
            tail.append(loss)
            elapsed = time.perf_counter() - wall0
            info = {"step": self.step, "loss": loss, "tok_s": step_tokens / max(step_time, 1e-9),
                    "elapsed": elapsed, "epoch": self.tokens / n_train,
                    "progress": self.progress(elapsed)}
            on_event("step", info)
            if self.step % tcfg.eval_every == 0 and self._eval_due(wall0, step_tokens / step_time):
                self._eval_event(on_event, recent, wall0)
                recent = []
        if recent or self.step == first_step or not self.history:
            self._eval_event(on_event, recent, wall0)
        self.seconds += time.perf_counter() - wall0
        last = self.history[-1]
        extra = self._test_summary()
        return extra | {"reason": reason, "steps": self.step, "tokens": self.tokens,
                "seconds": round(time.perf_counter() - wall0, 3),
                "eval_seconds": round(self.eval_seconds, 3), "evaluations": self.evaluations,
                "tokens_per_sec": round(step_tokens / step_time, 1) if step_time else 0.0,
                "train_loss": float(np.mean(tail)) if tail else last[1], "val_loss": last[2],
                "best_val_loss": self.best_val,
                "V": self.model.cfg.vocab_size, "H": self.model.cfg.hidden,
                "L": self.model.cfg.layers, "B": self.batches.batch_size, "T": self.batches.seq_len,
                "threads": _jit.get_threads(), "sparse_updates": self.rows is not None}

    def _eval_due(self, wall0: float, train_tok_s: float) -> bool:
        """Whether a validation due by --eval-every runs now (always, without a budget)."""
        n_val = self.val_ids.shape[0]
        if self.eval_budget is None or n_val == 0:
            return True
        # cost: the last validation's seconds; before the first, one-stream scoring runs at
        # about the training tok/s (bench/RESULTS.md), so n_val tokens at that rate
        cost = self._eval_cost if self._eval_cost is not None else n_val / max(train_tok_s, 1.0)
        elapsed = time.perf_counter() - wall0
        # this validation and the final one, within the budget of the wall time including them
        return self.eval_seconds + 2.0 * cost <= self.eval_budget * (elapsed + 2.0 * cost)

    def _test_summary(self) -> dict:
        """test_loss / test_ppl of the best parameters on --test (empty without it)."""
        if self.test_ids is None or self.test_ids.shape[0] == 0:
            return {}
        best = self.params.zeros_like()
        best.flat[:] = self.best_flat
        t0 = time.perf_counter()
        loss = self._held_out_nll(best, self.test_ids) / self.test_ids.shape[0]
        self.eval_seconds += time.perf_counter() - t0
        return {"test_loss": loss, "test_ppl": math.exp(min(loss, 700.0)),
                "test_tokens": int(self.test_ids.shape[0])}

    def _eval_event(self, on_event, recent, wall0):
        train_loss = float(np.mean(recent)) if recent else math.nan
        t0 = time.perf_counter()
        val = self.evaluate()
        self._eval_cost = time.perf_counter() - t0
        self.eval_seconds += self._eval_cost
        self.evaluations += 1
        if (self.val_ids.shape[0] and not math.isfinite(val)) or \
                not np.isfinite(self.params.flat).all():
            # The last update blew up (the window's loss was still finite): never save these.
            raise TrainingDiverged(
                f"the validation loss became {val} at step {self.step}",
                hint="lower --lr (e.g. by 10x) or clip harder (--clip 1); the last good model "
                     "was kept")
        improved = math.isnan(val) or val < self.best_val
        if not improved and self.tcfg.lr_decay:  # word_language_model: lr /= 4 on a plateau
            self.opt.base_lr /= self.tcfg.lr_decay
            self.opt.lr /= self.tcfg.lr_decay
        if improved:
            self.best_val = val if not math.isnan(val) else self.best_val
            self.best_flat[:] = self.params.flat
        elapsed = self.seconds + time.perf_counter() - wall0
        self.history.append([self.step, train_loss, val, elapsed])
        on_event("eval", {"step": self.step, "train_loss": train_loss, "val_loss": val,
                          "best": improved, "epoch": self.tokens / self.batches.tokens_per_epoch,
                          "lr": self.opt.base_lr})

    def to_model(self, *, with_resume: bool = True) -> Model:
        """The model file's content now: best parameters, and what a resume needs."""
        best = self.params.zeros_like()
        best.flat[:] = self.best_flat
        same = np.array_equal(best.flat, self.params.flat)
        state = dict(self.model.state)
        state.update(step=self.step, tokens=self.tokens, best_val=self.best_val, lr=self.opt.base_lr,
                     lr_base=self.tcfg.lr,
                     seconds=self.seconds, batches=self.batches.state_dict(),
                     carry=self.net.state.ravel().tolist())
        if not with_resume:
            state.pop("batches", None)
            state.pop("carry", None)
        return Model(self.model.cfg, self.model.vocab, best, self.tcfg, state,
                     np.asarray(self.history, np.float64).reshape(-1, 4),
                     self.rng.bit_generator.state,
                     None if (same or not with_resume) else self.params.flat.copy(),
                     dict(self.opt.state) if with_resume else {})


def _with_flat(model: Model) -> Params:
    p = model.params.copy()
    p.flat[:] = model.resume_flat
    return p
