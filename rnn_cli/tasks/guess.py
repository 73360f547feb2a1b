"""Which task a training file is for, from the format of its first lines (`rnn-cli train` without
`--task`). Reads at most SAMPLE_BYTES and never consumes a stream: standard input is peeked at
(its buffered bytes stay for the reader), and a pipe or other non-regular path is not looked at.

The rules, in order, over the whole lines of the sample (blank lines: whitespace only):

    classify    every non-blank line starts with `__label__` (fastText)
    tag         CoNLL-U (every non-blank line a `#` comment or 10 TAB-separated columns whose
                first is a token id: 1, 1-2 or 1.1), or CoNLL columns (every non-blank line
                token<TAB>tag..., the token without spaces, and blank lines between sentences)
    translate   every non-blank line has exactly one TAB, with text on both sides
    lm          anything else: running text (also an empty, unreadable or unseen file, which the
                reader then reports)

Nothing here imports numpy; only the file's start is read, so the task's reader still checks
every line (and reports a bad one with its number).
"""

from __future__ import annotations

import os
import re
import stat
import sys

SAMPLE_BYTES = 1 << 20
_CONLLU_ID = re.compile(r"\d+(?:-\d+|\.\d+)?")


def sample_lines(path: str, encoding: str = "utf-8", stdin=None) -> list[str] | None:
    """The whole lines in the first SAMPLE_BYTES of `path` ('-': standard input, peeked at), or
    None when they cannot be looked at without consuming the stream or at all."""
    try:
        if path == "-":
            stream = stdin if stdin is not None else sys.stdin
            buf = getattr(stream, "buffer", None)
            if buf is None or not hasattr(buf, "peek") or stream.isatty():
                return None
            data = buf.peek(SAMPLE_BYTES)[:SAMPLE_BYTES]
            whole = False  # a peek returns what one read gave: maybe not the whole input
        else:
            with open(path, "rb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    return None
                data = f.read(SAMPLE_BYTES + 1)
            whole = len(data) <= SAMPLE_BYTES
            data = data[:SAMPLE_BYTES]
        text = data.decode(encoding, "replace")
    except (OSError, LookupError, ValueError):
        return None
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the file's final newline
    elif not whole and len(lines) > 1:
        lines.pop()  # cut in the middle of a line
    return lines


def guess_kind(lines: list[str] | None) -> tuple[str, str]:
    """(kind, why) for the sample lines of a training file (`sample_lines`)."""
    body = [ln for ln in lines or () if ln.strip()]
    if not body:
        return "lm", "no text to look at in its first lines"
    n = f"{len(body):,} non-blank line{'s' if len(body) > 1 else ''}"
    if all(ln.startswith("__label__") for ln in body):
        return "classify", f"its {n} all start with __label__"
    if all(ln.startswith("#") or _conllu_row(ln) for ln in body) and \
            any(not ln.startswith("#") for ln in body):
        return "tag", f"its {n} are CoNLL-U (comments and 10 TAB-separated columns)"
    blank_between = any(not ln.strip() for ln in (lines or [])[:-1])
    if blank_between and all(_conll_row(ln) for ln in body):
        return "tag", (f"its {n} are token<TAB>tag columns with blank lines between "
                       "sentences (CoNLL)")
    if all(_pair(ln) for ln in body):
        return "translate", f"its {n} are each two texts separated by one TAB"
    return "lm", "it reads as running text (no __label__, CoNLL or TAB-separated pair format)"


def _conllu_row(line: str) -> bool:
    cols = line.split("\t")
    return len(cols) == 10 and bool(_CONLLU_ID.fullmatch(cols[0]))


def _conll_row(line: str) -> bool:
    cols = line.split("\t")
    token = cols[0].strip()
    return len(cols) >= 2 and all(c.strip() for c in cols) and not any(ch.isspace() for ch in token)


def _pair(line: str) -> bool:
    cols = line.split("\t")
    return len(cols) == 2 and bool(cols[0].strip()) and bool(cols[1].strip())
