"""What the example tasks' runs (classify, tag, translate) share around the trainer (`fit.py`):
the parameters and trainer state of a resumed model file, a measurement made with the best
parameters, the model file's content (`TaskModel`), the data notice's split, and the base of
their `rnn_cli.tasks.Run` (`ExampleTaskRun`: where it saves, the step, run, save). Never prints.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from rnn_cli.params import ParamSet
from rnn_cli.taskfile import TaskModel


def resumed(model: TaskModel) -> tuple[ParamSet, dict]:
    """(the parameters to go on from, the trainer's `resume` state) of a loaded model file: the
    latest parameters when the file holds them beside the best ones, else the best."""
    params = model.params
    if model.resume_flat is not None:
        params = params.copy()
        params.flat[:] = model.resume_flat
    resume = {"state": model.state, "opt": model.opt, "rng_state": model.rng_state,
              "best_flat": model.params.flat, "history": model.history,
              "history_columns": model.history_columns}
    return params, resume


def with_best(net: Any, best_flat: np.ndarray, measure: Callable[[], dict]) -> dict:
    """measure() with `net`'s parameters set to `best_flat`; its own parameters back after."""
    keep = net.params.flat.copy()
    net.params.flat[:] = best_flat
    try:
        return measure()
    finally:
        net.params.flat[:] = keep


def task_model(kind: str, net: Any, fit: Any, vocabs: dict, labels: dict, train: dict,
               state: dict, with_resume: bool) -> TaskModel:
    """The model file's content of a run now: the best parameters, `train` (the settings) beside
    the trainer's configuration, the trainer's state with `state` added, and (with_resume) what
    a resume needs: the latest parameters when they differ from the best, the optimizer's
    moments and the random state."""
    st = fit.state_dict()
    best = ParamSet(net.params.shapes)
    best.flat[:] = st["best_flat"]
    latest = net.params.flat
    state = {**st["state"], **state}
    if not with_resume:
        state.pop("batches", None)
    return TaskModel(kind, dataclasses.asdict(net.cfg), vocabs, labels, best,
                     {**dataclasses.asdict(fit.cfg), **train}, state, st["history"],
                     st["history_columns"], st["rng_state"] if with_resume else None,
                     None if not with_resume or np.array_equal(latest, best.flat)
                     else latest.astype(np.float32), st["opt"] if with_resume else {})


def split_text(n_train: int, n_val: int, settings: dict, held_out: str = "") -> str:
    """The data notice's words on the split: a --valid file, a seeded held-out part (`held_out`
    adds to its description), or none."""
    if settings.get("valid"):
        return f"{n_train:,} train; validation: {settings['valid']}, {n_val:,}"
    if n_val:
        return (f"{n_train:,} train, {n_val:,} validation (a seeded random "
                f"{settings.get('val_frac', 0.1):.0%} held out{held_out}; --valid FILE to "
                "choose)")
    return f"{n_train:,} train, no validation"


class ExampleTaskRun:
    """The base of an example task's `rnn_cli.tasks.Run`: its run (`inner`: a ClassifyRun,
    TagRun or TranslateRun), where it saves, and whether it was resumed. A subclass names its
    `kind` and writes `data_line`, `compile` and `describe`."""

    kind = ""
    device = "cpu"

    def __init__(self, out: str, run: Any, resumed: bool):
        self.out, self.inner, self.resumed = out, run, resumed

    @property
    def step(self) -> int:
        return self.inner.fit.step

    def run(self, on_event: Callable[[str, dict], None],
            should_stop: Callable[[], bool]) -> dict[str, Any]:
        return {"task": self.kind, **self.inner.run(on_event, should_stop)}

    def save(self, path: str, with_resume: bool = True) -> None:
        self.inner.save(path, with_resume)
