"""Input streamed line by line for the commands that answer one line at a time (`score`,
`predict`, and the other tasks' verbs): FILE or '-' (standard input, refused when it is a
terminal) as a text stream with universal newlines, and its lines with their numbers. No numpy.
"""

from __future__ import annotations

import codecs
import io
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
