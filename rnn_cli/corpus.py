"""Corpus input: read a text file (or '-') once, checked and hashed, then in pieces.

What lives here: `Source` (a corpus checked and hashed in one pass, then decoded in pieces of
bounded size), `read_text` (the whole text + provenance info) and `release_pages` (drop the
resident pages of a memory-mapped id array). What does not: tokenizing and vocabularies
(`vocab.py`), token ids and their cache (`idcache.py`), a task's splits and batches (the language
model's BPTT windows: `tasks/lm/windows.py`), the model, printing.
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

CHUNK_BYTES = 4 << 20  # a corpus is read this many bytes at a time (~25x that at the peak)


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


# -------------------------------------------------------------------- memory
def release_pages(ids: np.ndarray) -> None:
    """Unmap the pages read so far of a memory-mapped id array (np.memmap or a slice of one), so
    that walking a corpus larger than RAM does not grow the resident size; they stay in the page
    cache, and a later read maps them again. Nothing for an array in memory."""
    mm = getattr(ids, "_mmap", None)
    if mm is not None and hasattr(mmap, "MADV_DONTNEED"):
        mm.madvise(mmap.MADV_DONTNEED)
