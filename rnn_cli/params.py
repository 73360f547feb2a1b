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

`ParamSet` is the general form, for the task models (classifier, tagger, translator): the same
flat buffer and named views, from an explicit `{name: shape}` dict in buffer order; their blocks
are named by the task (the shared encoder's are `<prefix>W_ax_l0`, ..., see `encoder.py`), and
names may hold dots, so views are read with `p["enc.W_aa_l0"]` (attribute access works for plain
names). `Params` is the language model's case of it: its shapes come from a `ModelConfig`.
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


class ParamSet:
    """A flat buffer and its named views, built from `shapes` ({name: shape}, in buffer order).

    `p.flat` holds every parameter; `p.views[name]` (also `p[name]`, and `p.name` for names
    that are identifiers) is a view of it, so writes through a view land in the buffer. `spans`
    gives each block's (start, stop) in the buffer. `aliases` ({name: target}) adds views that
    share another block's memory (the LM's tied output layer) and take no room of their own.
    Gradients and optimizer moments use a twin of the same layout (`zeros_like`)."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], dtype=DTYPE,
                 aliases: dict[str, str] | None = None):
        self.shapes = {name: tuple(int(d) for d in shape) for name, shape in shapes.items()}
        self.aliases = dict(aliases or {})
        sizes = [math.prod(s) for s in self.shapes.values()]
        self.flat = np.zeros(sum(sizes), dtype=dtype)
        self.views: dict[str, np.ndarray] = {}
        self.spans: dict[str, tuple[int, int]] = {}  # name -> (start, stop) in the flat buffer
        offset = 0
        for (name, shape), n in zip(self.shapes.items(), sizes):
            self.views[name] = self.flat[offset:offset + n].reshape(shape)
            self.spans[name] = (offset, offset + n)
            offset += n
        for name, target in self.aliases.items():
            self.views[name] = self.views[target]

    def __getattr__(self, name):
        views = self.__dict__.get("views")
        if views is not None and name in views:
            return views[name]
        raise AttributeError(name)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.views[name]

    def __len__(self) -> int:
        return self.flat.shape[0]

    def _new(self, dtype) -> "ParamSet":
        """An all-zero buffer of the same layout (subclasses keep their own type)."""
        return ParamSet(self.shapes, dtype, self.aliases)

    def zeros_like(self) -> "ParamSet":
        return self._new(self.flat.dtype)

    def copy(self, dtype=None) -> "ParamSet":
        other = self._new(dtype or self.flat.dtype)
        other.flat[:] = self.flat
        return other


class Params(ParamSet):
    """The language model's parameters; `p.W_aa` is a view, writes go to `p.flat`."""

    def __init__(self, cfg: ModelConfig, dtype=DTYPE, word_class: np.ndarray | None = None):
        self.cfg = cfg
        self.word_class = word_class  # (V,) int32 with --softmax classes
        shapes = param_shapes(cfg)
        # tied: the output layer reads the embedding
        super().__init__(shapes, dtype, None if "W_ya" in shapes else {"W_ya": "W_emb"})

    def _new(self, dtype) -> "Params":
        return Params(self.cfg, dtype, self.word_class)

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


class Buffers:
    """Flat storages of one dtype that grow to the largest request; `view(key, shape)` returns
    a contiguous prefix of the storage `key` in that shape (the BLAS kernels need contiguity)."""

    def __init__(self, dtype):
        self.dtype, self.bufs = dtype, {}

    def view(self, key, shape) -> np.ndarray:
        n = math.prod(shape)
        buf = self.bufs.get(key)
        if buf is None or buf.shape[0] < n:
            buf = self.bufs[key] = np.zeros(n, self.dtype)
        return buf[:n].reshape(shape)
