"""Token id files: a corpus encoded once into a flat file of ids, memory-mapped for training.

What lives here: `load_ids` (a `corpus.Source` + vocabulary settings, or a vocabulary → a
read-only np.memmap of its ids, the vocabulary, provenance), `corpus_ids` (the same from a path,
checked against a resumed model) and the cache of id files in
`cache_dir()` ($RNN_CLI_HOME/cache, next to the model store). What does not: reading and checking
the text (`corpus.Source`), counting and encoding (`vocab.py`), batching, printing.

Memory stays bounded whatever the corpus size: each pass reads corpus.CHUNK_BYTES at a time.
  1. `corpus.Source`: sha256, size, NUL bytes ('-' is spooled to a temporary file on the way);
  2. on a vocabulary miss, count the symbols (`vocab.Counts`);
  3. on an id-file miss, encode each piece and append its ids to the file: uint8 while V <= 256,
     uint16 while V <= 65536, else uint32 (the reading passes re-hash the bytes: a corpus that
     changes while it is read is an error, not a wrong cache entry).
Cache entries, JSON and raw little-endian ids, never pickle; every field is checked on load and an
entry that does not pass is rebuilt, never trusted:
  vocab-K1.json          K1 = sha256 of (corpus sha256, encoding, errors, level, vocab_size,
                         min_count, lower, tokenizer): the vocabulary counted under those settings
  ids-K2.json, ids-K2.bin  K2 = sha256 of (corpus sha256, encoding, errors, the vocabulary): the
                         ids and {n_tokens, unknown, dtype, ...}; a resumed run, --valid and
                         --test find theirs by the vocabulary they encode with
Each file is written to a temporary name and renamed into place (the .bin before its .json).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass

import numpy as np

from rnn_cli.corpus import Source
from rnn_cli.errors import CorpusError, ModelFileError, UsageError
from rnn_cli.vocab import Counts, Vocab

FORMAT = 1
DTYPES = ("uint8", "uint16", "uint32")
_READ_IDS = 1 << 22  # ids checked at a time when a cached file is opened


@dataclass
class CorpusIds:
    """A corpus as token ids: `ids` (N,) a read-only np.memmap (uint8/16/32), `vocab`, `info`
    {"name", "bytes", "sha256"}, `unknown` tokens mapped to <UNK>, `cached` (the id file was
    already there), `path` of the id file."""

    ids: np.ndarray
    vocab: Vocab
    info: dict
    unknown: int
    cached: bool
    path: str


def cache_dir() -> str:
    """Where id files live: the `cache` folder of the model store ($RNN_CLI_HOME/cache)."""
    from rnn_cli.store import store_dir

    return os.path.join(store_dir(), "cache")


def id_dtype(vocab_size: int) -> str:
    """The smallest unsigned dtype that holds ids 0 .. vocab_size - 1."""
    return "uint8" if vocab_size <= 1 << 8 else "uint16" if vocab_size <= 1 << 16 else "uint32"


def corpus_ids(path: str, encoding: str = "utf-8", errors: str = "strict", *, resumed=None,
               vocab: Vocab | None = None, stdin=None, cache: str | None = None,
               **settings) -> CorpusIds:
    """`load_ids` of the corpus at `path` ('-': standard input, spooled into the cache folder).
    `resumed`: a loaded model to continue; its vocabulary is used, and the corpus must have the
    sha256 that its model file records (UsageError otherwise, before any encoding)."""
    cache = cache or cache_dir()
    with Source(path, encoding, errors, stdin=stdin, spool_dir=cache) as src:
        if resumed is not None:
            vocab, old = resumed.vocab, resumed.state.get("corpus", {})
            if old.get("sha256") not in (None, src.info["sha256"]):
                raise UsageError(f"{src.name} is not the text this model was trained on "
                                 f"({old.get('name')})", hint="resume with the same corpus")
        return load_ids(src, vocab=vocab, cache=cache, **settings)


def load_ids(src: Source, *, level: str = "char", vocab_size: int | None = None,
             min_count: int = 1, lower: bool = False, tokenizer: str = "words",
             vocab: Vocab | None = None, cache: str | None = None) -> CorpusIds:
    """The ids of `src` under `vocab`, or under the vocabulary counted from it with the settings
    (as `vocab.build_vocab`), from the cache in `cache` (default `cache_dir()`) or built there."""
    cache = cache or cache_dir()
    base = {"format": FORMAT, "sha256": src.info["sha256"], "encoding": src.encoding,
            "errors": src.errors}
    if vocab is None:
        settings = {**base, "level": level, "vocab_size": vocab_size, "min_count": min_count,
                    "lower": bool(lower), "tokenizer": tokenizer if level == "word" else "chars"}
        vpath = os.path.join(cache, f"vocab-{_digest(settings)}.json")
        vocab = _load_vocab(vpath, settings)
        if vocab is None:
            counts = Counts(level, vocab_size, min_count, lower, tokenizer)
            for piece, _ in src.pieces(anywhere=level == "char" and not lower):
                counts.add(piece)
            vocab = counts.vocab()
            _write_atomic(vpath, json.dumps({**settings, **_vocab_json(vocab)}).encode(), cache)
    key = {**base, "vocab": _digest(_vocab_json(vocab))}
    stem = os.path.join(cache, f"ids-{_digest(key)}")
    meta = _load_meta(stem, key, vocab)
    cached = meta is not None
    if meta is None:
        meta = _build_ids(src, vocab, stem, key, cache)
    n, dtype = meta["n_tokens"], np.dtype(meta["dtype"]).newbyteorder("<")
    ids = np.memmap(stem + ".bin", dtype=dtype, mode="r", shape=(n,))
    return CorpusIds(ids, vocab, dict(src.info), meta["unknown"], cached, stem + ".bin")


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:32]


def _vocab_json(vocab: Vocab) -> dict:
    return {"vocab_level": vocab.level, "vocab_symbols": list(vocab.symbols),
            "vocab_lower": vocab.lower, "vocab_tokenizer": vocab.tokenizer}


def _read_json(path: str) -> dict | None:
    try:
        with open(path, "rb") as f:
            obj = json.loads(f.read(1 << 26).decode("utf-8"))
    except (OSError, ValueError):  # missing, unreadable, not UTF-8, not JSON
        return None
    return obj if isinstance(obj, dict) else None


def _load_vocab(path: str, settings: dict) -> Vocab | None:
    """The cached vocabulary at `path` when it was counted under `settings` and is valid."""
    obj = _read_json(path)
    if obj is None or any(k not in obj or obj[k] != v for k, v in settings.items()):
        return None
    symbols = obj.get("vocab_symbols")
    if not isinstance(symbols, list) or obj.get("vocab_level") != settings["level"]:
        return None
    try:
        vocab = Vocab(settings["level"], symbols, lower=obj.get("vocab_lower") is True,
                      tokenizer=obj.get("vocab_tokenizer"))
    except (ModelFileError, TypeError, ValueError):
        return None
    return vocab if vocab.lower == settings["lower"] else None


def _load_meta(stem: str, key: dict, vocab: Vocab) -> dict | None:
    """The sidecar of a cached id file when it matches `key` and the file holds n_tokens ids,
    all below V; None (rebuild) otherwise."""
    meta = _read_json(stem + ".json")
    if meta is None or any(k not in meta or meta[k] != v for k, v in key.items()):
        return None
    n, unknown, dtype = meta.get("n_tokens"), meta.get("unknown"), meta.get("dtype")
    if (dtype != id_dtype(len(vocab)) or type(n) is not int or type(unknown) is not int
            or not 0 <= unknown <= n):
        return None
    itemsize = np.dtype(dtype).itemsize
    try:
        if os.path.getsize(stem + ".bin") != n * itemsize:
            return None
        with open(stem + ".bin", "rb") as f:  # plain reads: checking maps no pages
            while block := f.read(_READ_IDS * itemsize):
                if np.frombuffer(block, np.dtype(dtype).newbyteorder("<")).max() >= len(vocab):
                    return None
    except OSError:
        return None
    return meta


def _build_ids(src: Source, vocab: Vocab, stem: str, key: dict, cache: str) -> dict:
    """Encode `src` into stem.bin (then stem.json); returns the sidecar."""
    dtype = id_dtype(len(vocab))
    le = np.dtype(dtype).newbyteorder("<")
    n = unknown = 0
    _makedirs(cache)
    fd, tmp = tempfile.mkstemp(prefix=".rnn-cli-ids-", dir=cache)
    try:
        with os.fdopen(fd, "wb") as out:
            for piece, final in src.pieces(anywhere=vocab.level == "char" and not vocab.lower):
                ids, unk = vocab.encode(piece, final_eos=final)
                out.write(ids.astype(le).tobytes())
                n, unknown = n + ids.size, unknown + unk
        if n == 0:
            raise CorpusError(f"the corpus {src.name} holds no {vocab.level} tokens",
                              hint="give a file that contains text")
        os.replace(tmp, stem + ".bin")
    except OSError as e:
        raise _cache_error(cache, e) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    meta = {**key, "n_tokens": n, "unknown": unknown, "dtype": dtype, "bytes": src.info["bytes"]}
    _write_atomic(stem + ".json", json.dumps(meta).encode(), cache)
    return meta


def _write_atomic(path: str, data: bytes, cache: str) -> None:
    _makedirs(cache)
    fd, tmp = tempfile.mkstemp(prefix=".rnn-cli-", dir=cache)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        raise _cache_error(cache, e) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _makedirs(cache: str) -> None:
    try:
        os.makedirs(cache, exist_ok=True)
    except OSError as e:
        raise _cache_error(cache, e) from None


def _cache_error(cache: str, e: OSError) -> CorpusError:
    return CorpusError(f"cannot write the token id cache in {cache}: {e.strerror or e}",
                       hint="free some disk space there, or point RNN_CLI_HOME at a writable "
                            "folder with room for the corpus's ids")
