"""A trained translator, loaded: translating text (greedy or beam search, n-best, scores,
attention) and measuring it on gold pairs. The Python API `rnn_cli.Translator`; `rnn-cli
translate` and `rnn-cli test` are thin layers over it (the same numbers). Never prints.

    from rnn_cli import Translator

    tr = Translator.load("dates.npz")
    tr.translate_one("3rd of March 1999").text             # '1999-03-03'
    for answers in tr.translate(open("dates.txt"), beam=5, n_best=2):
        best = answers[0]                                  # one list per input line, in order
        best.text, best.score, best.attention
    tr.test("corpora/dates/test.tsv")["exact"]             # BLEU, chrF (sacrebleu), exact, ppl

A blank input line is answered by an empty translation (score 0, no model call), so outputs stay
aligned with inputs. A source longer than the model's `max_len` tokens is cut there (its <EOS>
kept; `cut_sources` counts them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from rnn_cli.errors import UsageError
from rnn_cli.store import resolve_model_path
from rnn_cli.taskfile import load_task
from rnn_cli.tasks.translate import reader
from rnn_cli.tasks.translate.decode import Hypothesis
from rnn_cli.tasks.translate.evaluate import evaluate
from rnn_cli.tasks.translate.model import FORMAT, TranslateConfig, TranslatorNet
from rnn_cli.tasks.translate.run import encode
from rnn_cli.tasks.translate.search import DECODE_BATCH, decode_all, to_text

READ_AHEAD = 8  # decoding batches of lines read and translated together (sorted by source
# length across the whole block, so a batch's sources, and its outputs, end at about one time)


@dataclass
class Translation:
    """One output for one source line."""

    text: str
    score: float  # log P / lp(n): what n-best lists are sorted by (log P without a penalty)
    logprob: float  # log P of the output tokens and its <EOS>
    finished: bool  # ended by <EOS> (False: cut at the length limit)
    tokens: list[str]  # the output's tokens (characters at char level), without <EOS>
    source_tokens: list[str]  # the source's tokens as the model read them, with <EOS>
    attention: np.ndarray  # (len(tokens) + finished, len(source_tokens)) weights per output step


def _symbols(vocab, ids) -> list[str]:
    return [vocab.symbols[i] for i in np.asarray(ids).tolist()]


class Translator:
    """A translation model file, loaded and checked (`load`)."""

    def __init__(self, net: TranslatorNet, path: str = "", model=None):
        self.net, self.path, self.model = net, path, model
        self.cut_sources = 0  # sources cut to max_len so far
        self.unknown_lines = 0  # sources with a token (character) outside the vocabulary

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, *,
             threads: int | None = None) -> "Translator":
        """Read and validate a translation model file (None: the stored one,
        $RNN_CLI_HOME/translate.npz); a file of another kind is the one-line ModelFileError
        naming the command for it. threads: CPU threads of the compiled kernels (process-wide;
        None: all cores)."""
        from rnn_cli.kernels import _jit

        if threads:
            _jit.set_threads(threads)
        where = resolve_model_path(os.fspath(path) if path is not None else None, None,
                                   "translate")
        model = load_task(where, FORMAT)
        cfg = TranslateConfig.from_dict(model.config)
        net = TranslatorNet(cfg, model.vocabs["src"], model.vocabs["tgt"], model.params)
        return cls(net, where, model)

    def __repr__(self) -> str:
        c = self.net.cfg
        return (f"rnn_cli.Translator({self.path!r}: {c.src_level} -> {c.tgt_level}, "
                f"{'bidirectional ' if c.bidirectional else ''}{c.cell} {c.layers} x "
                f"{c.hidden}, decoder {c.dec_size}, {c.attention} attention, "
                f"V {len(self.net.src_vocab)} -> {len(self.net.tgt_vocab)})")

    @property
    def config(self) -> TranslateConfig:
        return self.net.cfg

    # ------------------------------------------------------------------ translating
    def _check(self, beam: int, n_best: int, length_penalty: float, max_len: int) -> None:
        if beam < 1 or n_best < 1:
            raise UsageError("--beam and --n-best must be at least 1")
        if n_best > beam:
            raise UsageError(f"--n-best {n_best} needs a beam at least as wide",
                             hint=f"pass --beam {n_best} or more")
        if not (0.0 <= length_penalty <= 10.0):
            raise UsageError(f"--length-penalty must be in [0, 10] (got {length_penalty})")
        if max_len < 0:
            raise UsageError(f"--max-len must be 0 (automatic) or positive (got {max_len})")

    def translate_batch(self, lines: list[str], *, beam: int = 1, n_best: int = 1,
                        length_penalty: float = 0.0, max_len: int = 0,
                        batch: int = DECODE_BATCH) -> list[list[Translation]]:
        """The n_best translations of each line (a blank line: one empty translation), decoded
        `batch` sources at a time, sorted by length across all of `lines`."""
        self._check(beam, n_best, length_penalty, max_len)
        if batch < 1:
            raise UsageError(f"--batch-size must be a positive integer (got {batch})")
        net = self.net
        out: list[list[Translation]] = [[] for _ in lines]
        todo, src = [], []
        for i, line in enumerate(lines):
            if not line.strip():
                out[i] = [Translation("", 0.0, 0.0, True, [], [], np.zeros((0, 0)))]
                continue
            ids, unknown, cut = reader.encode_source(net.src_vocab, line, net.cfg.max_len)
            self.cut_sources += cut
            self.unknown_lines += unknown > 0
            todo.append(i)
            src.append(ids)
        if src:
            hyps = decode_all(net, src, beam=beam, n_best=n_best, alpha=length_penalty,
                              max_len=max_len, batch=batch)
            for i, ids, hs in zip(todo, src, hyps):
                out[i] = [self._translation(h, ids) for h in hs]
        return out

    def _translation(self, h: Hypothesis, src_ids) -> Translation:
        tv = self.net.tgt_vocab
        return Translation(to_text(tv, h.tokens), float(h.score), float(h.logprob), h.finished,
                           _symbols(tv, h.tokens), _symbols(self.net.src_vocab, src_ids),
                           h.attention)

    def translate(self, lines: Iterable[str], *, beam: int = 1, n_best: int = 1,
                  length_penalty: float = 0.0, max_len: int = 0,
                  read_ahead: int = READ_AHEAD * DECODE_BATCH) -> Iterator[list[Translation]]:
        """Translations of each line of `lines` as they come, in order: up to `read_ahead`
        lines (1,024) are read and translated together, in batches sorted by length (1: each
        line answered before the next is read, for interactive input)."""
        self._check(beam, n_best, length_penalty, max_len)
        chunk: list[str] = []
        for line in lines:
            chunk.append(line.rstrip("\r\n"))
            if len(chunk) >= max(read_ahead, 1):
                yield from self.translate_batch(chunk, beam=beam, n_best=n_best,
                                                length_penalty=length_penalty, max_len=max_len)
                chunk = []
        if chunk:
            yield from self.translate_batch(chunk, beam=beam, n_best=n_best,
                                            length_penalty=length_penalty, max_len=max_len)

    def translate_one(self, text: str, **kw) -> Translation:
        """The best translation of one sentence."""
        return self.translate_batch([text], **kw)[0][0]

    # ------------------------------------------------------------------ measuring
    def test(self, source: str, *, beam: int = 1, length_penalty: float = 0.0,
             bad_lines: str = "fail", encoding: str = "utf-8", errors: str = "strict",
             stdin=None, keep_outputs: bool = False) -> dict:
        """Metrics of the model on the gold pairs of `source` (a source<TAB>target file, '-'
        for standard input): BLEU and chrF with their sacrebleu signatures (sacrebleu needed:
        RnnCliError with the install hint otherwise), exact match, loss and perplexity
        (teacher forced), n pairs, and the counted problems ("notices")."""
        self._check(beam, 1, length_penalty, 0)
        pairs = reader.read_pairs(source, encoding, errors, stdin=stdin, bad_lines=bad_lines)
        data, notices = encode(pairs, self.net.src_vocab, self.net.tgt_vocab,
                               self.net.cfg.max_len, "test", drop=False)
        found = evaluate(self.net, data, beam=beam, alpha=length_penalty, with_bleu=True,
                         keep_outputs=keep_outputs)
        found["notices"] = pairs.report.messages() + notices
        return found
