"""The optimizer: update rules over the flat parameter buffer, their per-block learning rates, and
gradient clipping. The trainer (`train.py`) and the CUDA trainer (`cuda/train.py`) drive it; the
compiled rules are `kernels.optim` (`cuda.optim` on the device), the sparse row rules `sparse.py`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from rnn_cli.config import TrainConfig
from rnn_cli.kernels import optim, output
from rnn_cli.params import Params

if TYPE_CHECKING:
    from rnn_cli.tasks.lm.sparse import RowUpdates

# A one-hot input's W_ax is the embedding and the input weights in one block. PyTorch's embedding
# times input weights moves the input term much faster under Adam than one block moving lr per
# entry. Held-out nats/char after 600 steps (H 256, tiny Shakespeare, Adam 2e-3) of the one-hot
# RNN at 1x, 8x, 16x, 32x, 64x: 1.872, 1.781, 1.765, 1.757-1.763, 1.777, torch's RNN with its
# embedding 1.769-1.779; the one-hot GRU at 32x 1.666, torch's GRU 1.689 (README, "Initialisation").
# Adaptive optimizers only: their steps are lr-sized whatever the gradient's scale; plain SGD
# keeps one rate.
ONE_HOT_LR_SCALE = 32.0
# torch's cells have two biases per gate, b_ih and b_hh, with equal gradients at every step, so
# under any of our optimizers their sum moves exactly as one bias at twice the learning rate; b_a
# is that sum (the GRU's candidate block holds b_in only: b_hn is its own parameter).
TWO_BIAS_LR_SCALE = 2.0


def lr_pieces(params: Params, optim_name: str) -> list[tuple[int, int, float]]:
    """(start, stop, factor of the learning rate) covering the flat buffer in order, adjacent
    pieces of one factor merged: b_a at TWO_BIAS_LR_SCALE, a one-hot W_ax at ONE_HOT_LR_SCALE."""
    cfg = params.cfg
    scaled = []
    if not cfg.embed and optim_name != "sgd":
        scaled.append((*params.spans["W_ax"], ONE_HOT_LR_SCALE))
    a, _ = params.spans["b_a"]
    GH, H = cfg.gates * cfg.hidden, cfg.hidden
    two = 2 * H if cfg.cell == "gru" else GH  # per layer: the gate rows with two torch biases
    scaled += [(a + l * GH, a + l * GH + two, TWO_BIAS_LR_SCALE) for l in range(cfg.layers)]
    pieces, pos = [], 0
    for s, e, f in sorted(scaled):
        pieces += [(pos, s, 1.0), (s, e, f)]
        pos = e
    pieces.append((pos, len(params), 1.0))
    merged = []
    for s, e, f in pieces:
        if e <= s:
            continue
        if merged and merged[-1][2] == f and merged[-1][1] == s:
            merged[-1] = (merged[-1][0], e, f)
        else:
            merged.append((s, e, f))
    return merged


class Optimizer:
    """Update rules on flat buffers; moments live in `self.state` (saved in the model file).

    `pieces` (from `lr_pieces`) give parts of the buffer their own factor of the learning rate."""

    def __init__(self, cfg: TrainConfig, n: int, state: dict | None = None, step: int = 0,
                 pieces: list[tuple[int, int, float]] | None = None):
        self.cfg, self.t = cfg, step
        self.pieces = pieces or [(0, n, 1.0)]
        self.base_lr = cfg.lr  # divided by --lr-decay on a validation plateau
        self.lr = cfg.lr  # the next update's rate: base_lr times the schedule's factor
        names = {"adam": ("m", "v"), "adagrad": ("h",), "rmsprop": ("h",), "sgd": ()}[cfg.optim]
        self.state = {k: np.zeros(n, np.float32) for k in names}
        for k, v in (state or {}).items():
            if k in self.state:
                self.state[k][:] = v

    def update(self, p: np.ndarray, g: np.ndarray, rows: RowUpdates | None = None) -> None:
        """One step; with `rows` (--updates sparse) its blocks only in the rows it touched."""
        self.t += 1
        pieces = self.pieces if rows is None else rows.dense
        apply_update(optim, self.cfg.optim, self.lr, self.t, pieces, p, g, self.state)
        if rows is not None:
            rows.update(self.cfg.optim, self.lr, self.t, p, g, self.state, ADAM_BETAS)


ADAM_BETAS = (0.9, 0.999, 1e-8)  # beta1, beta2, eps


def apply_update(rules, name: str, lr: float, t: int, pieces, p, g, s: dict) -> None:
    """Step `t` of optimizer `name` on each piece of the flat buffers p, g (moments in `s`), with
    the update kernels of `rules`: kernels.optim on the CPU, cuda.optim on the device."""
    b1, b2, eps = ADAM_BETAS
    c1, c2 = 1.0 - b1 ** t, 1.0 - b2 ** t
    for a, b, f in pieces:
        if name == "adam":
            rules.adam_update(p[a:b], g[a:b], s["m"][a:b], s["v"][a:b],
                              lr * f * math.sqrt(c2) / c1, b1, b2, eps * math.sqrt(c2))
        elif name == "adagrad":
            rules.adagrad_update(p[a:b], g[a:b], s["h"][a:b], lr * f, 1e-8)
        elif name == "rmsprop":
            rules.rmsprop_update(p[a:b], g[a:b], s["h"][a:b], lr * f, 0.99, 1e-8)
        else:
            rules.sgd_update(p[a:b], g[a:b], lr * f)


def lr_factor(schedule: str, progress: float) -> float:
    """The schedule's share of the base learning rate at `progress` (0..1) of the run."""
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def clip_gradients(g: np.ndarray, clip: float, mode: str) -> float:
    """Clip in place; returns the global L2 norm before clipping."""
    norm = math.sqrt(output.sum_squares(g))
    if clip > 0:
        if mode == "norm" and norm > clip:
            output.scale_inplace(g, clip / norm)
        elif mode == "value":
            output.clip_values(g, clip)
    return norm
