"""Word-level defaults chosen by what the run will see (issue 30): the tokens its budget lets it
train, the parameters that would learn from them, and the epochs of the corpus they make.

A word model's quality in a budget is a trade: a larger H learns more per token but trains fewer
tokens in the same seconds, and a model that sees the corpus many times memorises it unless it
is regularised. So for a new word-level model, with the flags given winning:

    tokens(H)   the run's budget in training tokens: --steps x B x T, --epochs x the corpus, and
                --max-seconds x the measured tokens/s of H (a few timed steps of H 256 before
                training, scaled to each H by the model's FLOPs per token, less the share that
                validation may take), the smallest that applies (no stopping rule: 10 epochs)
    H           the largest of LADDER whose run sees at least TOKENS_PER_PARAM tokens per
                parameter of the network (`n_core`: the recurrent, input and class weights; the
                vocabulary-indexed rows, a word's embedding and output row, learn from that
                word's tokens only); the smallest of LADDER when none does; without
                a stopping rule given, at most the corpus-size H of `options.scaled_defaults`
                (so a plain `train` of a large corpus does not run 10 epochs of a far larger
                network)
    dropout     by the epochs the run will see at that H, one step more from H 384
                (`dropout_for`), locked over time (--dropout-mask locked)
    lr          Adam's (the default optimizer) rate of that H, `options.word_lr` (8e-3 up to
                H 256, 4e-3 at 384, 3e-3 from 512), on the cosine schedule that ends at the
                budget's end

`-v` prints the choice and the figures behind it. Character level keeps the corpus-size defaults
of `options.scaled_defaults` (bench/QUALITY.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from rnn_cli.config import ModelConfig, TrainConfig
from rnn_cli.params import param_shapes
from rnn_cli.tasks.lm.options import (DROPOUT_LARGE_H, DROPOUT_MAX, DROPOUT_STEPS, LADDER,
                                      TOKENS_PER_PARAM, word_lr)

RATE_H = 256  # the H timed for --max-seconds
EVAL_SHARE = 0.1  # train.EVAL_BUDGET: validation's share of the wall time


VOCAB_BLOCKS = ("W_emb", "W_ya", "b_y")  # rows indexed by the vocabulary


def n_core(cfg: ModelConfig) -> int:
    """Parameters of the network proper: all but the vocabulary-indexed rows (a one-hot W_ax is
    such rows too)."""
    shapes = param_shapes(cfg)
    skip = VOCAB_BLOCKS + (() if cfg.embed else ("W_ax",))
    return sum(math.prod(s) for k, s in shapes.items() if k not in skip)


def flops_per_token(cfg: ModelConfig) -> float:
    """Multiply-adds x 2 x 3 (forward, and backward's two products) of one training token: the
    recurrent and input products of every layer and the output layer (the class softmax: H (C +
    V/C), the mean work when classes hold V/C words)."""
    H, G, L, V = cfg.hidden, cfg.gates, cfg.layers, cfg.vocab_size
    first = G * H * (H + (cfg.embed or 0))  # W_aa and, with an embedding, W_ax (one-hot: gather)
    upper = (L - 1) * G * H * 2 * H
    out = H * (cfg.classes + V / cfg.classes) if cfg.softmax == "classes" else H * V
    return 6.0 * (first + upper + out)


def sized(cfg: ModelConfig, H: int) -> ModelConfig:
    """cfg at hidden H (a tied embedding follows H)."""
    embed = H if cfg.tie_weights else cfg.embed
    return ModelConfig(**{**vars(cfg), "hidden": H, "embed": embed})


def budget_tokens(tcfg: TrainConfig, n_train: int, B: int, T: int,
                  rate: float | None) -> float:
    """Training tokens the run will see: the smallest of its stopping rules (`rate`, tokens/s,
    for --max-seconds; the validation share of the wall time taken off)."""
    limits = []
    if tcfg.steps:
        limits.append(tcfg.steps * B * T)
    if tcfg.epochs:
        limits.append(tcfg.epochs * n_train)
    if tcfg.max_seconds and rate:
        limits.append(tcfg.max_seconds * (1.0 - EVAL_SHARE) * rate)
    return float(min(limits)) if limits else 10.0 * n_train


def dropout_for(epochs: float, hidden: int) -> float:
    """The dropout of a run that sees `epochs` of its corpus with `hidden` units."""
    steps = [r for below, r in DROPOUT_STEPS if epochs < below] + [DROPOUT_MAX]
    rate = steps[0]
    if hidden >= DROPOUT_LARGE_H:  # a larger network memorises sooner (Zaremba et al.: 0.5, H 650)
        rate = min(rate + 0.1, DROPOUT_MAX + 0.1)
    return rate


def word_defaults(cfg: ModelConfig, tcfg: TrainConfig, n_train: int, B: int, T: int,
                  given: dict, rate_of: Callable[[ModelConfig], float] | None,
                  cap: int | None = None) -> tuple[dict, str]:
    """({field: value} for the fields not given, why) of a new word model `cfg` (V, softmax,
    embedding and tying already set). rate_of(cfg) -> tokens/s, called once when --max-seconds
    is a stopping rule (then `cfg` at RATE_H is what is timed). cap: the largest H allowed."""
    rate = None
    if tcfg.max_seconds and rate_of is not None:
        ref = sized(cfg, RATE_H if "hidden" not in given else cfg.hidden)
        rate0 = rate_of(ref)
        rate = lambda c: rate0 * flops_per_token(ref) / flops_per_token(c)  # noqa: E731
    out, notes = {}, []
    if "hidden" in given:
        H = cfg.hidden
    else:
        H = LADDER[0]
        for h in LADDER:
            if cap is not None and h > cap:
                break
            c = sized(cfg, h)
            tok = budget_tokens(tcfg, n_train, B, T, rate(c) if rate else None)
            if tok >= TOKENS_PER_PARAM * n_core(c):
                H = h
        out["hidden"] = H
        if cfg.tie_weights:
            out["embed"] = H
    c = sized(cfg, H)
    r = rate(c) if rate else None
    tok = budget_tokens(tcfg, n_train, B, T, r)
    epochs = tok / max(n_train, 1)
    if "dropout" not in given:
        out["dropout"] = dropout_for(epochs, H)
    if "dropout_mask" not in given:
        out["dropout_mask"] = "locked"
    if "lr" not in given and tcfg.optim == "adam":
        out["lr"] = word_lr(H)  # a TrainConfig field (the caller splits them)
    notes.append(f"the run will see ~{tok / 1e6:.3g}M tokens = {epochs:.3g} epochs"
                 + (f" at ~{r:,.0f} tok/s" if r else "")
                 + f", {tok / n_core(c):.3g} per network parameter of H {H}")
    return out, "; ".join(notes)


def measure_rate(cfg: ModelConfig, word_class, B: int, T: int, train_ids: np.ndarray,
                 steps: int = 3) -> float:
    """Training tokens/s of `cfg` here and now: `steps` timed optimizer steps (forward, backward,
    clipping, Adam) on the first window of the corpus after one untimed, the median; the run's
    own Generator is not touched."""
    from rnn_cli.optimizer import Optimizer, clip_gradients
    from rnn_cli.params import Params
    from rnn_cli.tasks.lm.network import Network

    rng = np.random.default_rng(0)
    p = Params(cfg, word_class=word_class).init(rng)
    g = p.zeros_like()
    net = Network(p, B, T)
    opt = Optimizer(TrainConfig(), len(p))
    n = min(T * B + 1, len(train_ids))
    ids = np.resize(np.asarray(train_ids[:n], np.int32), T * B + 1)
    x, y = ids[:-1].reshape(B, T).T.copy(), ids[1:].reshape(B, T).T.copy()
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        net.forward(x, y, net.draw_masks(rng, x))
        net.backward(g, x, y, 1.0 / (B * T))
        clip_gradients(g.flat, 5.0, "norm")
        opt.update(p.flat, g.flat)
        times.append(time.perf_counter() - t0)
    return B * T / float(np.median(times[1:]))
