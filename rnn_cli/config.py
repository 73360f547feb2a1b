"""Configuration records: what a model is (`ModelConfig`) and how it is trained (`TrainConfig`).

Field names equal the CLI flags with `_` for `-` (`--seq-len` is `seq_len`); the model file stores
`ModelConfig` and `TrainConfig` under these names. `validate()` raises `UsageError` naming the flag.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from rnn_cli.errors import UsageError

LEVELS = ("char", "word")
CELLS = ("rnn", "gru", "lstm")
GATES = {"rnn": 1, "gru": 3, "lstm": 4}  # G, gate blocks per cell
ACTIVATIONS = ("tanh", "relu")
OPTIMIZERS = ("adam", "sgd", "adagrad", "rmsprop")
CLIP_MODES = ("norm", "value")
LR_SCHEDULES = ("cosine", "constant")  # --lr-schedule; the first is the default (README)
TOKENIZERS = ("words", "space")
SOFTMAXES = ("full", "classes")
UPDATES = ("auto", "dense", "sparse")  # --updates; auto: `use_sparse` decides
DROPOUT_MASKS = ("step", "locked")  # --dropout-mask; the first is what files before it trained


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _positive(obj, *names):
    for name in names:
        value = getattr(obj, name)
        if value is None or value < 1:
            raise UsageError(f"{_flag(name)} must be a positive integer (got {value})",
                             hint=f"pass {_flag(name)} 1 or more")


def _finite(obj, name, low=0.0, low_open=True, high=math.inf):
    value = getattr(obj, name)
    bad = not math.isfinite(value) or value < low or (low_open and value == low) or value > high
    if bad:
        rng = f"({low}, {high}]" if low_open else f"[{low}, {high}]"
        raise UsageError(f"{_flag(name)} must be a finite number in {rng} (got {value})",
                         hint=f"pass a value such as {_flag(name)} {getattr(type(obj)(), name)}")


@dataclass(frozen=True)
class ModelConfig:
    """The architecture; fixed for the life of a model file."""

    level: str = "char"  # char: Unicode code points; word: words and punctuation, <EOS> per line
    cell: str = "rnn"  # the seed's cell a<t> = g(W_aa a<t-1> + W_ax x<t> + b_a)
    activation: str = "tanh"  # g
    hidden: int = 256  # H, units per layer
    layers: int = 1  # L, stacked cells; layer l > 0 reads a<t> of layer l-1
    vocab_size: int = 0  # V, filled in from the vocabulary
    # Added with the gated cells; the defaults are the seed's behaviour, so older files still load.
    dropout: float = 0.0  # inverted dropout between layers and before the output (training only)
    embed: int = 0  # E, input embedding width; 0: one-hot input (a column gather of W_ax)
    tie_weights: bool = False  # output layer W_ya shares the embedding W_emb (needs E == H)
    # Added with the class softmax; older files are full-softmax models.
    softmax: str = "full"  # full: softmax over V; classes: P(class) P(word | class), `classes.py`
    classes: int = 0  # C, word classes of the class softmax (0 with the full softmax)
    # Added with issue 30 (regularisation of word models); the defaults are the earlier behaviour,
    # so older files load and resume exactly as they trained. All act in training only.
    dropout_mask: str = "step"  # step: a fresh --dropout mask at every time step; locked: one
    # mask per stream and window, the same at every step (variational dropout, Gal 2016)
    embed_dropout: float = 0.0  # drop whole words from the embedding, one draw per window
    weight_drop: float = 0.0  # DropConnect on W_aa (AWD-LSTM's WeightDrop), one mask per window

    def validate(self) -> "ModelConfig":
        for name, choices in (("level", LEVELS), ("cell", CELLS), ("activation", ACTIVATIONS),
                              ("softmax", SOFTMAXES), ("dropout_mask", DROPOUT_MASKS)):
            if getattr(self, name) not in choices:
                raise UsageError(f"{_flag(name)} must be one of {', '.join(choices)}"
                                 f" (got {getattr(self, name)!r})")
        _positive(self, "hidden", "layers")
        if not (math.isfinite(self.dropout) and 0.0 <= self.dropout < 1.0):
            raise UsageError(f"--dropout must be in [0, 1) (got {self.dropout})",
                             hint="e.g. --dropout 0.2; 0 turns it off")
        for name in ("embed_dropout", "weight_drop"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value < 1.0):
                raise UsageError(f"{_flag(name)} must be in [0, 1) (got {value})",
                                 hint=f"e.g. {_flag(name)} 0.1; 0 turns it off")
        if self.embed_dropout and not self.embed:
            raise UsageError("--embed-dropout drops rows of an embedding: it needs --embed E "
                             "(or --tie-weights)",
                             hint="pass --embed, or drop --embed-dropout (one-hot input)")
        if self.embed < 0:
            raise UsageError(f"--embed must be 0 (one-hot input) or positive (got {self.embed})")
        if self.tie_weights and self.embed != self.hidden:
            raise UsageError(f"--tie-weights needs --embed equal to --hidden (got --embed "
                             f"{self.embed}, --hidden {self.hidden})",
                             hint=f"pass --embed {self.hidden}, or drop --tie-weights")
        if self.softmax == "classes" and self.vocab_size and not \
                (1 <= self.classes <= self.vocab_size):
            raise UsageError(f"--classes must be in [1, V = {self.vocab_size}] (got "
                             f"{self.classes})",
                             hint="e.g. --classes 100 (default: sqrt(V), from V 10k V/100)")
        if self.softmax == "full" and self.classes:
            raise UsageError(f"--classes {self.classes} needs --softmax classes",
                             hint="pass --softmax classes, or drop --classes")
        return self

    @property
    def gates(self) -> int:
        return GATES[self.cell]

    @property
    def state_rows(self) -> int:
        """Rows of the carried state: h per layer, plus c per layer for the LSTM."""
        return 2 * self.layers if self.cell == "lstm" else self.layers


@dataclass(frozen=True)
class TrainConfig:
    """How to train: data split, batching, optimiser, stopping, reporting."""

    batch_size: int = 32  # B parallel streams
    seq_len: int = 64  # T steps of truncated backpropagation through time
    lr: float = 2e-3
    optim: str = "adam"
    clip: float = 5.0  # 0 disables clipping
    clip_mode: str = "norm"  # norm: global L2 norm; value: elementwise, as in the seed
    steps: int = 0  # 0: no limit by steps
    epochs: float = 0.0  # 0: no limit by epochs
    max_seconds: float = 0.0  # 0: no time limit
    val_frac: float = 0.1
    eval_every: int = 200
    sample_every: int = 0
    seed: int = 1234
    vocab_max: int = 10000  # --vocab-size of the CLI at word level (and char level, when set)
    min_count: int = 1
    lower: bool = False
    tokenizer: str = "words"
    lr_decay: float = 0.0  # divide lr by this when validation loss does not improve; 0: off
    # the learning rate over the run: "cosine" falls from --lr to 0 as the run nears its end (the
    # first of --steps, --epochs, --max-seconds reached); "constant" keeps it. Files written before
    # the field existed trained at a constant rate (checkpoint.load fills that in).
    lr_schedule: str = LR_SCHEDULES[0]
    valid: str = ""  # validation file instead of the tail split ("": use --val-frac)
    test: str = ""  # test file, scored with the best parameters at the end ("": none)
    # the vocabulary-indexed blocks updated in every row (dense) or in the rows a window touched
    # (sparse; `sparse.py`); files written before the field existed trained dense
    updates: str = UPDATES[0]
    extra: dict = field(default_factory=dict)

    def validate(self) -> "TrainConfig":
        _positive(self, "batch_size", "seq_len", "eval_every", "min_count")
        _finite(self, "lr", 0.0, low_open=True, high=1e3)
        _finite(self, "clip", 0.0, low_open=False)
        _finite(self, "val_frac", 0.0, low_open=False, high=0.5)
        _finite(self, "epochs", 0.0, low_open=False)
        _finite(self, "max_seconds", 0.0, low_open=False)
        if self.lr_decay and not (math.isfinite(self.lr_decay) and self.lr_decay > 1.0):
            raise UsageError(f"--lr-decay must be 0 (off) or a factor > 1 (got {self.lr_decay})",
                             hint="e.g. --lr-decay 4 divides the learning rate by 4 on a plateau")
        if self.steps < 0:
            raise UsageError(f"--steps must be 0 (no limit) or positive (got {self.steps})")
        if self.sample_every < 0:
            raise UsageError(f"--sample-every must be 0 (off) or positive (got {self.sample_every})")
        if self.vocab_max < 2:
            raise UsageError(f"--vocab-size must be at least 2 (got {self.vocab_max})",
                             hint="a language model needs at least two symbols to choose between")
        for name, choices in (("optim", OPTIMIZERS), ("clip_mode", CLIP_MODES),
                              ("lr_schedule", LR_SCHEDULES), ("tokenizer", TOKENIZERS),
                              ("updates", UPDATES)):
            if getattr(self, name) not in choices:
                raise UsageError(f"{_flag(name)} must be one of {', '.join(choices)}")
        return self


# `--updates auto` is sparse from this vocabulary size at word level with the class softmax
# (README "Sparse updates": at V 10k no faster, at V 30k 1.6x the dense steps; with the full
# softmax every W_ya row has a gradient at every step, so little is left to skip)
SPARSE_FROM_V = 20_000


def use_sparse(updates: str, cfg: ModelConfig) -> bool:
    """Whether a run with `--updates` (dense | sparse | auto) updates rows sparsely (sparse.py)."""
    if updates == "auto":
        return cfg.level == "word" and cfg.softmax == "classes" and cfg.vocab_size >= SPARSE_FROM_V
    return updates == "sparse"


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(cls, d: dict):
    """Build a config from a stored dict, ignoring unknown keys from newer minor versions."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})
