"""Reading translation data: `source<TAB>target` lines, or two line-aligned files, and the lines to
translate; vocabularies per side; ids with <EOS>; a format sniffer for `--task` guessing.

Training data (`read_pairs`, `read_parallel`) goes through `corpus.Source`, so a file is checked
as every corpus is (missing, empty, NUL bytes = binary, undecodable bytes with their offset and
line; "\\r\\n" and "\\r" read as "\\n", a leading byte-order mark dropped); a byte-order mark at the
start of a later line (files joined with `cat`) is dropped too and counted. Lines are numbered from
1 in the file. Lines that cannot be a pair are, with `bad_lines="fail"` (the default), one error
that counts them and names their first line numbers; with "skip", skipped and counted (the notice
names the first such line):

    no TAB / more than one TAB (TSV)   the pair cannot be cut unambiguously
    empty source / empty target        a side that is blank after stripping spaces
Blank lines (both sides blank) are skipped silently. Two files of different line counts are an
error (they are not aligned). (Training leaves out pairs with a side over --max-len tokens and
counts them: `run.encode`.)

Ids: both sides end with <EOS> (word level) or "\\n" (char level: the LM's end of line, added to
each side's vocabulary). The decoder's first input is <EOS> as well.

A source to translate is encoded by `encode_source`, cut to --max-len tokens (its <EOS> kept
last) and the cut reported, so `translate` can count it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

from rnn_cli.corpus import Source
from rnn_cli.errors import CorpusError, UsageError
from rnn_cli.vocab import Counts, Vocab

BAD_LINES = ("fail", "skip")


@dataclass
class Report:
    """Counted problems of a read: {what: [count, first line, skipped]}, in the order first seen."""

    name: str
    counts: dict[str, list] = field(default_factory=dict)

    def add(self, what: str, lineno: int, skipped: bool = True) -> None:
        entry = self.counts.setdefault(what, [0, lineno, skipped, []])
        entry[0] += 1
        if len(entry[3]) < 5:
            entry[3].append(lineno)

    def bad(self) -> list[str]:
        """One phrase per kind of skipped line, e.g. "2 with no TAB (lines 2, 4)"."""
        out = []
        for what, (n, _, skipped, where) in self.counts.items():
            if skipped:
                more = ", …" if n > len(where) else ""
                out.append(f"{n:,} with {what} (line{'s' if n > 1 else ''} "
                           f"{', '.join(map(str, where))}{more})")
        return out

    def messages(self) -> list[str]:
        """One line per kind, e.g. "train.tsv: 2 lines skipped: no TAB (first: line 7)"."""
        out = []
        for what, (n, first, skipped, _) in self.counts.items():
            lines = f"{n:,} line{'s' if n != 1 else ''}"
            out.append(f"{self.name}: {lines} skipped: {what} (first: line {first})" if skipped
                       else f"{self.name}: {what} on {lines} (first: line {first})")
        return out


@dataclass
class Pairs:
    src: list[str]
    tgt: list[str]
    lines: list[int]  # each pair's line number in its file(s)
    report: Report

    def __len__(self) -> int:
        return len(self.src)


def _lines(path: str, encoding: str, errors: str, stdin=None) -> Iterator[str]:
    """The lines of a corpus file (Source's checks and normalisation), without their "\\n"."""
    with Source(path, encoding, errors, stdin=stdin) as src:
        carry = ""
        for piece, final in src.pieces():
            parts = (carry + piece).split("\n")
            carry = parts.pop()
            yield from parts
            if final and carry:
                yield carry


def _bad(report: Report, bad_lines: str, what: str, lineno: int, line: str) -> None:
    report.add(what, lineno)


def _check_mode(bad_lines: str) -> None:
    if bad_lines not in BAD_LINES:
        raise UsageError(f"unknown --bad-lines {bad_lines!r}", hint="use fail or skip")


def _fail_on_bad(pairs: "Pairs", bad_lines: str) -> None:
    bad = pairs.report.bad()
    if bad and bad_lines == "fail":
        n = sum(c[0] for c in pairs.report.counts.values() if c[2])
        raise CorpusError(f"{pairs.report.name}: {n:,} line{'s are' if n > 1 else ' is'} not "
                          f"a usable sentence pair: {'; '.join(bad)}",
                          hint="fix them, or pass --bad-lines skip to skip such lines (counted)")


def _pair(report, bad_lines, lineno, line, src, tgt, out: Pairs) -> None:
    if line.startswith("\ufeff"):
        report.add("a byte-order mark removed at the line start", lineno, skipped=False)
    src, tgt = src.lstrip("\ufeff").strip(), tgt.strip()
    if not src and not tgt:
        return
    if not src:
        return _bad(report, bad_lines, "empty source", lineno, line)
    if not tgt:
        return _bad(report, bad_lines, "empty target", lineno, line)
    out.src.append(src)
    out.tgt.append(tgt)
    out.lines.append(lineno)


def read_pairs(path: str, encoding: str = "utf-8", errors: str = "strict", stdin=None,
               bad_lines: str = "fail") -> Pairs:
    """`source<TAB>target` lines of `path` ('-': standard input)."""
    _check_mode(bad_lines)
    name = "<stdin>" if path == "-" else path
    out = Pairs([], [], [], Report(name))
    for lineno, line in enumerate(_lines(path, encoding, errors, stdin), 1):
        if not line.strip().lstrip("\ufeff"):
            continue
        tabs = line.count("\t")
        if tabs != 1:
            _bad(out.report, bad_lines, "no TAB" if tabs == 0 else "more than one TAB", lineno,
                 line)
            continue
        _pair(out.report, bad_lines, lineno, line, *line.split("\t"), out)
    return _nonempty(out, bad_lines)


def read_parallel(src_path: str, tgt_path: str, encoding: str = "utf-8", errors: str = "strict",
                  bad_lines: str = "fail") -> Pairs:
    """Line i of `src_path` with line i of `tgt_path` (`--src FILE --tgt FILE`)."""
    _check_mode(bad_lines)
    src = list(_lines(src_path, encoding, errors))
    tgt = list(_lines(tgt_path, encoding, errors))
    if len(src) != len(tgt):
        raise CorpusError(f"--src {src_path} has {len(src):,} lines but --tgt {tgt_path} has "
                          f"{len(tgt):,}: the files are not line-aligned",
                          hint="give two files with one sentence per line, line i translating "
                               "line i")
    out = Pairs([], [], [], Report(f"{src_path} + {tgt_path}"))
    for lineno, (s, t) in enumerate(zip(src, tgt), 1):
        _pair(out.report, bad_lines, lineno, s, s, t.lstrip("\ufeff"), out)
    return _nonempty(out, bad_lines)


def _nonempty(pairs: Pairs, bad_lines: str) -> Pairs:
    _fail_on_bad(pairs, bad_lines)
    if not pairs.src:
        why = "; ".join(pairs.report.messages()) or "no line holds a pair"
        raise CorpusError(f"{pairs.report.name}: no sentence pairs to train on ({why})",
                          hint="give one pair a line, source<TAB>target (or --src FILE --tgt "
                               "FILE)")
    return pairs


# -------------------------------------------------------------------------------- vocabularies
def build_vocab(lines: Iterable[str], level: str, vocab_size: int | None = None,
                min_count: int = 1, lower: bool = False, tokenizer: str = "words") -> Vocab:
    """One side's vocabulary; at char level "\\n" is in it (it ends every sequence)."""
    counts = Counts(level, vocab_size, min_count, lower, tokenizer)
    for line in lines:
        counts.add(line + "\n")
    return counts.vocab()


def encode(vocab: Vocab, line: str) -> tuple[np.ndarray, int]:
    """(ids ending with <EOS> / "\\n", unknown count) of one sentence."""
    _, ids, unknown = next(vocab.encode_lines([line]))
    return ids, unknown


# ------------------------------------------------------------------------------ translate input
def encode_source(vocab: Vocab, line: str, max_len: int) -> tuple[np.ndarray, int, bool]:
    """(ids, unknown count, cut) of a line to translate: over max_len tokens it is cut there
    (its <EOS> kept last), and `cut` says so for the caller's counted notice."""
    ids, unknown = encode(vocab, line)
    if ids.shape[0] <= max_len:
        return ids, unknown, False
    out = ids[:max_len].copy()
    out[-1] = ids[-1]
    return out, unknown, True
