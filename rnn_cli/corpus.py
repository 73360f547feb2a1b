"""Corpus input and batching: read a text file (or '-'), split ids, cut BPTT windows.

What lives here: `Source` (a corpus checked and hashed in one pass, then decoded in pieces of
bounded size), `read_text` (the whole text + provenance info), `split_train_val`
(contiguous split, validation = the tail), `fit_batch_shape` (shrink batch size, then sequence
length, until enough windows fit) and `Batches` (B parallel contiguous streams walked in windows
of T steps for truncated backpropagation through time, resumable from plain ints).
What does not: tokenizing and vocabularies (`vocab.py`), the model, printing.

Windows (as char-rnn / PyTorch word_language_model `batchify`): with N ids, B streams of length
L = (N-1)//B; stream b holds ids[b*L : (b+1)*L] and its targets are the same ids shifted by one.
An epoch is the windows_per_epoch = L//T full windows; the ragged tail (< T steps per stream) is
dropped, so every window is exactly (T, B). The hidden state carries from one window to the next
within an epoch and must be reset at the start of each epoch (`reset` / `reset_state`).
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import mmap
import os
import stat
import sys
import tempfile
from typing import Iterator

import numpy as np

from rnn_cli.errors import CorpusError, UsageError

MIN_SEQ_LEN = 2  # fit_batch_shape never shrinks the sequence length below this
CHUNK_BYTES = 4 << 20  # a corpus is read this many bytes at a time (~25x that at the peak)
RELEASE_EVERY = 1024  # Batches drops the pages of a memory-mapped id array it has read this often


# -------------------------------------------------------------------- reading
def read_text(path: str, encoding: str = "utf-8", errors: str = "strict",
              stdin=None) -> tuple[str, dict]:
    """Read the corpus at `path` ('-': standard input) and return (text, info): the pieces of
    `Source` joined (its checks and normalisation; info = {"name", "bytes", "sha256"})."""
    with Source(path, encoding, errors, stdin=stdin) as src:
        return "".join(piece for piece, _ in src.pieces()), src.info


class Source:
    """A corpus file, or standard input (or a pipe) spooled to a temporary file in `spool_dir`,
    checked and hashed in one pass over its bytes, then decoded in pieces of about `chunk` bytes
    by `pieces()`. A context manager (the spool file is removed on exit).

    info = {"name", "bytes", "sha256"} of the raw bytes. The text has "\\r\\n" and lone "\\r"
    turned into "\\n" and a leading byte-order mark removed. CorpusError (with a hint) for a
    missing/unreadable path, a directory, empty or whitespace-only text, NUL bytes, or bytes that
    are not valid in `encoding` (with the offset and line of the first bad byte).
    """

    def __init__(self, path: str, encoding: str = "utf-8", errors: str = "strict", stdin=None,
                 spool_dir: str | None = None, chunk: int = CHUNK_BYTES):
        _check_codec(encoding, errors)
        self.encoding, self.errors, self.chunk = encoding, errors, int(chunk)
        self.name, self.path, self.spooled = ("<stdin>" if path == "-" else path), None, False
        if path == "-":
            stream = stdin if stdin is not None else sys.stdin
            isatty = getattr(stream, "isatty", None)
            if isatty is not None and isatty():
                raise CorpusError(
                    "'-' reads the corpus from standard input, but standard input is a terminal",
                    hint="pipe text in, e.g. `cat corpus.txt | rnn-cli train -`")
            self._spool(getattr(stream, "buffer", stream), spool_dir)
            return
        try:
            f = open(path, "rb")
        except OSError as e:
            raise _open_error(path, e) from None
        with f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # a pipe, <(...): read once
                self._spool(f, spool_dir)
                return
            self.path = path
            try:
                self.info = self._scan(f, None)
            except OSError as e:
                raise _open_error(path, e) from None

    def _spool(self, stream, spool_dir: str | None) -> None:
        """Copy a stream that can be read only once to a temporary file, scanning it."""
        try:
            if spool_dir:
                os.makedirs(spool_dir, exist_ok=True)
            fd, self.path = tempfile.mkstemp(prefix=".rnn-cli-stdin-", dir=spool_dir)
            self.spooled = True
            with os.fdopen(fd, "wb") as out:
                self.info = self._scan(stream, out)
        except BaseException as e:
            self.close()
            if isinstance(e, OSError):
                where = spool_dir or tempfile.gettempdir()
                raise CorpusError(f"cannot copy the corpus {self.name} to {where}: "
                                  f"{e.strerror or e}",
                                  hint="free some disk space there, or pass a file") from None
            raise

    def _scan(self, f, out) -> dict:
        """One pass over the bytes: hash, size, the first NUL byte (spooled to `out`)."""
        digest, n = hashlib.sha256(), 0
        check_nul = not codecs.lookup(self.encoding).name.startswith(("utf-16", "utf-32"))
        while data := f.read(self.chunk):
            if isinstance(data, str):  # a text stream without .buffer
                data = data.encode("utf-8", "surrogateescape")
            digest.update(data)
            if out is not None:
                out.write(data)
            nul = data.find(b"\x00") if check_nul else -1
            if nul >= 0:
                raise CorpusError(
                    f"the corpus {self.name} contains a NUL byte at offset {n + nul}: it looks "
                    "like binary data, not text", hint="give a plain text file (UTF-8 by default)")
            n += len(data)
        if not n:
            raise CorpusError(f"the corpus {self.name} is empty",
                              hint="give a file that contains text")
        return {"name": self.name, "bytes": n, "sha256": digest.hexdigest()}

    def pieces(self, anywhere: bool = False) -> Iterator[tuple[str, bool]]:
        """(text, final) pieces of the normalised text, cut after a "\\n" (in a line over
        `chunk` characters: after a space or tab, else with `anywhere` where the chunk ends),
        so that no multi-byte character, and unless `anywhere` no word, is split and no cut
        changes what str.lower() does; joined they are the whole text. Raises CorpusError before
        the final piece when the text is only whitespace or the file changed since it was
        hashed, and at the first undecodable byte or NUL character."""
        decoder = codecs.getincrementaldecoder(self.encoding)(self.errors)
        carry, pos, chars, content, first = "", 0, 0, False, True
        digest = hashlib.sha256()
        with open(self.path, "rb") as f:
            while True:
                data = f.read(self.chunk)
                digest.update(data)
                final, pending = not data, len(decoder.getstate()[0])
                if final and digest.hexdigest() != self.info["sha256"]:
                    raise CorpusError(f"the corpus {self.name} changed while it was being read",
                                      hint="run the command again once the file is complete")
                try:
                    text = decoder.decode(data, final)
                except UnicodeDecodeError as e:
                    raise self._decode_error(e, pos - pending) from None
                pos += len(data)
                if "\x00" in text:
                    raise CorpusError(f"the corpus {self.name} contains a NUL character at "
                                      f"character offset {chars + text.index(chr(0))}",
                                      hint="give a plain text file")
                chars += len(text)
                if first and text:
                    text, first = text.removeprefix("\ufeff"), False
                buf, held = carry + text, ""
                if not final and buf.endswith("\r"):  # maybe the first half of "\r\n"
                    buf, held = buf[:-1], "\r"
                if "\r" in buf:
                    buf = buf.replace("\r\n", "\n").replace("\r", "\n")
                cut = len(buf) if final else _cut(buf, self.chunk, anywhere)
                piece, carry = buf[:cut], buf[cut:] + held
                content = content or (bool(piece) and not piece.isspace())
                if final and not content:
                    raise CorpusError(f"the corpus {self.name} contains only whitespace",
                                      hint="give a file that contains text")
                if piece or final:
                    yield piece, final
                if final:
                    return

    def _decode_error(self, e: UnicodeDecodeError, base: int) -> CorpusError:
        offset = base + e.start
        line = 1
        with open(self.path, "rb") as f:
            for start in range(0, offset, self.chunk):
                line += f.read(min(self.chunk, offset - start)).count(b"\n")
        return CorpusError(
            f"the corpus {self.name} is not valid {self.encoding}: byte "
            f"0x{e.object[e.start]:02x} at offset {offset} (line {line}): {e.reason}",
            hint="pass --encoding (e.g. --encoding latin-1) or --errors replace")

    def close(self) -> None:
        if self.spooled and self.path:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self.path = None

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False


def _cut(buf: str, limit: int, anywhere: bool) -> int:
    """Where to end a piece of `buf`: after its last "\\n"; in a longer line than `limit`, after
    its last space or tab, else (with `anywhere`) at its end; 0: wait for more text."""
    cut = buf.rfind("\n") + 1
    if cut or len(buf) < limit:
        return cut
    return max(buf.rfind(" "), buf.rfind("\t")) + 1 or (len(buf) if anywhere else 0)


def _check_codec(encoding: str, errors: str) -> None:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise UsageError(f"unknown encoding {encoding!r}",
                         hint="use a Python codec name such as utf-8, latin-1 or cp1252") from None
    try:
        codecs.lookup_error(errors)
    except LookupError:
        raise UsageError(f"unknown --errors handler {errors!r}",
                         hint="use strict, replace, ignore or surrogateescape") from None


def _open_error(path: str, e: OSError) -> CorpusError:
    if isinstance(e, FileNotFoundError):
        return CorpusError(f"corpus file not found: {path}",
                           hint="check the path, or pass '-' to read standard input")
    if isinstance(e, IsADirectoryError):
        return CorpusError(f"the corpus path {path} is a directory",
                           hint="give the path of a text file inside it")
    if isinstance(e, PermissionError):
        return CorpusError(f"cannot read the corpus {path}: permission denied",
                           hint="check the file's permissions (chmod u+r)")
    return CorpusError(f"cannot read the corpus {path}: {e.strerror or e}",
                       hint="check that the path is a readable text file")


# -------------------------------------------------------------------- splitting
def split_train_val(ids: np.ndarray, val_frac: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) views of `ids`: val is the last floor(len * val_frac) ids (none for 0)."""
    if not 0.0 <= val_frac < 1.0:
        raise UsageError(f"--val-frac must be in [0, 1), got {val_frac!r}",
                         hint="e.g. --val-frac 0.1 keeps the last 10% for validation")
    n = len(ids)
    n_val = int(n * val_frac + 1e-9)  # the epsilon keeps 100 * 0.29 from rounding down to 28
    return ids[: n - n_val], ids[n - n_val:]


def fit_batch_shape(n_tokens: int, batch_size: int, seq_len: int,
                    min_windows: int = 4) -> tuple[int, int, bool]:
    """(B, T, adjusted): the largest B <= batch_size, then T <= seq_len, that give at least
    `min_windows` windows per epoch over `n_tokens` ids. Shrinks B first (down to 1), then T (down
    to MIN_SEQ_LEN); CorpusError, naming the minimum number of tokens, when nothing fits.
    """
    for name, value in (("--batch-size", batch_size), ("--seq-len", seq_len),
                        ("min_windows", min_windows)):
        if int(value) != value or value < 1:
            raise UsageError(f"{name} must be a positive integer, got {value!r}",
                             hint=f"e.g. {name} 32" if name != "min_windows" else None)
    min_t = min(seq_len, MIN_SEQ_LEN)
    need = min_windows * min_t + 1
    if n_tokens < need:
        raise CorpusError(
            f"the training text has {n_tokens} tokens, too few for {min_windows} windows: at "
            f"least {need} tokens are needed (batch size 1, sequence length {min_t})",
            hint="use a longer corpus, or a smaller --val-frac")
    usable = n_tokens - 1  # the last id is only ever a target
    b = min(batch_size, usable // (seq_len * min_windows))
    if b >= 1:
        return b, seq_len, b != batch_size
    t = max(min_t, min(seq_len, usable // min_windows))
    return 1, t, True


# -------------------------------------------------------------------- batching
def release_pages(ids: np.ndarray) -> None:
    """Unmap the pages read so far of a memory-mapped id array (np.memmap or a slice of one), so
    that walking a corpus larger than RAM does not grow the resident size; they stay in the page
    cache, and a later read maps them again. Nothing for an array in memory."""
    mm = getattr(ids, "_mmap", None)
    if mm is not None and hasattr(mmap, "MADV_DONTNEED"):
        mm.madvise(mmap.MADV_DONTNEED)


class Batches:
    """B parallel contiguous streams over `ids`, walked in (T, B) windows (see module docstring).

    `next_window()` (or next(batches)) returns (x, y, reset): x, y are (T, B) int32 buffers that
    are REUSED by the next call (copy them to keep them); y[t, b] is the id after x[t, b] in
    stream b; reset is True for the first window of an epoch, when the caller must zero the
    hidden state. `position` is the index in the epoch of the window the next call returns,
    `epoch` its epoch (from 0); after the last window the next epoch starts from the beginning.
    """

    def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int):
        ids = ids if isinstance(ids, np.ndarray) else np.asarray(ids)
        if ids.ndim != 1 or ids.dtype.kind not in "iu":
            raise UsageError("Batches needs a 1-D integer id array",
                             hint="encode the text with Vocab.encode first")
        if batch_size < 1 or seq_len < 1:
            raise UsageError(f"batch size and sequence length must be >= 1, got {batch_size}, "
                             f"{seq_len}", hint="e.g. --batch-size 32 --seq-len 64")
        self.n_tokens = len(ids)
        self.batch_size, self.seq_len = int(batch_size), int(seq_len)
        self.stream_len = max(self.n_tokens - 1, 0) // self.batch_size  # L
        self.windows_per_epoch = self.stream_len // self.seq_len
        if self.windows_per_epoch < 1:
            raise CorpusError(
                f"{self.n_tokens} tokens cannot fill {self.batch_size} streams of "
                f"{self.seq_len + 1} tokens (needs at least "
                f"{self.batch_size * self.seq_len + 1})",
                hint="lower --batch-size or --seq-len, or use a longer corpus")
        self._ids = ids  # read a window at a time: a memory-mapped id file is never loaded whole
        # (T+1, B) indices of the first window: stream b starts at b*L; x rows 0..T-1, y rows 1..T
        self._first = (np.arange(self.seq_len + 1, dtype=np.int64)[:, None]
                       + np.arange(self.batch_size, dtype=np.int64)[None, :] * self.stream_len)
        self._index = np.empty_like(self._first)
        self._x = np.empty((self.seq_len, self.batch_size), dtype=np.int32)  # (T, B)
        self._y = np.empty((self.seq_len, self.batch_size), dtype=np.int32)  # (T, B)
        self.epoch = 0
        self.position = 0

    @property
    def reset_state(self) -> bool:
        """True when the window the next call returns starts an epoch (reset the hidden state)."""
        return self.position == 0

    @property
    def tokens_per_epoch(self) -> int:
        """Number of predicted targets in one epoch (windows * T * B)."""
        return self.windows_per_epoch * self.seq_len * self.batch_size

    def next_window(self) -> tuple[np.ndarray, np.ndarray, bool]:
        """(x, y, reset) of the current window, then advance (see the class docstring)."""
        reset = self.position == 0
        np.add(self._first, self.position * self.seq_len, out=self._index)
        window = self._ids[self._index]  # (T+1, B)
        self._x[...] = window[:-1]
        self._y[...] = window[1:]
        self.position += 1
        if self.position % RELEASE_EVERY == 0:
            release_pages(self._ids)
        if self.position == self.windows_per_epoch:
            self.position = 0
            self.epoch += 1
        return self._x, self._y, reset

    def __iter__(self) -> Batches:
        return self

    def __next__(self) -> tuple[np.ndarray, np.ndarray, bool]:
        return self.next_window()

    def state_dict(self) -> dict[str, int]:
        """Plain ints: where the walk stands and the shape it was made for."""
        return {"epoch": self.epoch, "position": self.position, "n_tokens": self.n_tokens,
                "batch_size": self.batch_size, "seq_len": self.seq_len}

    def load_state_dict(self, state: dict) -> None:
        """Continue at the window `state` points to; CorpusError if it was for another shape."""
        mine = self.state_dict()
        for key in ("n_tokens", "batch_size", "seq_len"):
            if int(state.get(key, -1)) != mine[key]:
                raise CorpusError(
                    f"the saved batch position is for {key}={state.get(key)!r}, but this run "
                    f"has {key}={mine[key]}",
                    hint="resume with the same corpus, --val-frac, --batch-size and --seq-len")
        epoch, position = int(state["epoch"]), int(state["position"])
        if epoch < 0 or not 0 <= position < self.windows_per_epoch:
            raise CorpusError(f"the saved batch position (epoch {epoch}, window {position}) is "
                              "out of range", hint="the checkpoint may be damaged")
        self.epoch, self.position = epoch, position
