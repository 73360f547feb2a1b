"""`rnn-cli train`: flags -> configs, the progress display, saving, Ctrl-C and --resume."""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time

from rnn_cli.config import LR_SCHEDULES, UPDATES, ModelConfig, TrainConfig, use_sparse
from rnn_cli.errors import UsageError
from rnn_cli.flags import finite_float, nonneg_int, positive_int

ARCH = ("level", "cell", "activation", "hidden", "layers", "dropout", "embed", "tie_weights",
        "softmax", "classes")
VOCAB_FLAGS = {"vocab_size": "vocab_max", "min_count": "min_count", "lower": "lower",
               "tokenizer": "tokenizer"}
TRAIN_FLAGS = ("batch_size", "seq_len", "lr", "optim", "clip", "clip_mode", "steps", "epochs",
               "max_seconds", "val_frac", "eval_every", "sample_every", "seed", "lr_decay", "lr_schedule", "valid",
               "test", "updates")
DEFAULT_EPOCHS = 10  # when no stopping rule is given
DEFAULT_CELL = "gru"  # what `rnn-cli train` uses without --cell (README "Cells, layers and ...")


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


def add_parser(sub, formatter, common) -> None:
    m, t = ModelConfig(), TrainConfig()
    p = sub.add_parser("train", formatter_class=formatter, help="train a model on a text file",
                       description="Train a character- or word-level RNN language model on a "
                                   "plain text file and save it (atomically) as one .npz file.")
    p.set_defaults(handler=run)
    p.add_argument("corpus", metavar="CORPUS",
                   help="UTF-8 text file, or - for standard input; of any size: it is encoded "
                        "once into token ids, cached in $RNN_CLI_HOME/cache and memory-mapped")
    g = p.add_argument_group("input and output")
    g.add_argument("-o", "--out", metavar="PATH",
                   help="model file to write (default: the model store, $RNN_CLI_HOME/LEVEL.npz)")
    g.add_argument("--resume", action="store_true",
                   help="continue training the model at --out (steps, optimizer, data position)")
    g.add_argument("--encoding", default="utf-8", help="text encoding of CORPUS (default: utf-8)")
    g.add_argument("--errors", choices=("strict", "replace", "ignore"), default="strict",
                   help="what to do with undecodable bytes (default: strict)")
    g.add_argument("--json", action="store_true",
                   help="print a JSON summary line on stdout at the end")
    g = p.add_argument_group("model")
    g.add_argument("--level", choices=("char", "word"), help=f"tokens (default: {m.level})")
    g.add_argument("--cell", choices=("rnn", "gru", "lstm"),
                   help=f"recurrent cell: rnn (the seed's), gru (PyTorch's GRU), lstm (PyTorch's "
                        f"LSTM) (default: {DEFAULT_CELL})")
    g.add_argument("--activation", choices=("tanh", "relu"),
                   help=f"g of the cell a<t> = g(W_aa a<t-1> + W_ax x<t> + b_a) "
                        f"(default: {m.activation})")
    g.add_argument("--hidden", type=positive_int,
                   help="H, hidden units (default: by corpus size: 128 below 100k tokens, 256 "
                        "below 3M (512 from 500k at char level), else 512)")
    g.add_argument("--layers", type=positive_int, help=f"stacked layers (default: {m.layers})")
    g.add_argument("--dropout", type=finite_float(0.0, False, 0.99),
                   help="inverted dropout between layers and before the output layer, during "
                        "training only (default from 500k training tokens: 0.3 at char level, 0.1 "
                        "at word level; else 0)")
    g.add_argument("--embed", type=nonneg_int, metavar="E",
                   help="learn an E-wide input embedding (default: 0, one-hot input)")
    g.add_argument("--tie-weights", action="store_true", default=None,
                   help="share the embedding with the output layer (needs --embed equal to "
                        "--hidden; implies --embed H when --embed is not given; default: on at "
                        "word level unless --embed is given)")
    g.add_argument("--softmax", choices=("full", "classes"),
                   help="output layer: full, a softmax over the vocabulary; classes, P(class) "
                        "P(word | class) with classes by frequency (Mikolov 2011), exactly "
                        "normalised and ~V/(2 sqrt V) times less output work (default: classes "
                        "at word level from V = 1000, else full)")
    g.add_argument("--classes", type=positive_int, metavar="C",
                   help="word classes of --softmax classes, at most (default: sqrt(V), from "
                        "V 10k V/100)")
    g.add_argument("--vocab-size", type=positive_int,
                   help="keep the m most frequent tokens, the rest become <UNK> "
                        f"(default: {t.vocab_max} at word level, all characters at char level)")
    g.add_argument("--min-count", type=positive_int,
                   help="drop tokens seen fewer times (default: 1)")
    g.add_argument("--lower", action="store_true", default=None, help="lower-case the text")
    g.add_argument("--tokenizer", choices=("words", "space"),
                   help="word level: 'words' splits punctuation off words; 'space' splits on "
                        "whitespace only, for pre-tokenized text such as Penn Treebank "
                        "(default: words)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--batch-size", type=positive_int,
                   help=f"B, parallel streams (default: {t.batch_size})")
    g.add_argument("--seq-len", type=positive_int,
                   help=f"T, steps of backpropagation through time (default: {t.seq_len})")
    g.add_argument("--lr", type=finite_float(0.0, True, 1e3),
                   help=f"learning rate (default: {t.lr:g})")
    g.add_argument("--optim", choices=("adam", "sgd", "adagrad", "rmsprop"),
                   help=f"update rule (default: {t.optim})")
    g.add_argument("--clip", type=finite_float(0.0, False),
                   help=f"gradient clipping threshold, 0 = off (default: {t.clip:g})")
    g.add_argument("--clip-mode", choices=("norm", "value"),
                   help="norm: global L2 norm; value: each element, as in the course notes "
                        "(default: norm)")
    g.add_argument("--lr-decay", type=finite_float(0.0, False), metavar="F",
                   help="divide the learning rate by F whenever the validation loss does not "
                        "improve (word_language_model uses 4; default: 0, off)")
    g.add_argument("--lr-schedule", choices=LR_SCHEDULES,
                   help="the learning rate over the run: cosine falls from --lr to 0 as the run "
                        "nears its end (the first of --steps, --epochs, --max-seconds); constant "
                        f"keeps it (default: {t.lr_schedule})")
    g.add_argument("--updates", choices=UPDATES,
                   help="the vocabulary-sized blocks (input columns, embedding rows, the class "
                        "softmax's output rows): dense, every row every step; sparse, only the "
                        "rows of the window's words and their classes (Adam and RMSprop then lazy, "
                        "as torch's SparseAdam: README \"Sparse updates\"); auto, sparse at word "
                        "level with --softmax classes from V = 20,000 (default: auto)")
    g = p.add_argument_group("stopping and reporting")
    g.add_argument("--steps", type=positive_int, help="stop after this many optimizer steps "
                   "in total (with --resume: counting the earlier ones)")
    g.add_argument("--epochs", type=finite_float(0.0, True),
                   help=f"stop after this many passes over the text (default: {DEFAULT_EPOCHS} "
                        "when neither --steps nor --max-seconds is given)")
    g.add_argument("--max-seconds", type=finite_float(0.0, True),
                   help="stop after this many seconds of this run")
    g.add_argument("--val-frac", type=finite_float(0.0, False, 0.5),
                   help=f"fraction at the end of the text held out for validation "
                        f"(default: {t.val_frac:g})")
    g.add_argument("--valid", metavar="FILE",
                   help="validate on this file instead of the tail of CORPUS (--val-frac ignored)")
    g.add_argument("--test", metavar="FILE",
                   help="at the end, report the loss and perplexity of the best model on FILE "
                        "(test_loss, test_ppl in --json)")
    g.add_argument("--eval-every", type=positive_int,
                   help=f"validate (and save) every N steps; without this flag every "
                        f"{t.eval_every} steps, skipping a validation while validating would take "
                        f"over 10%% of the run's time (the last one always runs)")
    g.add_argument("--sample-every", type=nonneg_int,
                   help="show a short sample on stderr every N steps (default: off)")
    common(p)


def _configs(args, resumed):
    """ModelConfig and TrainConfig from flags, over the resumed model's values, over defaults."""
    given = {k: v for k, v in vars(args).items() if v is not None}
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
    return ModelConfig(**mvals), TrainConfig(**tvals).validate(), given


def run(args, ui) -> int:
    import numpy as np

    from rnn_cli import checkpoint, corpus, idcache
    from rnn_cli.kernels import _jit
    from rnn_cli.params import Params
    from rnn_cli.train import EVAL_BUDGET, Trainer, warm_up

    from rnn_cli.cuda.backend import resolve as resolve_device

    device = resolve_device(args.device, ui.warn)  # no numba.cuda import for --device cpu
    if args.threads:
        n = _jit.set_threads(args.threads)
        if n < args.threads:
            ui.warn(f"--threads {args.threads} is more than the {n} cores here; using {n}")
    level_hint = args.level or "char"
    out = args.out or checkpoint.store_path(level_hint)
    resumed = checkpoint.load(out, args.level) if args.resume else None
    mcfg, tcfg, given = _configs(args, resumed)
    if args.out is None and resumed is None:
        out = checkpoint.store_path(mcfg.level)
    checkpoint.check_writable(out)
    vsize = tcfg.vocab_max if mcfg.level == "word" or "vocab_size" in given else None
    data = idcache.corpus_ids(args.corpus, args.encoding, args.errors, resumed=resumed,
                              level=mcfg.level, vocab_size=vsize, min_count=tcfg.min_count,
                              lower=tcfg.lower, tokenizer=tcfg.tokenizer)
    vocab, ids, info, unknown = data.vocab, data.ids, data.info, data.unknown
    ui.debug(f"token ids ({'cached' if data.cached else 'built'}): {data.path}")
    train_ids, val_ids = corpus.split_train_val(ids, tcfg.val_frac)
    val_ids = _extra_ids(tcfg.valid, vocab, args, ui, "validation") if tcfg.valid else val_ids
    test_ids = _extra_ids(tcfg.test, vocab, args, ui, "test") if tcfg.test else None
    B, T, adjusted = corpus.fit_batch_shape(len(train_ids), tcfg.batch_size, tcfg.seq_len)
    if adjusted:
        if resumed is not None:
            raise UsageError("the corpus no longer fits the resumed batch shape")
        ui.warn(f"the text is short: using --batch-size {B} --seq-len {T} "
                f"(asked {tcfg.batch_size} x {tcfg.seq_len})")
        tcfg = TrainConfig(**{**vars(tcfg), "batch_size": B, "seq_len": T})
    scaled = scaled_defaults(mcfg.level, len(train_ids), given) if resumed is None else {}
    word_class = None
    if resumed is None:
        from rnn_cli.classes import choose_softmax

        scaled_sm, word_class = choose_softmax(mcfg.level, given.get("softmax"),
                                               given.get("classes"), train_ids, len(vocab))
        scaled.update(scaled_sm)
    mcfg = ModelConfig(**{**vars(mcfg), **scaled, "vocab_size": len(vocab)}).validate()
    from rnn_cli.cuda.backend import for_model

    sparse = use_sparse(tcfg.updates, mcfg)
    device = for_model(device, args.device, mcfg, ui.warn, training=True, sparse=sparse)
    if scaled:
        ui.debug("defaults for this corpus: " + ", ".join(f"--{k.replace('_', '-')} {v}"
                                                          for k, v in scaled.items()))
    rng = np.random.default_rng(tcfg.seed)
    if resumed is not None:
        model = resumed
        model.train_cfg = tcfg
        if resumed.rng_state:
            rng.bit_generator.state = resumed.rng_state
    else:
        params = Params(mcfg, word_class=word_class).init(rng)
        model = checkpoint.Model(mcfg, vocab, params, tcfg,
                                 {"corpus": info, "unknown_tokens": int(unknown),
                                  "train_tokens": int(len(train_ids)),
                                  "val_tokens": int(len(val_ids))})
    ui.info(f"{info['name']}: {info['bytes']:,} bytes, {len(ids):,} {mcfg.level} tokens "
            f"({len(train_ids):,} train, {len(val_ids):,} validation), V = {len(vocab):,}"
            + (f", {unknown:,} mapped to <UNK>" if unknown else ""))
    with ui.err.status("compiling kernels (cached after the first run)…") if ui.interactive \
            else _null():
        secs = warm_up(mcfg, sparse=sparse)  # sparse implies the CPU (for_model)
        if device == "cuda":
            from rnn_cli.cuda import backend, train as cuda_train

            secs += cuda_train.warm_up(mcfg)
            ui.debug(f"device: {backend.describe()}")
    ui.debug(f"kernels ready in {secs:.2f} s")
    if tcfg.updates == "auto":
        ui.debug(f"--updates auto: {'sparse' if sparse else 'dense'}")
    if device == "cuda":
        if test_ids is not None:
            ui.warn("--test is scored on the CPU path only; ignored with --device cuda")
        trainer = cuda_train.CudaTrainer(model, tcfg, train_ids, val_ids, rng)
    else:
        trainer = Trainer(model, tcfg, train_ids, val_ids, rng, test_ids)
    # the default cadence keeps validation within its time budget; an explicit --eval-every (now,
    # or in the run being resumed, as the model file records) validates at every due step
    budget = EVAL_BUDGET if resumed is None else float(resumed.state.get("eval_budget", 0.0))
    trainer.eval_budget = (budget or None) if "eval_every" not in given else None
    trainer.model.state["eval_budget"] = trainer.eval_budget or 0.0
    return _train_loop(args, ui, trainer, out)


def _extra_ids(path, vocab, args, ui, what):
    """Ids of a --valid / --test file under the training vocabulary (unknown tokens -> <UNK>)."""
    from rnn_cli import idcache

    data = idcache.corpus_ids(path, args.encoding, args.errors, vocab=vocab)
    ui.info(f"{what}: {data.info['name']}, {len(data.ids):,} tokens"
            + (f", {data.unknown:,} mapped to <UNK>" if data.unknown else ""))
    return data.ids


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _StopFlag:
    """SIGINT/SIGTERM set a flag the trainer polls between steps; a second one aborts at once."""

    def __init__(self):
        self.signum = 0
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum:
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False

    def __call__(self) -> bool:
        return bool(self.signum)


def _fmt(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


def _train_loop(args, ui, trainer, out) -> int:
    import numpy as np

    from rnn_cli import checkpoint
    from rnn_cli.errors import ExitStatus, TrainingDiverged

    tcfg = trainer.tcfg
    preview = _Preview(trainer, ui, tcfg.sample_every)
    progress = ui.progress() if ui.interactive else None
    task, last = None, {"val": "-"}
    t_start = time.perf_counter()

    def on_event(kind, info):
        if kind == "eval":
            checkpoint.save(trainer.to_model(), out)
            last["val"] = _fmt(info["val_loss"])
            line = (f"step {info['step']:>7}  epoch {info['epoch']:.2f}  train {_fmt(info['train_loss'])}"
                    f"  val {last['val']}{'  *' if info['best'] else ''}")
            if progress is None:
                ui.info(line)
            else:
                progress.console.print(line, style="dim", highlight=False)
            return
        if progress is not None and (info["step"] % 5 == 0 or info["step"] == 1):
            progress.update(task, completed=info["progress"] * 1000, step=info["step"],
                            loss=_fmt(info["loss"]), val=last["val"],
                            rate=f"{info['tok_s'] / 1000:.0f}k tok/s")
        preview(info["step"])

    stop = _StopFlag()
    try:
        with stop, (progress or _null()):
            if progress is not None:
                task = progress.add_task("train", total=1000, step=trainer.step, loss="-",
                                         val="-", rate="")
            with np.errstate(all="ignore"):  # a diverging run is reported once, below
                summary = trainer.run(on_event, stop)
    except TrainingDiverged:
        checkpoint.save(trainer.to_model(with_resume=False), out) if not os.path.exists(out) \
            else None
        raise
    except KeyboardInterrupt:
        summary = None
    checkpoint.save(trainer.to_model(), out)
    if summary is None or summary["reason"] == "interrupted":
        ui.error(f"interrupted at step {trainer.step}; the model is saved in {out}",
                 hint=f"continue with `rnn-cli train {args.corpus} --resume -o {out}`")
        return int(ExitStatus.INTERRUPTED)
    summary.update(model=out, best_val_loss=trainer.best_val,
                   wall_seconds=round(time.perf_counter() - t_start, 3))
    ui.info(f"saved {out}: {summary['steps']} steps, {summary['tokens_per_sec']:,.0f} tok/s, "
            f"train {_fmt(summary['train_loss'])}, val {_fmt(summary['val_loss'])} nats/token "
            f"(best {_fmt(trainer.best_val)})"
            + (f"; test {_fmt(summary['test_loss'])} nats/token, perplexity "
               f"{summary['test_ppl']:.2f}" if "test_loss" in summary else ""))
    if args.json:
        sys.stdout.write(json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v)
                                     for k, v in summary.items()}) + "\n")
        sys.stdout.flush()
    return 0


class _Preview:
    """A short dim sample on stderr every N steps (karpathy/char-rnn habit)."""

    def __init__(self, trainer, ui, every: int):
        self.trainer, self.ui, self.every = trainer, ui, every

    def __call__(self, step: int) -> None:
        if not self.every or step % self.every:
            return
        import numpy as np

        from rnn_cli.checkpoint import Model
        from rnn_cli.sample import SampleConfig, Sampler

        m = self.trainer.model
        live = Model(m.cfg, m.vocab, self.trainer.params)
        s = Sampler(live)
        x0, _ = s.prime("")
        n = 200 if m.cfg.level == "char" else 40
        text = "".join(s.generate(SampleConfig(length=n), np.random.default_rng(step), x0))
        self.ui.sample_preview(text.rstrip("\n"))
