"""Tag sets: the chunk scheme, which transitions it allows, and entity spans.

What lives here: `split_tag`, `detect_scheme` (BIO, IOB1, BIOES or none), `allowed` and
`transition_mask` (the additive masks of the CRF and of constrained Viterbi: 0 allowed,
FORBIDDEN not), `spans` (conlleval's chunks of any tag sequence, valid or not), `encode` and
`repair` (spans back to a valid sequence of a scheme), `span_records` (the `--spans` output) and
`TagSet` (the tags of a model, their ids and masks). What does not: scoring (`metrics`), I/O.

Chunk tags are PREFIX-TYPE (`B-PER`, `I-creative-work`: the type is everything after the first
hyphen) or a bare prefix (`B`: type ""), with prefixes B, I, E, S; `O` is outside. Schemes:

- BIO (IOB2): a chunk starts with B-X and continues with I-X; I-X only after B-X or I-X.
- IOB1 (CoNLL-2003's original files): I-X everywhere; B-X only to start a chunk right after one
  of the same type X, so B-X only after I-X or B-X.
- BIOES (IOBES): B-X I-X ... E-X, or S-X alone; after B-X or I-X only I-X or E-X; a sentence
  neither starts with I-/E- nor ends with B-/I-.
- none: any other tag set (parts of speech); every transition is allowed, there are no spans.

Spans follow conlleval (and seqeval's default mode, which extends it to E- and S-): an invalid
sequence still has chunks, e.g. I-PER after O starts a PER chunk and B-LOC I-PER is two chunks.
A tag that is neither O nor a chunk tag counts as O there.
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

import numpy as np

FORBIDDEN = -1e30  # a forbidden transition's score: exp() of it is 0, sums of it stay finite
SCHEMES = ("BIO", "IOB1", "BIOES", "none")
_CHUNK = re.compile(r"([BIES])(?:-(.+))?")
_PREFIX_ORDER = {"B": 0, "I": 1, "E": 2, "S": 3}


def split_tag(tag: str) -> tuple[str, str]:
    """(prefix, type): ("B", "PER") for B-PER, ("B", "") for B, ("O", "") for O, and
    ("", tag) for a tag that is not a chunk tag."""
    if tag == "O":
        return "O", ""
    m = _CHUNK.fullmatch(tag)
    return (m.group(1), m.group(2) or "") if m else ("", tag)


def join_tag(prefix: str, typ: str) -> str:
    return f"{prefix}-{typ}" if typ else prefix


def detect_scheme(tags: Iterable[str], sentences: Iterable[Sequence[str]] | None = None) -> str:
    """The scheme of a tag set: BIOES if any E-/S- tag, IOB1 if there are I- tags but no B- tag,
    or (given the sentences) more chunks start with I- than with B-; BIO for B-/I- sets; "none"
    when any tag is neither O nor a chunk tag, or there are no chunk tags."""
    prefixes = set()
    for tag in set(tags):
        prefix, _ = split_tag(tag)
        if not prefix:
            return "none"
        prefixes.add(prefix)
    prefixes.discard("O")
    if not prefixes:
        return "none"
    if prefixes & {"E", "S"}:
        return "BIOES"
    if "B" not in prefixes:
        return "IOB1"
    if sentences is not None:
        by_prefix = {"B": 0, "I": 0}
        for seq in sentences:
            for _, start, _ in spans(seq):
                by_prefix[split_tag(seq[start])[0]] += 1
        if by_prefix["I"] > by_prefix["B"]:
            return "IOB1"
    return "BIO"


def allowed(prev: str | None, tag: str | None, scheme: str) -> bool:
    """May `tag` follow `prev` under `scheme`? prev None: the first tag; tag None: the end."""
    pp, pt = split_tag(prev) if prev is not None else ("O", "")
    tp, tt = split_tag(tag) if tag is not None else ("O", "")
    pp = pp if pp else "O"
    tp = tp if tp else "O"
    inside = pp in ("B", "I")  # prev is a chunk's B- or I- (never so at the start)
    if scheme == "BIO":
        return tp != "I" or (inside and pt == tt)
    if scheme == "IOB1":
        return tp != "B" or (inside and pt == tt)
    if scheme == "BIOES":
        if tag is None:
            return not inside
        if tp in ("I", "E"):
            return inside and pt == tt
        return not inside
    return True


def transition_mask(tags: Sequence[str], scheme: str
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(trans (K, K) [from, to], start (K,), end (K,)) float64: 0 where allowed, FORBIDDEN where
    not; added to the CRF's scores, or alone as constrained Viterbi's transitions."""
    K = len(tags)
    trans = np.zeros((K, K))  # (K, K)
    start, end = np.zeros(K), np.zeros(K)  # (K,)
    for j, tag in enumerate(tags):
        start[j] = 0.0 if allowed(None, tag, scheme) else FORBIDDEN
        end[j] = 0.0 if allowed(tag, None, scheme) else FORBIDDEN
        for i, prev in enumerate(tags):
            trans[i, j] = 0.0 if allowed(prev, tag, scheme) else FORBIDDEN
    return trans, start, end


def is_valid(tags: Sequence[str], scheme: str) -> bool:
    prev = None
    for tag in tags:
        if not allowed(prev, tag, scheme):
            return False
        prev = tag
    return prev is None or allowed(prev, None, scheme)


def _ends(pp: str, tp: str, pt: str, tt: str) -> bool:
    """A chunk ended between the previous and this token (conlleval's endOfChunk + E/S)."""
    return (pp in ("E", "S") or (pp in ("B", "I") and tp in ("B", "S", "O"))
            or (pp != "O" and pt != tt))


def _starts(pp: str, tp: str, pt: str, tt: str) -> bool:
    """A chunk starts at this token (conlleval's startOfChunk + E/S)."""
    return (tp in ("B", "S") or (pp in ("E", "S", "O") and tp in ("E", "I"))
            or (tp != "O" and pt != tt))


def spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """[(type, start, end)] of the chunks of one sentence (end exclusive), in order."""
    out = []
    pp, pt, begin = "O", "", 0
    for i, tag in enumerate([*tags, "O"]):
        tp, tt = split_tag(tag)
        if not tp:
            tp, tt = "O", ""
        if _ends(pp, tp, pt, tt):
            out.append((pt, begin, i))
        if _starts(pp, tp, pt, tt):
            begin = i
        pp, pt = tp, tt
    return out


def encode(chunks: Iterable[tuple[str, int, int]], n: int, scheme: str) -> list[str]:
    """A valid tag sequence of length n under `scheme` whose spans are `chunks` (non-overlapping,
    in order)."""
    tags = ["O"] * n
    prev_end, prev_type = -1, None
    for typ, a, b in chunks:
        if scheme == "BIOES":
            if b - a == 1:
                tags[a] = join_tag("S", typ)
            else:
                tags[a:b] = ([join_tag("B", typ)] + [join_tag("I", typ)] * (b - a - 2)
                             + [join_tag("E", typ)])
        elif scheme == "IOB1":
            tags[a:b] = [join_tag("I", typ)] * (b - a)
            if prev_end == a and prev_type == typ:
                tags[a] = join_tag("B", typ)
        else:
            tags[a:b] = [join_tag("B", typ)] + [join_tag("I", typ)] * (b - a - 1)
        prev_end, prev_type = b, typ
    return tags


def repair(tags: Sequence[str], scheme: str) -> list[str]:
    """The valid sequence with the same conlleval spans (tags unchanged under "none"): how a
    gold sequence with I-PER after O trains a CRF whose mask forbids that transition."""
    if scheme == "none":
        return list(tags)
    return encode(spans(tags), len(tags), scheme)


def span_records(tokens: Sequence[str], tags: Sequence[str],
                 probs: Sequence[float] | None = None) -> list[dict]:
    """The `--spans` objects of one sentence: {"start", "end" (exclusive token indices), "type",
    "text" (its tokens joined by spaces), "confidence" (the mean probability of its tokens'
    tags; present when probs are given)}."""
    out = []
    for typ, a, b in spans(tags):
        rec = {"start": a, "end": b, "type": typ, "text": " ".join(tokens[a:b])}
        if probs is not None:
            rec["confidence"] = float(sum(probs[a:b]) / (b - a))
        out.append(rec)
    return out


def _order(tag: str) -> tuple:
    prefix, typ = split_tag(tag)
    if prefix == "O":
        return (0, "", 0)
    return (1, typ, _PREFIX_ORDER.get(prefix, 9)) if prefix else (2, typ, 0)


class TagSet:
    """The tags of a model in id order, their scheme, ids and transition masks."""

    def __init__(self, tags: Sequence[str], scheme: str | None = None):
        self.tags = list(tags)
        if len(set(self.tags)) != len(self.tags):
            raise ValueError("a tag set lists each tag once")
        self.scheme = scheme or detect_scheme(self.tags)
        if self.scheme not in SCHEMES:
            raise ValueError(f"unknown tag scheme {self.scheme!r}")
        self.index = {t: i for i, t in enumerate(self.tags)}

    @classmethod
    def from_sentences(cls, tag_seqs: Sequence[Sequence[str]]) -> TagSet:
        """The tags seen, O first, then by type and B, I, E, S (other sets: alphabetical);
        the scheme detected from the tags and the sentences."""
        seen = {t for seq in tag_seqs for t in seq}
        return cls(sorted(seen, key=_order), detect_scheme(seen, tag_seqs))

    def __len__(self) -> int:
        return len(self.tags)

    def ids(self, tags: Sequence[str], unknown: int = -1) -> np.ndarray:
        """(len(tags),) int32 ids; `unknown` for a tag not in the set."""
        return np.array([self.index.get(t, unknown) for t in tags], dtype=np.int32)

    def mask(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return transition_mask(self.tags, self.scheme)
