"""How good a translator is on a set of pairs: the teacher-forced loss and perplexity, and the
greedy translations' BLEU, chrF (sacrebleu, when installed) and exact match. What training
validates with (`model.TranslatorNet.evaluate`) and what `test` reports (`translator.py`).
Never prints.

    loss   mean negative log-likelihood per target token, <EOS> included (nats), teacher forced,
           no dropout and no label smoothing; ppl = exp(loss)
    bleu   corpus BLEU of the translations against the target texts (sacrebleu's defaults:
           13a tokenisation, cased), with its signature in "bleu_signature"; chrf likewise
    exact  fraction of translations equal to their target text (the metric of short outputs)
"""

from __future__ import annotations

import math

import numpy as np

from rnn_cli.batching import eval_batches
from rnn_cli.tasks.translate import metrics
from rnn_cli.tasks.translate.search import decode_all, to_text

EVAL_BATCH = 128


def have_sacrebleu() -> bool:
    try:
        metrics._sacrebleu()
    except Exception:
        return False
    return True


def teacher_forced(net, data) -> tuple[float, int]:
    """(total negative log-likelihood, target tokens) of every pair, no dropout."""
    total, n, eps = 0.0, 0, net.dec.eps
    net.dec.eps = 0.0  # plain NLL (the smoothed loss is the training objective only)
    try:
        for idx in eval_batches(data.lengths, EVAL_BATCH):
            net.forward(data, idx, None)
            total += net.dec.nll
            n += net.dec.n_tokens
    finally:
        net.dec.eps = eps
    return total, n


def evaluate(net, data, *, beam: int = 1, alpha: float = 0.0, with_bleu: bool | None = None,
             keep_outputs: bool = False) -> dict:
    """The module docstring's metrics of `data` (a model.Encoded with its `refs`). with_bleu
    None: BLEU and chrF when sacrebleu is installed; True: they are required (an error with the
    install hint otherwise). keep_outputs: the translations themselves under "outputs"."""
    total, n = teacher_forced(net, data)
    loss = total / n if n else math.nan
    hyps = decode_all(net, data.src, beam=beam, alpha=alpha)
    texts = [to_text(net.tgt_vocab, h[0].tokens) for h in hyps]
    out = {"loss": loss, "ppl": metrics.perplexity(total, n), "exact": metrics.exact_match(
        texts, data.refs), "n": len(texts), "cut": int(sum(not h[0].finished for h in hyps))}
    if with_bleu or (with_bleu is None and have_sacrebleu()):
        out.update(metrics.bleu_chrf(texts, data.refs))
    if keep_outputs:
        out["outputs"] = texts
    return out


def mean_words(lines: list[str]) -> float:
    return float(np.mean([len(t.split()) for t in lines])) if lines else 0.0
