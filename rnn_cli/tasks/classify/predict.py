"""A trained classifier, loaded: label probabilities, streamed predictions and test metrics.
What `rnn-cli predict` and `rnn-cli test` run on a classification model. Never prints.

    clf = Classifier.load("sst.npz")
    for r in clf.predict(open("reviews.txt"), k=2):      # one result per input line, in order
        r.lineno, r.labels                               # [(label, probability), ...]
    clf.test("test.txt")                                 # accuracy, macro_f1, per_label, ...
    clf.probs(["a fine film", "dull"])                   # (N, K) in input order

Input lines to classify may carry a gold label: a leading `__label__X` part is dropped, and a
`X<TAB>` part when X is one of the model's labels, so a test file can be predicted as it is.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

import rnn_cli.tasks.classify.reader as reader
from rnn_cli.batching import eval_batches
from rnn_cli.errors import UsageError
from rnn_cli.store import resolve_model_path
from rnn_cli.taskfile import TaskModel, load_task
from rnn_cli.tasks.classify.model import (EVAL_TOKENS, FORMAT, ClassifierNet, ClassifyConfig,
                                          Encoded, encode_block, word_ids)
from rnn_cli.tasks.classify.run import encode

READ_AHEAD = 8  # batches of lines read, classified and yielded together


@dataclass(frozen=True)
class Prediction:
    """The result for one input line: its number (from `first_line`), the labels kept (most
    probable first, with their probabilities; empty for a blank line, or when none reaches the
    threshold), how many of its tokens the model did not know, and whether --max-len cut it."""

    lineno: int
    labels: list[tuple[str, float]]
    unknown: int = 0
    cut: bool = False
    blank: bool = False


@dataclass
class Block:
    """The results of a block of lines (`Classifier.predict_block`), as lists: line i is blank
    when rows[i] < 0, else its results are top[rows[i]] (label indices, most probable first),
    probs[rows[i]] (their probabilities), unknown[rows[i]] and cut[rows[i]]."""

    rows: list[int]
    top: list[list[int]]
    probs: list[list[float]]
    unknown: list[int]
    cut: list[bool]

    def kept(self, j: int, labels: list[str], threshold: float) -> list[tuple[str, float]]:
        """[(label, probability)] of result j, most probable first, down to `threshold`."""
        return [(labels[c], p) for c, p in zip(self.top[j], self.probs[j]) if p >= threshold]


class Classifier:
    """A loaded classification model (`Classifier.load`). Not thread-safe: one per thread."""

    def __init__(self, model: TaskModel, parallel: bool = True):
        self.model = model
        self.cfg = ClassifyConfig.from_dict(model.config)
        self.vocab = model.vocabs["text"]
        self.labels: list[str] = list(model.labels["label"])
        self.net = ClassifierNet(self.cfg, len(self.vocab), self.labels, model.params,
                                 parallel=parallel).fold_inputs()
        self._known = set(self.labels)
        self._ids = word_ids(self.vocab) if self.vocab.level == "word" else None

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, *, threads: int | None = None,
             parallel: bool = True) -> "Classifier":
        """Read and validate a classifier's model file (None: the stored classifier,
        $RNN_CLI_HOME/classify.npz); a file of another kind is the one-line ModelFileError
        naming the command for it. threads: CPU threads of the compiled kernels (process-wide;
        None: all cores)."""
        from rnn_cli.kernels import _jit

        if threads:
            _jit.set_threads(threads)
        where = resolve_model_path(os.fspath(path) if path is not None else None, None,
                                   "classify")
        clf = cls(load_task(where, FORMAT), parallel)
        clf.path = where
        return clf

    def __repr__(self) -> str:
        c = self.cfg
        return (f"rnn_cli.Classifier({getattr(self, 'path', None)!r}: {c.level} "
                f"{'bidirectional ' if c.bidirectional else ''}{c.cell}, {c.layers} x "
                f"{c.hidden}, pool {c.pool}, {len(self.labels)} labels)")

    def _encoded(self, texts: list[str]) -> tuple[Encoded, np.ndarray, np.ndarray]:
        """(the texts encoded and cut to max_len, unknown tokens and whether cut, per text)."""
        flat, lengths, unknown = encode_block(self.vocab, texts, self._ids)
        offsets = np.zeros(len(texts) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        cut = np.zeros(len(texts), bool)
        if self.cfg.max_len:  # the lanes read the first max_len ids of a longer text
            cut = lengths > self.cfg.max_len
            lengths = np.minimum(lengths, self.cfg.max_len)
        return Encoded([], lengths, np.full(len(texts), -1, np.int32), [""] * len(texts),
                       int(unknown.sum()), flat, offsets), unknown, cut

    def _probs(self, data: Encoded, batch_size: int) -> np.ndarray:
        out = np.zeros((data.lengths.shape[0], len(self.labels)))
        for idx in eval_batches(data.lengths, batch_size, EVAL_TOKENS):
            out[idx] = self.net.probs(data, idx)
        return out

    def probs(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """(N, K) float64 label probabilities of texts (no gold labels in them), input order."""
        if not texts:
            return np.zeros((0, len(self.labels)))
        return self._probs(self._encoded(list(texts))[0], batch_size)

    def predict(self, lines: Iterable[str], k: int = 1, threshold: float = 0.0,
                batch_size: int = 256, first_line: int = 1) -> Iterator[Prediction]:
        """One Prediction per input line, in input order, the `k` most probable labels whose
        probability is at least `threshold`. Lines are read and classified READ_AHEAD batches
        at a time (bounded memory on an endless stream); batch_size 1 answers each line as soon
        as it is read. Blank lines give a blank result, keeping the alignment."""
        if k < 1 or not 0.0 <= threshold <= 1.0 or batch_size < 1:
            raise UsageError(f"k must be >= 1, threshold in [0, 1], batch size >= 1 (got {k}, "
                             f"{threshold}, {batch_size})")
        it = iter(lines)
        lineno = first_line
        block_size = batch_size if batch_size == 1 else batch_size * READ_AHEAD
        labels = self.labels
        while block := list(itertools.islice(it, block_size)):
            r = self.predict_block(block, k, batch_size, lineno == first_line)
            for i, j in enumerate(r.rows):
                if j < 0:
                    yield Prediction(lineno + i, [], blank=True)
                    continue
                yield Prediction(lineno + i, r.kept(j, labels, threshold), r.unknown[j],
                                 r.cut[j])
            lineno += len(block)

    def predict_block(self, block: list[str], k: int = 1, batch_size: int = 256,
                      first: bool = False) -> Block:
        """The `k` most probable labels of every line of a block (each line with or without
        its newline; a leading gold label ignored; first: the block starts the input, a BOM is
        dropped), classified in batches of batch_size lines sorted by length."""
        if first and block:
            block = [block[0].removeprefix("\ufeff"), *block[1:]]
        known = self._known
        texts = [reader.strip_gold(line.rstrip("\n").rstrip("\r"), known) for line in block]
        full = [i for i, t in enumerate(texts) if t]
        rows = [-1] * len(block)
        if not full:
            return Block(rows, [], [], [], [])
        for j, i in enumerate(full):
            rows[i] = j
        data, unknown, cut = self._encoded(texts if len(full) == len(texts) else
                                           [texts[i] for i in full])
        P = self._probs(data, batch_size)
        top = np.argsort(-P, axis=1, kind="stable")[:, :k]  # most probable first
        probs = np.take_along_axis(P, top, axis=1).tolist()
        return Block(rows, top.tolist(), probs, unknown.tolist(), cut.tolist())

    def test(self, source: str | Iterable[str], bad_lines: str = "fail", encoding="utf-8",
             errors="strict") -> dict:
        """Metrics of a gold-labelled file (path, '-' or an iterable of lines): n, accuracy,
        macro_f1, per_label, confusion, unseen (gold labels the model never saw: counted, as
        errors), loss, plus unknown_tokens, cut (examples --max-len cut) and the read report's
        warnings."""
        if isinstance(source, str):
            examples, report = reader.read_file(source, bad_lines, encoding, errors)
        else:
            examples, report = reader.read_lines(source, "<lines>", bad_lines)
        data, cut = encode(examples, self.vocab, self.labels, self.cfg.max_len)
        metrics = self.net.evaluate(data)
        metrics.update(unknown_tokens=data.unknown_tokens, cut=cut.examples,
                       warnings=report.warnings())
        return metrics
