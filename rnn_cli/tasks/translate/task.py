"""The translator as a task of `rnn_cli.training` (what `rnn-cli train --task translate` runs):
the options, the model store's place, a new or resumed `TranslateRun`, the kernels warmed up,
the "start" event's description, and `test` (the `rnn-cli test` report of a translator). Never
prints: notices go out as events (`emit`).

The training data is CORPUS (`source<TAB>target` lines), or the options `src` and `tgt` (two
line-aligned files; CORPUS is then None). Without `out`, the model goes to the model store as
`translate.npz`. The translator has no CUDA kernels: `--device cuda` trains on the CPU, with a
warning.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from rnn_cli.checkpoint import check_writable
from rnn_cli.store import task_store_path
from rnn_cli.tasks import Emit, TestReport
from rnn_cli.tasks.example_run import ExampleTaskRun, split_text
from rnn_cli.tasks.translate.model import FORMAT, Encoded, TranslatorNet
from rnn_cli.tasks.translate.run import OPTIONS, TranslateRun

NO_CUDA = "the translator runs on the CPU (its CUDA kernels are not written yet)"


class TranslateTask:
    """`rnn_cli.tasks.Task` of the translator."""

    kind = "translate"
    options = OPTIONS
    format = FORMAT  # taskfile.TaskFormat of its model files (`rnn-cli info` reads them)
    loss_unit = "nats/target token"

    def prepare(self, corpus: str | None, *, out: str | None, resume: bool,
                options: Mapping[str, Any], device: str, emit: Emit) -> "TranslateTaskRun":
        path = out or task_store_path("translate")
        check_writable(path)
        if device == "cuda":
            emit("warning", {"message": NO_CUDA + "; --device cuda is ignored"})
        opts = {k: v for k, v in options.items() if k in OPTIONS}
        run = (TranslateRun.resume(path, corpus, **opts) if resume
               else TranslateRun.start(corpus, **opts))
        task_run = TranslateTaskRun(path, run, resume)
        emit("notice", {"message": task_run.data_line()})
        return task_run

    def test(self, path: str, file: str, options: Mapping[str, Any]) -> TestReport:
        """The `rnn-cli test` report of the translator at `path` on the gold pairs of `file`:
        BLEU and chrF (sacrebleu, with their signatures), exact match, loss, perplexity."""
        from rnn_cli.tasks.translate.translator import Translator

        if options.get("device") == "cuda" and options.get("warn"):
            options["warn"](NO_CUDA)
        tr = Translator.load(path, threads=options.get("threads"))
        m = tr.test(file, bad_lines=options.get("bad_lines") or "fail",
                    encoding=options.get("encoding") or "utf-8",
                    errors=options.get("errors") or "strict")
        return translate_report(m, path, file)


def translate_report(m: dict, path: str, file: str) -> TestReport:
    """A `TestReport` of `Translator.test`'s metrics."""
    warnings = list(m["notices"])
    if m["cut"]:
        warnings.append(f"{m['cut']} translation(s) reached the output length limit without "
                        "ending (counted as they are)")
    keys = ("n", "bleu", "chrf", "exact", "loss", "ppl", "bleu_signature", "chrf_signature",
            "bleu_detail", "cut")
    data = {"kind": "translate", "model": path, "file": file, **{k: m[k] for k in keys}}
    summary = [("pairs", m["n"]), ("bleu", m["bleu"]), ("chrf", m["chrf"]),
               ("exact", m["exact"]), ("loss", m["loss"]), ("perplexity", m["ppl"]),
               ("bleu signature", m["bleu_signature"]),
               ("chrf signature", m["chrf_signature"])]
    return TestReport("translate", data, summary, [], warnings)


class TranslateTaskRun(ExampleTaskRun):
    """`rnn_cli.tasks.Run` of the translator: a TranslateRun and where it saves."""

    kind = "translate"

    def data_line(self) -> str:
        """The notice on the data: pairs, the split, the vocabularies, the metric."""
        r = self.inner
        net, data, st = r.net, r.data, r.settings
        n_train = len(data["train"].src)
        n_val = len(data["valid"].src) if "valid" in data else 0
        split = split_text(n_train, n_val, st, ", at most 2,000")
        test = f"; test: {st['test']}, {len(data['test'].src):,}" if "test" in data else ""
        return (f"{st['data']}: {st['pairs_read']:,} sentence pairs; {split}{test}; V = "
                f"{len(net.src_vocab):,} source {net.cfg.src_level}s, {len(net.tgt_vocab):,} "
                f"target {net.cfg.tgt_level}s; the best model by {r.fit.cfg.metric}")

    def compile(self, emit: Emit) -> float:
        """One tiny batch forward and backward and a greedy and a beam decode on a copy of the
        network: every kernel of training and validation compiled (or loaded from numba's
        cache) before step 1 (numba compiles per signature, not per size)."""
        from rnn_cli.tasks.translate.search import decode_all

        t0 = time.perf_counter()
        r = self.inner
        net = TranslatorNet(r.net.cfg, r.net.src_vocab, r.net.tgt_vocab, r.net.params.copy(),
                            label_smoothing=r.net.dec.eps)
        train = r.data["train"]
        tiny = Encoded(train.src[:2], train.tgt[:2], train.refs[:2])
        idx = np.argsort(-tiny.lengths, kind="stable")
        net.forward(tiny, idx, np.random.default_rng(0) if net.cfg.dropout else None)
        net.backward(net.params.zeros_like())
        decode_all(net, tiny.src[:1], max_len=2)
        decode_all(net, tiny.src[:1], max_len=2, beam=2)
        return time.perf_counter() - t0

    def describe(self) -> dict[str, Any]:
        r = self.inner
        sizes = {"train_pairs": len(r.data["train"].src),
                 "val_pairs": len(r.data["valid"].src) if "valid" in r.data else 0,
                 "test_pairs": len(r.data["test"].src) if "test" in r.data else None,
                 "train_tokens": int(r.data["train"].lengths.sum()),
                 "V_src": len(r.net.src_vocab), "V_tgt": len(r.net.tgt_vocab),
                 "B": r.fit.cfg.batch_size, "parameters": len(r.net.params)}
        return {"task": "translate", "out": self.out, "device": "cpu", "resumed": self.resumed,
                "step": r.fit.step, "defaults": {"metric": r.fit.cfg.metric},
                "model": dataclasses.asdict(r.net.cfg), "train": dataclasses.asdict(r.fit.cfg),
                "sizes": sizes}


TASK = TranslateTask()
