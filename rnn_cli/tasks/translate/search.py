"""Translating many sources with a `model.TranslatorNet`: batches by source length, the encoder,
then greedy or beam search (`decode.py`), hypotheses back in input order, ids back to text.
Never prints; the loaded `Translator` (translator.py), `evaluate.py` and the CLI call this.

Output length limit per batch (`--max-len` of translate overrides it): an output stops after
`out_limit(S)` tokens (its <EOS> counted) for the longest source of S tokens (<EOS> counted) in
the batch: 2 S + 10 when both sides have the same level, 8 S + 10 from words to characters, S + 10
from characters to words. A hypothesis cut there is marked `finished=False`.
"""

from __future__ import annotations

import numpy as np

from rnn_cli.batching import eval_batches
from rnn_cli.tasks.translate.decode import Hypothesis, Stepper, beam_search, greedy
from rnn_cli.vocab import Vocab

DECODE_BATCH = 128  # sources decoded together (one lane each, K lanes each with a beam)
DECODE_TOKENS = 8192  # source positions of a batch, at most


def out_limit(S: int, src_level: str, tgt_level: str) -> int:
    """The default output length limit for a source of S tokens (module docstring)."""
    if src_level == tgt_level:
        return 2 * S + 10
    return 8 * S + 10 if tgt_level == "char" else S + 10


def decode_all(net, src: list[np.ndarray], *, beam: int = 1, n_best: int = 1, alpha: float = 0.0,
               max_len: int = 0, batch: int = DECODE_BATCH) -> list[list[Hypothesis]]:
    """The n_best hypotheses of every source, in input order (beam 1: greedy, one each).
    max_len 0: `out_limit` of each batch's longest source."""
    lengths = np.array([s.shape[0] for s in src], np.int64)
    out: list[list[Hypothesis]] = [[] for _ in src]
    cfg = net.cfg
    for idx in eval_batches(lengths, batch, DECODE_TOKENS):
        _, h, lens, fin = net.encode(src, idx)
        stepper = Stepper(net.dec, net.params, h, lens, fin)
        limit = max_len or out_limit(int(lens.max()), cfg.src_level, cfg.tgt_level)
        if beam <= 1:
            results = [[hyp] for hyp in greedy(stepper, net.eos_id, limit)]
        else:
            results = beam_search(stepper, net.eos_id, limit, beam, n_best, alpha)
        for j, i in enumerate(idx.tolist()):
            out[i] = results[j]
    return out


def to_text(vocab: Vocab, tokens: list[int]) -> str:
    """The text of output tokens (no <EOS>): detokenized words, or the characters joined; a
    line end the model wrote inside a char-level output becomes a space (one line per output)."""
    if not tokens:
        return ""
    text = vocab.detokenizer().piece(np.asarray(tokens, np.int64))
    return text.replace("\n", " ").strip() if vocab.level == "word" else text.replace("\n", " ")
