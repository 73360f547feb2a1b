"""What a task model file is (classifier, tagger, translator), as one plain dict for `rnn-cli
info` and `info --json`, and the (key, value) lines of its human form. Never prints.

Every task file holds the same parts (`taskfile.TaskModel`): kind, config, vocabularies and
label sets by role, parameters, training settings and state, and a history with named columns;
this describes them all without knowing the task. The language model's files have their own
description (`tasks/lm/model_info.py`).
"""

from __future__ import annotations

import math
import os

import numpy as np

from rnn_cli.checkpoint import FORMAT_VERSION
from rnn_cli.kinds import KINDS
from rnn_cli.taskfile import TaskModel

VOCAB_HEAD = 20  # symbols listed by `info`
LABELS_SHOWN = 30  # labels listed by the human form (--json has them all)
PLOT_COLUMNS = ("step", "train_loss", "val_loss", "seconds")  # plot.py's history layout


def _num(x):
    if x is None or isinstance(x, bool):
        return None
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def describe(model: TaskModel, path: str, written_by: str | None = None) -> dict:
    """Everything `info` shows of a task model, as JSON-able values."""
    st, tr = model.state, model.train
    cols = list(model.history_columns)
    history = [{c: _num(v) for c, v in zip(cols, row)} for row in model.history.tolist()]
    batches = st.get("batches") or {}
    epochs = history[-1].get("epoch") if history and "epoch" in cols else None
    vocabs = {role: {"level": v.level, "size": len(v), "tokenizer": v.tokenizer,
                     "lower": v.lower, "head": list(v.symbols[:VOCAB_HEAD])}
              for role, v in model.vocabs.items()}
    return {
        "path": os.path.abspath(path),
        "file_bytes": os.path.getsize(path),
        "format_version": FORMAT_VERSION,
        "rnn_cli_version": written_by,
        "kind": model.kind,
        "what": KINDS[model.kind][0],
        "config": dict(model.config),
        "parameters": len(model.params),
        "blocks": {name: list(shape) for name, shape in model.params.shapes.items()},
        "vocabs": vocabs,
        "labels": {role: list(labels) for role, labels in model.labels.items()},
        "corpus": st.get("corpus"),
        "train_config": dict(tr),
        "steps": int(st.get("step", 0)),
        "examples_seen": int(st.get("examples", 0)),
        "epochs": _num(epochs) if epochs is not None else _num(batches.get("epoch")),
        "train_seconds": _num(st.get("seconds")),
        "metric": tr.get("metric"),
        "best": _num(st.get("best")),
        "best_step": st.get("best_step"),
        "resumable": "batches" in st and model.rng_state is not None,
        "history_columns": cols,
        "history": history,
    }


def plot_history(d: dict) -> np.ndarray:
    """(N, 4) float64 step, train loss, val loss, seconds of a description's history (the
    layout `plot.py` draws); NaN where a column is missing."""
    rows = [[r.get(c) if r.get(c) is not None else math.nan for c in PLOT_COLUMNS]
            for r in d["history"]]
    return np.asarray(rows, np.float64).reshape(len(rows), len(PLOT_COLUMNS))


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _show(sym: str) -> str:
    return sym if sym.isprintable() and sym.strip() == sym and sym else repr(sym)


def summary_rows(d: dict) -> list[tuple[str, str]]:
    """(key, value) lines of the human `info` of a task model."""
    ver = f"format {d['format_version']}" + (f", written by rnn-cli {d['rnn_cli_version']}"
                                              if d["rnn_cli_version"] else "")
    cfg = ", ".join(f"{k} {v}" for k, v in d["config"].items())
    rows = [("model", f"{d['path']} ({_size(d['file_bytes'])}, {ver})"),
            ("kind", f"{d['kind']} ({d['what']})"),
            ("network", cfg),
            ("parameters", f"{d['parameters']:,}")]
    for role, v in d["vocabs"].items():
        head = " ".join(_show(s) for s in v["head"]) + (" …" if v["size"] > len(v["head"])
                                                         else "")
        rows.append((f"vocab {role}", f"V = {v['size']:,} {v['level']} tokens"
                                      + (f" ({v['tokenizer']}"
                                         f"{', lower-cased' if v['lower'] else ''})"
                                         if v["level"] == "word" else "") + f": {head}"))
    for role, labels in d["labels"].items():
        shown = " ".join(_show(x) for x in labels[:LABELS_SHOWN])
        rows.append((f"labels {role}", f"K = {len(labels)}: {shown}"
                                       + (" …" if len(labels) > LABELS_SHOWN else "")))
    c = d["corpus"]
    if c:
        rows.append(("corpus", f"{c.get('name')}, {c.get('bytes', 0):,} bytes, "
                               f"sha256 {c.get('sha256')}"))
    tc = d["train_config"]
    ep = f" ({d['epochs']:.2f} epochs)" if d["epochs"] is not None else ""
    secs = "-" if d["train_seconds"] is None else f"{d['train_seconds']:.1f}"
    rows.append(("training", f"{d['steps']:,} steps, {d['examples_seen']:,} examples{ep}, "
                             f"{secs} s; {tc.get('optim', '?')} lr {tc.get('lr', '?')}, batch "
                             f"{tc.get('batch_size', '?')}"
                             + (", resumable" if d["resumable"] else "")))
    if d["best"] is None:
        rows.append(("best val", "- (no validation recorded)"))
    else:
        rows.append(("best val", f"{d['metric']} {d['best']:.4f} (step {d['best_step']})"))
    return rows
