"""Training a classifier: read and check the labelled files, split, build the vocabulary and the
label set, encode, and train through the example trainer (`tasks/fit.py`); save and resume
model files (`taskfile.py`). What `rnn-cli train --task classify` runs. Never prints: notices
go to the run's events ("warning"), the summary is returned.

    run = ClassifyRun.start("train.txt", valid="dev.txt", level="word", cell="lstm",
                            bidirectional=True, pool="max", epochs=5, metric="accuracy")
    summary = run.run(on_event=print_event)      # "warning", "step", "eval" events
    run.save("sst.npz")                          # best parameters + what a resume needs
    run = ClassifyRun.resume("sst.npz", "train.txt", valid="dev.txt", epochs=10)
"""

from __future__ import annotations

import dataclasses

import numpy as np

import rnn_cli.tasks.classify.reader as reader
from rnn_cli.batching import cut_to_max_len
from rnn_cli.errors import UsageError
from rnn_cli.taskfile import TaskModel, load_task, save_task
from rnn_cli.tasks.classify.model import (FORMAT, ClassifierNet, ClassifyConfig, Encoded,
                                          encode_texts)
from rnn_cli.tasks.classify.options import EPOCHS as DEFAULT_EPOCHS, EVAL_STEPS, METRICS
from rnn_cli.tasks.example_run import resumed, task_model, with_best
from rnn_cli.tasks.fit import Fit, FitConfig, check_resume
from rnn_cli.vocab import Counts, Vocab

DATA_OPTIONS = ("valid", "test", "val_frac", "bad_lines", "encoding", "errors", "vocab_size",
                "min_count", "class_weight")
MODEL_OPTIONS = tuple(f.name for f in dataclasses.fields(ClassifyConfig))
FIT_OPTIONS = tuple(f.name for f in dataclasses.fields(FitConfig))


def _options(options: dict) -> tuple[dict, dict, dict]:
    unknown = sorted(set(options) - set(DATA_OPTIONS + MODEL_OPTIONS + FIT_OPTIONS))
    if unknown:
        raise UsageError(f"unknown option(s) for --task classify: {', '.join(unknown)}")
    pick = (lambda names: {k: v for k, v in options.items() if k in names})
    return pick(DATA_OPTIONS), pick(MODEL_OPTIONS), pick(FIT_OPTIONS)


def split(examples: list, val_frac: float, seed: int) -> tuple[list, list]:
    """(train, valid): a seeded random `val_frac` of the examples held out (in file order)."""
    n_val = int(len(examples) * val_frac)
    if not n_val:
        return examples, []
    held = set(np.random.default_rng([seed, 0x5EED]).permutation(len(examples))[:n_val].tolist())
    return ([ex for i, ex in enumerate(examples) if i not in held],
            [ex for i, ex in enumerate(examples) if i in held])


def choose_level(examples: list) -> tuple[str, str]:
    """--level by default: word, unless most texts are a single word (names, codes: a word
    vocabulary would see each once), then char. (level, why)."""
    single = sum(len(ex.text.split(None, 1)) == 1 for ex in examples)
    if 2 * single > len(examples):
        return "char", f"{single:,} of the {len(examples):,} training texts are single words"
    return "word", "the texts are phrases or sentences"


def check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise UsageError(f"--metric {metric!r} is not a classification metric",
                         hint=f"choose one of {', '.join(METRICS)}")


def build_vocab(examples: list, cfg: ClassifyConfig, vocab_size: int | None,
                min_count: int) -> Vocab:
    counts = Counts(cfg.level, vocab_size, min_count, cfg.lower, cfg.tokenizer)
    for ex in examples:
        counts.add(ex.text)
    return counts.vocab()


def encode(examples: list, vocab: Vocab, labels: list[str], max_len: int):
    """(Encoded, CutReport) of examples with the model's vocabulary and label set."""
    seqs, unknown = encode_texts(vocab, [ex.text for ex in examples])
    seqs, cut = cut_to_max_len(seqs, max_len)
    index = {lab: k for k, lab in enumerate(labels)}
    gold = [ex.labels[0] for ex in examples]
    y = np.array([index.get(g, -1) for g in gold], np.int32)
    lengths = np.array([s.shape[0] for s in seqs], np.int64)
    return Encoded(seqs, lengths, y, gold, sum(unknown)), cut


def balanced_weights(y: np.ndarray, K: int) -> np.ndarray:
    """scikit-learn's "balanced" class weights, N / (K n_k) per label k."""
    counts = np.bincount(y, minlength=K).astype(np.float64)
    return y.shape[0] / (K * np.maximum(counts, 1.0))


class ClassifyRun:
    """One training run of a classifier (see the module docstring)."""

    def __init__(self, net: ClassifierNet, vocab: Vocab, data: dict, fit: Fit, settings: dict,
                 notices: list[str], model: TaskModel | None = None):
        self.net, self.vocab, self.data, self.fit = net, vocab, data, fit
        self.settings, self.notices, self.source = settings, notices, model
        self.chosen: dict = {}  # defaults chosen for this data (--level), and why
        self.why = ""

    # ------------------------------------------------------------------ building
    @classmethod
    def start(cls, train: str, *, parallel: bool = True, stdin=None, **options) -> "ClassifyRun":
        """A new model trained on the file `train` (see DATA/MODEL/FIT_OPTIONS for the keywords;
        `valid`/`test` paths, `val_frac` 0.1 when no `valid`, `class_weight` None|"balanced")."""
        data_opts, model_opts, fit_opts = _options(options)
        ClassifyConfig(**model_opts).validate()  # bad flags fail before the data is read
        defaults = {"metric": METRICS[0]}
        if not any(k in fit_opts for k in ("steps", "epochs", "max_seconds")):
            defaults["epochs"] = DEFAULT_EPOCHS
        fcfg = FitConfig(**{**defaults, **fit_opts}).validate()
        check_metric(fcfg.metric)
        examples, valid, test, notices, info = _read_all(train, data_opts, fcfg.seed, stdin)
        chosen, why = {}, ""
        if "level" not in model_opts:
            chosen["level"], why = choose_level(examples)
        cfg = ClassifyConfig(**{**chosen, **model_opts}).validate()
        labels = reader.check_classes(examples, info["name"])
        vocab = build_vocab(examples, cfg, data_opts.get("vocab_size"),
                            data_opts.get("min_count", 1))
        net = ClassifierNet(cfg, len(vocab), labels, parallel=parallel)
        net.init(np.random.default_rng(fcfg.seed))
        settings = {"corpus": info, **data_opts}
        per_epoch = -(-len(examples) // fcfg.batch_size)
        if "eval_every" not in fit_opts and per_epoch > EVAL_STEPS:
            fcfg = dataclasses.replace(fcfg, eval_every=EVAL_STEPS)
        run = cls._assemble(net, vocab, examples, valid, test, fcfg, settings, notices, None)
        run.chosen, run.why = chosen, why
        return run

    @classmethod
    def resume(cls, path: str, train: str, *, parallel: bool = True, stdin=None,
               **options) -> "ClassifyRun":
        """Continue the run saved in the model file `path` on the same data. Training options
        (steps, epochs, ...) may change; architecture options must match the file's."""
        model = load_task(path, FORMAT)
        data_opts, model_opts, fit_opts = _options(options)
        cfg = ClassifyConfig.from_dict(model.config)
        check_resume(path, cfg, model_opts)
        stored = {k: v for k, v in model.train.items() if k in FIT_OPTIONS}
        if any(k in fit_opts for k in ("steps", "epochs", "max_seconds")):
            stored = {k: v for k, v in stored.items() if k not in ("steps", "epochs",
                                                                   "max_seconds")}
        fcfg = FitConfig(**{**stored, **fit_opts}).validate()
        check_metric(fcfg.metric)
        data_opts = {**{k: v for k, v in model.train.items() if k in DATA_OPTIONS}, **data_opts}
        examples, valid, test, notices, info = _read_all(train, data_opts, fcfg.seed, stdin)
        if info.get("sha256") != model.state.get("corpus", {}).get("sha256"):
            notices.append(f"{info['name']} is not the file {path} was trained on (its sha256 "
                           "differs): the run continues on it")
        labels = model.labels["label"]
        params, resume = resumed(model)
        net = ClassifierNet(cfg, len(model.vocabs["text"]), labels, params, parallel=parallel)
        settings = {"corpus": info, **data_opts}
        return cls._assemble(net, model.vocabs["text"], examples, valid, test, fcfg, settings,
                             notices, resume, model)

    @classmethod
    def _assemble(cls, net, vocab, examples, valid, test, fcfg, settings, notices, resume,
                  model=None) -> "ClassifyRun":
        data = {}
        for name, exs in (("train", examples), ("valid", valid), ("test", test)):
            if not exs:
                continue
            data[name], cut = encode(exs, vocab, net.labels, net.cfg.max_len)
            if cut.examples:
                notices.append(f"--max-len {cut.max_len} cut {cut.examples} of {len(exs)} "
                               f"{name} examples ({cut.tokens} tokens; the longest had "
                               f"{cut.longest})")
            lost = int((data[name].y < 0).sum())
            if lost:
                notices.append(f"{lost} {name} example(s) have a label the model never saw in "
                               "training; they count as errors")
        if settings.get("class_weight") == "balanced":
            net.weights = balanced_weights(data["train"].y, net.K)
        elif settings.get("class_weight") not in (None, "none"):
            raise UsageError(f"--class-weight must be balanced or none "
                             f"(got {settings['class_weight']!r})")
        fit = Fit(net, data["train"], data.get("valid"), fcfg, resume=resume)
        return cls(net, vocab, data, fit, settings, notices, model)

    # ------------------------------------------------------------------ running
    def run(self, on_event=lambda kind, info: None, should_stop=lambda: False) -> dict:
        """Train (events: "warning" for each notice, then the trainer's "step" and "eval");
        returns the summary, with the test set's metrics (test_*) when there is one."""
        for message in self.notices:
            on_event("warning", {"message": message})
        summary = self.fit.run(on_event, should_stop)
        if "test" in self.data:
            metrics = with_best(self.net, self.fit.best_flat,
                                lambda: self.net.evaluate(self.data["test"]))
            summary.update({"test_" + k: v for k, v in metrics.items()
                            if k in ("n", "accuracy", "macro_f1", "loss")})
            summary["test_metrics"] = metrics
        return {**summary, "labels": len(self.net.labels), "V": len(self.vocab),
                "train_examples": len(self.data["train"].seqs),
                "valid_examples": len(self.data["valid"].seqs) if "valid" in self.data else 0}

    def to_model(self, with_resume: bool = True) -> TaskModel:
        """The model file's content now: the best parameters, and what a resume needs."""
        return task_model("classify", self.net, self.fit, {"text": self.vocab},
                          {"label": list(self.net.labels)},
                          {k: v for k, v in self.settings.items() if k != "corpus"},
                          {"corpus": self.settings.get("corpus", {})}, with_resume)

    def save(self, path: str, with_resume: bool = True) -> None:
        save_task(self.to_model(with_resume), path)


def _read_all(train: str, opts: dict, seed: int, stdin):
    """(train, valid, test examples, notices, the training file's info)."""
    kw = {"bad_lines": opts.get("bad_lines", "fail"), "encoding": opts.get("encoding", "utf-8"),
          "errors": opts.get("errors", "strict")}
    examples, report = reader.read_file(train, stdin=stdin, **kw)
    notices = report.warnings()
    valid: list = []
    if opts.get("valid"):
        valid, rep = reader.read_file(opts["valid"], **kw)
        notices += rep.warnings()
    else:
        frac = opts.get("val_frac", 0.1)
        if not 0.0 <= frac <= 0.5:
            raise UsageError(f"--val-frac must be in [0, 0.5] (got {frac})")
        examples, valid = split(examples, frac, seed)
    test: list = []
    if opts.get("test"):
        test, rep = reader.read_file(opts["test"], **kw)
        notices += rep.warnings()
    return examples, valid, test, notices, report.info
