"""Reading labelled text for the classifier: one example a line, in either of two formats.

    __label__4 the text ...          fastText's: the line's leading whitespace-separated tokens
    __label__a __label__b the text   that start with `__label__` are its labels (the prefix is
                                     not part of the label), the rest of the line is the text
    positive<TAB>the text ...        a label, a TAB, the text (the first TAB splits them)

Each line is read in the format it shows (a line that starts with `__label__` is fastText's,
else one with a TAB is the second), so a file may mix them. Blank lines are skipped. Labels are
strings: `__label__4` is the label "4". A `__label__` token after the text has started is text.

Several labels on a line (fastText's multi-label form): the classifier learns one label per
line, the first; how many lines had more is counted (`ReadReport.multi_label`) for a warning,
and the test metrics score a line's first label (the others are kept in `Example.labels`).

Bad lines, each with its line number: no label, an empty `__label__`, no text after the label,
a label with a control character or longer than MAX_LABEL_CHARS (what a text mistaken for a
label looks like). `bad_lines="fail"` (the default) makes the first ones one CorpusError;
"skip" leaves them out, counted in the report with their first line numbers. Files are read by
`corpus.read_text` (its checks: missing, empty, binary / NUL bytes, undecodable bytes with their
line, "\\r\\n" and a byte-order mark removed).
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Iterable

from rnn_cli.corpus import read_text
from rnn_cli.errors import CorpusError

PREFIX = "__label__"
MAX_LABEL_CHARS = 200  # (taskfile.MAX_LABEL_CHARS: what a model file may hold)
SHOW = 5  # line numbers quoted in a message
_GOLD = re.compile(r"(?:__label__\S*(?:\s+|$))+")  # the leading labels of a fastText line


@dataclass(frozen=True)
class Example:
    """One labelled line: its number (from 1), its labels (first: the one learned), its text."""

    lineno: int
    labels: tuple[str, ...]
    text: str


@dataclass
class ReadReport:
    """What reading a file found besides its examples."""

    name: str = ""
    lines: int = 0  # lines read, blank ones included
    blank: int = 0
    multi_label: int = 0  # lines with more than one label (the first is used)
    bad: list[tuple[int, str]] = field(default_factory=list)  # (line number, why), skipped
    info: dict = field(default_factory=dict)  # the file's name, bytes, sha256

    def warnings(self) -> list[str]:
        """One line per thing the user should hear about."""
        out = []
        if self.bad:
            out.append(f"{self.name}: skipped {len(self.bad)} bad line(s): {_where(self.bad)}")
        if self.multi_label:
            out.append(f"{self.name}: {self.multi_label} line(s) have several labels; a "
                       "classifier learns one label per line, the first was used")
        return out


def _where(bad: list[tuple[int, str]]) -> str:
    shown = "; ".join(f"line {n}: {why}" for n, why in bad[:SHOW])
    return shown + (f"; and {len(bad) - SHOW} more" if len(bad) > SHOW else "")


def label_problem(label: str) -> str | None:
    """Why `label` cannot be a label, or None."""
    if not label:
        return "an empty label"
    if len(label) > MAX_LABEL_CHARS:
        return f"a label of {len(label)} characters (more than {MAX_LABEL_CHARS})"
    bad = next((c for c in label if unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        return f"a control character (U+{ord(bad):04X}) in the label {label[:40]!r}"
    return None


def parse_line(line: str) -> tuple[tuple[str, ...], str] | str:
    """(labels, text) of one non-blank line, or the reason it is not a labelled line."""
    stripped = line.strip()
    if stripped.startswith(PREFIX):
        labels, rest = [], stripped
        while rest.startswith(PREFIX):
            cut = len(rest)
            for i, c in enumerate(rest):
                if c.isspace():
                    cut = i
                    break
            labels.append(rest[len(PREFIX):cut])
            rest = rest[cut:].lstrip()
        text = rest
    elif "\t" in line:
        label, text = line.split("\t", 1)
        labels, text = [label.strip()], text.strip()
        if not labels[0]:
            return "no label before the TAB"
    else:
        return f"no label (neither {PREFIX}X nor label<TAB>text)"
    for label in labels:
        why = label_problem(label)
        if why:
            return why
    if not text:
        return "no text after the label"
    return tuple(labels), text


def strip_gold(line: str, known: set[str] | None = None) -> str:
    """The text of a line to classify: a leading `__label__` part is dropped, and so is a
    `label<TAB>` part whose label is in `known` (the model's labels); else the whole line."""
    s = line.strip()
    if s.startswith(PREFIX):
        return s[_GOLD.match(s).end():]
    if known and "\t" in line:
        label, text = line.split("\t", 1)
        if label.strip() in known:
            return text.strip()
    return s


def read_lines(lines: Iterable[str], name: str, bad_lines: str = "fail",
               first_line: int = 1) -> tuple[list[Example], ReadReport]:
    """Examples of an iterable of lines (a trailing "\\n" / "\\r\\n" ignored; a byte-order mark
    at the very start removed). CorpusError for bad lines with bad_lines="fail", and for an
    input without a single example."""
    if bad_lines not in ("fail", "skip"):
        raise ValueError(f"bad_lines must be 'fail' or 'skip', not {bad_lines!r}")
    report, examples = ReadReport(name), []
    for lineno, line in enumerate(lines, first_line):
        if lineno == first_line:
            line = line.removeprefix("\ufeff")
        line = line.rstrip("\n").rstrip("\r")
        report.lines += 1
        if not line.strip():
            report.blank += 1
            continue
        parsed = parse_line(line)
        if isinstance(parsed, str):
            report.bad.append((lineno, parsed))
            continue
        labels, text = parsed
        report.multi_label += len(labels) > 1
        examples.append(Example(lineno, labels, text))
    if report.bad and bad_lines == "fail":
        raise CorpusError(f"{name}: {len(report.bad)} line(s) are not labelled text: "
                          f"{_where(report.bad)}",
                          hint=f"write each example as `{PREFIX}LABEL text` or `LABEL<TAB>text`, "
                               "or skip such lines (bad_lines='skip')")
    if not examples:
        raise CorpusError(f"{name} holds no labelled examples ({report.lines} line(s), "
                          f"{report.blank} blank)",
                          hint=f"one example a line: `{PREFIX}LABEL text` or `LABEL<TAB>text`")
    return examples, report


def read_file(path: str, bad_lines: str = "fail", encoding: str = "utf-8",
              errors: str = "strict", stdin=None) -> tuple[list[Example], ReadReport]:
    """`read_lines` of a file ('-': standard input), read and checked by `corpus.read_text`."""
    text, info = read_text(path, encoding, errors, stdin=stdin)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    examples, report = read_lines(lines, info["name"], bad_lines)
    report.info = info
    return examples, report


def label_order(labels: Iterable[str]) -> list[str]:
    """The distinct labels in a stable, readable order: numbers by value (so "2" < "10"), then
    the others as strings."""
    def key(x: str):
        try:
            v = float(x)
        except ValueError:
            v = math.nan
        return (0, v, x) if math.isfinite(v) else (1, 0.0, x)
    return sorted(set(labels), key=key)


def check_classes(examples: list[Example], name: str) -> list[str]:
    """The label set of training examples; CorpusError when it has a single label."""
    labels = label_order(ex.labels[0] for ex in examples)
    if len(labels) < 2:
        raise CorpusError(f"{name}: every example has the label {labels[0]!r}; a classifier "
                          "needs at least two labels to choose between",
                          hint="add examples of the other labels")
    return labels
