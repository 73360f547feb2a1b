"""The tagger's metrics: token accuracy, and for chunk tag sets (BIO, IOB1, BIOES) entity
precision, recall and F1, overall and per type, as conlleval defines them.

conlleval (the CoNLL-2000 shared task's script, the standard of NER papers): a predicted chunk is
correct when a gold chunk has the same type, the same first and the same last token; precision =
correct / predicted chunks, recall = correct / gold chunks, F1 = 2PR / (P + R) (0 when a count is
0), overall = over all types pooled (micro). Chunks are read the conlleval way from any sequence,
valid or not (`tagset.spans`: I-PER after O starts a PER chunk), and a sentence boundary ends
every chunk. seqeval's default mode computes the same (the tests use it as the oracle).

Also counted and reported: gold tags the model never saw (`known`; they can never be predicted,
so they count as errors), tags that are neither O nor chunk tags in a chunk tag set (read as O),
and sentences whose gold or predicted tags break the scheme's rules (scored as they are).
"""

from __future__ import annotations

from typing import Iterable, Sequence

from rnn_cli.tasks.tag.tagset import is_valid, spans, split_tag


def prf(correct: int, predicted: int, gold: int) -> dict:
    """{"precision", "recall", "f1", "correct", "predicted", "gold"}; fractions in [0, 1]."""
    p = correct / predicted if predicted else 0.0
    r = correct / gold if gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "correct": correct, "predicted": predicted,
            "gold": gold}


class TagScorer:
    """Accumulates sentence after sentence (`add`), then `summary()`.

    scheme: the model's tag scheme ("none": token accuracy only); known: the model's tags (gold
    tags outside it are counted as unseen), or None."""

    def __init__(self, scheme: str = "none", known: Iterable[str] | None = None):
        self.scheme = scheme
        self.known = set(known) if known is not None else None
        self.sentences = self.tokens = self.correct_tokens = 0
        self.by_type: dict[str, list[int]] = {}  # type: [correct, predicted, gold]
        self.unseen: dict[str, int] = {}
        self.non_chunk: dict[str, int] = {}
        self.invalid = {"gold": 0, "predicted": 0}

    def add(self, gold: Sequence[str], pred: Sequence[str]) -> None:
        if len(gold) != len(pred):
            raise ValueError(f"{len(gold)} gold tags but {len(pred)} predicted")
        self.sentences += 1
        self.tokens += len(gold)
        self.correct_tokens += sum(g == p for g, p in zip(gold, pred))
        if self.known is not None:
            for g in gold:
                if g not in self.known:
                    self.unseen[g] = self.unseen.get(g, 0) + 1
        if self.scheme == "none":
            return
        for t in (*gold, *pred):
            if t != "O" and not split_tag(t)[0]:
                self.non_chunk[t] = self.non_chunk.get(t, 0) + 1
        for name, seq in (("gold", gold), ("predicted", pred)):
            self.invalid[name] += not is_valid(seq, self.scheme)
        g_spans, p_spans = set(spans(gold)), set(spans(pred))
        for col, found in ((2, g_spans), (1, p_spans), (0, g_spans & p_spans)):
            for typ, _, _ in found:
                self.by_type.setdefault(typ, [0, 0, 0])[col] += 1

    def summary(self) -> dict:
        """{"sentences", "tokens", "accuracy", "scheme", "unseen_tags"} and for chunk schemes
        "entities" (prf overall), "per_type" ({type: prf}, by type name), "non_chunk_tags",
        "invalid_sentences" ({"gold": n, "predicted": n})."""
        out = {"sentences": self.sentences, "tokens": self.tokens,
               "correct_tokens": self.correct_tokens,
               "accuracy": self.correct_tokens / self.tokens if self.tokens else 0.0,
               "scheme": self.scheme, "unseen_tags": dict(sorted(self.unseen.items()))}
        if self.scheme != "none":
            totals = [sum(v[i] for v in self.by_type.values()) for i in range(3)]
            out["entities"] = prf(*totals)
            out["per_type"] = {t: prf(*v) for t, v in sorted(self.by_type.items())}
            out["non_chunk_tags"] = dict(sorted(self.non_chunk.items()))
            out["invalid_sentences"] = dict(self.invalid)
        return out


def score(gold: Iterable[Sequence[str]], pred: Iterable[Sequence[str]], scheme: str = "none",
          known: Iterable[str] | None = None) -> dict:
    """TagScorer over pairs of sentences; its summary."""
    scorer = TagScorer(scheme, known)
    gold, pred = list(gold), list(pred)
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    for g, p in zip(gold, pred):
        scorer.add(g, p)
    return scorer.summary()
