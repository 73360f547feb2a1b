"""The translator as a task of `rnn_cli.training`: the options, a new or resumed `TranslateRun`,
where the model file goes, the kernels compiled before the first step. Never prints: notices go
out as events (`emit`).

The training data is CORPUS (`source<TAB>target` lines), or the options `src` and `tgt` (two
line-aligned files; CORPUS is then None). Without `out`, the model goes to the model store as
`translate.npz`. The CUDA path has no translator: `--device cuda` trains on the CPU, with a
warning.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from rnn_cli import checkpoint
from rnn_cli.tasks import Emit
from rnn_cli.tasks.translate.run import OPTIONS, TranslateRun


class TranslateTask:
    """`rnn_cli.tasks.Task` of the translator."""

    kind = "translate"
    options = OPTIONS

    def prepare(self, corpus: str | None, *, out: str | None, resume: bool,
                options: Mapping[str, Any], device: str, emit: Emit) -> "TranslateTaskRun":
        path = out or os.path.join(checkpoint.store_dir(), "translate.npz")
        checkpoint.check_writable(path)
        if device == "cuda":
            emit("warning", {"message": "the translator has no CUDA kernels yet: training on "
                                        "the CPU"})
        opts = dict(options)
        run = (TranslateRun.resume(path, corpus, **opts) if resume
               else TranslateRun.start(corpus, **opts))
        net, data = run.net, run.data
        emit("notice", {"message": f"{run.settings['data']}: {len(data['train'].src):,} "
                                   f"training pairs, "
                                   f"{len(data['valid'].src) if 'valid' in data else 0:,} "
                                   f"validation; V = {len(net.src_vocab):,} source "
                                   f"{net.cfg.src_level}s, {len(net.tgt_vocab):,} target "
                                   f"{net.cfg.tgt_level}s; best model by "
                                   f"{run.fit.cfg.metric}"})
        return TranslateTaskRun(run, path, resume)


class TranslateTaskRun:
    """`rnn_cli.tasks.Run` of the translator."""

    device = "cpu"

    def __init__(self, run: TranslateRun, out: str, resumed: bool):
        self.inner, self.out, self.resumed = run, out, resumed

    @property
    def step(self) -> int:
        return self.inner.fit.step

    def compile(self, emit: Emit) -> float:
        """One tiny batch forward and backward, and a greedy decode, on copies: every kernel
        of training and validation compiled (or loaded from numba's cache) before step 1."""
        import time

        from rnn_cli.tasks.translate.model import Encoded, TranslatorNet
        from rnn_cli.tasks.translate.search import decode_all

        t0 = time.perf_counter()
        r = self.inner
        train = r.data["train"]
        net = TranslatorNet(r.net.cfg, r.net.src_vocab, r.net.tgt_vocab, r.net.params.copy(),
                            label_smoothing=r.net.dec.eps)
        tiny = Encoded(train.src[:2], train.tgt[:2], train.refs[:2])
        idx = np.argsort(-tiny.lengths, kind="stable")
        net.forward(tiny, idx, np.random.default_rng(0) if net.cfg.dropout else None)
        net.backward(net.params.zeros_like())
        decode_all(net, tiny.src[:1], max_len=2)
        return time.perf_counter() - t0

    def describe(self) -> dict[str, Any]:
        import dataclasses

        r = self.inner
        return {"task": "translate", "out": self.out, "device": "cpu", "resumed": self.resumed,
                "step": r.fit.step, "defaults": {}, "model": dataclasses.asdict(r.net.cfg),
                "train": dataclasses.asdict(r.fit.cfg),
                "sizes": {"train_pairs": len(r.data["train"].src),
                          "valid_pairs": len(r.data["valid"].src) if "valid" in r.data else 0,
                          "test_pairs": len(r.data["test"].src) if "test" in r.data else None,
                          "V_src": len(r.net.src_vocab), "V_tgt": len(r.net.tgt_vocab),
                          "parameters": len(r.net.params)}}

    def run(self, on_event: Emit, should_stop: Callable[[], bool]) -> dict[str, Any]:
        return self.inner.run(on_event, should_stop)

    def save(self, path: str, with_resume: bool = True) -> None:
        self.inner.save(path, with_resume)


TASK = TranslateTask()
