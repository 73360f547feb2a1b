"""Parameters as one flat float32 buffer with named views (llm.c `ParameterTensors` habit).

Gradients and optimizer moments get the same layout, so clipping and updates are single loops over
flat buffers. Names follow the seed (W_ax, W_aa, b_a, W_ya, b_y); stacked layers share a block:

    W_ax     (G*H, V)          layer 0 input weights; a one-hot input is a column gather
    W_ax_up  (L-1, G*H, H)     input weights of layers 1..L-1 (they read a<t> of the layer below)
    W_aa     (L, G*H, H)       recurrent weights
    b_a      (L, G*H)
    W_ya     (V, H)            output layer: y_hat = softmax(W_ya a + b_y)
    b_y      (V,)

G is the number of gate blocks of the cell (1 for the seed's RNN).
"""

from __future__ import annotations

import math

import numpy as np

from rnn_cli.config import ModelConfig

DTYPE = np.float32


def param_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Name -> shape, in buffer order."""
    GH, H, V, L = cfg.gates * cfg.hidden, cfg.hidden, cfg.vocab_size, cfg.layers
    return {
        "W_ax": (GH, V),
        "W_ax_up": (L - 1, GH, H),
        "W_aa": (L, GH, H),
        "b_a": (L, GH),
        "W_ya": (V, H),
        "b_y": (V,),
    }


class Params:
    """A flat buffer and its named views; `p.W_aa` is a view, writes go to `p.flat`."""

    def __init__(self, cfg: ModelConfig, dtype=DTYPE):
        self.cfg = cfg
        self.shapes = param_shapes(cfg)
        sizes = [math.prod(s) for s in self.shapes.values()]
        self.flat = np.zeros(sum(sizes), dtype=dtype)
        self.views: dict[str, np.ndarray] = {}
        offset = 0
        for (name, shape), n in zip(self.shapes.items(), sizes):
            self.views[name] = self.flat[offset:offset + n].reshape(shape)
            offset += n

    def __getattr__(self, name):
        views = self.__dict__.get("views")
        if views is not None and name in views:
            return views[name]
        raise AttributeError(name)

    def __len__(self) -> int:
        return self.flat.shape[0]

    def zeros_like(self) -> "Params":
        return Params(self.cfg, self.flat.dtype)

    def copy(self, dtype=None) -> "Params":
        other = Params(self.cfg, dtype or self.flat.dtype)
        other.flat[:] = self.flat
        return other

    def init(self, rng: np.random.Generator) -> "Params":
        """PyTorch's nn.RNN scheme: every weight U(-1/sqrt(H), 1/sqrt(H)); biases zero."""
        bound = 1.0 / math.sqrt(self.cfg.hidden)
        for name, view in self.views.items():
            if name.startswith("W_"):
                view[...] = rng.uniform(-bound, bound, size=view.shape)
            else:
                view[...] = 0.0
        return self
