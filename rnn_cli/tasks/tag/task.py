"""The tagger as a task of `rnn_cli.training` (what `rnn-cli train --task tag` runs): options
checked, the model store's place, a new or resumed `TagRun`, its kernels compiled before the
first step, the "start" event's description, and `test` (the `rnn-cli test` report of a
tagger). Never prints: notices go out as events (`emit`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from rnn_cli.checkpoint import check_writable
from rnn_cli.errors import UsageError
from rnn_cli.optimizer import Optimizer, clip_gradients
from rnn_cli.store import task_store_path
from rnn_cli.tasks import Emit, Table, TestReport
from rnn_cli.tasks.example_run import ExampleTaskRun, split_text
from rnn_cli.tasks.tag.model import FORMAT
from rnn_cli.tasks.tag.run import OPTIONS, TagRun


class TagTask:
    """`rnn_cli.tasks.Task` of the tagger."""

    kind = "tag"
    options = OPTIONS
    format = FORMAT  # taskfile.TaskFormat of its model files (`rnn-cli info` reads them)
    loss_unit = "nats/token"

    def prepare(self, corpus: str, *, out: str | None, resume: bool,
                options: Mapping[str, Any], device: str, emit: Emit) -> "TagTaskRun":
        path = out or task_store_path("tag")
        check_writable(path)
        if device == "cuda":
            emit("warning", {"message": "the tagger trains on the CPU (its CUDA kernels are "
                                        "not written yet); --device cuda is ignored"})
        given = {k: v for k, v in options.items() if k in OPTIONS}
        if "metric" in given:
            given["metric"] = str(given["metric"]).replace("-", "_")
        run = TagRun.resume(path, corpus, **given) if resume else TagRun.start(corpus, **given)
        task_run = TagTaskRun(path, run, resume)
        emit("notice", {"message": task_run.data_line()})
        for kind, message in run.notices:  # as they happen: before the kernels compile
            emit(kind, {"message": message})
        run.notices = []
        return task_run

    def test(self, path: str, file: str, options: Mapping[str, Any]) -> TestReport:
        """The `rnn-cli test` report of the tagger at `path` on the gold file `file`."""
        from rnn_cli.tasks.tag.tagger import Tagger

        if options.get("bad_lines") == "skip":
            raise UsageError("--bad-lines skip: a tagger's gold file is read whole or not at "
                             "all (an error names the bad line)",
                             hint="drop --bad-lines, and fix the line the error names")
        if options.get("device") == "cuda" and options.get("warn"):
            options["warn"]("the tagger runs on the CPU (its CUDA kernels are not written yet)")
        tagger = Tagger.load(path, threads=options.get("threads"))
        m = tagger.test(file, encoding=options.get("encoding") or "utf-8",
                        errors=options.get("errors") or "strict")
        return test_report(m, path, file)


def test_report(m: dict, path: str, file: str) -> TestReport:
    """A `TestReport` of `Tagger.test`'s metrics (fractions; the CLI shows them as they are)."""
    summary = [("sentences", m["sentences"]), ("tokens", m["tokens"]),
               ("accuracy", m["accuracy"])]
    tables, warnings = [], list(m["warnings"])
    if "entities" in m:
        e = m["entities"]
        summary += [("precision", e["precision"]), ("recall", e["recall"]), ("f1", e["f1"]),
                    ("entities", e["gold"]), ("predicted", e["predicted"])]
        cols = ("precision", "recall", "f1", "gold", "predicted", "correct")
        tables.append(Table("per entity type", ("type", *cols),
                            [(t, *(v[c] for c in cols)) for t, v in m["per_type"].items()]))
        bad = m["invalid_sentences"]["gold"]
        if bad:
            warnings.append(f"{bad:,} gold sentence(s) break the {m['scheme']} rules (an I- tag "
                            "after O, ...): scored as conlleval reads them (I-X after O starts "
                            "an X entity)")
        if m["non_chunk_tags"]:
            shown = ", ".join(list(m["non_chunk_tags"])[:5])
            warnings.append(f"tags that are neither O nor B-/I-/E-/S- ({shown}) count as O in "
                            "the entity scores")
    summary.append(("loss", m["loss"]))
    if m["unseen_tags"]:
        shown = ", ".join(f"{t!r} ({n})" for t, n in list(m["unseen_tags"].items())[:5])
        warnings.append(f"{sum(m['unseen_tags'].values()):,} gold token(s) have a tag the model "
                        f"never saw ({shown}); they count as errors")
    data = {"kind": "tag", "model": path, "file": m["name"] if file == "-" else file,
            **{k: v for k, v in m.items() if k not in ("warnings", "name")}}
    return TestReport("tag", data, summary, tables, warnings)


class TagTaskRun(ExampleTaskRun):
    """`rnn_cli.tasks.Run` of the tagger: a TagRun and where it saves."""

    kind = "tag"

    def data_line(self) -> str:
        """The notice on the data: sentences, tokens, tags, the split, the vocabularies."""
        r, info = self.inner, self.inner.settings.get("corpus", {})
        n_train = len(r.data["train"].sentences)
        n_val = len(r.data["valid"].sentences) if "valid" in r.data else 0
        tags = r.net.tagset.tags
        shown = ", ".join(tags[:8]) + (", …" if len(tags) > 8 else "")
        scheme = r.net.tagset.scheme
        split = split_text(n_train, n_val, r.settings)
        test = f"; test: {r.settings['test']}, {len(r.data['test'].sentences):,}" \
            if "test" in r.data else ""
        return (f"{info.get('name', '?')}: {info.get('bytes', 0):,} bytes, sentences: {split}"
                f"{test}; {int(r.data['train'].words.shape[0]):,} training tokens, "
                f"{len(tags)} tags ({shown}; {'no entity scheme' if scheme == 'none' else scheme}"
                f"); {len(r.vocabs['word']) - 2:,} words, {len(r.vocabs['char']) - 1:,} "
                "characters")

    def compile(self, emit: Emit) -> float:
        """Run every kernel once on two training sentences (the parameters and the run's
        random state untouched): forward, backward, decoding, probabilities, clipping, the
        optimizer; numba compiles per signature, so this covers the whole run."""
        t0 = time.perf_counter()
        r = self.inner
        train, net = r.data["train"], r.net
        idx = np.arange(min(2, len(train.sentences)))
        grads = net.params.zeros_like()
        net.forward(train, idx, np.random.default_rng(0) if net.cfg.dropout else None)
        net.backward(grads)
        b = train.batch(idx)
        em = net.scores(b, None)
        net.decode(em, b.lens)
        net.tag_probs(em, b.lens)
        clip_gradients(grads.flat, 1.0, r.fit.cfg.clip_mode)
        Optimizer(r.fit.cfg, len(grads)).update(net.params.flat.copy(), grads.flat)
        return time.perf_counter() - t0

    def describe(self) -> dict[str, Any]:
        r = self.inner
        data = r.data
        sizes = {"train_sentences": len(data["train"].sentences),
                 "val_sentences": len(data["valid"].sentences) if "valid" in data else 0,
                 "test_sentences": len(data["test"].sentences) if "test" in data else None,
                 "train_tokens": int(data["train"].words.shape[0]),
                 "V": len(r.vocabs["word"]), "C": len(r.vocabs["char"]),
                 "K": len(r.net.tagset), "B": r.fit.cfg.batch_size,
                 "parameters": len(r.net.params)}
        return {"task": "tag", "out": self.out, "device": "cpu", "resumed": self.resumed,
                "step": r.fit.step, "defaults": {}, "model": dataclasses.asdict(r.net.cfg),
                "train": dataclasses.asdict(r.fit.cfg), "sizes": sizes,
                "tags": list(r.net.tagset.tags), "scheme": r.net.tagset.scheme}


TASK = TagTask()
