"""Model files of the task models (classify, tag, translate): the language model's container
(`checkpoint.py`: one .npz of plain arrays, atomic writes, never unpickled, everything checked
on load) with what a task needs besides:

    meta.kind        "classify" | "tag" | "translate" (`kinds.py`; a language model has none)
    meta.model       the task's architecture config (a JSON object), checked by the task on load
    meta.train       the training settings (JSON); meta.state the training state (step, epoch,
                     batches position, best metric, ...); meta.history_columns the names of the
                     history's columns
    history          float64 (N, C): one row per validation
    vocab.<role>.meta, vocab.<role>.codepoints, vocab.<role>.offsets
                     one vocabulary per role (vocab.py's three arrays under the role's prefix:
                     the classifier's "text"; the tagger's "word" and "char"; the translator's
                     "src" and "tgt")
    labels.<role>.codepoints, labels.<role>.offsets   int32: a label set (the classifier's
                     "label", the tagger's "tag"), label i = codepoints[offsets[i]:offsets[i+1]]
                     (code points, as vocab.py stores symbols: a `<U` array drops trailing NULs)
    param.<name>     float32, the task's ParamSet blocks (names and shapes from the task)
    resume.flat, opt.m / opt.v / opt.h, rng_state     as for the language model

On load the task supplies a `TaskFormat`: its kind, the vocabulary and label roles it needs, a
check of its config dict, and the parameter shapes that config implies, which every `param.*`
array must have before anything of the config's size is allocated. `peek_kind` reads only the
header, so every command can refuse the wrong kind of model first (`kinds.wrong_kind`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from rnn_cli import __version__
from rnn_cli.checkpoint import (FORMAT_VERSION, HEADER, MAGIC, OPT_NAMES, _checked, _HINT,
                                _is_int, _is_num, _jsonable, _rng_state, check_path, header,
                                write_arrays)
from rnn_cli.errors import ModelFileError, UsageError
from rnn_cli.kinds import meta_kind, wrong_kind
from rnn_cli.params import ParamSet
from rnn_cli.safe_npz import read_npz
from rnn_cli.store import resolve_model_path
from rnn_cli.vocab import ARRAY_NAMES as VOCAB_ARRAYS, Vocab

_ROLE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_SINGLE = ("magic", "format_version", "meta", "history", "rng_state", "resume.flat")
MAX_LABEL_CHARS = 200  # a label longer than this is refused (readers refuse it first)


class TaskFormat(Protocol):
    """What `load_task` needs from a task to validate its model files."""

    kind: str
    vocab_roles: tuple[str, ...]
    label_roles: tuple[str, ...]

    def check_config(self, config: dict) -> dict:
        """The config dict checked (types, ranges; defaults for fields a newer version added);
        raise UsageError or ValueError with the reason."""

    def param_shapes(self, config: dict, vocabs: dict[str, Vocab],
                     labels: dict[str, list[str]]) -> dict[str, tuple[int, ...]]:
        """{name: shape} of the ParamSet this config, vocabularies and labels make."""


@dataclass
class TaskModel:
    """Everything a task model file holds."""

    kind: str
    config: dict  # the architecture (meta.model)
    vocabs: dict[str, Vocab]
    labels: dict[str, list[str]]
    params: ParamSet  # float32; the best by validation
    train: dict = field(default_factory=dict)  # training settings (JSON)
    state: dict = field(default_factory=dict)  # step, epoch, batches, best, seconds, ...
    history: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    history_columns: list[str] = field(default_factory=list)
    rng_state: dict | None = None
    resume_flat: np.ndarray | None = None  # latest parameters, if not the saved (best) ones
    opt: dict = field(default_factory=dict)  # optimizer moments, flat, by name


def labels_to_arrays(labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(codepoints (C,) int32, offsets (K+1,) int32) of a label list."""
    offsets = np.zeros(len(labels) + 1, np.int32)
    offsets[1:] = np.cumsum([len(x) for x in labels])
    text = "".join(labels).encode("utf-32-le", "surrogatepass")
    return np.frombuffer(text, "<u4").astype(np.int32), offsets


def labels_from_arrays(cps: np.ndarray, offsets: np.ndarray, what: str) -> list[str]:
    """The label list of `labels_to_arrays`; ModelFileError when the arrays are not one."""
    ok = (cps.dtype == np.int32 and offsets.dtype == np.int32 and cps.ndim == offsets.ndim == 1
          and offsets.size >= 2 and offsets[0] == 0 and offsets[-1] == cps.size
          and (np.diff(offsets) > 0).all() and (cps.size == 0 or (cps.min() >= 0 and
                                                               cps.max() <= 0x10FFFF)))
    if not ok:
        raise ModelFileError(f"{what} is not a list of labels", hint=_HINT)
    text = cps.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")
    bounds = offsets.tolist()
    labels = [text[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    if len(set(labels)) != len(labels) or max(map(len, labels)) > MAX_LABEL_CHARS:
        raise ModelFileError(f"{what} holds repeated or over-long labels", hint=_HINT)
    return labels


def save_task(model: TaskModel, path: str) -> None:
    """Write a task model atomically (checkpoint.write_arrays)."""
    if model.history.ndim != 2 or model.history.shape[1] != len(model.history_columns):
        raise ValueError("history columns do not match the history")
    meta = {"rnn_cli_version": __version__, "kind": model.kind, "model": model.config,
            "train": _jsonable(model.train), "state": _jsonable(model.state),
            "history_columns": list(model.history_columns)}
    arrays = {"magic": np.array(MAGIC), "format_version": np.array(FORMAT_VERSION, np.int32),
              "meta": np.array(json.dumps(meta)),
              "history": np.asarray(model.history, np.float64),
              "rng_state": np.array(json.dumps(model.rng_state or {}))}
    for role, vocab in model.vocabs.items():
        for name, arr in vocab.to_arrays().items():  # vocab_meta -> vocab.<role>.meta
            arrays[f"vocab.{check_role(role)}.{name.removeprefix('vocab_')}"] = arr
    for role, labels in model.labels.items():
        if not labels or len(set(labels)) != len(labels) or not all(labels):
            raise ValueError(f"label set {role!r} is empty or has empty or repeated labels")
        arrays[f"labels.{check_role(role)}.codepoints"], arrays[f"labels.{role}.offsets"] = \
            labels_to_arrays(labels)
    for name in model.params.shapes:
        arrays["param." + name] = model.params[name]
    if model.resume_flat is not None:
        arrays["resume.flat"] = model.resume_flat
    for name, buf in model.opt.items():
        arrays["opt." + name] = buf
    write_arrays(path, arrays)


def peek_meta(path: str) -> dict:
    """The meta record of the model file at `path` (any kind), reading only its header."""
    check_path(path)
    return header(read_npz(path, HEADER.__contains__, _HINT), path)


def peek_kind(path: str) -> str:
    """The kind of the model file at `path` ("lm" when it records none), reading only its
    header; ModelFileError for a file that is not a model of a kind this version knows."""
    return meta_kind(peek_meta(path), path)


def resolve_model(model: str | None, level: str | None, kind: str | None = None
                  ) -> tuple[str, str]:
    """(path, kind) of the model a command reads: -m PATH, else the stored model of `kind`
    (`store.resolve_model_path`), its kind read from the file's header. With both -m and
    `kind`, a file of another kind is the one-line wrong-kind error."""
    path = resolve_model_path(model, level, kind)
    found = peek_kind(path)
    if kind is not None and found != kind:
        raise wrong_kind(path, found)
    return path, found


def _wanted(name: str) -> bool:
    return name in _SINGLE or name.startswith(("param.", "opt.", "vocab.", "labels."))


def load_task(path: str, fmt: TaskFormat, data: bytes | None = None) -> TaskModel:
    """Read and validate a task model file of `fmt.kind` (a file of another kind: the one-line
    `kinds.wrong_kind` error). data: the file's bytes, read elsewhere (`path` names it)."""
    if data is None:
        check_path(path)
    arrays = read_npz(path, _wanted, _HINT, data=data)
    try:
        return _from_arrays(arrays, path, fmt)
    except ModelFileError:
        raise
    except Exception as e:  # anything unexpected in a hostile file is still a clean refusal
        raise ModelFileError(f"{path}: invalid model file ({type(e).__name__}: {e})",
                             hint=_HINT) from None


def _from_arrays(arrays: dict, path: str, fmt: TaskFormat) -> TaskModel:
    meta = header(arrays, path)
    kind = meta_kind(meta, path)
    if kind != fmt.kind:
        raise wrong_kind(path, kind)
    try:
        config = fmt.check_config(dict(meta.get("model", {})))
    except (UsageError, ValueError) as e:
        raise ModelFileError(f"{path}: stored config is invalid: {getattr(e, 'message', e)}",
                             hint=_HINT) from None
    vocabs = {}
    for role in fmt.vocab_roles:
        sub = {name: arrays.get(f"vocab.{role}.{name.removeprefix('vocab_')}")
               for name in VOCAB_ARRAYS}
        try:
            vocabs[role] = Vocab.from_arrays({k: v for k, v in sub.items() if v is not None})
        except ModelFileError as e:
            raise ModelFileError(f"{path}: vocabulary '{role}': {e.message}", hint=_HINT) from None
    labels = {}
    for role in fmt.label_roles:
        cps, off = arrays.get(f"labels.{role}.codepoints"), arrays.get(f"labels.{role}.offsets")
        if cps is None or off is None:
            raise ModelFileError(f"{path}: the label set '{role}' is missing", hint=_HINT)
        labels[role] = labels_from_arrays(cps, off, f"{path}: label set '{role}'")
    # every shape is checked before anything of the config's size is allocated
    shapes = fmt.param_shapes(config, vocabs, labels)
    for name, shape in shapes.items():
        _checked(arrays, "param." + name, shape, path)
    params = ParamSet(shapes)
    for name in shapes:
        params[name][...] = arrays["param." + name]
    n = len(params)
    resume = arrays.get("resume.flat")
    if resume is not None:
        resume = _checked(arrays, "resume.flat", (n,), path)
    opt = {k: _checked(arrays, "opt." + k, (n,), path) for k in OPT_NAMES if "opt." + k in arrays}
    if any((opt[k] < 0).any() for k in ("v", "h") if k in opt):
        raise ModelFileError(f"{path}: optimizer moments hold negative values", hint=_HINT)
    columns = meta.get("history_columns", [])
    history = arrays.get("history", np.zeros((0, len(columns) if isinstance(columns, list)
                                               else 0)))
    if not (isinstance(columns, list) and all(isinstance(c, str) for c in columns)
            and history.dtype == np.float64 and history.ndim == 2
            and history.shape[1] == len(columns)):
        raise ModelFileError(f"{path}: malformed training history", hint=_HINT)
    state = dict(meta.get("state", {}))
    _check_state(state, path)
    return TaskModel(kind, config, vocabs, labels, params, dict(meta.get("train", {})), state,
                     history, list(columns), _rng_state(arrays, path), resume, opt)


def _check_state(st: dict, path: str) -> None:
    """The generic training state the example trainer resumes from (tasks/fit.py)."""
    bad = [k for k in ("step", "examples", "bad_evals") if k in st and not _is_int(st[k])]
    bad += [k for k in ("seconds",) if k in st and not (_is_num(st[k]) and st[k] >= 0)]
    if st.get("best") is not None and not _is_num(st["best"]):
        bad.append("best")
    b = st.get("batches")
    if b is not None and not (isinstance(b, dict) and _is_int(b.get("epoch")) and
                              _is_int(b.get("position"))):
        bad.append("batches")
    if bad:
        raise ModelFileError(f"{path}: malformed training state ({', '.join(bad)})",
                             hint="predicting may still work, but --resume cannot continue "
                                  "from it; " + _HINT)


def check_role(role: str) -> str:
    """A vocabulary or label role name: lower-case letters, digits, '_' (an array name part)."""
    if not _ROLE.match(role):
        raise ValueError(f"bad role name {role!r}")
    return role
