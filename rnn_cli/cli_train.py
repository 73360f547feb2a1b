"""`rnn-cli train`: the flags, the progress display, Ctrl-C/SIGTERM and --json.

What training does (the data, the defaults, the device, the model, the loop, the saves) is the
engine's one call, `rnn_cli.training.train`, which the Python API calls too; this module turns its
events into lines and a progress bar on stderr and its summary into --json on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys

from rnn_cli.config import DROPOUT_MASKS, LR_SCHEDULES, UPDATES, ModelConfig, TrainConfig
from rnn_cli.flags import add_decoding, add_task_groups, finite_float, nonneg_int, positive_int
from rnn_cli.tasks import KINDS
from rnn_cli.tasks.classify import options as C
from rnn_cli.tasks.lm.options import (DEFAULT_CELL, DEFAULT_EPOCHS, LADDER, TOKENS_PER_PARAM,
                                      WORD_LRS)
from rnn_cli.tasks.tag import options as G
from rnn_cli.tasks.translate import options as TR

# the parser's values that are not training options (how the CLI itself behaves)
CLI_ONLY = frozenset({"command", "handler", "corpus", "out", "resume", "task", "json", "quiet",
                      "verbose", "no_color", "traceback"})


def add_parser(sub, formatter, common) -> None:
    m, t = ModelConfig(), TrainConfig()
    p = sub.add_parser("train", formatter_class=formatter, help="train a model on a text file",
                       description="Train a character- or word-level RNN on a plain text file "
                                   "and save it (atomically) as one .npz file: a language model "
                                   "of the running text, (--task classify) a classifier of "
                                   "labelled lines, or (--task tag) a tagger of the tokens of "
                                   "CoNLL column or CoNLL-U files, or (--task translate) an "
                                   "encoder-decoder with attention on source<TAB>target lines. "
                                   "A flag names its task when only one task reads it; the "
                                   "defaults are the language model's unless a task's are "
                                   "named.")
    p.set_defaults(handler=run)
    p.add_argument("corpus", metavar="CORPUS", nargs="?",
                   help="UTF-8 text file, or - for standard input; a language model's of any "
                        "size: it is encoded once into token ids, cached in $RNN_CLI_HOME/cache "
                        "and memory-mapped; a classifier's: one example a line, `__label__X "
                        "text` (fastText's) or `X<TAB>text`; a tagger's: one token a line with "
                        "its tag in the last column (CoNLL), a blank line between sentences, or "
                        "CoNLL-U; a translator's: one pair a line, `source<TAB>target` (or --src "
                        "FILE --tgt FILE instead)")
    g = p.add_argument_group("input and output")
    g.add_argument("-o", "--out", metavar="PATH",
                   help="model file to write (default: the model store, $RNN_CLI_HOME/LEVEL.npz "
                        "for a language model, $RNN_CLI_HOME/TASK.npz for the other tasks, "
                        "e.g. classify.npz)")
    g.add_argument("--resume", action="store_true",
                   help="continue training the model at --out (steps, optimizer, data position; "
                        "its task is the file's)")
    add_decoding(g, "CORPUS")
    g.add_argument("--bad-lines", choices=("fail", "skip"),
                   help="classify: a line without a label or without text; translate: a line "
                        "without exactly one TAB, or with an empty side: fail names the lines "
                        "(one error), skip leaves them out with a warning that counts them "
                        "(default: fail)")
    g.add_argument("--json", action="store_true",
                   help="print a JSON summary line on stdout at the end")
    g = p.add_argument_group("model")
    g.add_argument("--task", choices=KINDS,
                   help="what to train: lm, a language model of the running text; classify, a "
                        "label per line; tag, a tag per token; translate, a target text per "
                        "source text (default: the model's kind with --resume, else guessed from "
                        "CORPUS's format: __label__ lines classify, CoNLL columns tag, "
                        "source<TAB>target lines translate, else lm)")
    g.add_argument("--level", choices=("char", "word"),
                   help=f"tokens (default: {m.level}; classify: {C.LEVEL}, which reads a "
                        "sentence in ~5x fewer steps and learns from whole words, or char when "
                        "most texts are single words such as names; translate: both sides, "
                        f"{TR.LEVEL}, unless --src-level / --tgt-level say)")
    g.add_argument("--cell", choices=("rnn", "gru", "lstm"),
                   help=f"recurrent cell: rnn (the seed's), gru (PyTorch's GRU), lstm (PyTorch's "
                        f"LSTM) (default: {DEFAULT_CELL}; classify: {C.CELL}; tag: {G.CELL}; "
                        f"translate: {TR.CELL}, gru or lstm, the encoder's and the decoder's)")
    g.add_argument("--activation", choices=("tanh", "relu"),
                   help=f"g of the cell a<t> = g(W_aa a<t-1> + W_ax x<t> + b_a) "
                        f"(default: {m.activation})")
    g.add_argument("--hidden", type=positive_int,
                   help="H, hidden units (per direction with --bidirectional) (default at word "
                        "level: by the tokens the run will see, the largest of "
                        f"{', '.join(map(str, LADDER))} trained on at least {TOKENS_PER_PARAM:g} "
                        "tokens per network parameter (docs/training.md); at char level by corpus "
                        f"size: 128 below 100k tokens, 256 below 500k, else 512; classify: "
                        f"{C.HIDDEN}; tag: {G.HIDDEN}, the word encoder; translate: "
                        f"{TR.HIDDEN}, each encoder direction)")
    g.add_argument("--layers", type=positive_int,
                   help=f"stacked layers (default: {m.layers}; classify: {C.LAYERS}; tag: "
                        f"{G.LAYERS}; translate: {TR.LAYERS}, the encoder's)")
    g.add_argument("--bidirectional", action=argparse.BooleanOptionalAction,
                   help="classify, tag, translate: read each text (the source) in both "
                        "directions too (the same kernels on the text reversed), the two states "
                        "side by side (default: on; --no-bidirectional: forward only)")
    g.add_argument("--dropout", type=finite_float(0.0, False, 0.99),
                   help="inverted dropout on the embedding output, between layers and before "
                        "the output layer, during training only (default at word level: by the "
                        "epochs the run will see, 0.1 below 1 up to 0.4 from 6, a step more from "
                        "H 384; at char level "
                        f"0.3 from 500k training tokens, else 0; classify: {C.DROPOUT:g}, also "
                        f"on the embeddings; tag: {G.DROPOUT:g}, on the word encoder's input "
                        "(word embedding and character vector), between its layers and before the "
                        f"output layer; translate: {TR.DROPOUT:g}, on both embeddings, between "
                        "encoder layers and on the output projection)")
    g.add_argument("--dropout-mask", choices=DROPOUT_MASKS,
                   help="step: a fresh --dropout mask at every time step; locked: one mask per "
                        "stream and window, the same at each of its steps (variational dropout, "
                        "Gal & Ghahramani 2016) (default: locked at word level, step at char "
                        "level)")
    g.add_argument("--embed-dropout", type=finite_float(0.0, False, 0.99), metavar="P",
                   help="drop whole words from the embedding, each vocabulary row once per "
                        "window (AWD-LSTM's embedding dropout; needs --embed; default: 0)")
    g.add_argument("--weight-drop", type=finite_float(0.0, False, 0.99), metavar="P",
                   help="DropConnect on the recurrent weights W_aa, one mask per window "
                        "(AWD-LSTM's WeightDrop; CPU only; default: 0)")
    g.add_argument("--embed", type=nonneg_int, metavar="E",
                   help="learn an E-wide input embedding (default: 0, one-hot input; "
                        f"classify: {C.EMBED}; tag: {G.EMBED}, the word embedding; "
                        f"translate: {TR.EMBED}, each side's)")
    g.add_argument("--max-len", type=nonneg_int, metavar="N",
                   help="classify: read at most N tokens of an example (the only cut; how many "
                        f"examples it cut is reported); 0: no limit (default: {C.MAX_LEN}); "
                        "tag: cut training sentences to N tokens, reported (default: "
                        f"{G.MAX_LEN}, never; `rnn-cli tag` never cuts); translate: a training "
                        "pair with a side of more than N tokens (<EOS> counted) is left out, and "
                        "counted, as cutting it would teach a wrong translation; a longer source "
                        f"to translate is cut (default: {TR.MAX_LEN})")
    g.add_argument("--tie-weights", action=argparse.BooleanOptionalAction,
                   help="share the embedding with the output layer (needs --embed equal to "
                        "--hidden; implies --embed H when --embed is not given; default: on at "
                        "word level unless --embed is given; translate: the target embedding, "
                        "needs --proj equal to --embed, on by default: --embed alone sets --proj, "
                        "a --proj of its own unties them; --no-tie-weights: off)")
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
                   help="drop tokens seen fewer times (default: 1; tag: "
                        f"{G.MIN_COUNT}, words seen fewer times are <UNK> for the word "
                        "embedding, their characters still read)")
    g.add_argument("--lower", action=argparse.BooleanOptionalAction,
                   help=f"lower-case the text (default: off; classify: "
                        f"{'on' if C.LOWER else 'off'}; tag: {'on' if G.LOWER else 'off'}, "
                        "for the word embedding only: the characters keep their case; "
                        "--no-lower keeps the case)")
    g.add_argument("--tokenizer", choices=("words", "space"),
                   help="word level: 'words' splits punctuation off words; 'space' splits on "
                        "whitespace only, for pre-tokenized text such as Penn Treebank "
                        "(default: words)")
    add_task_groups(p)  # classification, tagging, translation
    g = p.add_argument_group("optimisation")
    word_rates = ", ".join(f"{lr:g} from {h}" if h else f"{lr:g}" for h, lr in WORD_LRS)
    g.add_argument("--batch-size", type=positive_int,
                   help=f"B, parallel streams of a language model; examples per batch of the "
                        f"other tasks (default: {t.batch_size}; tag: {G.BATCH_SIZE} sentences; "
                        f"translate: {TR.BATCH_SIZE} sentence pairs)")
    g.add_argument("--seq-len", type=positive_int,
                   help=f"T, steps of backpropagation through time (default: {t.seq_len})")
    g.add_argument("--lr", type=finite_float(0.0, True, 1e3),
                   help=f"learning rate (default: {t.lr:g}; for a new word-level model with "
                        f"Adam, by H: {word_rates})")
    g.add_argument("--optim", choices=("adam", "sgd", "adagrad", "rmsprop"),
                   help=f"update rule (default: {t.optim})")
    g.add_argument("--clip", type=finite_float(0.0, False),
                   help=f"gradient clipping threshold, 0 = off (default: {t.clip:g}; "
                        f"translate: {TR.CLIP:g})")
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
                   help=f"stop after this many passes over the text (default: {DEFAULT_EPOCHS}; "
                        f"classify: {C.EPOCHS:g} over the examples; tag: {G.EPOCHS:g} over the "
                        f"sentences; translate: {TR.EPOCHS:g} over the pairs; when neither --steps "
                        "nor --max-seconds is given)")
    g.add_argument("--max-seconds", type=finite_float(0.0, True),
                   help="stop after this many seconds of this run")
    g.add_argument("--val-frac", type=finite_float(0.0, False, 0.5),
                   help=f"fraction held out for validation: the end of the text; classify, tag: "
                        f"a seeded random choice of the examples (default: {t.val_frac:g})")
    g.add_argument("--valid", metavar="FILE",
                   help="validate on this file instead of a part of CORPUS (--val-frac ignored)")
    g.add_argument("--test", metavar="FILE",
                   help="at the end, report the loss and perplexity of the best model on FILE "
                        "(test_loss, test_ppl in --json); classify: its accuracy and macro-F1 "
                        "(test_accuracy, test_macro_f1, test_metrics); tag: its token accuracy "
                        "and, for entity tags, entity precision / recall / F1 (test_f1, ...); "
                        "translate: BLEU, chrF, exact match, perplexity (test_bleu, ...)")
    g.add_argument("--metric", metavar="NAME",
                   help="the validation metric that picks the model kept: classify "
                        f"{', '.join(C.METRICS)} (default: {C.METRICS[0]}); tag "
                        f"{', '.join(G.METRICS)} (default: f1 for BIO/IOB1/BIOES tags, else "
                        "accuracy); translate "
                        f"{', '.join(TR.METRICS)} (default: auto, exact match when most targets "
                        "are at most 3 words, else BLEU, else (no sacrebleu) loss); higher is "
                        "better, but for loss. A language model keeps its lowest validation loss")
    g.add_argument("--patience", type=nonneg_int, metavar="N",
                   help="classify, tag, translate: stop after N validations in a row without "
                        f"a better --metric (default: 0, never; tag: {G.PATIENCE})")
    g.add_argument("--eval-every", type=positive_int,
                   help=f"validate (and save) every N steps; without this flag every "
                        f"{t.eval_every} steps, skipping a validation while validating would take "
                        f"over 10%% of the run's time (the last one always runs); classify: at "
                        f"the end of every epoch, or every {C.EVAL_STEPS} steps when an epoch "
                        f"is longer; tag, translate: at the end of every epoch")
    g.add_argument("--sample-every", type=nonneg_int,
                   help="show a short sample on stderr every N steps (default: off)")
    common(p)


def run(args, ui) -> int:
    from rnn_cli.errors import ExitStatus
    from rnn_cli.training import train

    from rnn_cli.errors import UsageError

    options = {k: v for k, v in vars(args).items() if k not in CLI_ONLY}
    if args.corpus is None and not (args.src or args.tgt):
        raise UsageError("no training data: give CORPUS (or, to translate, --src FILE --tgt FILE)",
                         hint="e.g. rnn-cli train corpus.txt")
    stop, view = _StopFlag(), _View(ui)
    view.armed = stop
    try:
        with stop, view:
            summary = train(args.corpus, task=args.task, out=args.out, resume=args.resume,
                            on_event=view, should_stop=stop, **options)
    except KeyboardInterrupt:
        if view.saved is None:  # before training started: nothing to save (cli.main reports it)
            raise
        summary = None
    except Exception:  # numba failing because the second Ctrl-C landed in its compiler
        if not stop.signum:
            raise
        if view.saved is None:
            raise KeyboardInterrupt from None
        summary = None
    if summary is None or summary["reason"] == "interrupted":
        out, step = view.saved["path"], view.saved["step"]
        data = args.corpus if args.corpus is not None else f"--src {args.src} --tgt {args.tgt}"
        ui.error(f"interrupted at step {step}; the model is saved in {out}",
                 hint=f"continue with `rnn-cli train {data} --resume -o {out}`")
        return int(ExitStatus.INTERRUPTED)
    ui.info(_done_line(summary))
    if args.json:
        sys.stdout.write(json.dumps(_jsonable(summary), ensure_ascii=False) + "\n")
        sys.stdout.flush()
    return 0


def _done_line(summary: dict) -> str:
    """The last line of a run: where the model went, how fast, how good."""
    if summary.get("task", "lm") == "lm":
        return (f"saved {summary['model']}: {summary['steps']} steps, "
                f"{summary['tokens_per_sec']:,.0f} tok/s, train {_fmt(summary['train_loss'])}, "
                f"val {_fmt(summary['val_loss'])} nats/token (best "
                f"{_fmt(summary['best_val_loss'])})"
                + (f"; test {_fmt(summary['test_loss'])} nats/token, perplexity "
                   f"{summary['test_ppl']:.2f}" if "test_loss" in summary else ""))
    # the tasks of the example trainer (tasks/fit.py): val_<metric> and test_<metric> scalars
    val = _metrics(summary, "val_")
    test = _metrics(summary, "test_")
    best = summary.get("best")
    return (f"saved {summary['model']}: {summary['steps']} steps ({summary['epochs']:.2f} "
            f"epochs), {summary['examples_per_sec']:,.0f} examples/s, "
            f"{summary['tokens_per_sec']:,.0f} tok/s"
            + (f"; val {val}" if val else "")
            + (f"; kept the best {summary['metric']} {_fmt(best)} (step {summary['best_step']})"
               if best is not None and val else "")
            + (f"; test {test}" if test else ""))


def _metrics(summary: dict, prefix: str) -> str:
    return ", ".join(f"{k[len(prefix):]} {_fmt(v)}" for k, v in summary.items()
                     if k.startswith(prefix) and isinstance(v, float) and k != prefix + "n")


def _jsonable(x):
    """NaN and infinities as null, at any depth (JSON has no NaN)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


class _StopFlag:
    """SIGINT/SIGTERM set a flag the trainer polls between steps; a second one aborts at once.
    Until training starts (`armed`), a signal aborts at once, as without the flag. Either way
    `signum` remembers it: run() reports a library's failure after it as the interrupt, and one
    that a C callback swallowed while kernels compiled (see cli._Interrupts) stops the run when
    training starts."""

    def __init__(self):
        self.signum, self.armed = 0, False
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        abort = self.signum or not self.armed
        self.signum = signum
        if abort:
            raise KeyboardInterrupt

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False

    def __call__(self) -> bool:
        return bool(self.signum)


def _fmt(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


class _View:
    """The events of `rnn_cli.training.train` on stderr: notices, warnings, a status line while
    kernels compile, a progress bar on a terminal (else a line per validation), dim samples."""

    def __init__(self, ui):
        self.ui = ui
        self.armed = None  # the _StopFlag to arm when training starts
        self.saved = None  # the last "saved" event's info
        self.progress, self.task, self.status, self.val = None, None, None, "-"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.status is not None:
            self.status.stop()
        if self.progress is not None:
            self.progress.stop()
        return False

    def __call__(self, kind: str, info: dict) -> None:
        ui = self.ui
        if kind == "step":
            if self.progress is not None and (info["step"] % 5 == 0 or info["step"] == 1):
                rate = f"{info['tok_s'] / 1000:.0f}k tok/s" if "examples_per_sec" not in info \
                    else f"{info['examples_per_sec']:,.0f} ex/s"
                self.progress.update(self.task, completed=info["progress"] * 1000,
                                     step=info["step"], loss=_fmt(info["loss"]), val=self.val,
                                     rate=rate)
        elif kind == "eval":
            self.val = _fmt(info["val_loss"])
            extra = ""
            if "metrics" in info:  # the example trainer's: the task's scalar metrics too
                shown = {k: v for k, v in info["metrics"].items()
                         if k != "loss" and isinstance(v, float)}
                extra = "".join(f"  {k.replace('_', '-')} {_fmt(v)}" for k, v in shown.items())
                if info.get("metric") in shown:
                    self.val = f"{info['metric'].replace('_', '-')} {_fmt(info['value'])}"
            line = (f"step {info['step']:>7}  epoch {info['epoch']:.2f}  train "
                    f"{_fmt(info['train_loss'])}  val {_fmt(info['val_loss'])}{extra}"
                    f"{'  *' if info['best'] else ''}")
            if self.progress is None:
                ui.info(line)
            else:
                self.progress.console.print(line, style="dim", highlight=False)
        elif kind == "saved":
            self.saved = info
        elif kind == "sample":
            ui.sample_preview(info["text"].rstrip("\n"))
        elif kind in ("notice", "warning", "detail"):
            {"notice": ui.info, "warning": ui.warn, "detail": ui.debug}[kind](info["message"])
        elif kind == "compiling" and ui.interactive:
            self.status = ui.err.status("compiling kernels (cached after the first run)…")
            self.status.start()
        elif kind == "compiled":
            if self.status is not None:
                self.status.stop()
                self.status = None
            ui.debug(f"kernels ready in {info['seconds']:.2f} s")
        elif kind == "start":
            if self.armed is not None:
                self.armed.armed = True
                if self.armed.signum:  # Ctrl-C while compiling, swallowed by the compiler
                    raise KeyboardInterrupt
            if ui.interactive:
                self.progress = ui.progress()
                self.progress.start()
                self.task = self.progress.add_task("train", total=1000, step=info["step"],
                                                   loss="-", val="-", rate="")
