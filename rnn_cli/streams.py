"""Input streamed line by line for the commands that answer one line at a time (`score`,
`predict`, and the other tasks' verbs): FILE or '-' (standard input, refused when it is a
terminal) as a text stream with universal newlines, and its lines with their numbers
(`read_lines`), or in blocks of the lines at hand (`read_blocks`). No numpy.
"""

from __future__ import annotations

import codecs
import io
import os
import select
import stat
import sys
from collections.abc import Iterator

from rnn_cli.errors import CorpusError, UsageError


def open_input(path: str, encoding: str = "utf-8", errors: str = "strict"):
    """A text stream over FILE or '-' (stdin; refused when it is a terminal), universal newlines
    like `corpus.read_text`. Returns (name, stream)."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise UsageError(f"unknown encoding {encoding!r}",
                         hint="use a Python codec name such as utf-8 or latin-1") from None
    if path == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise CorpusError("'-' expects piped input, but standard input is a terminal",
                              hint="pipe text in (`cat file | rnn-cli score -`) or give FILE")
        raw = getattr(sys.stdin, "buffer", None)
        if raw is None:  # a text stream (tests): use it as it is
            return "<stdin>", sys.stdin
        return "<stdin>", io.TextIOWrapper(raw, encoding=encoding, errors=errors, newline=None)
    try:
        return path, open(path, encoding=encoding, errors=errors, newline=None)
    except FileNotFoundError:
        raise CorpusError(f"file not found: {path}",
                          hint="check the path, or pass '-' to read standard input") from None
    except IsADirectoryError:
        raise CorpusError(f"{path} is a directory", hint="give the path of a text file") from None
    except OSError as e:
        raise CorpusError(f"cannot read {path}: {e.strerror or e}",
                          hint="check that the path is a readable text file") from None


def read_lines(name: str, stream) -> Iterator[tuple[int, str]]:
    """(line number from 1, raw line with its "\\n") one at a time; a leading BOM is dropped."""
    lineno = 0
    try:
        for lineno, raw in enumerate(stream, 1):
            if lineno == 1:
                raw = raw.removeprefix("\ufeff")
            yield lineno, raw
    except UnicodeDecodeError as e:
        raise CorpusError(f"{name}: not valid {e.encoding} after line {lineno} ({e.reason})",
                          hint="pass --encoding (e.g. latin-1) or --errors replace") from None


PIPE_CHUNK = 1 << 16  # bytes read from a pipe at a time


def read_blocks(name: str, stream, max_lines: int) -> Iterator[list[str]]:
    """The lines of `stream` (from `open_input`), in order, in blocks of 1 to max_lines lines
    (each with or without its "\\n"; a leading BOM is not dropped). A regular file gives full
    blocks. A pipe or a socket gives a block as soon as at least one complete line has arrived
    and no more bytes are waiting: a line written to the pipe is answered without waiting for
    the next one, or for the end of the input, while a fast writer fills whole blocks. The
    stream must not have been read from yet (its descriptor is read directly)."""
    fd, regular = _descriptor(stream)
    if fd is None or regular:
        yield from _stream_blocks(name, stream, max_lines)
    elif os.name != "posix":  # no select() on pipes: a line at a time
        yield from _stream_blocks(name, stream, 1)
    else:
        yield from _pipe_blocks(name, stream, fd, max_lines)


def _descriptor(stream) -> tuple[int | None, bool]:
    """(the descriptor read_blocks may read directly, or None; whether it is a regular file,
    which never waits)."""
    if isinstance(stream, io.TextIOWrapper):
        try:
            fd = stream.fileno()
            return fd, stat.S_ISREG(os.fstat(fd).st_mode)
        except (OSError, ValueError):
            pass
    return None, True


def _buffered(stream) -> bytes | None:
    """The bytes a peek at the stream (a format sniff) left in its binary buffer, to be read
    before the descriptor (peek(0) returns them, or when there are none reads once, as
    os.read would); None when there are none."""
    buf = getattr(stream, "buffer", None)
    try:
        n = len(buf.peek(0)) if buf is not None else 0
    except (AttributeError, OSError, ValueError):
        return None
    return buf.read1(n) if n else None


class Lines:
    """The lines of `stream` (from `open_input`, not read from yet) through `read_blocks`: a
    block at a time (`blocks`) or one at a time (iterating), each with its "\n" and a leading
    BOM dropped. `idle()` is True when every line that has arrived from a pipe has been handed
    out (never for a file): a reader of sentences may answer what it holds then, instead of
    waiting for lines that are not written yet."""

    def __init__(self, name: str, stream, max_lines: int):
        self.name, self.lineno = name, 0  # lineno: lines handed out in blocks so far
        self._blocks = read_blocks(name, stream, max_lines)
        self._waits = not _descriptor(stream)[1]
        self._left = 0

    def blocks(self) -> Iterator[list[str]]:
        for block in self._blocks:
            if not self.lineno:
                block[0] = block[0].removeprefix("\ufeff")
            self.lineno += len(block)
            yield block

    def __iter__(self) -> Iterator[str]:
        for block in self.blocks():
            self._left = len(block)
            for line in block:
                self._left -= 1
                yield line

    def idle(self) -> bool:
        return self._waits and not self._left


def _decode_error(name: str, e: UnicodeDecodeError, lineno: int) -> CorpusError:
    return CorpusError(f"{name}: not valid {e.encoding} after line {lineno} ({e.reason})",
                       hint="pass --encoding (e.g. latin-1) or --errors replace")


def _stream_blocks(name: str, stream, max_lines: int) -> Iterator[list[str]]:
    """Blocks of a stream that never waits for long (a file): the lines read so far still come
    out before a decoding error."""
    lineno, block, error = 0, [], None
    try:
        for line in stream:
            block.append(line)
            if len(block) >= max_lines:
                lineno += len(block)
                yield block
                block = []
    except UnicodeDecodeError as e:
        error = e
    if block:
        lineno += len(block)
        yield block
    if error is not None:
        raise _decode_error(name, error, lineno) from None


def _pipe_blocks(name: str, stream, fd: int, max_lines: int) -> Iterator[list[str]]:
    """Blocks of a pipe read with os.read (what has arrived, without waiting for more) and
    decoded as the stream would decode them (its encoding and errors, universal newlines)."""
    decoder = io.IncrementalNewlineDecoder(
        codecs.getincrementaldecoder(stream.encoding)(stream.errors or "strict"), translate=True)
    lineno, lines, rest = 0, [], []  # rest: the pieces of an unfinished line
    buffered = _buffered(stream)
    while True:
        try:
            chunk, buffered = (buffered, None) if buffered else (os.read(fd, PIPE_CHUNK), None)
        except BlockingIOError:  # a non-blocking descriptor: wait for bytes
            select.select([fd], [], [])
            continue
        try:
            text = decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as e:  # the complete lines before the bad bytes come out
            good = e.object[:e.start].decode(stream.encoding, "replace")
            parts = ("".join(rest) + good.replace("\r\n", "\n").replace("\r", "\n")).split("\n")
            lines += parts[:-1]
            if lines:
                yield lines
            raise _decode_error(name, e, lineno + len(lines)) from None
        if "\n" in text:
            parts = text.split("\n")
            parts[0] = "".join(rest) + parts[0]
            tail = parts.pop()
            rest = [tail] if tail else []
            lines += parts
        elif text:
            rest.append(text)
        if not chunk:  # the end: a last line without its newline
            last = "".join(rest)
            if last:
                lines.append(last)
            for i in range(0, len(lines), max_lines):
                yield lines[i:i + max_lines]
            return
        while len(lines) >= max_lines:
            lineno += max_lines
            yield lines[:max_lines]
            del lines[:max_lines]
        if lines and not select.select([fd], [], [], 0)[0]:
            lineno += len(lines)
            yield lines
            lines = []
