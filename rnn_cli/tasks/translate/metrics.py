"""How good translations are: BLEU and chrF by sacrebleu, exact match, teacher-forced perplexity.

BLEU and chrF come from sacrebleu (Post 2018), never from our own n-gram counting: its scores are
the ones papers report, and its signature line (`nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|
version:2.x`) says exactly how a number was computed. Hypotheses and references are detokenised
text (what `translate` prints and what the test file holds); sacrebleu tokenises both its own way.
sacrebleu is the optional `mt` extra (`pip install 'rnn-cli[mt]'`): it is imported here, inside
the functions that need it, and nowhere else; without it they raise one error that says how to
install it. Exact match and perplexity need nothing.
"""

from __future__ import annotations

import math
from typing import Sequence

from rnn_cli.errors import RnnCliError

INSTALL_HINT = "install the mt extra: pip install 'rnn-cli[mt]' (or pip install sacrebleu)"


def _sacrebleu():
    try:
        import sacrebleu
    except ImportError:
        raise RnnCliError("BLEU and chrF need sacrebleu, which is not installed",
                          hint=INSTALL_HINT) from None
    return sacrebleu


def _check(hyps: Sequence[str], refs: Sequence[str]) -> None:
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} references")


def bleu_chrf(hyps: Sequence[str], refs: Sequence[str]) -> dict:
    """Corpus BLEU and chrF of hyps against one reference each (sacrebleu's defaults):
    {"bleu": score, "bleu_signature", "bleu_detail" (precisions, brevity penalty, lengths),
    "chrf": score, "chrf_signature"}."""
    _check(hyps, refs)
    sb = _sacrebleu()
    bleu, chrf = sb.metrics.BLEU(), sb.metrics.CHRF()
    b = bleu.corpus_score(list(hyps), [list(refs)])
    c = chrf.corpus_score(list(hyps), [list(refs)])
    return {"bleu": b.score, "bleu_signature": str(bleu.get_signature()),
            "bleu_detail": {"precisions": list(b.precisions), "bp": b.bp, "sys_len": b.sys_len,
                            "ref_len": b.ref_len},
            "chrf": c.score, "chrf_signature": str(chrf.get_signature())}


def sentence_bleu(hyp: str, ref: str) -> float:
    """sacrebleu's smoothed sentence BLEU of one hypothesis (for per-line reports)."""
    return _sacrebleu().sentence_bleu(hyp, [ref]).score


def exact_match(hyps: Sequence[str], refs: Sequence[str]) -> float:
    """Fraction of hypotheses equal to their reference (surrounding whitespace ignored); the
    metric of short, exact outputs such as the dates task."""
    _check(hyps, refs)
    if not hyps:
        return 0.0
    return sum(h.strip() == r.strip() for h, r in zip(hyps, refs)) / len(hyps)


def perplexity(total_nll: float, n_tokens: int) -> float:
    """exp(mean negative log-likelihood per target token, <EOS> included), teacher forced; inf
    when it overflows, nan without tokens."""
    if n_tokens <= 0:
        return math.nan
    mean = total_nll / n_tokens
    return math.exp(mean) if mean < 700.0 else math.inf
