"""Model files: one `.npz` of plain arrays, written atomically, validated completely on load.

A model file is something a user may get from anyone, so it is never unpickled
(`allow_pickle=False`) and every array is checked (names, dtypes, shapes, finiteness) before any
kernel sees it. Arrays (see README "Model file format"):

    magic           <U13    "rnn-cli-model"
    format_version  int32   scalar, FORMAT_VERSION
    meta            <U…     JSON: rnn_cli version, model config, train config, training state
                            (step, tokens, epoch, batches position, best val loss, corpus info)
    rng_state       <U…     JSON: numpy PCG64 bit-generator state (for exact resume)
    history         float64 (N, 4): step, train loss, val loss (nan if none), seconds
    vocab_*         see rnn_cli/vocab.py
    param.<name>    float32 parameters, shapes from rnn_cli/params.py (best by validation)
    resume.flat     float32 (P,) latest parameters when they differ from param.* (optional)
    opt.<name>      float32 (P,) optimizer moments (optional)
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field

import numpy as np

from rnn_cli import __version__
from rnn_cli.config import ModelConfig, TrainConfig, from_dict
from rnn_cli.errors import ModelFileError
from rnn_cli.params import Params
from rnn_cli.vocab import Vocab

MAGIC = "rnn-cli-model"
FORMAT_VERSION = 1
OPT_NAMES = ("m", "v", "h")
_HINT = "the file is damaged or not an rnn-cli model; train it again with `rnn-cli train`"


@dataclass
class Model:
    """Everything a model file holds."""

    cfg: ModelConfig
    vocab: Vocab
    params: Params
    train_cfg: TrainConfig = field(default_factory=TrainConfig)
    state: dict = field(default_factory=dict)  # step, tokens, epoch, best_val, corpus, ...
    history: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    rng_state: dict | None = None
    resume_flat: np.ndarray | None = None  # latest parameters, if not the saved (best) ones
    opt: dict = field(default_factory=dict)  # name -> flat moments


def save(model: Model, path: str) -> None:
    """Write atomically: a temp file in the same folder, fsync, then rename over `path`."""
    meta = {"rnn_cli_version": __version__, "model": vars(model.cfg).copy(),
            "train": _jsonable(vars(model.train_cfg)), "state": _jsonable(model.state)}
    arrays = {"magic": np.array(MAGIC), "format_version": np.array(FORMAT_VERSION, np.int32),
              "meta": np.array(json.dumps(meta)), "history": np.asarray(model.history, np.float64),
              "rng_state": np.array(json.dumps(model.rng_state or {}))}
    arrays.update(model.vocab.to_arrays())
    for name, view in model.params.views.items():
        arrays["param." + name] = view
    if model.resume_flat is not None:
        arrays["resume.flat"] = model.resume_flat
    for name, buf in model.opt.items():
        arrays["opt." + name] = buf
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".rnn-cli-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _jsonable(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, (np.floating, np.integer)):
            v = v.item()
        out[k] = v
    return out


def load(path: str, level: str | None = None) -> Model:
    """Read and validate a model file; `level` (if given) must match the model's level."""
    if not os.path.exists(path):
        raise ModelFileError(f"no model file at {path}", hint="train one with `rnn-cli train CORPUS -o "
                             f"{path}`, or pass -m PATH of an existing model")
    if os.path.isdir(path):
        raise ModelFileError(f"{path} is a directory, not a model file", hint="pass -m PATH/FILE.npz")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
    except ValueError as e:  # object arrays need pickle: refused
        raise ModelFileError(f"{path}: refused to load ({e})", hint=_HINT) from None
    except (OSError, zipfile.BadZipFile, EOFError, KeyError, RuntimeError,
            zipfile.LargeZipFile, UnicodeDecodeError) as e:
        raise ModelFileError(f"{path} is not a readable model file ({type(e).__name__}: {e})",
                             hint=_HINT) from None
    try:
        return _from_arrays(arrays, path, level)
    except ModelFileError:
        raise
    except Exception as e:  # anything unexpected in a hostile file is still a clean refusal
        raise ModelFileError(f"{path}: invalid model file ({type(e).__name__}: {e})",
                             hint=_HINT) from None


def _scalar_str(arrays, name, path) -> str:
    a = arrays.get(name)
    if a is None or a.dtype.kind != "U" or a.ndim != 0:
        raise ModelFileError(f"{path}: missing or malformed '{name}' array", hint=_HINT)
    return str(a[()])


def _from_arrays(arrays: dict, path: str, level: str | None) -> Model:
    if "magic" not in arrays or arrays["magic"].dtype.kind != "U" or \
            arrays["magic"].ndim != 0 or str(arrays["magic"][()]) != MAGIC:
        raise ModelFileError(f"{path} is not an rnn-cli model (wrong magic)", hint=_HINT)
    ver = arrays.get("format_version")
    if ver is None or ver.dtype.kind not in "iu" or ver.ndim != 0:
        raise ModelFileError(f"{path}: missing format version", hint=_HINT)
    if int(ver) > FORMAT_VERSION or int(ver) < 1:
        meta = _try_meta(arrays)
        need = meta.get("rnn_cli_version", "a newer version") if isinstance(meta, dict) else "?"
        raise ModelFileError(f"{path} has model format version {int(ver)}; this rnn-cli "
                             f"({__version__}) reads version {FORMAT_VERSION}",
                             hint=f"upgrade rnn-cli (the file was written by rnn-cli {need})")
    meta = json.loads(_scalar_str(arrays, "meta", path))
    cfg = from_dict(ModelConfig, meta["model"]).validate()
    vocab = Vocab.from_arrays(arrays)
    if len(vocab) != cfg.vocab_size or vocab.level != cfg.level:
        raise ModelFileError(f"{path}: vocabulary ({vocab.level}, {len(vocab)} symbols) disagrees "
                             f"with the config ({cfg.level}, V={cfg.vocab_size})", hint=_HINT)
    if level is not None and cfg.level != level:
        raise ModelFileError(f"{path} is a {cfg.level}-level model, but --level {level} was asked",
                             hint=f"use --level {cfg.level}, or train a {level} model")
    params = Params(cfg)
    for name, view in params.views.items():
        view[...] = _checked(arrays, "param." + name, view.shape, path)
    n = len(params)
    resume = arrays.get("resume.flat")
    if resume is not None:
        resume = _checked(arrays, "resume.flat", (n,), path)
    opt = {k: _checked(arrays, "opt." + k, (n,), path) for k in OPT_NAMES if "opt." + k in arrays}
    history = arrays.get("history", np.zeros((0, 4)))
    if history.dtype != np.float64 or history.ndim != 2 or history.shape[1] != 4:
        raise ModelFileError(f"{path}: malformed training history", hint=_HINT)
    rng_state = json.loads(_scalar_str(arrays, "rng_state", path)) or None
    train_cfg = from_dict(TrainConfig, meta.get("train", {}))
    return Model(cfg, vocab, params, train_cfg, dict(meta.get("state", {})), history,
                 rng_state, resume, opt)


def _try_meta(arrays):
    try:
        return json.loads(str(arrays["meta"][()]))
    except Exception:
        return {}


def _checked(arrays, name, shape, path) -> np.ndarray:
    a = arrays.get(name)
    if a is None:
        raise ModelFileError(f"{path}: array '{name}' is missing", hint=_HINT)
    if a.dtype != np.float32 or a.shape != tuple(shape):
        raise ModelFileError(f"{path}: array '{name}' is {a.dtype}{list(a.shape)}, expected "
                             f"float32{list(shape)}", hint=_HINT)
    if not np.isfinite(a).all():
        raise ModelFileError(f"{path}: array '{name}' holds NaN or infinite values",
                             hint="the model diverged or the file is damaged; retrain it")
    return a


def store_dir() -> str:
    """The model store: $RNN_CLI_HOME, else the user data dir (XDG: ~/.local/share/rnn-cli)."""
    home = os.environ.get("RNN_CLI_HOME")
    if home:
        return home
    import platformdirs

    return platformdirs.user_data_dir("rnn-cli", appauthor=False)


def store_path(level: str) -> str:
    return os.path.join(store_dir(), f"{level}.npz")


def resolve_model_path(model: str | None, level: str | None) -> str:
    """-m PATH when given, else the stored model of `level` (char by default), which must exist."""
    if model:
        return model
    lvl = level or "char"
    path = store_path(lvl)
    if not os.path.exists(path):
        raise ModelFileError(
            f"no stored {lvl} model yet ({path})",
            hint=f"train one with `rnn-cli train --level {lvl} CORPUS`, or pass -m PATH")
    return path
