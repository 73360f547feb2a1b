"""Training, for every task, in one call: what `rnn-cli train` and the Python API both run.

    import rnn_cli

    def show(kind, info):
        if kind == "eval":
            log.append((info["step"], info["val_loss"]))

    log = []
    summary = rnn_cli.train("corpora/shakespeare.txt", out="shakespeare.npz", max_seconds=60,
                            on_event=show)
    summary["val_loss"], summary["model"], log

`train(corpus, *, task=None, out=None, resume=False, on_event=None, should_stop=None,
**options) -> dict`

    corpus       path of the training file, or "-" for standard input (None for a
                 translator trained on the options src= and tgt=, two line-aligned files).
    task         "lm", "classify", "tag" or "translate" (`rnn_cli.tasks.KINDS`); None: the kind
                 of the model file `out` when resuming (given with it: it must match), else
                 guessed from the file's format
                 (`rnn_cli.tasks.guess`), with a "notice" event saying what and why (a
                 "detail" event when the guess is lm). A kind not implemented yet is a
                 UsageError naming it.
    out          the model file to write; None: the task's place in the model store
                 (lm: $RNN_CLI_HOME/<level>.npz; other tasks: $RNN_CLI_HOME/<task>.npz).
    resume       continue training the model at `out` (steps, optimizer, data position).
    on_event     on_event(kind, info) for each event below (default: none are reported).
    should_stop  polled between steps; True stops the run cleanly: the model is saved and the
                 summary returned with reason "interrupted".
    options      the task's options, named as the `rnn-cli train` flags with `_` for `-`
                 (`seq_len=64`, `max_seconds=60`, `level="word"`), plus `device` ("cpu",
                 "cuda", "auto"; default "cpu") and `threads` (the compiled kernels' threads,
                 process-wide). A value None counts as not given. A name the task does not read
                 is a UsageError. Defaults are those of `rnn-cli train`.

Returns the summary that `rnn-cli train --json` prints (NaN where that prints null). For
classify (and the other tasks of the example trainer, `tasks/fit.py`): task, reason ("steps",
"epochs", "max-seconds", "patience", "interrupted"), steps, epochs, examples, seconds,
eval_seconds, evaluations, examples_per_sec, tokens_per_sec, metric, best (its best value),
best_step, threads, val_<metric> for every scalar metric of the last validation (classify:
val_n, val_accuracy, val_macro_f1, val_loss), with --test test_n, test_accuracy,
test_macro_f1, test_loss and test_metrics (per_label, confusion, unseen, ...), and labels, V,
train_examples, valid_examples. For lm:
reason ("steps", "epochs", "max-seconds" or "interrupted"), steps, tokens, seconds (of this run's
training loop), eval_seconds, evaluations, tokens_per_sec, train_loss (mean of the last 50
steps), val_loss, best_val_loss, V, H, L, B, T, threads, sparse_updates, with --test test_loss,
test_ppl, test_tokens; and from here: model (the file written) and wall_seconds (of the run,
compiling excluded). Raises the project's exceptions (`rnn_cli.errors`): UsageError for a bad
option, CorpusError for unusable text, ModelFileError for a model file that cannot be resumed or
written, TrainingDiverged when the loss stops being finite (the last good model is kept; a first
model file is written when there was none), RnnCliError for an unusable device. A
KeyboardInterrupt during training saves the model and is raised again. Never prints, never
exits, never touches signals (the CLI turns Ctrl-C and SIGTERM into `should_stop`).

Events, in order: `on_event(kind, info)`, `info` a dict:

    notice     {"message"}  a line for the user: the corpus read (bytes, tokens, split, V), a
                            --valid/--test file read, the task guessed
    warning    {"message"}  something the user may want to change: a device fallback, a text
                            too short for the batch shape, more --threads than cores
    detail     {"message"}  for a closer look (`-v`): the id cache used, the defaults chosen
                            for this corpus, `--updates auto`'s choice, the GPU's name
    compiling  {}           kernels are compiled or loaded from numba's cache (seconds on a
                            first run); a new word-level lm with --max-seconds has a first
                            pair while its defaults are timed (`tasks/lm/budget.py`)
    compiled   {"seconds"}
    start      what was chosen, before the first step: {"task", "out", "device", "resumed",
               "step" (steps done before), "defaults" (the flags set for this corpus: {name:
               value}), "model" (the architecture: ModelConfig's fields), "train" (TrainConfig's
               fields), "sizes" {"train_tokens", "val_tokens", "test_tokens" (None without
               --test), "V", "B", "T", "parameters"}, "sparse_updates"}; for classify:
               {"task", "out", "device", "resumed", "step", "defaults" ({"level"} when chosen
               by the data), "model" (ClassifyConfig's fields), "train" (FitConfig's),
               "sizes" {"train_examples", "val_examples", "test_examples", "train_tokens",
               "V", "K", "B", "parameters"}, "labels"}
    step       after every optimizer step: {"step", "loss" (nats/token of the window), "tok_s"
               (training tokens per second so far), "elapsed" (seconds), "epoch" (fractional),
               "progress" (0..1 towards the first stopping rule)}; the example trainer's also
               "lr" and "examples_per_sec", its loss the batch's mean per example
    sample     every --sample-every steps: {"step", "text"} (a short sample from the model now)
    eval       after each validation, the model file already saved: {"step", "train_loss" (mean
               since the last one; NaN if none), "val_loss" (NaN without validation text),
               "best" (improved: these parameters are kept), "epoch", "lr"}; the example
               trainer's also "metrics" (the task's: classify accuracy, macro_f1, per_label,
               confusion, ...), "metric" (--metric), "value", "best_value", "bad_evals"
    saved      {"path", "step", "reason"}: the model file was written; reason "eval", "end",
               "interrupted" or "diverged"

The tasks themselves live in `rnn_cli/tasks/` (the registry and the protocol that this module
drives: `rnn_cli.tasks`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from rnn_cli import tasks
from rnn_cli.errors import TrainingDiverged, UsageError

COMMON = frozenset({"device", "threads"})  # options read here, for every task


def train(corpus: str | None, *, task: str | None = None, out: str | None = None, resume: bool = False,
          on_event: Callable[[str, dict], None] | None = None,
          should_stop: Callable[[], bool] | None = None, **options: Any) -> dict:
    """Train a model of `task` on `corpus` and save it; see the module docstring for the
    arguments, the summary returned, the exceptions and the events."""
    emit = on_event or (lambda kind, info: None)
    stop = should_stop or (lambda: False)
    given = {k: v for k, v in options.items() if v is not None}
    from rnn_cli.cuda.backend import resolve  # no numba.cuda import for --device cpu

    device = resolve(given.get("device", "cpu"),
                     lambda msg: emit("warning", {"message": msg}))
    if given.get("threads"):
        _set_threads(int(given["threads"]), emit)
    kind = _kind(corpus, task, out if resume else None, given, emit)
    impl = tasks.get(kind)
    unknown = sorted(set(given) - impl.options - COMMON)
    if unknown:
        names = ", ".join(f"--{n.replace('_', '-')}" for n in unknown)
        raise UsageError(f"{names} do{'es' if len(unknown) == 1 else ''} not apply to "
                         f"--task {kind}", hint=f"drop {names}, or train another --task")
    run = impl.prepare(corpus, out=out, resume=resume, options=given, device=device, emit=emit)
    emit("compiling", {})
    secs = run.compile(emit)
    emit("compiled", {"seconds": secs})
    emit("start", run.describe())
    return _drive(run, emit, stop)


def _drive(run, emit, stop) -> dict:
    """Run the training loop, saving after each validation, at the end, on an interruption."""
    import numpy as np

    out = run.out

    def save(reason: str, with_resume: bool = True) -> None:
        run.save(out, with_resume=with_resume)
        emit("saved", {"path": out, "step": run.step, "reason": reason})

    def on_event(kind, info):
        if kind == "eval":
            save("eval")
        emit(kind, info)

    t0 = time.perf_counter()
    try:
        with np.errstate(all="ignore"):  # a diverging run is reported once, as TrainingDiverged
            summary = run.run(on_event, stop)
    except TrainingDiverged:
        if not os.path.exists(out):
            save("diverged", with_resume=False)
        raise
    except KeyboardInterrupt:
        save("interrupted")
        raise
    save("interrupted" if summary.get("reason") == "interrupted" else "end")
    summary.update(model=out, wall_seconds=round(time.perf_counter() - t0, 3))
    return summary


def _kind(corpus: str, task: str | None, resumed: str | None, given: dict, emit) -> str:
    """--task; else, resuming the file `resumed`, its kind; else the guess from the corpus's
    format (also when resuming from the model store: the guess names the stored model)."""
    if resumed is not None and os.path.isfile(resumed):
        from rnn_cli.taskfile import peek_kind

        kind = peek_kind(resumed)
        if task is not None and task != kind:
            what = tasks.WHAT[kind]
            raise UsageError(f"--resume: {resumed} is a {what}, not a {tasks.WHAT[task]}",
                             hint=f"drop --task (or pass --task {kind}) to continue it")
        return kind
    if task is not None:
        return task
    if corpus is None and (given.get("src") or given.get("tgt")):
        return "translate"  # --src/--tgt: two line-aligned files are translation pairs
    from rnn_cli.tasks.guess import guess_kind, sample_lines

    lines = sample_lines(corpus, given.get("encoding") or "utf-8")
    if lines is None:
        emit("detail", {"message": "--task lm: the corpus is a stream that cannot be looked at "
                                   "before it is read (pass --task to choose)"})
        return "lm"
    kind, why = guess_kind(lines)
    name = "standard input" if corpus == "-" else corpus
    emit("notice" if kind != "lm" else "detail",
         {"message": f"--task {kind} (guessed: {name}: {why}; pass --task to choose)"})
    return kind


def _set_threads(n: int, emit) -> None:
    from rnn_cli.kernels import _jit

    got = _jit.set_threads(n)
    if got < n:
        emit("warning", {"message": f"--threads {n} is more than the {got} cores here; "
                                    f"using {got}"})
