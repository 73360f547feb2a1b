"""The language model's options: which flags it reads, their defaults (some scaled to the
corpus), and the checks of a resumed run against the model file. No numpy, no printing."""

from __future__ import annotations

from rnn_cli.config import ModelConfig, TrainConfig
from rnn_cli.errors import UsageError

ARCH = ("level", "cell", "activation", "hidden", "layers", "dropout", "embed", "tie_weights",
        "softmax", "classes", "dropout_mask", "embed_dropout", "weight_drop")
VOCAB_FLAGS = {"vocab_size": "vocab_max", "min_count": "min_count", "lower": "lower",
               "tokenizer": "tokenizer"}
TRAIN_FLAGS = ("batch_size", "seq_len", "lr", "optim", "clip", "clip_mode", "steps", "epochs",
               "max_seconds", "val_frac", "eval_every", "sample_every", "seed", "lr_decay",
               "lr_schedule", "valid", "test", "updates")
READ_FLAGS = ("encoding", "errors")  # how CORPUS (and --valid, --test) are decoded
OPTIONS = frozenset(ARCH + TRAIN_FLAGS + tuple(VOCAB_FLAGS) + READ_FLAGS)
DEFAULT_EPOCHS = 10  # when no stopping rule is given
DEFAULT_CELL = "gru"  # what `rnn-cli train` uses without --cell (README "Cells, layers and ...")
# Word-level defaults by budget (`budget.py`, docs/training.md "What train picks"):
# H candidates of a word model, each with its Adam rate (WORD_LRS: the rate of the largest H
# listed at or below it). At 8e-3 H 384 diverged in its 8th epoch (bench/WORDLM.md, 2026-12-05
# 08:32); at 4e-3 (H 384) and 3e-3 (H 512) 30-minute runs trained to the end and beat H 256
# (the same file, "Larger H at rates of their own").
LADDER = (128, 256, 384, 512)
WORD_LR = 8e-3  # Adam's rate of a new word model up to H 256 (issue 30: 2e-3 learned far slower)
WORD_LRS = ((0, WORD_LR), (384, 4e-3), (512, 3e-3))
TOKENS_PER_PARAM = 10.0  # the least a run must train per network parameter for its H to be chosen
# dropout by epochs seen: (fewer than this many epochs, rate); from the last on: DROPOUT_MAX,
# one step more from H 384 (bench/WORDLM.md: 0.5 from 12 epochs held the 30-minute H 256 run
# back; H 384 and 512 ran at 0.5)
DROPOUT_STEPS = ((1.0, 0.1), (3.0, 0.2), (6.0, 0.3))
DROPOUT_MAX = 0.4
DROPOUT_LARGE_H = 384


def word_lr(hidden: int) -> float:
    """Adam's default rate of a new word model of `hidden` units."""
    return [lr for h, lr in WORD_LRS if hidden >= h][-1]


def scaled_defaults(level: str, n_train: int, given: dict) -> dict:
    """Architecture defaults of `rnn-cli train` for a corpus of n_train tokens (flags given win):
    a GRU (the seed's RNN when --activation is given); H 128 below 100k tokens, 256 below 3M
    (at char level 512 from 500k), 512 above; dropout 0.1 from 500k tokens (at char level 0.3:
    bench/QUALITY.md); at word level an H-wide embedding tied to the output layer."""
    if given.get("cell", "rnn") != "rnn" and "activation" in given:
        raise UsageError(f"--activation applies to --cell rnn only (got --cell {given['cell']})",
                         hint="drop --activation: the gated cells use sigmoid and tanh gates")
    out = {"cell": "rnn" if "activation" in given else DEFAULT_CELL,  # --activation: the seed's
           "hidden": 128 if n_train < 100_000 else 512 if n_train >= 3_000_000 else
                     512 if level == "char" and n_train >= 500_000 else 256,
           "dropout": 0.0 if n_train < 500_000 else 0.3 if level == "char" else 0.1}
    if level == "word" and "embed" not in given and given.get("tie_weights") is not False:
        out["tie_weights"] = True
    out = {k: v for k, v in out.items() if k not in given}
    H = given.get("hidden", out.get("hidden"))
    if out.get("tie_weights") or (given.get("tie_weights") and "embed" not in given):
        out["embed"] = H
    return out


def configs(given: dict, resumed) -> tuple[ModelConfig, TrainConfig]:
    """ModelConfig and TrainConfig from the options given (no None values), over the resumed
    model's values, over the defaults. The scaled defaults come later (they need the corpus)."""
    if resumed is not None:
        for name in ARCH:
            if name in given and given[name] != getattr(resumed.cfg, name):
                raise UsageError(f"--{name.replace('_', '-')} {given[name]} conflicts with the "
                                 f"resumed model ({getattr(resumed.cfg, name)})",
                                 hint="drop the flag to keep the model's architecture, or train "
                                      "a new model without --resume")
        for flag, field in list(VOCAB_FLAGS.items()) + [("optim", "optim")]:
            if flag in given and given[flag] != getattr(resumed.train_cfg, field):
                raise UsageError(f"--{flag.replace('_', '-')} conflicts with the resumed model",
                                 hint="drop the flag when resuming")
        base_m, base_t = vars(resumed.cfg), vars(resumed.train_cfg)
    else:
        base_m, base_t = vars(ModelConfig()), vars(TrainConfig())
    mvals = {k: given.get(k, base_m[k]) for k in ARCH}
    tvals = {k: given.get(k, base_t[k]) for k in TRAIN_FLAGS}
    for flag, field in VOCAB_FLAGS.items():
        tvals[field] = given.get(flag, base_t[field])
    if resumed is None and "vocab_size" not in given and mvals["level"] == "char":
        tvals["vocab_max"] = TrainConfig().vocab_max  # char level keeps every character
    if not any(k in given for k in ("steps", "epochs", "max_seconds")) and resumed is None:
        tvals["epochs"] = DEFAULT_EPOCHS
    if given.get("valid"):
        tvals["val_frac"] = 0.0  # the separate file replaces the tail split
    mvals["vocab_size"] = base_m.get("vocab_size", 0)
    tvals = {k: (0 if v is None else v) for k, v in tvals.items()}
    if resumed is None and mvals.get("tie_weights") and "embed" not in given:
        mvals["embed"] = mvals["hidden"]  # tying needs E == H (validated after scaling)
    return ModelConfig(**mvals), TrainConfig(**tvals).validate()
