"""The classifier as a task of `rnn_cli.training` (what `rnn-cli train --task classify` runs):
the options, the model store's place, a new or resumed `ClassifyRun`, the kernels warmed up,
the "start" event's description, and `test` (the `rnn-cli test` report of a classifier). Never
prints: notices go out as events (`emit`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from rnn_cli.checkpoint import check_writable
from rnn_cli.store import task_store_path
from rnn_cli.tasks import Emit, Table, TestReport
from rnn_cli.tasks.classify.model import FORMAT, ClassifierNet, Encoded
from rnn_cli.tasks.classify.run import DATA_OPTIONS, FIT_OPTIONS, MODEL_OPTIONS, ClassifyRun
from rnn_cli.tasks.example_run import ExampleTaskRun, split_text

OPTIONS = frozenset(DATA_OPTIONS + MODEL_OPTIONS + FIT_OPTIONS) - {"max_tokens"}


class ClassifyTask:
    """`rnn_cli.tasks.Task` of the classifier."""

    kind = "classify"
    options = OPTIONS
    format = FORMAT  # taskfile.TaskFormat of its model files (`rnn-cli info` reads them)

    def prepare(self, corpus: str, *, out: str | None, resume: bool,
                options: Mapping[str, Any], device: str, emit: Emit) -> ClassifyTaskRun:
        path = out or task_store_path("classify")
        check_writable(path)
        if device == "cuda":
            emit("warning", {"message": "the classifier trains on the CPU (its CUDA kernels "
                                        "are not written yet); --device cuda is ignored"})
        opts = {k: v for k, v in options.items() if k in OPTIONS}
        if "metric" in opts:
            opts["metric"] = str(opts["metric"]).replace("-", "_")
        if "class_weight" in opts and opts["class_weight"] == "none":
            opts.pop("class_weight")
        if resume:
            run = ClassifyRun.resume(path, corpus, **opts)
        else:
            run = ClassifyRun.start(corpus, **opts)
        task_run = ClassifyTaskRun(path, run, resume)
        emit("notice", {"message": task_run.data_line()})
        if run.chosen:  # char level is the surprise worth a notice
            emit("notice" if run.chosen["level"] == "char" else "detail",
                 {"message": f"--level {run.chosen['level']}: {run.why} (pass --level to "
                             "choose)"})
        return task_run

    def test(self, path: str, file: str, options: Mapping[str, Any]) -> TestReport:
        """The `rnn-cli test` report of the classifier at `path` on the gold file `file`."""
        from rnn_cli.tasks.classify.predict import Classifier

        if options.get("device") == "cuda" and options.get("warn"):
            options["warn"]("the classifier runs on the CPU (its CUDA kernels are not written "
                            "yet)")
        clf = Classifier.load(path, threads=options.get("threads"))
        m = clf.test(file, options.get("bad_lines") or "fail",
                     options.get("encoding") or "utf-8", options.get("errors") or "strict")
        return classify_report(m, path, file)


def classify_report(m: dict, path: str, file: str) -> TestReport:
    """A `TestReport` of `Classifier.test`'s metrics."""
    labels = list(m["per_label"])
    per_label = Table("per label", ("label", "precision", "recall", "f1", "support"),
                      [(lab, *(m["per_label"][lab][c] for c in ("precision", "recall", "f1",
                                                                "support")))
                       for lab in labels])
    known = m["labels"]
    confusion = Table("confusion (rows: gold, columns: predicted)", ("gold", *known),
                      [(lab, *row) for lab, row in zip(known, m["confusion"])])
    warnings = list(m["warnings"])
    if m["unseen"]:
        shown = ", ".join(f"{lab!r} ({n})" for lab, n in list(m["unseen"].items())[:5])
        warnings.append(f"{sum(m['unseen'].values())} example(s) have a gold label the model "
                        f"never saw ({shown}); they count as errors")
    if m["cut"]:
        warnings.append(f"{m['cut']} example(s) were longer than the model's --max-len and "
                        "were cut to it")
    data = {"kind": "classify", "model": path, "file": file,
            **{k: m[k] for k in ("n", "accuracy", "macro_f1", "loss", "per_label", "confusion",
                                 "labels", "unseen", "unknown_tokens", "cut")}}
    summary = [("examples", m["n"]), ("accuracy", m["accuracy"]), ("macro_f1", m["macro_f1"]),
               ("loss", m["loss"])]
    return TestReport("classify", data, summary, [per_label, confusion], warnings)


class ClassifyTaskRun(ExampleTaskRun):
    """`rnn_cli.tasks.Run` of the classifier: a ClassifyRun and where it saves."""

    kind = "classify"

    def data_line(self) -> str:
        """The notice on the data: examples, labels, the split, the vocabulary."""
        r, info = self.inner, self.inner.settings.get("corpus", {})
        n_train = len(r.data["train"].seqs)
        n_val = len(r.data["valid"].seqs) if "valid" in r.data else 0
        labels = r.net.labels
        shown = ", ".join(labels[:8]) + (", …" if len(labels) > 8 else "")
        split = split_text(n_train, n_val, r.settings)
        test = f"; test: {r.settings['test']}, {len(r.data['test'].seqs):,}" \
            if "test" in r.data else ""
        in_file = n_train + (0 if r.settings.get("valid") else n_val)
        return (f"{info.get('name', '?')}: {info.get('bytes', 0):,} bytes, {in_file:,} "
                f"examples, {len(labels)} labels ({shown}); {split}{test}; "
                f"V = {len(r.vocab):,} {r.net.cfg.level} tokens")

    def compile(self, emit: Emit) -> float:
        """Run one tiny batch of the same network shape (cell, layers, directions, pooling,
        recurrence path: numba compiles per signature, not per size) forward and backward."""
        t0 = time.perf_counter()
        cfg = self.inner.net.cfg
        net = ClassifierNet(cfg, 3, ["a", "b"], recurrence=self.inner.net.enc.recurrence)
        net.init(np.random.default_rng(0))
        data = Encoded([np.array([0, 1, 2], np.int32), np.array([1], np.int32)],
                       np.array([3, 1]), np.array([0, 1], np.int32), ["a", "b"])
        idx = np.array([0, 1])
        net.forward(data, idx, np.random.default_rng(0) if cfg.dropout else None)
        net.backward(net.params.zeros_like())
        net.probs(data, idx)
        return time.perf_counter() - t0

    def describe(self) -> dict[str, Any]:
        r = self.inner
        sizes = {"train_examples": len(r.data["train"].seqs),
                 "val_examples": len(r.data["valid"].seqs) if "valid" in r.data else 0,
                 "test_examples": len(r.data["test"].seqs) if "test" in r.data else None,
                 "train_tokens": int(r.data["train"].lengths.sum()), "V": len(r.vocab),
                 "K": len(r.net.labels), "B": r.fit.cfg.batch_size,
                 "parameters": len(r.net.params)}
        return {"task": "classify", "out": self.out, "device": "cpu", "resumed": self.resumed,
                "step": r.fit.step, "defaults": dict(r.chosen),
                "model": dataclasses.asdict(r.net.cfg), "train": dataclasses.asdict(r.fit.cfg),
                "sizes": sizes, "labels": list(r.net.labels)}


TASK = ClassifyTask()
