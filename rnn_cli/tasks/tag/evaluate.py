"""A tagger's network over whole data sets: every sentence decoded in batches by length (with
its loss and the probability of each chosen tag when asked), and the validation metrics the
trainer keeps the best model by. Never prints.
"""

from __future__ import annotations

import math

import numpy as np

from rnn_cli.batching import eval_batches
from rnn_cli.tasks.tag.metrics import TagScorer

EVAL_BATCH, EVAL_TOKENS = 128, 8192  # evaluation batches: sentences, padded tokens at most


def run_all(net, data, probs: bool = False, loss: bool = False):
    """Decode every sentence of `data` (a `data.TagData`) with `net` (a `model.TaggerNet`),
    batched by length; an empty sentence gives an empty result. Returns ([tag ids (L,) int32
    per sentence], [the probability of each chosen tag (L,) per sentence] or None, (the loss
    summed, the tokens it scored))."""
    lengths = data.lengths
    N = lengths.shape[0]
    paths: list = [np.zeros(0, np.int32)] * N
    chosen: list | None = [np.zeros(0)] * N if probs else None
    total, n = 0.0, 0
    full = np.flatnonzero(lengths > 0)
    for sub in eval_batches(lengths[full], EVAL_BATCH, EVAL_TOKENS):
        idx = full[sub]
        b = data.batch(idx)
        em = net.scores(b, None)
        if loss:
            s, k = net._nll(em, b)
            total, n = total + s, n + k
        path = net.decode(em, b.lens)
        P = net.tag_probs(em, b.lens) if probs else None
        for j, i in enumerate(idx.tolist()):
            L = int(b.lens[j])
            paths[i] = path[:L, j].copy()
            if P is not None:
                chosen[i] = P[np.arange(L), j, paths[i]]
    return paths, chosen, (total, n)


def evaluate(net, data) -> dict:
    """Token accuracy, and for an entity scheme entity precision / recall / F1 (conlleval) with
    the per-type table; "loss": the mean loss per scored token (unseen gold tags are not scored
    by the loss, and count as errors in the accuracy)."""
    paths, _, (total, n) = run_all(net, data, loss=True)
    tags = net.tagset.tags
    scorer = TagScorer(net.tagset.scheme, known=tags)
    for s, path in zip(data.sentences, paths):
        scorer.add(s.tags, [tags[k] for k in path])
    summary = scorer.summary()
    out = {"loss": total / n if n else math.nan, "accuracy": summary["accuracy"]}
    if "entities" in summary:
        e = summary["entities"]
        out.update(f1=e["f1"], precision=e["precision"], recall=e["recall"],
                   per_type=summary["per_type"])
    return out
