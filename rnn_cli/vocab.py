"""Vocabularies: symbols ↔ int32 ids at char level or word level, behind one `Vocab` interface.

What lives here: `build_vocab` / `Counts` (count a text, at once or in pieces, keep the most
frequent symbols), `Vocab.encode` / `encode_lines` (text → int32 ids + number of unknown tokens),
`Vocab.decode` (ids → text, through the streaming `detok.Detokenizer`: same result for any
chunking), the word `tokenize` rules, and `to_arrays` / `from_arrays` (plain arrays for the .npz
model file, validated on load).
What does not: reading files (`corpus.py`), batching (`tasks/lm/windows.py`), the model file itself
(`checkpoint.py`). No numba, no printing.

Levels
  char  symbols are Unicode code points (str of length 1), sorted by code point, then `<UNK>` last
        (it stands for any character outside the vocabulary and decodes to U+FFFD). "\\n" is an
        ordinary symbol; `eos_id` is its id when present, else None. `vocab_size` (default: all)
        counts characters only, so V = kept characters + 1.
  word  lines are sentences: each non-blank line gives its tokens then `<EOS>`; a blank line gives
        nothing. `<UNK>` and `<EOS>` are always present and do NOT count against `vocab_size`
        (default 10000), so V = kept words + 2. Ids follow the plain Python sort of the symbol
        strings (so "<EOS>" and "<UNK>" sit between punctuation/digits and capital letters).
        Literal `<unk>`/`<UNK>` in the text is read as `<UNK>` (not counted as unknown), and
        `<eos>`/`<EOS>` as `<EOS>`.

Arrays written by `Vocab.to_arrays` (all int32, 1-D; load with `allow_pickle=False`)
  vocab_meta        (4,)    [VOCAB_FORMAT, level (0 char, 1 word), tokenizer (0 chars, 1 words,
                            2 space), lower (0/1)]
  vocab_codepoints  (C,)    the code points of all symbols concatenated, in id order
  vocab_offsets     (V+1,)  symbol i is codepoints[offsets[i]:offsets[i+1]]
Code points rather than a numpy `<U` array, because `<U` silently drops trailing NUL characters.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable, Iterator

import numpy as np

from rnn_cli.detok import Detokenizer, token_kind
from rnn_cli.errors import CorpusError, ModelFileError, UsageError

EOS = "<EOS>"
UNK = "<UNK>"
UNK_TEXT = "\ufffd"  # what `<UNK>` decodes to at char level
LEVELS = ("char", "word")
TOKENIZERS = ("words", "space")
DEFAULT_WORD_VOCAB_SIZE = 10000
VOCAB_FORMAT = 1
ARRAY_NAMES = ("vocab_meta", "vocab_codepoints", "vocab_offsets")

_LEVEL_CODES = {"char": 0, "word": 1}
_TOKENIZER_CODES = {"chars": 0, "words": 1, "space": 2}
_ALIASES = {"<unk>": UNK, UNK: UNK, "<eos>": EOS, EOS: EOS}
_MAX_CODEPOINT = 0x10FFFF
_FILE_HINT = "the model file is damaged or was not written by rnn-cli; train the model again"

# Word tokenizer "words": special tokens whole; clitics ('s 're 'll 'd 't 've 'm); words with inner
# apostrophes/hyphens (don't, o'clock, well-known); any other non-space character alone.
_W = r"[\w\u0300-\u036f]"  # letters, digits, underscore, combining accents
_WORDS_RE = re.compile(
    r"<(?:unk|UNK|eos|EOS)>"
    r"|['’](?i:s|re|ll|d|t|ve|m)(?!\w)"
    rf"|{_W}+(?:['’-]{_W}+)*"
    r"|\S"
)


def tokenize(line: str, tokenizer: str = "words", lower: bool = False) -> list[str]:
    """Word tokens of one line (see the module docstring); specials are returned as written."""
    if lower:
        line = line.lower()
    if tokenizer == "space":
        return line.split()
    return _WORDS_RE.findall(line)


def _codepoints(text: str) -> np.ndarray:
    """(len(text),) uint32 code points; lone surrogates pass through unchanged."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


def _split_lines(lines: str | Iterable[str]) -> Iterator[str]:
    """Lines without their terminator; a str is split on "\\n" (no empty line after a final one)."""
    if isinstance(lines, str):
        parts = lines.split("\n")
        if parts and parts[-1] == "":
            parts.pop()
        yield from parts
        return
    for line in lines:
        yield line.rstrip("\r\n") if line.endswith(("\n", "\r")) else line


def _symbols_problem(level: str, symbols: tuple[str, ...], tokenizer: str) -> str | None:
    """Why these symbols cannot form a vocabulary, or None when they can."""
    if level not in LEVELS:
        return f"unknown level {level!r} (expected 'char' or 'word')"
    allowed = ("chars",) if level == "char" else TOKENIZERS
    if tokenizer not in allowed:
        return f"tokenizer {tokenizer!r} is not valid at {level} level"
    if len(symbols) < 2:
        return f"only {len(symbols)} symbol(s); a language model needs at least 2"
    if any(not isinstance(s, str) or not s for s in symbols):
        return "a symbol is empty or not a string"
    if len(set(symbols)) != len(symbols):
        return "duplicate symbols"
    if UNK not in symbols:
        return f"{UNK} is missing"
    if level == "char":
        chars = symbols[:-1]
        if symbols[-1] != UNK:
            return f"{UNK} must be the last char-level symbol"
        if any(len(c) != 1 for c in chars):
            return f"char-level symbols must be single characters (except {UNK})"
        if any(a >= b for a, b in zip(chars, chars[1:])):
            return "char-level symbols are not in code-point order"
        return None
    if EOS not in symbols:
        return f"word-level vocabulary without {EOS}"
    if any(a >= b for a, b in zip(symbols, symbols[1:])):
        return "word-level symbols are not in alphabetical order"
    if any(s in ("<unk>", "<eos>") or any(c.isspace() for c in s) for s in symbols):
        return "a word-level symbol contains whitespace or is a lower-case special token"
    return None


class Vocab:
    """A fixed vocabulary: `symbols[i]` is the symbol of id i, `index[symbol]` its id.

    Attributes: level ("char" | "word"), symbols, index, unk_id, eos_id (word: id of <EOS>;
    char: id of "\\n" or None), lower, tokenizer ("chars" | "words" | "space"). len() is V.
    """

    def __init__(self, level: str, symbols: Iterable[str], lower: bool = False,
                 tokenizer: str | None = None):
        symbols = tuple(symbols)
        tokenizer = tokenizer or ("chars" if level == "char" else "words")
        problem = _symbols_problem(level, symbols, tokenizer)
        if problem:
            raise ModelFileError(f"invalid vocabulary: {problem}", hint=_FILE_HINT)
        self.level = level
        self.symbols = symbols
        self.lower = bool(lower)
        self.tokenizer = tokenizer
        self.index = {s: i for i, s in enumerate(symbols)}
        self.unk_id = self.index[UNK]
        self.eos_id = self.index.get(EOS if level == "word" else "\n")
        if level == "char":
            cps = _codepoints("".join(symbols[:-1])).astype(np.int64)
            # One slot past the largest code point holds <UNK>, for everything beyond the table.
            self._table = np.full(int(cps.max()) + 2, self.unk_id, dtype=np.int32)
            self._table[cps] = np.arange(len(cps), dtype=np.int32)
            self._texts = symbols[:-1] + (UNK_TEXT,)
        else:
            self._lookup = dict(self.index)
            self._lookup.update({"<unk>": self.unk_id, "<eos>": self.eos_id})
            self._texts = symbols
            self._kinds = tuple(token_kind(s, EOS) for s in symbols)

    def __len__(self) -> int:
        return len(self.symbols)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocab):
            return NotImplemented
        return (self.level, self.symbols, self.lower, self.tokenizer) == (
            other.level, other.symbols, other.lower, other.tokenizer)

    # ---------------------------------------------------------------- encoding
    def encode(self, text: str, final_eos: bool = True) -> tuple[np.ndarray, int]:
        """(N,) int32 ids of `text` and how many tokens were unknown (mapped to <UNK>).

        Word level: every non-blank line ends with <EOS>; with final_eos=False a last line that
        has no trailing "\\n" gets none (use it to encode a prompt that the sampler continues).
        """
        if self.level == "char":
            return self._encode_chars(text)
        return self._encode_words(text.split("\n"), final_eos)

    def _encode_chars(self, text: str) -> tuple[np.ndarray, int]:
        ids = self._char_ids(text.lower() if self.lower else text)
        return ids, int(np.count_nonzero(ids == self.unk_id))

    def _char_ids(self, text: str) -> np.ndarray:
        """Ids of the code points of `text` (already lower-cased if the vocabulary is)."""
        return self._table[np.minimum(_codepoints(text), self._table.size - 1)]

    def _encode_words(self, lines: list[str], final_eos: bool) -> tuple[np.ndarray, int]:
        lookup, out = self._lookup, []
        last = len(lines) - 1
        for i, line in enumerate(lines):
            toks = tokenize(line, self.tokenizer, self.lower)
            if toks:
                out.extend([lookup.get(t, -1) for t in toks])
                if final_eos or i != last:
                    out.append(self.eos_id)
        ids = np.array(out, dtype=np.int32)
        unknown = ids < 0
        n_unknown = int(np.count_nonzero(unknown))
        if n_unknown:
            ids[unknown] = self.unk_id
        return ids, n_unknown

    def encode_lines(self, lines: str | Iterable[str]) -> Iterator[tuple[str, np.ndarray, int]]:
        """Yield (line, int32 ids, n_unknown) per line, streaming over any iterable of lines.

        Word level: the line's tokens then <EOS> (a blank line yields empty ids). Char level: the
        line's characters then "\\n" when "\\n" is in the vocabulary.
        """
        for line in _split_lines(lines):
            if self.level == "char":
                ids, n_unk = self._encode_chars(line + "\n" if self.eos_id is not None else line)
            else:
                ids, n_unk = self._encode_words([line], True)
            yield line, ids, n_unk

    def encode_many(self, lines: list[str]) -> list[tuple[np.ndarray, int]]:
        """[(ids, n_unknown)] of `encode_lines(lines)`, the same arrays; at char level in one pass
        over the code points of all the lines (per-line `score` encodes its batches so)."""
        if self.level != "char":
            return [(ids, n) for _, ids, n in self.encode_lines(lines)]
        eol = "\n" if self.eos_id is not None else ""
        parts = [line + eol for line in _split_lines(lines)]
        if not parts:
            return []
        if self.lower:  # per part, as encode_lines does (lower() may change a length)
            parts = [p.lower() for p in parts]
        ids = self._char_ids("".join(parts))
        ends = np.cumsum([len(p) for p in parts])
        unk = np.concatenate([[0], np.cumsum(ids == self.unk_id)])[ends]
        out, a, u = [], 0, 0
        for b, v in zip(ends.tolist(), unk.tolist()):
            out.append((ids[a:b], v - u))
            a, u = b, v
        return out

    # ---------------------------------------------------------------- decoding
    def decode(self, ids) -> str:
        """Text of a sequence of ids (char: concatenation; word: detokenized, <EOS> → "\\n")."""
        return Detokenizer(self).piece(ids)

    def detokenizer(self) -> Detokenizer:
        """A fresh streaming decoder for this vocabulary."""
        return Detokenizer(self)

    # ---------------------------------------------------------------- arrays
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain int32 arrays describing this vocabulary (names in the module docstring)."""
        lengths = np.array([len(s) for s in self.symbols], dtype=np.int64)
        offsets = np.zeros(len(self.symbols) + 1, dtype=np.int32)  # (V+1,)
        offsets[1:] = np.cumsum(lengths)
        meta = [VOCAB_FORMAT, _LEVEL_CODES[self.level], _TOKENIZER_CODES[self.tokenizer],
                int(self.lower)]
        return {
            "vocab_meta": np.array(meta, dtype=np.int32),
            "vocab_codepoints": _codepoints("".join(self.symbols)).astype(np.int32),
            "vocab_offsets": offsets,
        }

    @classmethod
    def from_arrays(cls, arrays) -> Vocab:
        """Rebuild a Vocab from `to_arrays` output (a dict or an NpzFile); ModelFileError if bad."""
        meta, cps, offsets = (_int32_vector(arrays, name) for name in ARRAY_NAMES)
        if meta.size != 4 or meta[0] != VOCAB_FORMAT:
            raise ModelFileError(
                f"vocab_meta has an unknown layout (format {meta[:1].tolist()}, "
                f"expected [{VOCAB_FORMAT}, level, tokenizer, lower])", hint=_FILE_HINT)
        levels = {v: k for k, v in _LEVEL_CODES.items()}
        tokenizers = {v: k for k, v in _TOKENIZER_CODES.items()}
        level, tokenizer = levels.get(int(meta[1])), tokenizers.get(int(meta[2]))
        if level is None or tokenizer is None or meta[3] not in (0, 1):
            raise ModelFileError(f"vocab_meta holds unknown codes {meta.tolist()}",
                                 hint=_FILE_HINT)
        if (offsets.size < 1 or offsets[0] != 0 or offsets[-1] != cps.size
                or np.any(np.diff(offsets) < 0)):
            raise ModelFileError("vocab_offsets do not cut vocab_codepoints into symbols",
                                 hint=_FILE_HINT)
        if cps.size and (cps.min() < 0 or cps.max() > _MAX_CODEPOINT):
            raise ModelFileError("vocab_codepoints holds values that are not Unicode code points",
                                 hint=_FILE_HINT)
        text = cps.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")
        bounds = offsets.tolist()
        symbols = [text[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        return cls(level, symbols, lower=bool(meta[3]), tokenizer=tokenizer)


def _int32_vector(arrays, name: str) -> np.ndarray:
    """arrays[name] checked to be a 1-D int32 array."""
    if name not in arrays:
        raise ModelFileError(f"the vocabulary array {name!r} is missing", hint=_FILE_HINT)
    arr = np.asarray(arrays[name])
    if arr.dtype != np.dtype(np.int32) or arr.ndim != 1:
        raise ModelFileError(
            f"the vocabulary array {name!r} is {arr.dtype} with {arr.ndim} dimension(s); "
            "expected a 1-D int32 array", hint=_FILE_HINT)
    return arr


# -------------------------------------------------------------------- building
def build_vocab(text: str, level: str, vocab_size: int | None = None, min_count: int = 1,
                lower: bool = False, tokenizer: str = "words") -> Vocab:
    """Count `text` and keep the `vocab_size` most frequent symbols seen at least `min_count`
    times (ties: alphabetical / code-point order). vocab_size None: all chars, or 10000 words.
    """
    counts = Counts(level, vocab_size, min_count, lower, tokenizer)
    if not text:
        raise CorpusError("the corpus is empty", hint="give a text file with some content")
    return counts.add(text).vocab()


class Counts:
    """`build_vocab` in pieces, for text read in chunks: add() pieces cut at a line end or at a
    space or tab (never inside a token), then vocab() is the vocabulary of the whole text."""

    def __init__(self, level: str, vocab_size: int | None = None, min_count: int = 1,
                 lower: bool = False, tokenizer: str = "words"):
        if level not in LEVELS:
            raise UsageError(f"unknown level {level!r}", hint="use --level char or --level word")
        if level == "word" and tokenizer not in TOKENIZERS:
            raise UsageError(f"unknown tokenizer {tokenizer!r}",
                             hint="use --tokenizer words, or space for pre-tokenized text")
        if vocab_size is None and level == "word":
            vocab_size = DEFAULT_WORD_VOCAB_SIZE
        if vocab_size is not None and (int(vocab_size) != vocab_size or vocab_size < 2):
            raise UsageError(f"--vocab-size must be an integer of at least 2, got {vocab_size!r}",
                             hint="<UNK> (and <EOS> at word level) are added on top of it")
        if int(min_count) != min_count or min_count < 1:
            raise UsageError(f"--min-count must be a positive integer, got {min_count!r}",
                             hint="--min-count 1 keeps every symbol that occurs")
        self.level, self.vocab_size, self.min_count = level, vocab_size, min_count
        self.lower, self.tokenizer = lower, tokenizer
        self.chars = np.zeros(0, np.int64)  # char level: count of each code point
        self.words: Counter[str] = Counter()  # word level

    def add(self, text: str) -> Counts:
        if self.level == "word":
            for line in text.split("\n"):
                self.words.update(tokenize(line, self.tokenizer, self.lower))
            return self
        cps = _codepoints(text.lower() if self.lower else text)
        if cps.size and int(cps.max()) >= self.chars.size:
            self.chars = np.concatenate([self.chars, np.zeros(int(cps.max()) + 1 - self.chars.size,
                                                              np.int64)])
        for i in range(0, cps.size, 1 << 22):  # O(n) counting in bounded memory (np.unique sorts)
            self.chars += np.bincount(cps[i:i + (1 << 22)], minlength=self.chars.size)
        return self

    def vocab(self) -> Vocab:
        if self.level == "char":
            return Vocab("char", _char_symbols(self.chars, self.vocab_size, self.min_count),
                         lower=self.lower)
        symbols = _word_symbols(Counter(self.words), self.vocab_size, self.min_count)
        return Vocab("word", symbols, lower=self.lower, tokenizer=self.tokenizer)


def _char_symbols(table: np.ndarray, vocab_size: int | None, min_count: int) -> tuple[str, ...]:
    """Kept characters in code-point order, then <UNK>, from the count of each code point."""
    values = np.flatnonzero(table).astype(np.uint32)
    counts = table[values]
    keep = counts >= min_count
    values, counts = values[keep], counts[keep]
    if vocab_size is not None and values.size > vocab_size:
        values = np.sort(values[np.lexsort((values, -counts))[:vocab_size]])
    if values.size < 2:
        raise CorpusError(
            f"only {values.size} distinct character(s) occur at least {min_count} time(s): "
            "a corpus with a single distinct symbol cannot train a language model",
            hint="use a longer or more varied text, or a smaller --min-count")
    return tuple(chr(c) for c in values.tolist()) + (UNK,)


def _word_symbols(counts: Counter[str], vocab_size: int, min_count: int) -> list[str]:
    """Kept words plus <UNK> and <EOS>, in alphabetical order, from the count of each token."""
    n_special = sum(counts.pop(alias, 0) for alias in _ALIASES)
    if not counts:
        what = "only <unk>/<eos> tokens" if n_special else "no words (only whitespace)"
        raise CorpusError(f"the corpus has {what}",
                          hint="word level needs text with words; try --level char")
    ranked = sorted((wc for wc in counts.items() if wc[1] >= min_count),
                    key=lambda wc: (-wc[1], wc[0]))[:vocab_size]
    if not ranked:
        raise CorpusError(
            f"no word occurs at least {min_count} times, so the vocabulary would hold only "
            f"{UNK} and {EOS}: a language model needs at least 2 distinct symbols",
            hint="lower --min-count or use a longer text")
    return sorted([w for w, _ in ranked] + [UNK, EOS])
