"""The tagger's scorer (`rnn_cli/tasks/tag/metrics.py`): entity precision / recall / F1 and token
accuracy against seqeval's default (conlleval) mode as the oracle, on the shared WNUT-17 test file
with perturbed predictions and on random sequences full of invalid transitions; handmade
conlleval cases; unseen, non-chunk and invalid tags counted. seqeval is in the test extra only:
those tests skip without it."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from rnn_cli.tasks.tag import metrics as mt
from rnn_cli.tasks.tag import tagset as ts
from rnn_cli.tasks.tag.reader import read_tagged

WNUT_TEST = Path("/work/shared/corpora/ner-wnut17/test.tsv")
MIXED = ["O", "O", "B-A", "I-A", "E-A", "S-A", "B-B", "I-B", "S-B", "B", "I"]


@pytest.fixture(scope="module")
def seqeval():
    return pytest.importorskip("seqeval.metrics")


def oracle(sk, gold, pred) -> dict:
    """seqeval's default mode (no `mode`, no `scheme`): the conlleval-compatible one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zero-division warnings for empty types
        report = sk.classification_report(gold, pred, output_dict=True, zero_division=0)
        return {"precision": sk.precision_score(gold, pred, zero_division=0),
                "recall": sk.recall_score(gold, pred, zero_division=0),
                "f1": sk.f1_score(gold, pred, zero_division=0),
                "accuracy": sk.accuracy_score(gold, pred),
                "per_type": {t: v for t, v in report.items() if not t.endswith(" avg")}}


def assert_agrees(ours: dict, want: dict):
    for k in ("precision", "recall", "f1"):
        assert ours["entities"][k] == pytest.approx(want[k], abs=1e-12), k
    assert ours["accuracy"] == pytest.approx(want["accuracy"], abs=1e-12)
    for typ, w in want["per_type"].items():
        o = ours["per_type"].get(typ, mt.prf(0, 0, 0))
        assert o["gold"] == w["support"], typ
        for k, wk in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert o[k] == pytest.approx(w[wk], abs=1e-12), (typ, k)
    assert {t for t, v in ours["per_type"].items() if v["gold"]} == \
        {t for t, w in want["per_type"].items() if w["support"]}


def perturb(rng, sents, tags, rate):
    """Predictions: each token's tag replaced by a random tag of the set with probability rate
    (so I- after O and type changes inside chunks appear), and some chunks cut short."""
    out = []
    for seq in sents:
        pred = list(seq)
        for i in range(len(pred)):
            if rng.random() < rate:
                pred[i] = tags[rng.integers(len(tags))]
            elif rate and pred[i].startswith("I-") and rng.random() < 0.2:
                pred[i] = "O"
        out.append(pred)
    return out


@pytest.mark.skipif(not WNUT_TEST.exists(), reason="the shared corpora are not on this machine")
@pytest.mark.parametrize("rate", [0.0, 0.05, 0.3])
def test_wnut17_test_file_with_perturbed_predictions_agrees_with_seqeval(seqeval, rng, rate):
    sents, _ = read_tagged(str(WNUT_TEST))
    gold = [s.tags for s in sents]
    tags = sorted({t for seq in gold for t in seq})
    pred = perturb(rng, gold, tags, rate)
    ours = mt.score(gold, pred, "BIO", known=tags)
    assert_agrees(ours, oracle(seqeval, gold, pred))
    assert ours["entities"]["gold"] == 1079  # PROVENANCE.md's entity count
    assert ours["unseen_tags"] == {} and ours["non_chunk_tags"] == {}
    assert ours["invalid_sentences"]["gold"] == 0
    if rate == 0.0:
        assert ours["entities"]["f1"] == 1.0 and ours["accuracy"] == 1.0
    else:
        assert ours["invalid_sentences"]["predicted"] > 0  # invalid BIO did get scored


def test_random_sequences_agree_with_seqeval(seqeval, rng):
    from seqeval.metrics.sequence_labeling import get_entities

    gold, pred = [], []
    for _ in range(400):
        n = int(rng.integers(0, 9))
        gold.append([MIXED[i] for i in rng.integers(0, len(MIXED), n)])
        pred.append([MIXED[i] for i in rng.integers(0, len(MIXED), n)])
    for seq in gold:
        want = [(t if t != "_" else "", a, b + 1) for t, a, b in get_entities(seq)]
        assert ts.spans(seq) == want, seq
    named = [[t if len(t) > 1 else "O" for t in s] for s in gold]  # seqeval calls bare types "_"
    named_pred = [[t if len(t) > 1 else "O" for t in s] for s in pred]
    assert_agrees(mt.score(named, named_pred, "BIOES"), oracle(seqeval, named, named_pred))


def test_invalid_bio_is_scored_as_conlleval_does(seqeval):
    gold = [["O", "B-PER", "I-PER", "O", "I-LOC", "I-LOC"]]
    pred = [["O", "I-PER", "I-PER", "O", "B-LOC", "I-LOC"]]
    ours = mt.score(gold, pred, "BIO")
    # conlleval: I-PER after O starts a chunk, so both predicted chunks equal the gold ones
    assert ours["entities"] == mt.prf(2, 2, 2)
    assert ours["invalid_sentences"] == {"gold": 1, "predicted": 1}
    assert_agrees(ours, oracle(seqeval, gold, pred))
    strict = seqeval.f1_score(gold, pred, mode="strict", scheme=__import__(
        "seqeval.scheme", fromlist=["IOB2"]).IOB2)
    assert strict < 1.0  # seqeval's strict mode drops invalid chunks: not conlleval


@pytest.mark.parametrize("gold, pred, counts", [
    ([["B-PER", "I-PER", "O"]], [["O", "I-PER", "O"]], (0, 1, 1)),  # a cut chunk is wrong
    ([["B-PER", "I-PER"]], [["B-PER", "I-LOC"]], (0, 2, 1)),  # a type change splits it
    ([["B-PER"], ["I-PER"]], [["B-PER"], ["I-PER"]], (2, 2, 2)),  # sentences end chunks
    ([["O", "O"]], [["O", "O"]], (0, 0, 0)),
    ([["B-PER", "B-PER"]], [["B-PER", "I-PER"]], (0, 1, 2)),
])
def test_handmade_conlleval_cases(gold, pred, counts):
    ours = mt.score(gold, pred, "BIO")["entities"]
    assert (ours["correct"], ours["predicted"], ours["gold"]) == counts
    if not counts[1]:
        assert ours["precision"] == ours["recall"] == ours["f1"] == 0.0


def test_prf_definitions():
    assert mt.prf(3, 4, 6) == pytest.approx({"precision": 0.75, "recall": 0.5, "f1": 0.6,
                                             "correct": 3, "predicted": 4, "gold": 6})
    assert mt.prf(0, 0, 5)["f1"] == 0.0 and mt.prf(0, 3, 0)["precision"] == 0.0


def test_unseen_non_chunk_and_accuracy_only():
    gold = [["B-PER", "B-newtype", "O", "NOUN"], ["O"]]
    pred = [["B-PER", "O", "O", "O"], ["O"]]
    s = mt.score(gold, pred, "BIO", known=["O", "B-PER", "I-PER"])
    assert s["unseen_tags"] == {"B-newtype": 1, "NOUN": 1} and s["non_chunk_tags"] == {"NOUN": 1}
    assert s["accuracy"] == 3 / 5 and (s["sentences"], s["tokens"]) == (2, 5)
    assert s["per_type"]["newtype"] == mt.prf(0, 0, 1) and s["per_type"]["PER"]["f1"] == 1.0
    pos = mt.score([["NOUN", "VERB"]], [["NOUN", "NOUN"]])
    assert pos["accuracy"] == 0.5 and "entities" not in pos and pos["scheme"] == "none"
    with pytest.raises(ValueError):
        mt.score([["O"]], [["O", "O"]])
    with pytest.raises(ValueError):
        mt.score([["O"]], [])


def test_scorer_accumulates_like_one_call(rng):
    gold = [[MIXED[i] for i in rng.integers(0, 9, 5)] for _ in range(20)]
    pred = [[MIXED[i] for i in rng.integers(0, 9, 5)] for _ in range(20)]
    sc = mt.TagScorer("BIOES")
    for g, p in zip(gold, pred):
        sc.add(g, p)
    assert sc.summary() == mt.score(gold, pred, "BIOES")
    assert np.isclose(sc.summary()["accuracy"], np.mean(np.array(gold) == np.array(pred)))
