"""Tag sets (`rnn_cli/tasks/tag/tagset.py`): scheme detection, the allowed-transition masks
against a rule-by-rule validity check over every short sequence, constrained Viterbi with those
masks never emitting an invalid sequence, spans (conlleval's reading of invalid sequences),
encode/repair keeping the spans, the `--spans` records, and TagSet."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import reference_tag as ref
from rnn_cli.kernels import crf
from rnn_cli.tasks.tag import tagset as ts

UPOS = ["ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON",
        "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X"]
BIO = ["O", "B-A", "I-A", "B-B", "I-B"]
BIOES = ["O", "B-A", "I-A", "E-A", "S-A", "S-B"]
IOB1 = ["O", "I-A", "B-A", "I-B"]
MIXED = ["O", "B-A", "I-A", "E-A", "S-A", "I-B", "B", "I", "S-B"]  # for spans of anything


def test_split_tag():
    assert ts.split_tag("B-PER") == ("B", "PER")
    assert ts.split_tag("I-creative-work") == ("I", "creative-work")
    assert ts.split_tag("O") == ("O", "")
    assert ts.split_tag("B") == ("B", "")
    for other in ("NOUN", "-LRB-", "I-", "X-PER", "b-PER"):
        assert ts.split_tag(other) == ("", other)


@pytest.mark.parametrize("tags, sentences, want", [
    (UPOS, None, "none"),
    (["O"], None, "none"),
    (["O", "B-PER", "I-PER", "B-creative-work"], None, "BIO"),
    (BIOES, None, "BIOES"),
    (["O", "S-PER"], None, "BIOES"),
    (["O", "I-PER", "I-LOC"], None, "IOB1"),
    (["O", "I-PER", "B-PER"], [["I-PER", "I-PER", "B-PER", "O", "I-PER"]], "IOB1"),
    (["O", "I-PER", "B-PER"], [["B-PER", "I-PER", "O", "I-PER", "B-PER"]], "BIO"),
    (["O", "B-PER", "NOUN"], None, "none"),
    (["B", "I", "O"], None, "BIO"),
])
def test_detect_scheme(tags, sentences, want):
    assert ts.detect_scheme(tags, sentences) == want


def rule_valid(seq, scheme):
    """The schemes' rules written out separately from `allowed`."""
    if scheme == "none":
        return True
    parts = [ts.split_tag(t) for t in seq]
    for i, (p, typ) in enumerate(parts):
        prev = parts[i - 1] if i else ("O", "")
        cont = prev[0] in ("B", "I") and prev[1] == typ
        if scheme == "BIO" and p == "I" and not cont:
            return False
        if scheme == "IOB1" and p == "B" and not cont:
            return False
        if scheme == "BIOES":
            if p in ("I", "E") and not cont:
                return False
            if p in ("O", "B", "S") and prev[0] in ("B", "I"):
                return False
    return not (scheme == "BIOES" and parts and parts[-1][0] in ("B", "I"))


@pytest.mark.parametrize("tags, scheme", [(BIO, "BIO"), (BIOES, "BIOES"), (IOB1, "IOB1"),
                                          (UPOS[:4], "none")])
def test_masks_allow_exactly_the_valid_sequences(tags, scheme):
    trans, start, end = ts.transition_mask(tags, scheme)
    assert set(np.unique(np.concatenate([trans.ravel(), start, end]))) <= {0.0, ts.FORBIDDEN}
    n_valid = 0
    for n in range(1, 4):
        for path in itertools.product(range(len(tags)), repeat=n):
            seq = [tags[i] for i in path]
            score = ref.ref_path_score(np.zeros((n, len(tags))), path, trans, start, end)
            assert (score == 0.0) == rule_valid(seq, scheme) == ts.is_valid(seq, scheme), seq
            n_valid += score == 0.0
    assert n_valid > 3


@pytest.mark.parametrize("tags, scheme", [(BIO, "BIO"), (BIOES, "BIOES"), (IOB1, "IOB1")])
def test_constrained_viterbi_with_the_masks_emits_only_valid_sequences(rng, tags, scheme):
    trans, start, end = ts.transition_mask(tags, scheme)
    K, T, B = len(tags), 4, 3
    lengths = np.array([4, 2, 1], np.int32)
    for _ in range(3):
        logits = rng.normal(0, 2, (T, B, K))
        path = np.zeros((T, B), np.int32)
        crf.viterbi_decode(path, np.zeros(B), np.zeros((T, B, K)), np.zeros((T, B, K), np.int32),
                           logits, lengths, trans, start, end)
        for b, L in enumerate(lengths):
            seq = [tags[i] for i in path[:L, b]]
            assert ts.is_valid(seq, scheme), seq
            want, _ = ref.ref_viterbi_brute(
                logits[:L, b], trans * 0, start * 0, end * 0,
                lambda p: ts.is_valid([tags[i] for i in p], scheme))
            assert path[:L, b].tolist() == want


@pytest.mark.parametrize("seq, want", [
    (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),
    (["O", "I-PER", "I-PER"], [("PER", 1, 3)]),  # conlleval: I after O starts a chunk
    (["I-PER"], [("PER", 0, 1)]),
    (["B-LOC", "I-PER"], [("LOC", 0, 1), ("PER", 1, 2)]),  # a type change splits
    (["B-PER", "B-PER"], [("PER", 0, 1), ("PER", 1, 2)]),
    (["I-PER", "B-PER", "I-PER"], [("PER", 0, 1), ("PER", 1, 3)]),  # IOB1
    (["B-creative-work", "I-creative-work"], [("creative-work", 0, 2)]),
    (["B", "I", "O", "I"], [("", 0, 2), ("", 3, 4)]),
    (["S-A", "B-A", "E-A", "S-A"], [("A", 0, 1), ("A", 1, 3), ("A", 3, 4)]),
    (["B-A", "I-A"], [("A", 0, 2)]),  # invalid BIOES at the end: still a chunk
    (["E-A", "E-A"], [("A", 0, 1), ("A", 1, 2)]),
    (["B-A", "NOUN", "I-A"], [("A", 0, 1), ("A", 2, 3)]),  # a non-chunk tag reads as O
    ([], []),
    (["O", "O"], []),
])
def test_spans(seq, want):
    assert ts.spans(seq) == want


def test_repair_makes_every_sequence_valid_and_keeps_its_spans(rng):
    for scheme in ("BIO", "IOB1", "BIOES"):
        for _ in range(300):
            seq = [MIXED[i] for i in rng.integers(0, len(MIXED), rng.integers(0, 8))]
            fixed = ts.repair(seq, scheme)
            assert ts.is_valid(fixed, scheme), (scheme, seq, fixed)
            assert ts.spans(fixed) == ts.spans(seq), (scheme, seq, fixed)
            assert ts.repair(fixed, scheme) == fixed
    assert ts.repair(["O", "I-PER", "I-PER"], "BIO") == ["O", "B-PER", "I-PER"]
    assert ts.repair(["B-PER", "B-PER", "O"], "IOB1") == ["I-PER", "B-PER", "O"]
    assert ts.repair(["B-A", "I-A", "S-A", "B-A"], "BIOES") == ["B-A", "E-A", "S-A", "S-A"]
    assert ts.repair(["NOUN", "VERB"], "none") == ["NOUN", "VERB"]


def test_span_records():
    tokens = "Harry Potter and Hermione Granger invented a spell".split()
    tags = ["B-PER", "I-PER", "O", "B-PER", "I-PER", "O", "O", "O"]
    probs = [0.9, 0.7, 1.0, 0.6, 0.5, 1.0, 1.0, 1.0]
    recs = ts.span_records(tokens, tags, probs)
    assert recs == [
        {"start": 0, "end": 2, "type": "PER", "text": "Harry Potter", "confidence": 0.8},
        {"start": 3, "end": 5, "type": "PER", "text": "Hermione Granger", "confidence": 0.55}]
    assert "confidence" not in ts.span_records(tokens, tags)[0]


def test_tagset_order_ids_and_masks():
    sents = [["O", "I-PER", "B-PER"], ["B-LOC", "O"], ["B-PER", "I-PER"]]
    t = ts.TagSet.from_sentences(sents)
    assert t.tags == ["O", "B-LOC", "B-PER", "I-PER"] and t.scheme == "BIO" and len(t) == 4
    assert t.ids(["B-PER", "B-MISC"]).tolist() == [2, -1] and t.ids([]).dtype == np.int32
    trans, start, end = t.mask()
    assert trans.shape == (4, 4) and start[3] == ts.FORBIDDEN and trans[0, 3] == ts.FORBIDDEN
    assert trans[2, 3] == 0.0 and not end.any()
    assert ts.TagSet.from_sentences([["VERB", "ADJ"], ["NOUN"]]).tags == ["ADJ", "NOUN", "VERB"]
    with pytest.raises(ValueError):
        ts.TagSet(["O", "O"])
    with pytest.raises(ValueError):
        ts.TagSet(["O"], scheme="IOB3")
