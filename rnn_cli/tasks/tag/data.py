"""The tagger's data as the network reads it: vocabularies built from the training sentences,
sentences encoded as flat id arrays, and batches cut from them. Never prints.

Two vocabularies (`vocab.Vocab`): words ("word" level, tokens as the reader gave them, lower-cased
with `lower`; words seen fewer than `min_count` times are left out, so <UNK> is trained on rare
words and stands for unseen ones) and characters ("char" level, the case kept; characters seen
once are left out for the same reason). A token holding a space (TAB-separated files allow one)
is never a vocabulary word: its characters still describe it.

    TagData      every sentence's word ids, type ids and tag ids in flat arrays with offsets;
                 "types" are the distinct token strings of the data set, each with its
                 character ids (the character encoder runs once per distinct word of a batch)
    Batch        one batch, time-major: x (T, B) word ids, slot (T, B) each token's row among
                 the batch's distinct words, cx (Tc, U) their character ids, clens (U,), y (T, B)
                 tag ids, lens (B,); -1 marks padding (and, in y, a tag the model never saw)

The distinct words of a batch are sorted longest first (the encoder's BLAS recurrences then skip
lanes that have ended).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from rnn_cli.tasks.tag.reader import Sentence
from rnn_cli.tasks.tag.tagset import TagSet, is_valid, repair
from rnn_cli.vocab import EOS, UNK, Vocab

_SPECIAL = {"<unk>", "<eos>", UNK, EOS}  # word-level symbols of their own (vocab.py)
CHAR_MIN_COUNT = 2  # characters seen once are <UNK> (which then gets trained)
CHAR_GROUPS = (2, 4, 6, 9, 14)  # the character encoder's runs: words of at most 2, 3-4, ... chars


def word_key(token: str, lower: bool) -> str:
    return token.lower() if lower else token


def build_word_vocab(sentences: list[Sentence], lower: bool, min_count: int = 1,
                     vocab_size: int | None = None) -> Vocab:
    """The words of the training sentences seen at least `min_count` times (the `vocab_size`
    most frequent, ties alphabetical), plus <UNK> and <EOS> (vocab.py's word-level rules)."""
    counts: Counter[str] = Counter()
    for s in sentences:
        counts.update(word_key(t, lower) for t in s.tokens)
    ranked = sorted((wc for wc in counts.items() if wc[1] >= min_count and wc[0] not in _SPECIAL
                     and not any(c.isspace() for c in wc[0])), key=lambda wc: (-wc[1], wc[0]))
    if vocab_size:
        ranked = ranked[:vocab_size]
    return Vocab("word", sorted([w for w, _ in ranked] + [UNK, EOS]), lower=lower,
                 tokenizer="space")


def build_char_vocab(sentences: list[Sentence]) -> Vocab:
    """The characters of the training tokens seen at least CHAR_MIN_COUNT times (all of them
    when that would leave fewer than one), in code-point order, then <UNK>."""
    counts: Counter[str] = Counter()
    for s in sentences:
        for t in s.tokens:
            counts.update(t)
    kept = sorted(c for c, n in counts.items() if n >= CHAR_MIN_COUNT) or sorted(counts)
    return Vocab("char", kept + [UNK])


def char_groups(clens: np.ndarray) -> list[tuple[int, int]]:
    """[(start, stop)] of the runs of `clens` (sorted longest first) whose lengths fall in the
    same CHAR_GROUPS range; the longest words first."""
    bounds = [0] + [int(np.count_nonzero(clens > t)) for t in reversed(CHAR_GROUPS)] + \
        [clens.shape[0]]
    return [(a, z) for a, z in zip(bounds[:-1], bounds[1:]) if z > a]


@dataclass
class Batch:
    x: np.ndarray  # (T, B) int32 word ids, -1 past each length
    slot: np.ndarray  # (T, B) int32 row of the token's word in cx's lanes, -1 past each length
    cx: np.ndarray  # (Tc, U) int32 character ids of the batch's distinct words, -1 padding
    clens: np.ndarray  # (U,) int32 their lengths (>= 1), longest first
    y: np.ndarray  # (T, B) int32 tag ids, -1 past each length or for an unseen tag
    lens: np.ndarray  # (B,) int32 sentence lengths (>= 1)
    uw: np.ndarray | None = None  # (U,) int32 the word id of each distinct word
    names: list[str] | None = None  # (U,) the distinct words themselves


@dataclass
class TagData:
    """Sentences encoded for the network (see the module docstring)."""

    sentences: list[Sentence]
    offsets: np.ndarray  # (N+1,) int64: sentence i is tokens offsets[i]:offsets[i+1]
    words: np.ndarray  # (n,) int32 word ids
    types: np.ndarray  # (n,) int32 type ids (distinct token strings of this data set)
    tags: np.ndarray  # (n,) int32 tag ids, -1: no tag or a tag the model does not know
    type_chars: np.ndarray  # (c,) int32 character ids of the types, concatenated
    type_offsets: np.ndarray  # (n_types+1,) int64
    unknown_words: int = 0  # tokens that are <UNK> in the word vocabulary
    unseen_tags: dict | None = None  # {tag: count} of gold tags outside the tag set
    type_names: list[str] | None = None  # (n_types,) the token string of each type
    type_words: np.ndarray | None = None  # (n_types,) int32 its word id

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def batch(self, idx: np.ndarray) -> Batch:
        """The sentences `idx` (none empty) as a Batch."""
        off = self.offsets
        lens = (off[idx + 1] - off[idx]).astype(np.int32)
        T = int(lens.max())
        steps = np.arange(T)[:, None]
        valid = steps < lens[None, :]  # (T, B)
        pos = np.where(valid, off[idx][None, :] + steps, 0)
        x = np.where(valid, self.words[pos], -1).astype(np.int32)
        y = np.where(valid, self.tags[pos], -1).astype(np.int32)
        u, inv = np.unique(self.types[pos][valid], return_inverse=True)
        tlens = (self.type_offsets[u + 1] - self.type_offsets[u]).astype(np.int32)
        order = np.argsort(-tlens, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.shape[0])
        u, clens = u[order], tlens[order]
        slot = np.full((T, lens.shape[0]), -1, np.int32)
        slot[valid] = rank[inv.ravel()]
        Tc = int(clens.max())
        csteps = np.arange(Tc)[:, None]
        cvalid = csteps < clens[None, :]
        cpos = np.where(cvalid, self.type_offsets[u][None, :] + csteps, 0)
        cx = np.where(cvalid, self.type_chars[cpos], -1).astype(np.int32)
        names = [self.type_names[t] for t in u.tolist()] if self.type_names else None
        uw = self.type_words[u] if self.type_words is not None else None
        return Batch(x, slot, cx, clens, y, lens, uw, names)


def encode(sentences: list[Sentence], words: Vocab, chars: Vocab, tagset: TagSet,
           tag_seqs: list[list[str]] | None = None) -> TagData:
    """TagData of `sentences` with the model's vocabularies and tag set. tag_seqs: the tags to
    use instead of the sentences' own (repaired gold); a sentence without tags gets -1s."""
    n = sum(len(s.tokens) for s in sentences)
    offsets = np.zeros(len(sentences) + 1, np.int64)
    offsets[1:] = np.cumsum([len(s.tokens) for s in sentences])
    wids = np.empty(n, np.int32)
    tids = np.empty(n, np.int32)
    tags = np.full(n, -1, np.int32)
    type_index: dict[str, int] = {}
    lookup, unk, lower = words.index, words.unk_id, words.lower
    unseen: Counter[str] = Counter()
    k = 0
    for i, s in enumerate(sentences):
        L = len(s.tokens)
        wids[k:k + L] = [lookup.get(word_key(t, lower), unk) for t in s.tokens]
        tids[k:k + L] = [type_index.setdefault(t, len(type_index)) for t in s.tokens]
        seq = tag_seqs[i] if tag_seqs is not None else s.tags
        if seq is not None:
            tags[k:k + L] = tagset.ids(seq)
            unseen.update(t for t in seq if t not in tagset.index)
        k += L
    types = list(type_index)
    type_offsets = np.zeros(len(types) + 1, np.int64)
    type_offsets[1:] = np.cumsum([len(t) for t in types])
    type_chars = chars.encode("".join(types))[0] if types else np.zeros(0, np.int32)
    type_words = np.array([lookup.get(word_key(t, lower), unk) for t in types], np.int32)
    return TagData(list(sentences), offsets, wids, tids, tags, type_chars, type_offsets,
                   int(np.count_nonzero(wids == unk)), dict(unseen), types, type_words)


def loss_tags(sentences: list[Sentence], tagset: TagSet) -> list[list[str]] | None:
    """The gold tags a loss reads: each sequence the scheme forbids replaced by the valid one
    with the same entities (`tagset.repair`, as training does; a CRF would give a forbidden
    transition a loss of ~1e30), the others as they are; None when nothing changes."""
    if tagset.scheme == "none":
        return None
    out, changed = [], False
    for s in sentences:
        if s.tags is not None and not is_valid(s.tags, tagset.scheme):
            out.append(repair(s.tags, tagset.scheme))
            changed = True
        else:
            out.append(s.tags)
    return out if changed else None
