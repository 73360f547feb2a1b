"""`--updates sparse`: a training step's zeroing, clipping and update over the rows it touched.

In a window of a word model the vocabulary-indexed blocks have a non-zero gradient only in the
rows of its words: a one-hot W_ax's columns and W_emb's rows of the input ids, and with the class
softmax W_ya's and b_y's rows of the members of the targets' classes (tied: W_emb, both). The
dense path still zeroes, clips and updates all V rows every step; at V 100k that was two thirds
of a step (README "Class softmax"). Here those blocks are handled row by row
(`kernels.rows`), everything else as before:

- zeroing: the network's backward leaves these blocks alone (`Network.zeroed_rows`), as they
  arrive zero: each update zeroes the rows it has read.
- clipping: the global norm over the dense part and the touched rows is the same norm (the other
  rows are zero), summed in another order.
- the update: SGD and Adagrad give what the dense rule gives (a zero gradient changes nothing).
  Adam and RMSprop become lazy, as torch.optim.SparseAdam and TensorFlow's LazyAdam: a row's
  moments decay, and the row moves, only in steps that touch it, where the dense rule keeps
  moving an untouched row by its decaying momentum.
"""

from __future__ import annotations

import math

import numpy as np

from rnn_cli.kernels import output, rows
from rnn_cli.params import Params

IN, OUT = 1, 2  # which ids touch a block: the window's inputs, its targets' classes, or both


def row_blocks(params: Params) -> dict[str, tuple[int, int, int, int, int]]:
    """name -> (start, si, sj, width, sides) of the blocks updated by rows (`kernels.rows`)."""
    cfg, sp = params.cfg, params.spans
    V, H, GH = cfg.vocab_size, cfg.hidden, cfg.gates * cfg.hidden
    classes = cfg.softmax == "classes"
    blocks = {}
    if cfg.embed:
        if not (cfg.tie_weights and not classes):  # tied to a full softmax's W_ya: all rows
            sides = IN | (OUT if cfg.tie_weights else 0)
            blocks["W_emb"] = (sp["W_emb"][0], cfg.embed, 1, cfg.embed, sides)
    else:  # a one-hot input: word k's weights are column k of (GH, V)
        blocks["W_ax"] = (sp["W_ax"][0], 1, V, GH, IN)
    if classes:
        if not cfg.tie_weights:
            blocks["W_ya"] = (sp["W_ya"][0], H, 1, H, OUT)
        blocks["b_y"] = (sp["b_y"][0], 1, 1, 1, OUT)
    return blocks


class RowUpdates:
    """The sparse path of one trainer: `touch` each window, then `clip` and `update`."""

    def __init__(self, params: Params, pieces: list[tuple[int, int, float]], net):
        cfg = params.cfg
        V = cfg.vocab_size
        self.blocks = row_blocks(params)
        spans = sorted((params.spans[name] for name in self.blocks))
        self.dense = _minus(pieces, spans)  # (start, stop, lr factor) outside the blocks
        self.factor = {name: next(f for a, b, f in pieces if a <= blk[0] < b)
                       for name, blk in self.blocks.items()}
        self.mark = np.zeros(V, np.uint8)
        self.ids = {s: np.zeros(V, np.int32) for s in (IN, OUT, IN | OUT)}
        self.n = {s: 0 for s in self.ids}
        self.net = net
        self.scale = 1.0  # the clipping factor `update` applies to the rows
        if cfg.softmax == "classes":
            self.cmark = np.zeros(net.offsets.shape[0] - 1, np.uint8)

    def touch(self, x: np.ndarray, y: np.ndarray) -> None:
        """List the rows the window (x, y (T, B) int32) gives a gradient."""
        net, need = self.net, {blk[4] for blk in self.blocks.values()}
        yr = y.reshape(-1)
        for sides in need:
            ids, n = self.ids[sides], 0
            if sides & IN:
                n = rows.add_inputs(ids, n, self.mark, x)
            if sides & OUT:
                n = rows.add_classes(ids, n, self.mark, self.cmark, yr, net.word_class,
                                     net.members, net.offsets)
            rows.unmark(self.mark, ids, n)
            self.n[sides] = n

    def _each(self):
        for name, (start, si, sj, width, sides) in self.blocks.items():
            yield name, (start, si, sj, width, self.ids[sides], self.n[sides])

    def clip(self, g: np.ndarray, clip: float, mode: str) -> float:
        """`optimizer.clip_gradients` over the dense part and the touched rows; returns the norm.
        With --clip-mode norm the rows are scaled later, by `update` (`self.scale`)."""
        s = sum(output.sum_squares(g[a:b]) for a, b, _ in self.dense)
        s += sum(rows.rows_sumsq(g, *blk) for _, blk in self._each())
        norm = math.sqrt(s)
        self.scale = 1.0
        if clip > 0 and (mode == "value" or norm > clip):
            for a, b, _ in self.dense:
                if mode == "norm":
                    output.scale_inplace(g[a:b], clip / norm)
                else:
                    output.clip_values(g[a:b], clip)
            if mode == "norm":
                self.scale = clip / norm
            else:
                for _, blk in self._each():
                    rows.rows_clip_values(g, *blk, clip)
        return norm

    def update(self, name: str, lr: float, t: int, p: np.ndarray, g: np.ndarray, s: dict,
               betas: tuple[float, float, float]) -> None:
        """Step t of the update rule `name` on the touched rows (moments in `s`), which are left
        zero in g; the caller (`optimizer.Optimizer.update`) runs the dense rule on `self.dense`."""
        b1, b2, eps = betas
        c1, c2 = 1.0 - b1 ** t, 1.0 - b2 ** t
        c = self.scale
        for block, blk in self._each():
            f = lr * self.factor[block]
            if name == "adam":
                rows.rows_adam(p, g, s["m"], s["v"], *blk, c, f * math.sqrt(c2) / c1, b1, b2,
                               eps * math.sqrt(c2))
            elif name == "adagrad":
                rows.rows_adagrad(p, g, s["h"], *blk, c, f, 1e-8)
            elif name == "rmsprop":
                rows.rows_rmsprop(p, g, s["h"], *blk, c, f, 0.99, 1e-8)
            else:
                rows.rows_sgd(p, g, *blk, c, f)


def _minus(pieces, spans):
    """The parts of `pieces` (start, stop, factor) outside the sorted (start, stop) `spans`."""
    out = []
    for a, b, f in pieces:
        for s, e in spans:
            if e <= a or s >= b:
                continue
            if s > a:
                out.append((a, s, f))
            a = max(a, e)
        if a < b:
            out.append((a, b, f))
    return out
