"""Training a translator: read the pairs (a `source<TAB>target` file, or `--src`/`--tgt` files),
hold out validation pairs, build each side's vocabulary, encode, and train through the example
trainer (`tasks/fit.py`); save and resume model files (`taskfile.py`). What `rnn-cli train --task
translate` runs. Never prints: notices go to the run's events ("notice", "warning"), the summary
is returned.

    run = TranslateRun.start("corpora/dates/train.tsv", valid="corpora/dates/valid.tsv",
                             level="char", hidden=64, epochs=10)
    summary = run.run(on_event=print_event)     # "notice", "warning", "step", "eval" events
    run.save("dates.npz")                       # best parameters + what a resume needs
    run = TranslateRun.resume("dates.npz", "corpora/dates/train.tsv", epochs=20)

The validation metric that picks the best model (`--metric`, default "auto"): exact match when the
targets are short (most are at most 3 words: dates, codes, labels; BLEU is degenerate there),
else BLEU when sacrebleu is installed, else the validation loss (with a warning saying how to get
BLEU).
"""

from __future__ import annotations

import dataclasses

import numpy as np

import rnn_cli.tasks.translate.reader as reader
from rnn_cli.errors import UsageError
from rnn_cli.taskfile import TaskModel, load_task, save_task
from rnn_cli.tasks.example_run import resumed, task_model, with_best
from rnn_cli.tasks.fit import Fit, FitConfig, check_resume
from rnn_cli.tasks.translate import metrics
from rnn_cli.tasks.translate import options as O
from rnn_cli.tasks.translate.evaluate import evaluate, have_sacrebleu
from rnn_cli.tasks.translate.model import FORMAT, Encoded, TranslateConfig, TranslatorNet
from rnn_cli.vocab import Vocab

DATA_OPTIONS = ("src", "tgt", "valid", "test", "val_frac", "bad_lines", "encoding", "errors",
                "vocab_size", "min_count", "label_smoothing")
MODEL_OPTIONS = tuple(f.name for f in dataclasses.fields(TranslateConfig))
FIT_OPTIONS = tuple(f.name for f in dataclasses.fields(FitConfig))
OPTIONS = frozenset(DATA_OPTIONS + MODEL_OPTIONS + FIT_OPTIONS + ("level",))
FIT_DEFAULTS = {"batch_size": O.BATCH_SIZE, "lr": O.LR, "clip": O.CLIP, "metric": "auto"}
STOPS = ("steps", "epochs", "max_seconds")  # O.EPOCHS when none of them is given
DEFAULT_LABEL_SMOOTHING = O.LABEL_SMOOTHING
VAL_FRAC, VAL_MAX = 0.1, 2000  # held out without --valid: a tenth, at most this many pairs
SHORT_WORDS = 3  # targets of at most this many words (most of them) are "short"
METRICS = O.METRICS


def _options(options: dict) -> tuple[dict, dict, dict]:
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise UsageError(f"unknown option(s) for --task translate: {', '.join(unknown)}")
    model = {k: v for k, v in options.items() if k in MODEL_OPTIONS}
    if "level" in options:  # --level: both sides, unless --src-level / --tgt-level say
        model.setdefault("src_level", options["level"])
        model.setdefault("tgt_level", options["level"])
    pick = (lambda names: {k: v for k, v in options.items() if k in names})
    return pick(DATA_OPTIONS), model, pick(FIT_OPTIONS)


def read_data(train: str | None, opts: dict, seed: int, stdin=None):
    """(train pairs, valid pairs or None, test pairs or None, notices, a description of the
    training data, the pairs it holds) from the options (`src`/`tgt` instead of `train`)."""
    kw = {"bad_lines": opts.get("bad_lines", "fail"), "encoding": opts.get("encoding", "utf-8"),
          "errors": opts.get("errors", "strict")}
    if opts.get("src") or opts.get("tgt"):
        if not (opts.get("src") and opts.get("tgt")) or train:
            raise UsageError("--src and --tgt go together, instead of a pairs file",
                             hint="pass `--src FILE --tgt FILE`, or one source<TAB>target file")
        pairs = reader.read_parallel(opts["src"], opts["tgt"], **kw)
    else:
        if not train:
            raise UsageError("no training data", hint="give a source<TAB>target file, or "
                                                      "--src FILE --tgt FILE")
        pairs = reader.read_pairs(train, stdin=stdin, **kw)
    notices = pairs.report.messages()
    n_read = len(pairs)
    valid = test = None
    if opts.get("valid"):
        valid = reader.read_pairs(opts["valid"], **kw)
        notices += valid.report.messages()
    else:
        frac = opts.get("val_frac", VAL_FRAC)
        if not 0.0 <= frac <= 0.5:
            raise UsageError(f"--val-frac must be in [0, 0.5] (got {frac})")
        pairs, valid = split(pairs, frac, seed)
    if opts.get("test"):
        test = reader.read_pairs(opts["test"], **kw)
        notices += test.report.messages()
    return pairs, valid, test, notices, pairs.report.name, n_read


def split(pairs: reader.Pairs, frac: float, seed: int):
    """(train, held-out) pairs: a seeded random `frac` of them (at most VAL_MAX) held out."""
    n_val = min(int(len(pairs) * frac), VAL_MAX)
    if not n_val or len(pairs) - n_val < 1:
        return pairs, None
    held = np.zeros(len(pairs), bool)
    held[np.random.default_rng([seed, 0x5EED]).permutation(len(pairs))[:n_val]] = True
    part = (lambda keep: reader.Pairs([s for s, k in zip(pairs.src, keep) if k],
                                      [t for t, k in zip(pairs.tgt, keep) if k],
                                      [n for n, k in zip(pairs.lines, keep) if k], pairs.report))
    return part(~held), part(held)


def encode(pairs: reader.Pairs, src_vocab: Vocab, tgt_vocab: Vocab, max_len: int,
           name: str, drop: bool = True) -> tuple[Encoded, list[str]]:
    """(Encoded, notices) of pairs. drop (training, validation): a pair with a side over max_len
    tokens is left out (counted); else (a test set, scored whole): a source over max_len is
    cut there, its <EOS> kept (counted), and every target kept."""
    src, tgt, refs, dropped, longest = [], [], [], 0, 0
    for s, t in zip(pairs.src, pairs.tgt):
        a, _, cut = reader.encode_source(src_vocab, s, max_len if not drop else 1 << 30)
        b, _ = reader.encode(tgt_vocab, t)
        if drop and (a.shape[0] > max_len or b.shape[0] > max_len):
            dropped += 1
            longest = max(longest, a.shape[0], b.shape[0])
            continue
        dropped += cut
        src.append(a)
        tgt.append(b)
        refs.append(t)
    notices = []
    if dropped and drop:
        notices.append(f"--max-len {max_len}: {dropped:,} {name} pair(s) with a longer side "
                       f"left out (the longest: {longest:,} tokens)")
    elif dropped:
        notices.append(f"--max-len {max_len}: {dropped:,} {name} source(s) cut to {max_len} "
                       "tokens")
    if not src:
        raise UsageError(f"no {name} pair is within --max-len {max_len}",
                         hint="raise --max-len")
    return Encoded(src, tgt, refs), notices


def pick_metric(metric: str, refs: list[str]) -> tuple[str, str | None]:
    """(the validation metric, a warning or None) for --metric `metric` (module docstring)."""
    if metric not in METRICS:
        raise UsageError(f"--metric must be one of {', '.join(METRICS)} for --task translate "
                         f"(got {metric!r})")
    sb = have_sacrebleu()
    if metric in ("bleu", "chrf") and not sb:
        raise UsageError(f"--metric {metric} needs sacrebleu, which is not installed",
                         hint=metrics.INSTALL_HINT)
    if metric != "auto":
        return metric, None
    words = np.array([len(r.split()) for r in refs])
    if words.size and np.median(words) <= SHORT_WORDS:
        return "exact", None
    if sb:
        return "bleu", None
    return "loss", ("the best model is picked by validation loss: BLEU needs sacrebleu; "
                    + metrics.INSTALL_HINT)


class TranslateRun:
    """One training run of a translator (see the module docstring)."""

    def __init__(self, net: TranslatorNet, data: dict, fit: Fit, settings: dict,
                 notices: list[str], model: TaskModel | None = None):
        self.net, self.data, self.fit = net, data, fit
        self.settings, self.notices, self.source = settings, notices, model

    @classmethod
    def start(cls, train: str | None, *, parallel: bool = True, stdin=None,
              **options) -> "TranslateRun":
        """A new model trained on the pairs of `train` (or options src/tgt)."""
        data_opts, model_opts, fit_opts = _options(options)
        if "tie_weights" not in model_opts:  # tied by default: it needs proj == embed, so an
            if "proj" not in model_opts and "embed" in model_opts:  # --embed alone moves proj
                model_opts["proj"] = model_opts["embed"]
            elif model_opts.get("proj", O.PROJ) != model_opts.get("embed", O.EMBED):
                model_opts["tie_weights"] = False  # a --proj of its own: untied
        cfg = TranslateConfig(**model_opts).validate()  # bad flags fail before the data is read
        fit_opts = {**FIT_DEFAULTS, **fit_opts}
        if not any(k in fit_opts for k in STOPS):
            fit_opts["epochs"] = O.EPOCHS
        fcfg = FitConfig(**{**fit_opts, "metric": "loss"}).validate()
        pairs, valid, test, notices, name, n_read = read_data(train, data_opts, fcfg.seed,
                                                              stdin)
        size, mc = data_opts.get("vocab_size"), data_opts.get("min_count", 1)
        src_vocab = reader.build_vocab(pairs.src, cfg.src_level, size, mc, cfg.lower,
                                       cfg.tokenizer)
        tgt_vocab = reader.build_vocab(pairs.tgt, cfg.tgt_level, size, mc, cfg.lower,
                                       cfg.tokenizer)
        ls = data_opts.get("label_smoothing", DEFAULT_LABEL_SMOOTHING)
        net = TranslatorNet(cfg, src_vocab, tgt_vocab, parallel=parallel, label_smoothing=ls)
        net.init(np.random.default_rng(fcfg.seed))
        settings = {"data": name, "pairs_read": n_read, **data_opts, "label_smoothing": ls}
        return cls._assemble(net, pairs, valid, test, fit_opts, settings, notices, None)

    @classmethod
    def resume(cls, path: str, train: str | None, *, parallel: bool = True, stdin=None,
               **options) -> "TranslateRun":
        """Continue the run saved in the model file `path`. Training options may change;
        architecture options must match the file's."""
        model = load_task(path, FORMAT)
        data_opts, model_opts, fit_opts = _options(options)
        cfg = TranslateConfig.from_dict(model.config)
        check_resume(path, cfg, model_opts)
        stored = {k: v for k, v in model.train.items() if k in FIT_OPTIONS}
        if any(k in fit_opts for k in STOPS):  # a stopping rule given replaces the stored one
            stored = {k: v for k, v in stored.items() if k not in STOPS}
        fit_opts = {**stored, **fit_opts}
        data_opts = {**{k: v for k, v in model.train.items()  # the data files are given anew
                        if k in DATA_OPTIONS and k not in ("src", "tgt")}, **data_opts}
        seed = fit_opts.get("seed", FitConfig.seed)
        pairs, valid, test, notices, name, n_read = read_data(train, data_opts, seed, stdin)
        params, resume = resumed(model)
        ls = data_opts.get("label_smoothing", DEFAULT_LABEL_SMOOTHING)
        net = TranslatorNet(cfg, model.vocabs["src"], model.vocabs["tgt"], params,
                            parallel=parallel, label_smoothing=ls)
        settings = {"data": name, "pairs_read": n_read, **data_opts, "label_smoothing": ls}
        return cls._assemble(net, pairs, valid, test, fit_opts, settings, notices, resume, model)

    @classmethod
    def _assemble(cls, net, pairs, valid, test, fit_opts, settings, notices, resume,
                  model=None) -> "TranslateRun":
        data = {}
        for name, p in (("train", pairs), ("valid", valid), ("test", test)):
            if p is not None and len(p):
                data[name], more = encode(p, net.src_vocab, net.tgt_vocab, net.cfg.max_len, name,
                                          drop=name != "test")
                notices += more
        metric, warning = pick_metric(fit_opts.get("metric", "auto"), data["train"].refs)
        if warning:
            notices.append(warning)
        fcfg = FitConfig(**{**fit_opts, "metric": metric}).validate()
        settings["metric_asked"] = fit_opts.get("metric", "auto")
        fit = Fit(net, data["train"], data.get("valid"), fcfg, resume=resume)
        return cls(net, data, fit, settings, notices, model)

    # ------------------------------------------------------------------ running
    def run(self, on_event=lambda kind, info: None, should_stop=lambda: False) -> dict:
        """Train (events: "warning" for each notice, then the trainer's "step" and "eval");
        returns the summary, with the test set's metrics (test_*) when there is one."""
        for message in self.notices:
            on_event("warning", {"message": message})
        summary = self.fit.run(on_event, should_stop)
        if "test" in self.data:
            found = with_best(self.net, self.fit.best_flat,
                              lambda: evaluate(self.net, self.data["test"]))
            summary.update({"test_" + k: v for k, v in found.items()})
        return {**summary, "V_src": len(self.net.src_vocab), "V_tgt": len(self.net.tgt_vocab),
                "train_pairs": len(self.data["train"].src),
                "valid_pairs": len(self.data["valid"].src) if "valid" in self.data else 0}

    def to_model(self, with_resume: bool = True) -> TaskModel:
        """The model file's content now: the best parameters, and what a resume needs."""
        return task_model("translate", self.net, self.fit,
                          {"src": self.net.src_vocab, "tgt": self.net.tgt_vocab}, {},
                          dict(self.settings), {}, with_resume)  # metric: the one used

    def save(self, path: str, with_resume: bool = True) -> None:
        save_task(self.to_model(with_resume), path)
