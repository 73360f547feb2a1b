"""Training a tagger: read the tagged files, split, build the vocabularies and the tag set,
repair gold sequences the scheme forbids, encode, and train through the example trainer
(`tasks/fit.py`); save and resume model files (`taskfile.py`). What `rnn-cli train --task tag`
runs. Never prints: notices go to the run's events ("warning", "notice"), the summary is
returned.

    run = TagRun.start("train.tsv", valid="dev.tsv", crf=True, epochs=10)
    summary = run.run(on_event=print_event)      # "notice", "warning", "step", "eval" events
    run.save("ner.npz")                          # best parameters + what a resume needs
    run = TagRun.resume("ner.npz", "train.tsv", valid="dev.tsv", epochs=20)

Without `valid`, a seeded `val_frac` (default 0.1) of the training sentences is held out.
The validation metric that keeps the best model: entity F1 for a chunk tag set (BIO, IOB1,
BIOES), token accuracy otherwise (`--metric` to choose: loss, accuracy, f1, precision, recall).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rnn_cli.errors import UsageError
from rnn_cli.taskfile import TaskModel, load_task, save_task
from rnn_cli.tasks.example_run import resumed, task_model, with_best
from rnn_cli.tasks.fit import Fit, FitConfig, check_resume
from rnn_cli.tasks.tag import data as tagdata, options as O
from rnn_cli.tasks.tag.model import FORMAT, TagConfig, TaggerNet
from rnn_cli.tasks.tag.reader import Sentence, read_tagged
from rnn_cli.tasks.tag.tagset import TagSet, is_valid, repair

DATA_OPTIONS = ("valid", "test", "val_frac", "column", "field", "encoding", "errors",
                "vocab_size", "min_count")
MODEL_OPTIONS = tuple(f.name for f in dataclasses.fields(TagConfig) if f.name != "scheme")
FIT_OPTIONS = tuple(f.name for f in dataclasses.fields(FitConfig))
OPTIONS = frozenset(DATA_OPTIONS + MODEL_OPTIONS + FIT_OPTIONS)
DEFAULTS = {"epochs": O.EPOCHS, "patience": O.PATIENCE, "lr": O.LR, "batch_size": O.BATCH_SIZE}


def _options(options: dict) -> tuple[dict, dict, dict]:
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise UsageError(f"unknown option(s) for --task tag: {', '.join(unknown)}")
    pick = (lambda names: {k: v for k, v in options.items() if k in names})
    return pick(DATA_OPTIONS), pick(MODEL_OPTIONS), pick(FIT_OPTIONS)


def metrics_of(scheme: str) -> tuple[str, ...]:
    return ("loss", "accuracy") + (("f1", "precision", "recall") if scheme != "none" else ())


def split(sentences: list, val_frac: float, seed: int) -> tuple[list, list]:
    """(train, valid): a seeded random `val_frac` of the sentences held out (in file order)."""
    n_val = int(len(sentences) * val_frac)
    if not n_val:
        return sentences, []
    held = set(np.random.default_rng([seed, 0x7A6]).permutation(len(sentences))[:n_val].tolist())
    return ([s for i, s in enumerate(sentences) if i not in held],
            [s for i, s in enumerate(sentences) if i in held])


def cut_sentences(sentences: list[Sentence], max_len: int) -> tuple[list[Sentence], str | None]:
    """Training sentences cut to `max_len` tokens (0: none), and the notice saying what was."""
    if not max_len:
        return sentences, None
    long = [s for s in sentences if len(s.tokens) > max_len]
    if not long:
        return sentences, None
    dropped = sum(len(s.tokens) - max_len for s in long)
    out = [Sentence(s.tokens[:max_len], s.tags[:max_len], s.line)
           if len(s.tokens) > max_len else s for s in sentences]
    return out, (f"--max-len {max_len} cut {len(long):,} training sentence(s) ({dropped:,} "
                 f"tokens; the longest had {max(len(s.tokens) for s in long):,})")


class TagRun:
    """One training run of a tagger (see the module docstring)."""

    def __init__(self, net: TaggerNet, vocabs: dict, data: dict, fit: Fit, settings: dict,
                 notices: list[tuple[str, str]], model: TaskModel | None = None):
        self.net, self.vocabs, self.data, self.fit = net, vocabs, data, fit
        self.settings, self.notices, self.source = settings, notices, model

    # ------------------------------------------------------------------ building
    @classmethod
    def start(cls, train: str, *, parallel: bool = True, stdin=None, **options) -> "TagRun":
        """A new tagger trained on the file `train` (see DATA/MODEL/FIT_OPTIONS)."""
        data_opts, model_opts, fit_opts = _options(options)
        TagConfig(**model_opts).validate()
        seed = fit_opts.get("seed", FitConfig.seed)
        sents, valid, test, notices, info = _read_all(train, data_opts, seed, stdin)
        tagset = TagSet.from_sentences([s.tags for s in sents])
        if len(tagset) < 2:
            raise UsageError(f"{info['name']}: every token has the tag {tagset.tags[0]!r}; a "
                             "tagger needs at least two tags",
                             hint="pick the tag column with --column N (or --field for CoNLL-U)")
        cfg = TagConfig(**model_opts, scheme=tagset.scheme).validate()
        fcfg = _fit_config(fit_opts, {}, tagset.scheme)
        words = tagdata.build_word_vocab(sents, cfg.lower,
                                         data_opts.get("min_count", O.MIN_COUNT),
                                         data_opts.get("vocab_size"))
        chars = tagdata.build_char_vocab(sents)
        net = TaggerNet(cfg, len(words), len(chars), tagset.tags, parallel=parallel)
        net.init(np.random.default_rng(fcfg.seed))
        settings = {"corpus": info, **data_opts}
        return cls._assemble(net, {"word": words, "char": chars}, sents, valid, test, fcfg,
                             settings, notices, None)

    @classmethod
    def resume(cls, path: str, train: str, *, parallel: bool = True, stdin=None,
               **options) -> "TagRun":
        """Continue the run saved in the model file `path` on the same data. Training options
        (steps, epochs, ...) may change; architecture options must match the file's."""
        model = load_task(path, FORMAT)
        data_opts, model_opts, fit_opts = _options(options)
        cfg = TagConfig.from_dict(model.config)
        check_resume(path, cfg, model_opts)
        stored = {k: v for k, v in model.train.items() if k in FIT_OPTIONS}
        fcfg = _fit_config(fit_opts, stored, cfg.scheme)
        data_opts = {**{k: v for k, v in model.train.items() if k in DATA_OPTIONS}, **data_opts}
        sents, valid, test, notices, info = _read_all(train, data_opts, fcfg.seed, stdin)
        if info.get("sha256") != model.state.get("corpus", {}).get("sha256"):
            notices.append(("warning", f"{info['name']} is not the file {path} was trained on "
                                       "(its sha256 differs): the run continues on it"))
        params, resume = resumed(model)
        vocabs = model.vocabs
        net = TaggerNet(cfg, len(vocabs["word"]), len(vocabs["char"]), model.labels["tag"],
                        params, parallel=parallel)
        settings = {"corpus": info, **data_opts}
        return cls._assemble(net, vocabs, sents, valid, test, fcfg, settings, notices, resume,
                             model)

    @classmethod
    def _assemble(cls, net, vocabs, sents, valid, test, fcfg, settings, notices, resume,
                  model=None) -> "TagRun":
        ts = net.tagset
        sents, cut = cut_sentences(sents, net.cfg.max_len)
        if cut:
            notices.append(("warning", cut))
        gold = [s.tags for s in sents]
        if ts.scheme != "none":
            bad = [i for i, g in enumerate(gold) if not is_valid(g, ts.scheme)]
            for i in bad:
                gold[i] = repair(gold[i], ts.scheme)
            if bad:
                notices.append(("warning", f"{len(bad):,} training sentence(s) break the "
                                           f"{ts.scheme} rules (the first at line "
                                           f"{sents[bad[0]].line}): trained on the valid "
                                           "sequence with the same entities, as conlleval "
                                           "reads them"))
        data = {"train": tagdata.encode(sents, vocabs["word"], vocabs["char"], ts, gold)}
        if data["train"].unseen_tags:  # a resumed model, new data
            raise UsageError(f"the training data has tags the model does not know: "
                             f"{', '.join(sorted(data['train'].unseen_tags)[:5])}",
                             hint="train a new model (without --resume) on these tags")
        for name, part in (("valid", valid), ("test", test)):
            if not part:
                continue
            data[name] = enc = tagdata.encode(part, vocabs["word"], vocabs["char"], ts,
                                              tagdata.loss_tags(part, ts))
            if enc.unseen_tags:
                n = sum(enc.unseen_tags.values())
                notices.append(("warning", f"{n:,} {name} token(s) have a tag the model never "
                                           "saw in training ("
                                           f"{', '.join(sorted(enc.unseen_tags)[:5])}): they "
                                           "count as errors"))
        fit = Fit(net, data["train"], data.get("valid"), fcfg, resume=resume)
        return cls(net, vocabs, data, fit, settings, notices, model)

    # ------------------------------------------------------------------ running
    def run(self, on_event=lambda kind, info: None, should_stop=lambda: False) -> dict:
        """Train (events: the notices, then the trainer's "step" and "eval"); returns the
        summary, with the test set's metrics (test_*) when there is one."""
        for kind, message in self.notices:
            on_event(kind, {"message": message})
        summary = self.fit.run(on_event, should_stop)
        if "test" in self.data:
            metrics = with_best(self.net, self.fit.best_flat,
                                lambda: self.net.evaluate(self.data["test"]))
            summary.update({"test_" + k: v for k, v in metrics.items() if k != "per_type"})
            summary["test_metrics"] = metrics
        return {**summary, "tags": len(self.net.tagset), "scheme": self.net.tagset.scheme,
                "V": len(self.vocabs["word"]), "C": len(self.vocabs["char"]),
                "train_sentences": len(self.data["train"].sentences),
                "train_tokens": int(self.data["train"].words.shape[0]),
                "valid_sentences": len(self.data["valid"].sentences)
                if "valid" in self.data else 0}

    def to_model(self, with_resume: bool = True) -> TaskModel:
        """The model file's content now: the best parameters, and what a resume needs."""
        return task_model("tag", self.net, self.fit, dict(self.vocabs),
                          {"tag": list(self.net.tagset.tags)},
                          {k: v for k, v in self.settings.items() if k != "corpus"},
                          {"corpus": self.settings.get("corpus", {})}, with_resume)

    def save(self, path: str, with_resume: bool = True) -> None:
        save_task(self.to_model(with_resume), path)


def _scheme_words(scheme: str) -> str:
    return "no entity scheme" if scheme == "none" else f"{scheme} entity tags"


def _fit_config(given: dict, stored: dict, scheme: str) -> FitConfig:
    base = {**DEFAULTS, "metric": "f1" if scheme != "none" else "accuracy"}
    if any(k in given for k in ("steps", "epochs", "max_seconds")) or stored:
        base.pop("epochs")
    fcfg = FitConfig(**{**base, **stored, **given}).validate()
    if fcfg.metric not in metrics_of(scheme):
        raise UsageError(f"--metric {fcfg.metric}: a tagger with {_scheme_words(scheme)} "
                         f"measures {', '.join(metrics_of(scheme))}",
                         hint="entity precision, recall and F1 need BIO, IOB1 or BIOES tags; "
                              "pass --metric accuracy")
    return fcfg


def _read_all(train: str, opts: dict, seed: int, stdin):
    """(train, valid, test sentences, notices, the training file's info)."""
    kw = {"column": opts.get("column"), "field": opts.get("field"),
          "encoding": opts.get("encoding", "utf-8"), "errors": opts.get("errors", "strict")}
    sents, report = read_tagged(train, stdin=stdin, **kw)
    notices = [("warning", m) for m in report.messages()]
    valid: list = []
    if opts.get("valid"):
        valid, rep = read_tagged(opts["valid"], **kw)
        notices += [("warning", m) for m in rep.messages()]
    else:
        frac = opts.get("val_frac", O.VAL_FRAC)
        if not 0.0 <= frac <= 0.5:
            raise UsageError(f"--val-frac must be in [0, 0.5] (got {frac})")
        sents, valid = split(sents, frac, seed)
        if not sents:
            raise UsageError(f"{report.name}: no training sentence is left after holding out "
                             f"--val-frac {frac}", hint="give a --valid file, or --val-frac 0")
    test: list = []
    if opts.get("test"):
        test, rep = read_tagged(opts["test"], **kw)
        notices += [("warning", m) for m in rep.messages()]
    return sents, valid, test, notices, dict(report.info, name=report.name)
