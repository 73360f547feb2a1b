"""The tagger as a task of `rnn_cli.training` (what `rnn-cli train --task tag` runs): options
checked, a new or resumed `TagRun`, its kernels compiled before the first step, the model file
saved where `-o` says (default: the model store's tag.npz). Never prints: notices go out as
events.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from rnn_cli import checkpoint
from rnn_cli.optimizer import Optimizer, clip_gradients
from rnn_cli.tasks import Emit
from rnn_cli.tasks.tag.run import OPTIONS, TagRun

STORE_NAME = "tag"  # $RNN_CLI_HOME/tag.npz without -o


class TagTask:
    """`rnn_cli.tasks.Task` of the tagger."""

    kind = "tag"
    options = OPTIONS

    def prepare(self, corpus: str, *, out: str | None, resume: bool,
                options: Mapping[str, Any], device: str, emit: Emit) -> "TagTaskRun":
        given = {k: v for k, v in options.items() if k not in ("device", "threads")}
        path = out or checkpoint.store_path(STORE_NAME)
        checkpoint.check_writable(path)
        if device == "cuda":
            emit("warning", {"message": "the tagger trains on the CPU (no CUDA kernels for it "
                                        "yet); --device cuda ignored"})
        if resume:
            run = TagRun.resume(path, corpus, **given)
        else:
            run = TagRun.start(corpus, **given)
        for kind, message in run.notices:  # as they happen, before compiling
            emit(kind, {"message": message})
        run.notices = []
        return TagTaskRun(run, path, resume)


class TagTaskRun:
    """`rnn_cli.tasks.Run` of the tagger: a TagRun and where it saves."""

    device = "cpu"

    def __init__(self, run: TagRun, out: str, resumed: bool):
        self.tag_run, self.out, self.resumed = run, out, resumed

    @property
    def step(self) -> int:
        return self.tag_run.fit.step

    def compile(self, emit: Emit) -> float:
        """Run every kernel once on two training sentences (the parameters and the run's
        random state untouched): forward, backward, decoding, clipping, the optimizer."""
        t0 = time.perf_counter()
        r = self.tag_run
        train = r.data["train"]
        idx = np.arange(min(2, len(train.sentences)))
        net, grads = r.net, r.net.params.zeros_like()
        net.forward(train, idx, None)
        net.backward(grads)
        em = net.scores(train.batch(idx), None)
        lens = train.batch(idx).lens
        net.decode(em, lens)
        net.tag_probs(em, lens)
        clip_gradients(grads.flat, 1.0, r.fit.cfg.clip_mode)
        Optimizer(r.fit.cfg, len(grads)).update(net.params.flat.copy(), grads.flat)
        return time.perf_counter() - t0

    def describe(self) -> dict[str, Any]:
        r = self.tag_run
        data = r.data
        return {"task": "tag", "out": self.out, "device": "cpu", "resumed": self.resumed,
                "step": r.fit.step, "defaults": {}, "model": dataclasses.asdict(r.net.cfg),
                "train": dataclasses.asdict(r.fit.cfg),
                "sizes": {"train_tokens": int(data["train"].words.shape[0]),
                          "val_tokens": int(data["valid"].words.shape[0])
                          if "valid" in data else 0,
                          "test_tokens": int(data["test"].words.shape[0])
                          if "test" in data else None,
                          "train_sentences": len(data["train"].sentences),
                          "V": len(r.vocabs["word"]), "C": len(r.vocabs["char"]),
                          "K": len(r.net.tagset), "B": r.fit.cfg.batch_size,
                          "parameters": len(r.net.params)},
                "tags": list(r.net.tagset.tags), "scheme": r.net.tagset.scheme}

    def run(self, on_event: Emit, should_stop: Callable[[], bool]) -> dict[str, Any]:
        return self.tag_run.run(on_event, should_stop)

    def save(self, path: str, with_resume: bool = True) -> None:
        self.tag_run.save(path, with_resume)


TASK = TagTask()
