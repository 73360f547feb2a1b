"""Reading the tagger's input: CoNLL column files, CoNLL-U, raw text, and a format sniffer.

What lives here: parsers that turn lines into `Sentence`s as soon as each one is complete (so a
stream can be tagged sentence by sentence), a `ReadReport` that counts what was skipped and what
looks wrong, `read_tagged` (a whole file or '-': sniffed, parsed, checked) and `looks_like` (the
format of a file's first kilobytes, for guessing `--task`). What does not: vocabularies, tag ids,
printing. Errors are `CorpusError`s naming the file and line, with a hint.

Formats, and the decisions taken where they are loose:

- **CoNLL columns**: one token a line, the token in the first column, its tag in the last (or in
  `column`: 1-based, negative counts from the end), a blank line (or one of only spaces/tabs)
  between sentences. The separator is decided by the first token line: a TAB there means the
  file is TAB-separated (a token may then contain spaces, as in the WNUT and UD files); else the
  columns are runs of ASCII spaces (not every Unicode space: U+00A0 inside a token stays). Every
  token line must have as many columns as the first (ragged lines, a token without a tag, an
  empty token or tag, a tag with a space inside: errors with the line number). CoNLL-2003's
  `-DOCSTART-` lines are skipped (counted). Runs of blank lines are one boundary (counted).
- **CoNLL-U** (universaldependencies.org/format.html): 10 TAB-separated columns; `field` "upos"
  (column 4) or "xpos" (column 5). Comment lines (`#`) are skipped; multiword-token ranges
  (`3-4 don't`) are skipped and their syntactic words (`do`, `n't`) are tagged, as UD tags
  words; empty nodes (`8.1`) are skipped (they are not in the surface sentence). A word whose tag
  is `_` (unspecified, as XPOS in many treebanks) is an error naming the other field.
- **Raw text**: one sentence a line, tokens by `vocab.tokenize` ("space": split on whitespace;
  "words": the LM's word rules); an empty line is an empty sentence (kept: output stays aligned).

CRLF line ends and a UTF-8 byte-order mark are accepted (`corpus.read_text` normalises them, and
the parsers strip them from streamed lines too), as every reader of rnn-cli does. A sentence of
more than LONG_SENTENCE tokens is read whole and counted (a file with missing blank lines looks
like that); cutting is the trainer's `--max-len`, which reports what it cut.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field as dc_field
from typing import Iterable, Iterator

from rnn_cli.corpus import read_text
from rnn_cli.errors import CorpusError, UsageError
from rnn_cli.vocab import tokenize

LONG_SENTENCE = 1000  # tokens; longer sentences are counted in the report
SNIFF_CHARS = 1 << 16  # looks_like reads this much of a file
CONLLU_FIELDS = {"upos": 3, "xpos": 4}  # 0-based columns of CoNLL-U
_SPACES = re.compile(r" +")
_WORD_ID = re.compile(r"[1-9][0-9]*")
_RANGE_ID = re.compile(r"[1-9][0-9]*-[1-9][0-9]*")
_EMPTY_ID = re.compile(r"(?:0|[1-9][0-9]*)\.[1-9][0-9]*")
_HINTS = {
    "conll": "the tagger reads one token a line with its tag in the last column (token<TAB>tag), "
             "a blank line between sentences",
    "conllu": "CoNLL-U has 10 TAB-separated columns a word: "
              "ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC",
}


@dataclass
class Sentence:
    """Tokens, their tags (None: raw text, or a column file without tags), and the line number
    of the first token (1-based)."""

    tokens: list[str]
    tags: list[str] | None
    line: int


@dataclass
class ReadReport:
    """What a parser saw: counts, skipped lines by kind, and warnings as
    {kind: [count, first line, detail]}. `messages()` words the warnings for stderr."""

    name: str
    format: str
    sentences: int = 0
    tokens: int = 0
    separator: str = ""  # conll: "tab" or "spaces"
    longest: tuple[int, int] = (0, 0)  # (tokens, line)
    skipped: dict[str, int] = dc_field(default_factory=dict)
    warnings: dict[str, list] = dc_field(default_factory=dict)
    info: dict = dc_field(default_factory=dict)  # read_tagged: {"name", "bytes", "sha256"}

    def skip(self, kind: str) -> None:
        self.skipped[kind] = self.skipped.get(kind, 0) + 1

    def warn(self, kind: str, line: int, detail: str = "") -> None:
        w = self.warnings.setdefault(kind, [0, line, detail])
        w[0] += 1

    def count(self, sent: Sentence) -> None:
        n = len(sent.tokens)
        self.sentences += 1
        self.tokens += n
        if n > self.longest[0]:
            self.longest = (n, sent.line)
        if n > LONG_SENTENCE:
            self.warn("long", sent.line, str(n))

    def messages(self) -> list[str]:
        out = []
        for kind, (n, line, detail) in self.warnings.items():
            if kind == "long":
                out.append(f"{self.name}: {n:,} sentence{'s' * (n > 1)} of more than "
                           f"{LONG_SENTENCE:,} tokens (the first, {int(detail):,} tokens, at line "
                           f"{line}): is a blank line missing between sentences?")
            elif kind == "empty":
                out.append(f"{self.name}: {n:,} empty sentence{'s' * (n > 1)} skipped (the "
                           f"first at line {line})")
        n = self.skipped.get("empty node", 0)
        if n:
            out.append(f"{self.name}: {n:,} empty node{'s' * (n > 1)} (CoNLL-U IDs like 8.1) "
                       "skipped: they are not words of the sentence")
        return out


def _error(name: str, line: int, what: str, fmt: str = "conll", hint: str | None = None):
    return CorpusError(f"{name}, line {line}: {what}", hint=hint or _HINTS[fmt])


def _lines(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """(number, line) with line ends and a leading byte-order mark removed."""
    for n, line in enumerate(lines, 1):
        line = line.rstrip("\r\n")
        if n == 1 and line.startswith("\ufeff"):
            line = line[1:]
        yield n, line


def _blank(line: str) -> bool:
    return not line.strip(" \t")


def _tag_problem(tag: str) -> str | None:
    if not tag:
        return "an empty tag"
    if any(c.isspace() for c in tag):
        return f"a tag that contains a space, {tag!r} (tags are single words)"
    return None


# -------------------------------------------------------------------------- CoNLL columns
def _column_index(column: int | None, ncols: int) -> int:
    col = -1 if column is None else int(column)
    idx = col - 1 if col > 0 else ncols + col
    if col == 0 or not 1 <= idx < ncols:
        raise UsageError(f"--column {col} is not a tag column of a file with {ncols} columns",
                         hint=f"give 2..{ncols} (1 is the token), or -1 for the last")
    return idx


def parse_conll(lines: Iterable[str], *, column: int | None = None, name: str = "<input>",
                report: ReadReport | None = None, require_tags: bool = True
                ) -> Iterator[Sentence]:
    """Sentences of a CoNLL column file (the module docstring says how it is read), each as soon
    as its blank line (or the end) arrives. `require_tags=False` accepts a file of one column
    (tokens only: tags None)."""
    report = report if report is not None else ReadReport(name, "conll")
    sep, ncols, tag_idx, first_line = None, 0, 0, 0
    toks: list[str] = []
    tags: list[str] = []
    blanks = 0
    for n, line in _lines(lines):
        if _blank(line):
            blanks += 1  # since the last token (or -DOCSTART-) line
            if toks:
                sent = Sentence(toks, tags if ncols > 1 else None, first_line)
                report.count(sent)
                yield sent
                toks, tags = [], []
            elif ncols and blanks > 1:
                report.warn("empty", n)
            continue
        blanks = 0
        if line.split(None, 1)[:1] == ["-DOCSTART-"]:  # CoNLL-2003's document marks
            report.skip("docstart")
            continue
        if sep is None:
            sep = "\t" if "\t" in line else " "
            report.separator = "tab" if sep == "\t" else "spaces"
        fields = line.split("\t") if sep == "\t" else _SPACES.split(line.strip(" "))
        if not ncols:
            ncols = len(fields)
            if ncols == 1 and require_tags:
                raise _error(name, n, f"the token {fields[0]!r} has no tag: the file has one "
                             "column")
            if ncols > 1:
                tag_idx = _column_index(column, ncols)
        if len(fields) != ncols:
            if len(fields) == 1:
                raise _error(name, n, f"the token {fields[0]!r} has no tag (the lines above "
                             f"have {ncols} columns)")
            raise _error(name, n, f"{len(fields)} columns where the lines above have {ncols} "
                         f"({'TAB' if sep == chr(9) else 'space'}-separated)")
        if not fields[0].strip():
            raise _error(name, n, "an empty token")
        if ncols > 1:
            tag = fields[tag_idx].strip(" ")
            problem = _tag_problem(tag)
            if problem:
                raise _error(name, n, f"the token {fields[0]!r} has {problem}")
            tags.append(tag)
        if not toks:
            first_line = n
        toks.append(fields[0])
    if toks:
        sent = Sentence(toks, tags if ncols > 1 else None, first_line)
        report.count(sent)
        yield sent


# -------------------------------------------------------------------------- CoNLL-U
def parse_conllu(lines: Iterable[str], *, field: str | None = None, name: str = "<input>",
                 report: ReadReport | None = None) -> Iterator[Sentence]:
    """Sentences of a CoNLL-U file: the syntactic words and their UPOS (or XPOS) tags."""
    field = field or "upos"
    if field not in CONLLU_FIELDS:
        raise UsageError(f"--field {field!r}: CoNLL-U tags are upos or xpos",
                         hint="give --field upos or --field xpos")
    col, other = CONLLU_FIELDS[field], next(f for f in CONLLU_FIELDS if f != field)
    report = report if report is not None else ReadReport(name, "conllu")
    toks: list[str] = []
    tags: list[str] = []
    first_line, started = 0, False
    for n, line in _lines(lines):
        if _blank(line):
            if toks:
                sent = Sentence(toks, tags, first_line)
                report.count(sent)
                yield sent
                toks, tags = [], []
            elif started:
                report.warn("empty", n)
            started = False
            continue
        started = True
        if line.startswith("#"):
            report.skip("comment")
            continue
        fields = line.split("\t")
        if len(fields) != 10:
            raise _error(name, n, f"{len(fields)} TAB-separated columns where CoNLL-U has 10",
                         "conllu")
        wid = fields[0]
        if _RANGE_ID.fullmatch(wid):
            report.skip("multiword")
            continue
        if _EMPTY_ID.fullmatch(wid):
            report.skip("empty node")
            continue
        if not _WORD_ID.fullmatch(wid):
            raise _error(name, n, f"the ID {wid!r} is not a word index (1, 2, ...), a range "
                         "(3-4) or an empty node (8.1)", "conllu")
        if int(wid) != len(toks) + 1:
            raise _error(name, n, f"word {wid} follows word {len(toks)}: a blank line missing "
                         "before a new sentence?", "conllu")
        form, tag = fields[1], fields[col].strip(" ")
        if not form:
            raise _error(name, n, "an empty FORM", "conllu")
        if tag == "_":
            raise _error(name, n, f"the word {form!r} has no {field.upper()} ('_')", "conllu",
                         hint=f"tag another field: --field {other}")
        problem = _tag_problem(tag)
        if problem:
            raise _error(name, n, f"the word {form!r} has {problem}", "conllu")
        if not toks:
            first_line = n
        toks.append(form)
        tags.append(tag)
    if toks:
        sent = Sentence(toks, tags, first_line)
        report.count(sent)
        yield sent


# -------------------------------------------------------------------------- raw text
def parse_raw(lines: Iterable[str], *, tokenizer: str = "space",
              report: ReadReport | None = None) -> Iterator[Sentence]:
    """One sentence a line, tokens by `vocab.tokenize`; an empty line is an empty sentence."""
    for n, line in _lines(lines):
        sent = Sentence(tokenize(line, tokenizer), None, n)
        if report is not None:
            report.count(sent)
        yield sent


# -------------------------------------------------------------------------- files
def read_tagged(path: str, *, fmt: str | None = None, column: int | None = None,
                field: str | None = None, encoding: str = "utf-8", errors: str = "strict",
                stdin=None, strict: bool = True) -> tuple[list[Sentence], ReadReport]:
    """Every tagged sentence of `path` ('-': standard input) and the report. fmt "conll" or
    "conllu", or None: sniffed (`looks_like`). `column` applies to column files only, `field` to
    CoNLL-U only (UsageError otherwise; with strict=False the one that does not apply is
    ignored: a model's own training settings). CorpusError when there is no tagged sentence."""
    text, info = read_text(path, encoding, errors, stdin=stdin)
    name = info["name"]
    fmt = fmt or looks_like(text[:SNIFF_CHARS]) or _tabbed(text[:SNIFF_CHARS])
    if fmt is None:
        raise CorpusError(f"{name} is neither a CoNLL column file nor CoNLL-U",
                          hint=_HINTS["conll"] + "; or CoNLL-U")
    if not strict:
        column, field = (None, field) if fmt == "conllu" else (column, None)
    if fmt == "conllu" and column is not None:
        raise UsageError(f"--column applies to CoNLL column files; {name} is CoNLL-U",
                         hint="pick its tags with --field upos|xpos")
    if fmt == "conll" and field is not None:
        raise UsageError(f"--field applies to CoNLL-U files; {name} is a CoNLL column file",
                         hint="pick its tag column with --column N")
    report = ReadReport(name, fmt, info=dict(info))
    lines = text.split("\n")
    if lines[-1] == "":  # the end of the last line, not a blank line
        lines.pop()
    if fmt == "conllu":
        sents = list(parse_conllu(lines, field=field, name=name, report=report))
    else:
        sents = list(parse_conll(lines, column=column, name=name, report=report))
    if not sents:
        raise CorpusError(f"{name} holds no tagged sentence", hint=_HINTS[fmt])
    return sents, report


def looks_like(head: str) -> str | None:
    """"conllu", "conll" or None for the first characters of a file (a last line without its
    line end is ignored as possibly cut).

    CoNLL-U: every line blank, a comment, or 10 TAB-separated columns with a CoNLL-U ID first.
    CoNLL columns: every token line has the same number (>= 2) of columns (TAB-separated when
    the first has a TAB, else by spaces) and a last column without spaces, and either a blank
    line separates sentences or the last column repeats (at most half as many distinct values
    as lines: tags repeat; the words of a two-column word list do not)."""
    lines = head.lstrip("\ufeff").replace("\r\n", "\n").split("\n")
    if len(lines) > 1 and not head.endswith("\n"):
        lines.pop()
    rows = [ln for ln in lines if not _blank(ln)]
    if not rows:
        return None
    words = [r for r in rows if not r.startswith("#")]
    if words and all(len(f := r.split("\t")) == 10 and (
            _WORD_ID.fullmatch(f[0]) or _RANGE_ID.fullmatch(f[0]) or _EMPTY_ID.fullmatch(f[0]))
            for r in words):
        return "conllu"
    sep = "\t" if "\t" in rows[0] else None
    split = [r.split("\t") if sep else _SPACES.split(r.strip(" ")) for r in rows]
    n = len(split[0])
    if len(rows) < 2 or n < 2 or any(len(f) != n for f in split):
        return None
    last = [f[-1].strip(" ") for f in split]
    if any(not t or any(c.isspace() for c in t) for t in last):
        return None
    if _blank_inside(lines) or len(set(last)) * 2 <= len(rows):
        return "conll"
    return None


def _tabbed(head: str) -> str | None:
    """"conll" when the first line with text holds a TAB: a column file too short or too
    broken for `looks_like`, read as one so that the parser names the bad line."""
    first = next((ln for ln in head.lstrip("\ufeff").split("\n") if not _blank(ln)), "")
    return "conll" if "\t" in first and not first.startswith("#") else None


def _blank_inside(lines: list[str]) -> bool:
    """A blank line with token lines before and after it."""
    seen, gap = False, False
    for ln in lines:
        if _blank(ln):
            gap = seen
        elif gap:
            return True
        else:
            seen = True
    return False
