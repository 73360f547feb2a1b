"""The tasks rnn-cli trains, by kind, and the protocol a task implements to be trained.

A task is one shape of recurrent network from the course notes, with a place of its own under
`rnn_cli/tasks/<kind>/` for what is its alone (reader, network or head, loss, decoding, metric):

    lm          language model, many-to-many on a running text (`rnn_cli/tasks/lm/`)
    classify    many-to-one: a label per line (fastText `__label__X text` lines)
    tag         bidirectional tagging: a tag per token (CoNLL columns, CoNLL-U)
    translate   encoder-decoder: a target text per source text (`source<TAB>target` lines)

`KINDS` names them all; `get(kind)` gives the task object of an implemented kind and refuses the
others with one line naming the kind. The orchestration (`rnn_cli.training.train`, what
`rnn-cli train` and the Python API both call) drives every task the same way:

1. It resolves what is common to every task: `--device` (`cuda.backend.resolve`), `--threads`,
   the kind (`--task`, else the model file's kind when resuming, else `guess.guess_kind` of the
   corpus), and refuses an option the task does not read (`Task.options`).
2. `run = task.prepare(corpus, out=..., resume=..., options=..., device=..., emit=...)`: the
   task adds its own defaults to the options given and validates them (a bad value is a
   `UsageError` naming the flag), reads the data, loads the model file to continue (`resume`),
   or builds a new model, and returns a `Run`. Notices go out through `emit` as they happen.
3. `run.compile(emit)` compiles (or loads from numba's cache) every kernel the run uses.
4. It emits ("start", run.describe()), then calls `run.run(on_event, should_stop)`, saving the
   model with `run.save(run.out)` after each "eval" event, at the end, on an interruption, and on
   a divergence when no model file exists yet (`with_resume=False`).

Options are keyword arguments named as the CLI's flags with `_` for `-` (`--seq-len` is
`seq_len`); a value None means "not given", so a task's flags on the `train` parser default to
None and the task fills in its defaults (an argparse default would read as given, and a task
that does not read the flag would refuse it). Events are `emit(kind, info)` with a dict `info`;
`rnn_cli.training` documents every kind and its fields.

Nothing here imports numpy or numba (`rnn-cli --help` imports this module): a task's module is
imported by `get` on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from rnn_cli.errors import UsageError

KINDS = ("lm", "classify", "tag", "translate")
WHAT = {"lm": "language model", "classify": "classifier", "tag": "tagger",
        "translate": "translation model"}
# kind -> the module whose TASK attribute is the kind's task object (imported on first use)
_MODULES = {"lm": "rnn_cli.tasks.lm.task", "classify": "rnn_cli.tasks.classify.task",
            "tag": "rnn_cli.tasks.tag.task",
            "translate": "rnn_cli.tasks.translate.task"}

Emit = Callable[[str, dict], None]  # emit(kind, info): an event of the run (rnn_cli.training)


class Run(Protocol):
    """One training run of a task, ready to go (made by `Task.prepare`)."""

    out: str  # the model file this run writes (the one given, or the task's default place)
    device: str  # "cpu" or "cuda": where the run's kernels run
    step: int  # optimizer steps done so far (a resumed run's earlier steps included)

    def compile(self, emit: Emit) -> float:
        """Compile, or load from numba's cache, every kernel the run uses; returns seconds."""

    def describe(self) -> dict[str, Any]:
        """The "start" event's fields: what was chosen (rnn_cli.training documents them)."""

    def run(self, on_event: Emit, should_stop: Callable[[], bool]) -> dict[str, Any]:
        """Train until the run's stopping rule or `should_stop()`; return the summary (with a
        "reason": "steps", "epochs", "max-seconds", "interrupted", or the task's own). Emits
        "step" and "eval" events (and the task's own); never prints; raises TrainingDiverged
        when the loss stops being finite."""

    def save(self, path: str, with_resume: bool = True) -> None:
        """Write the model file atomically: the best parameters, and with `with_resume` what
        `--resume` needs to continue (latest parameters, optimizer moments, data position)."""


@dataclass
class Table:
    """A table of a report: a title, column names, rows of plain values (str, int, float)."""

    title: str
    columns: tuple[str, ...]
    rows: list[tuple]


@dataclass
class TestReport:
    """What `rnn-cli test` shows for a model of any kind (`Task.test`): `data` is the one JSON
    object of `--json` (JSON-able; NaN is written as null); `summary` the (name, value) rows
    shown first, `tables` the tables after them (on a terminal as rich tables, else as
    TAB-separated rows), `warnings` lines for stderr (unseen labels, cut examples, ...)."""

    __test__ = False  # not a pytest test class, whatever its name

    kind: str
    data: dict[str, Any]
    summary: list[tuple[str, Any]]
    tables: list[Table] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class Task(Protocol):
    """What a kind implements so that `rnn_cli.training.train` can drive it, and `rnn-cli
    test` and `rnn-cli info` can read its models:

        format   (task files: every kind but lm) the `taskfile.TaskFormat` of its model files;
                 `rnn-cli info` loads and describes them with it
        test(path, file, options) -> TestReport
                 the task's metrics of the model file `path` on the gold file `file`; options:
                 the `rnn-cli test` flags (bad_lines, encoding, errors, batch_size, device,
                 threads; None: not given)
    """

    kind: str  # one of KINDS
    options: frozenset[str]  # the options (flag names, `_` for `-`) the task reads

    def prepare(self, corpus: str, *, out: str | None, resume: bool,
                options: Mapping[str, Any], device: str, emit: Emit) -> Run:
        """Build a run: defaults and validation of `options` (the given ones only: no None),
        the data read from `corpus` ('-': standard input), the model new or, with `resume`,
        continued from the file at `out` (or the task's default place when `out` is None).
        `device` is `--device` resolved ("cpu" or "cuda"; `options["device"]` is what was
        asked); the task may move to the CPU for what its CUDA path lacks (a warning)."""

    def test(self, path: str, file: str, options: Mapping[str, Any]) -> TestReport:
        """The report of `rnn-cli test -m path file` (see the class docstring)."""


def get(kind: str) -> Task:
    """The task object of `kind`; UsageError for a kind that is not (yet) implemented."""
    if kind not in KINDS:
        raise UsageError(f"--task must be one of {', '.join(KINDS)} (got {kind!r})")
    if kind not in _MODULES:
        raise UsageError(f"--task {kind}: training a {WHAT[kind]} is not implemented yet",
                         hint="rnn-cli trains language models (--task lm) for now")
    return importlib.import_module(_MODULES[kind]).TASK
