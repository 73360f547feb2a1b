"""Parameters as one flat float32 buffer with named views (llm.c `ParameterTensors` habit).

Gradients and optimizer moments get the same layout, so clipping and updates are single loops over
flat buffers. Names follow the seed (W_ax, W_aa, b_a, W_ya, b_y); stacked layers share a block:

    W_ax     (G*H, V)          layer 0 input weights; a one-hot input is a column gather
    W_ax_up  (L-1, G*H, H)     input weights of layers 1..L-1 (they read a<t> of the layer below)
    W_aa     (L, G*H, H)       recurrent weights
    b_a      (L, G*H)
    W_ya     (V, H)            output layer: y_hat = softmax(W_ya a + b_y)
    b_y      (V,)

G is the number of gate blocks of the cell (1 rnn, 3 gru [r, z, n], 4 lstm [i, f, g, o]). Blocks
that only some models have come after these, so the seed's layout is unchanged:

    b_hn     (L, H)            gru only: the candidate's recurrent bias (see kernels/gru.py)
    W_emb    (V, E)            with --embed E: input embedding; W_ax is then (G*H, E)
    W_ya                       with --tie-weights: not stored separately, a view of W_emb (E == H)
    W_yc     (C, H)            with --softmax classes: class logits W_yc a + b_c
    b_c      (C,)

A class-softmax model's word -> class map (`word_class`, (V,) int32, not trained) rides along on
the Params object (copies share it), so every Network built from the parameters can use it.
"""

from __future__ import annotations

import math

import numpy as np

from rnn_cli.config import ModelConfig

DTYPE = np.float32


def param_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Name -> shape, in buffer order."""
    GH, H, V, L = cfg.gates * cfg.hidden, cfg.hidden, cfg.vocab_size, cfg.layers
    E = getattr(cfg, "embed", 0)
    shapes = {
        "W_ax": (GH, E or V),
        "W_ax_up": (L - 1, GH, H),
        "W_aa": (L, GH, H),
        "b_a": (L, GH),
        "W_ya": (V, H),
        "b_y": (V,),
    }
    if cfg.cell == "gru":
        shapes["b_hn"] = (L, H)
    if E:
        shapes["W_emb"] = (V, E)
    if getattr(cfg, "tie_weights", False):
        del shapes["W_ya"]
    if getattr(cfg, "softmax", "full") == "classes":
        shapes["W_yc"] = (cfg.classes, H)
        shapes["b_c"] = (cfg.classes,)
    return shapes


class Params:
    """A flat buffer and its named views; `p.W_aa` is a view, writes go to `p.flat`."""

    def __init__(self, cfg: ModelConfig, dtype=DTYPE, word_class: np.ndarray | None = None):
        self.cfg = cfg
        self.word_class = word_class  # (V,) int32 with --softmax classes
        self.shapes = param_shapes(cfg)
        sizes = [math.prod(s) for s in self.shapes.values()]
        self.flat = np.zeros(sum(sizes), dtype=dtype)
        self.views: dict[str, np.ndarray] = {}
        self.spans: dict[str, tuple[int, int]] = {}  # name -> (start, stop) in the flat buffer
        offset = 0
        for (name, shape), n in zip(self.shapes.items(), sizes):
            self.views[name] = self.flat[offset:offset + n].reshape(shape)
            self.spans[name] = (offset, offset + n)
            offset += n
        if "W_ya" not in self.views:  # tied: the output layer reads the embedding
            self.views["W_ya"] = self.views["W_emb"]

    def __getattr__(self, name):
        views = self.__dict__.get("views")
        if views is not None and name in views:
            return views[name]
        raise AttributeError(name)

    def __len__(self) -> int:
        return self.flat.shape[0]

    def zeros_like(self) -> "Params":
        return Params(self.cfg, self.flat.dtype, self.word_class)

    def copy(self, dtype=None) -> "Params":
        other = Params(self.cfg, dtype or self.flat.dtype, self.word_class)
        other.flat[:] = self.flat
        return other

    def init(self, rng: np.random.Generator) -> "Params":
        """PyTorch's default initialisation of the same network, block by block (issue 11: with the
        same steps, our models learned less than torch's until the blocks were drawn as torch
        draws them; bench/PARITY.md). With k = 1/sqrt(H):

            W_ax, W_ax_up, W_aa, W_ya   U(-k, k)         nn.RNN/GRU/LSTM weights, nn.Linear
            b_a                         U(-k, k) + U(-k, k)   torch's two biases b_ih + b_hh,
                                        (the GRU's candidate block: U(-k, k), b_hn: U(-k, k))
            b_y, b_c                    U(-k, k)         nn.Linear's bias (b_c, W_yc: the class
                                                         softmax's class layer, like W_ya, b_y)
            W_emb                       N(0, 1)          nn.Embedding; tied to W_ya: U(-0.1, 0.1),
                                                         word_language_model's init_weights
            W_ax of a one-hot input     U(-1, 1)         it is the embedding and the input weights
                                                         at once: std 0.58, the size of torch's
                                                         N(0, 1) embedding times its input weights

        Blocks are drawn in buffer order from `rng`, so a seed fixes the model."""
        cfg = self.cfg
        k = 1.0 / math.sqrt(cfg.hidden)
        for name in self.shapes:
            view = self.views[name]
            if name == "W_emb":
                view[...] = (rng.uniform(-0.1, 0.1, size=view.shape) if cfg.tie_weights
                             else rng.standard_normal(size=view.shape))
            elif name == "W_ax" and not cfg.embed:
                view[...] = rng.uniform(-1.0, 1.0, size=view.shape)
            elif name.startswith("W_") or name in ("b_y", "b_hn", "b_c"):
                view[...] = rng.uniform(-k, k, size=view.shape)
            elif name == "b_a":
                view[...] = rng.uniform(-k, k, size=view.shape) + rng.uniform(-k, k, view.shape)
                if cfg.cell == "gru":  # b_in only: the candidate's recurrent bias is b_hn
                    H = cfg.hidden
                    view[:, 2 * H:] = rng.uniform(-k, k, size=(cfg.layers, H))
            else:
                raise AssertionError(f"no initialisation for {name}")
        return self
