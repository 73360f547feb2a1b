"""The streaming detokenizer: ids -> text with word-level spacing, the same text for any chunking
of the ids (`Vocab.decode` and the sampler's output go through it)."""

from __future__ import annotations

import numpy as np

# Spacing classes of word symbols (Vocab._kinds holds one per symbol).
_WORD, _CLOSE, _OPEN, _QUOTE, _EOS = range(5)
_CLOSERS = frozenset(".,;:!?)]}'’”")
_OPENERS = frozenset(("(", "[", "{", "“", "‘", "``"))


def token_kind(sym: str, eos: str) -> int:
    """How a word symbol glues to its neighbours when detokenized (`eos`: the <EOS> symbol)."""
    if sym == eos:
        return _EOS
    if sym == '"':
        return _QUOTE
    if sym in _OPENERS:
        return _OPEN
    if all(c in _CLOSERS for c in sym):
        return _CLOSE
    if (sym[0] in "'’" and sym[1:].isalpha()) or sym.lower() in ("n't", "n’t"):
        return _CLOSE  # clitics: 's 're n't
    return _WORD


class Detokenizer:
    """Streaming decoder: `piece(ids)` returns the text of the next ids, keeping spacing state, so
    that "".join(d.piece(c) for c in chunks) == vocab.decode(concatenated chunks) for any chunking.

    Word-level spacing: one space between tokens, none before closing punctuation
    (. , ; : ! ? ) ] } ' and clitics such as 's n't), none after opening brackets, none around
    <EOS> (which becomes "\\n"); a straight double quote alternates opening / closing.
    `vocab` is a `vocab.Vocab`; its `_kinds` are `token_kind` of each symbol.
    """

    def __init__(self, vocab):
        self._vocab = vocab
        self._glue = True  # no space before the next token (start of text, line or bracket)
        self._quote_open = False

    def piece(self, ids) -> str:
        """Text for the next ids (an int, a sequence or an integer array)."""
        vocab = self._vocab
        flat = np.asarray(ids).ravel()
        if flat.size == 0:
            return ""
        if flat.dtype.kind not in "iu" or flat.min() < 0 or flat.max() >= len(vocab):
            raise ValueError(f"ids must be integers in [0, {len(vocab)}), got {flat!r}")
        texts = vocab._texts
        if vocab.level == "char":
            return "".join([texts[i] for i in flat.tolist()])
        kinds, out = vocab._kinds, []
        for i in flat.tolist():
            kind = kinds[i]
            if kind == _QUOTE:
                kind = _CLOSE if self._quote_open else _OPEN
                self._quote_open = not self._quote_open
            if kind == _EOS:
                out.append("\n")
            elif kind == _CLOSE or self._glue:
                out.append(texts[i])
            else:
                out.append(" " + texts[i])
            self._glue = kind in (_OPEN, _EOS)
        return "".join(out)
