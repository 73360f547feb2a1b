"""Model files: one `.npz` of plain arrays, written atomically, validated completely on load.

A model file is something a user may get from anyone, so it is never unpickled
(`allow_pickle=False`) and every array is checked (names, dtypes, shapes, finiteness) before any
kernel sees it. Arrays (see README "Model file format"):

    magic           <U13    "rnn-cli-model"
    format_version  int32   scalar, FORMAT_VERSION
    meta            <U…     JSON: rnn_cli version, model config, train config, training state
                            (step, tokens, epoch, batches position, best val loss, corpus info);
                            no "kind": a language model (task models: taskfile.py, kinds.py)
    rng_state       <U…     JSON: numpy PCG64 bit-generator state (for exact resume)
    history         float64 (N, 4): step, train loss, val loss (nan if none), seconds
    vocab_*         see rnn_cli/vocab.py
    param.<name>    float32 parameters, shapes from rnn_cli/params.py (best by validation)
    resume.flat     float32 (P,) latest parameters when they differ from param.* (optional)
    opt.<name>      float32 (P,) optimizer moments (optional)
    softmax.word_class int32 (V,) class of every word, with meta.model.softmax == "classes"

Reading goes through `safe_npz.read_npz` (never `np.load`): headers are checked before any data is
read, unknown members are skipped, pickled (object) arrays are refused. Then every array is
checked against the config, and every config / state field against its type and range, before
anything of the config's size is allocated.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

from rnn_cli import __version__
from rnn_cli.config import ModelConfig, TrainConfig, from_dict
from rnn_cli.errors import ModelFileError, UsageError
from rnn_cli.kinds import meta_kind, wrong_kind
from rnn_cli.params import Params, param_shapes
from rnn_cli.safe_npz import read_npz
from rnn_cli.store import resolve_model_path, store_dir, store_path  # noqa: F401 (re-exported)
from rnn_cli.vocab import ARRAY_NAMES as VOCAB_ARRAYS, Vocab

MAGIC = "rnn-cli-model"
FORMAT_VERSION = 1
OPT_NAMES = ("m", "v", "h")
_HINT = "the file is damaged or not an rnn-cli model; train it again with `rnn-cli train`"
TMP_PREFIX = ".rnn-cli-"  # temp files: .rnn-cli-<pid>-<random>.tmp next to the model
CLASS_ARRAY = "softmax.word_class"
_NAMES = ("magic", "format_version", "meta", "history", "rng_state", "resume.flat",
          CLASS_ARRAY) + VOCAB_ARRAYS


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
    if model.cfg.softmax == "classes":
        arrays[CLASS_ARRAY] = np.asarray(model.params.word_class, np.int32)
    if model.resume_flat is not None:
        arrays["resume.flat"] = model.resume_flat
    for name, buf in model.opt.items():
        arrays["opt." + name] = buf
    write_arrays(path, arrays)


def write_arrays(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Write an .npz atomically: a temp file in the same folder, fsync, then rename."""
    folder = os.path.dirname(os.path.abspath(path))
    had = os.path.exists(path)
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{os.getpid()}-", suffix=".tmp", dir=folder)
    except OSError as e:
        raise _save_error(path, e, had) from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a model is an ordinary file
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):  # disk full, quota, read-only, ...: the old file is untouched
            raise _save_error(path, e, had) from None
        raise
    _fsync_dir(folder)
    _sweep_stale_temps(folder)


def check_writable(path: str) -> None:
    """Before training: refuse at once an output path that no save could ever write."""
    if os.path.isdir(path):
        raise ModelFileError(f"cannot save the model to {path}: it is a directory",
                             hint="pass -o FOLDER/NAME.npz")
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
        raise ModelFileError(f"cannot save the model to {path}: {folder} is not a writable folder",
                             hint="pass -o with a path you can write to")


def _save_error(path: str, e: OSError, had: bool) -> ModelFileError:
    kept = f"the previous model at {path} is unchanged" if had else "no model file was written"
    return ModelFileError(f"cannot save the model to {path}: {e.strerror or e}",
                          hint=f"free some disk space or pass -o on another disk; {kept}")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(folder: str) -> None:
    """Make the rename itself durable (POSIX); best effort."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _sweep_stale_temps(folder: str, min_age: float = 60.0) -> None:
    """Remove temp files of saves that were killed (kill -9, power loss): their process is gone
    and they have not been written for `min_age` seconds. Live writers are never touched."""
    try:
        names = [n for n in os.listdir(folder) if n.startswith(TMP_PREFIX) and n.endswith(".tmp")]
    except OSError:
        return
    now = time.time()
    for name in names:
        try:
            pid = int(name[len(TMP_PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        if pid == os.getpid() or _alive(pid):
            continue
        full = os.path.join(folder, name)
        try:
            if now - os.stat(full).st_mtime >= min_age:
                os.unlink(full)
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def _jsonable(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, (np.floating, np.integer)):
            v = v.item()
        out[k] = v
    return out


def load(path: str, level: str | None = None) -> Model:
    """Read and validate a model file; `level` (if given) must match the model's level."""
    check_path(path)
    arrays = read_npz(path, _wanted, _HINT)
    try:
        return _from_arrays(arrays, path, level)
    except ModelFileError:
        raise
    except Exception as e:  # anything unexpected in a hostile file is still a clean refusal
        raise ModelFileError(f"{path}: invalid model file ({type(e).__name__}: {e})",
                             hint=_HINT) from None


def load_bytes(data: bytes, name: str, level: str | None = None) -> Model:
    """`load` for a model file's bytes (read elsewhere, e.g. shipped to a Dask worker): the same
    checks; `name` only labels the messages."""
    arrays = read_npz(name, _wanted, _HINT, data=data)
    try:
        return _from_arrays(arrays, name, level)
    except ModelFileError:
        raise
    except Exception as e:
        raise ModelFileError(f"{name}: invalid model file ({type(e).__name__}: {e})",
                             hint=_HINT) from None


def check_path(path: str) -> None:
    """A model path that exists and is not a folder (ModelFileError otherwise)."""
    if not os.path.exists(path):
        raise ModelFileError(f"no model file at {path}", hint="train one with `rnn-cli train CORPUS -o "
                             f"{path}`, or pass -m PATH of an existing model")
    if os.path.isdir(path):
        raise ModelFileError(f"{path} is a directory, not a model file", hint="pass -m PATH/FILE.npz")


HEADER = ("magic", "format_version", "meta")


def _wanted(name: str) -> bool:
    return name in _NAMES or name.startswith(("param.", "opt."))


def _scalar_str(arrays, name, path) -> str:
    a = arrays.get(name)
    if a is None or a.dtype.kind != "U" or a.ndim != 0:
        raise ModelFileError(f"{path}: missing or malformed '{name}' array", hint=_HINT)
    return str(a[()])


def _from_arrays(arrays: dict, path: str, level: str | None) -> Model:
    meta = header(arrays, path)
    kind = meta_kind(meta, path)
    if kind != "lm":
        raise wrong_kind(path, kind)
    return _lm_model(arrays, meta, path, level)


def header(arrays: dict, path: str) -> dict:
    """The meta record of a model file's arrays, after the magic and format version checks."""
    if "magic" not in arrays or arrays["magic"].dtype.kind != "U" or \
            arrays["magic"].ndim != 0 or str(arrays["magic"][()]) != MAGIC:
        raise ModelFileError(f"{path} is not an rnn-cli model (wrong magic)", hint=_HINT)
    ver = arrays.get("format_version")
    if ver is None or ver.dtype.kind not in "iu" or ver.ndim != 0:
        raise ModelFileError(f"{path}: missing format version", hint=_HINT)
    if int(ver) > FORMAT_VERSION or int(ver) < 1:
        meta = _try_meta(arrays)
        by = meta.get("rnn_cli_version") if isinstance(meta, dict) else None
        by = by if isinstance(by, str) and len(by) < 40 else None
        need = f"rnn-cli {by} or newer" if by and int(ver) > FORMAT_VERSION else \
            "a newer rnn-cli" if int(ver) > FORMAT_VERSION else "a different rnn-cli"
        raise ModelFileError(f"{path} has model format version {int(ver)}, which needs {need}; "
                             f"this is rnn-cli {__version__} (format {FORMAT_VERSION})",
                             hint=f"upgrade with `pip install -U 'rnn-cli>={by}'`" if by else
                             "upgrade rnn-cli (pip install -U rnn-cli)")
    meta = json.loads(_scalar_str(arrays, "meta", path))
    if not isinstance(meta, dict) or not all(isinstance(meta.get(k, {}), dict)
                                             for k in ("model", "train", "state")):
        raise ModelFileError(f"{path}: malformed 'meta' record", hint=_HINT)
    return meta


def _lm_model(arrays: dict, meta: dict, path: str, level: str | None) -> Model:
    cfg = _config(ModelConfig, meta.get("model", {}), path)
    try:
        vocab = Vocab.from_arrays(arrays)
    except ModelFileError as e:
        raise ModelFileError(f"{path}: {e.message}", hint=e.hint) from None
    if len(vocab) != cfg.vocab_size or vocab.level != cfg.level:
        raise ModelFileError(f"{path}: vocabulary ({vocab.level}, {len(vocab)} symbols) disagrees "
                             f"with the config ({cfg.level}, V={cfg.vocab_size})", hint=_HINT)
    if level is not None and cfg.level != level:
        raise ModelFileError(f"{path} is a {cfg.level}-level model, but --level {level} was asked",
                             hint=f"use --level {cfg.level}, or train a {level} model")
    # Every shape is checked against the config before anything of the config's size is
    # allocated: the arrays are bounded by the file's size, the config's numbers are not.
    shapes = param_shapes(cfg)
    for name, shape in shapes.items():
        _checked(arrays, "param." + name, shape, path)
    params = Params(cfg, word_class=_word_class(arrays, cfg, path))
    for name in shapes:  # (a tied W_ya is a view of W_emb, not a block of its own)
        params.views[name][...] = arrays["param." + name]
    n = len(params)
    resume = arrays.get("resume.flat")
    if resume is not None:
        resume = _checked(arrays, "resume.flat", (n,), path)
    opt = {k: _checked(arrays, "opt." + k, (n,), path) for k in OPT_NAMES if "opt." + k in arrays}
    for k in ("v", "h"):  # second moments / accumulators are sums of squares
        if k in opt and (opt[k] < 0).any():
            raise ModelFileError(f"{path}: optimizer array 'opt.{k}' holds negative values",
                                 hint=_HINT)
    history = arrays.get("history", np.zeros((0, 4)))
    if history.dtype != np.float64 or history.ndim != 2 or history.shape[1] != 4:
        raise ModelFileError(f"{path}: malformed training history", hint=_HINT)
    # files from before --lr-schedule trained (and resume) at a constant rate
    train_cfg = _config(TrainConfig, {"lr_schedule": "constant", "updates": "dense",
                                      **meta.get("train", {})}, path)
    state = dict(meta.get("state", {}))
    _check_state(state, cfg, train_cfg, path)
    return Model(cfg, vocab, params, train_cfg, state, history,
                 _rng_state(arrays, path), resume, opt)


def _word_class(arrays, cfg: ModelConfig, path: str) -> np.ndarray | None:
    """The class map of a class-softmax model, checked (None for the full softmax)."""
    if cfg.softmax != "classes":
        return None
    from rnn_cli.tasks.lm.classes import check_word_class

    wc = arrays.get(CLASS_ARRAY)
    why = "is missing" if wc is None else check_word_class(wc, cfg.vocab_size, cfg.classes)
    if why:
        raise ModelFileError(f"{path}: array '{CLASS_ARRAY}' {why}", hint=_HINT)
    return np.ascontiguousarray(wc, np.int32)


def _config(cls, d: dict, path: str):
    """A config from the file's dict: every known field of the default's type, then validate()."""
    defaults = cls()
    for key, value in d.items():
        if not hasattr(defaults, key):
            continue  # a field of a newer minor version
        want = type(getattr(defaults, key))
        ok = isinstance(value, want) and (want is bool or not isinstance(value, bool))
        if want is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            raise ModelFileError(f"{path}: config field '{key}' is {value!r:.40}, expected "
                                 f"{want.__name__}", hint=_HINT)
    try:
        return from_dict(cls, d).validate()
    except UsageError as e:
        raise ModelFileError(f"{path}: stored config is invalid: {e.message}", hint=_HINT) from None


def _is_int(v, low=0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


def _check_state(st: dict, cfg: ModelConfig, tcfg: TrainConfig, path: str) -> None:
    """The training state a --resume continues from: plain, in-range numbers only."""
    bad = [k for k in ("step", "tokens", "unknown_tokens", "train_tokens", "val_tokens")
           if k in st and not _is_int(st[k])]
    bad += [k for k in ("seconds", "best_val") if k in st and not _is_num(st[k])]
    if "seconds" in st and "seconds" not in bad and not 0 <= st["seconds"] < math.inf:
        bad.append("seconds")
    if "eval_budget" in st and not (_is_num(st["eval_budget"]) and 0 <= st["eval_budget"] <= 1):
        bad.append("eval_budget")  # share of wall time for validation; 0: every due one runs
    bad += [k for k in ("lr", "lr_base")  # the decayed rate and the --lr it started from
            if k in st and not (_is_num(st[k]) and 0 < st[k] < math.inf)]
    if "corpus" in st and not (isinstance(st["corpus"], dict) and all(
            isinstance(st["corpus"].get(k, ""), str) for k in ("name", "sha256"))):
        bad.append("corpus")
    b = st.get("batches")
    if b is not None and not (isinstance(b, dict) and all(
            _is_int(b.get(k), low) for k, low in (("epoch", 0), ("position", 0), ("n_tokens", 0),
                                                   ("batch_size", 1), ("seq_len", 1)))):
        bad.append("batches")
    c = st.get("carry")
    if c is not None and not (isinstance(c, list) and
                              len(c) == cfg.state_rows * tcfg.batch_size * cfg.hidden and
                              all(_is_num(x) and abs(x) < math.inf for x in c)):
        bad.append("carry")
    if bad:
        raise ModelFileError(f"{path}: malformed training state ({', '.join(bad)})",
                             hint="sampling may still work, but --resume cannot continue from "
                                  "it; " + _HINT)


def _rng_state(arrays, path: str) -> dict | None:
    state = json.loads(_scalar_str(arrays, "rng_state", path)) or None
    if state is not None:
        try:
            np.random.PCG64().state = state
        except Exception:
            raise ModelFileError(f"{path}: malformed random-generator state", hint=_HINT) from None
    return state


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
