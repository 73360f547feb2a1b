"""Asking a model questions: sentence log-probability, perplexity, the most likely next tokens.

The seed's chain rule: P(y<1>, ..., y<Ty>) = P(y<1>) P(y<2> | y<1>) ... , i.e. feed the sentence
through the network from a<0> = 0 and multiply the probabilities it gives to each next token.
Everything here goes through the validation forward path of training (`train.eval_network` +
`sequence_nll`), so there is no second implementation of the
forward pass: a file's `--total` figure is, bit for bit, the validation loss training reports on
the same text.

Per-line scoring batches lines into parallel streams: every line starts from a<0> = 0, so the
lines are independent, and lane b of a B-stream network can score line b while its neighbours
score others (`BatchScorer`). Lines are read `READ_AHEAD` batches at a time, sorted by length into
batches (little padding), scored, and written in input order: the output still streams, in
blocks, with memory bounded whatever the input length. The numbers equal one-at-a-time scoring
up to float32 rounding of the batched products (a test holds them to 1e-5 relative).

What lives here: `Scorer` (one model's forward buffers; per-sentence nll and the next-token
distribution), `BatchScorer` (B lines at once), `LineScore`, `score_lines` (streaming, one
sentence per line), `TotalScore` (one stream with the state carried, as in validation); `open_input` and
`read_lines` (a file or '-' line by line) are `rnn_cli.streams`'s, shared with other verbs.
What does not: printing, argument parsing and exit codes (`cli_query.py`, `cli.py`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from rnn_cli.checkpoint import Model
from rnn_cli.errors import CorpusError
from rnn_cli.streams import open_input, read_lines  # noqa: F401 (the names score reads by)
from rnn_cli.tasks.lm.network import Network, sequence_nll
from rnn_cli.tasks.lm.train import EVAL_WINDOW, eval_network, start_id

FLUSH_WINDOWS = 64  # --total buffers about this many windows of ids, then scores them one by one
BATCH_LINES = 256  # default parallel streams (lines) of per-line scoring; 1: one line at a time
READ_AHEAD = 8  # batches of lines read, sorted by length, scored, then written in input order
LOGIT_ROWS = 1 << 23  # elements of a batched window's (T*B, V) logits: T = min(512, this / BV)


class Scorer:
    """The validation forward path of one model, for one stream (B = 1).

    `make_net(batch, steps)` builds the network of a `BatchScorer` (default: a CPU `Network`;
    `cli_query` passes a CUDA one for --device cuda)."""

    def __init__(self, model: Model, net=None, make_net=None):
        self.model, self.vocab = model, model.vocab
        self.net = net if net is not None else eval_network(model.params)
        self.start = start_id(model.vocab)
        self.make_net = make_net or (lambda b, t: Network(model.params, b, t, parallel=True,
                                                          frozen=True))
        self._batchers: dict[int, BatchScorer] = {}

    def batcher(self, batch: int) -> BatchScorer:
        """The B-stream network of `score_lines` for `batch` lines, built on first use and kept
        (a Python API user or a Dask worker scores chunk after chunk with the same one)."""
        if batch not in self._batchers:
            self._batchers.clear()  # one size at a time: its buffers are the large part
            self._batchers[batch] = BatchScorer(self, batch)
        return self._batchers[batch]

    def sentence_nll(self, ids: np.ndarray, out: np.ndarray | None = None) -> float:
        """-ln P(ids) from a<0> = 0, the start symbol as first input; per-token nll in `out`."""
        return sequence_nll(self.net, ids, self.start, out=out)

    def next_probs(self, ids: np.ndarray) -> np.ndarray:
        """(V,) float64 P(next token | start, ids): the softmax row the scorer would use next.

        `sequence_nll` runs over ids + one placeholder target; the logits of its last position
        (left in `net.logits`, with their log-sum-exp in `net.lse`) are those after the last id.
        """
        feed = np.zeros(ids.shape[0] + 1, np.int32)  # placeholder target 0: its nll is unused
        feed[:-1] = ids
        sequence_nll(self.net, feed, self.start)
        last = (feed.shape[0] - 1) % self.net.T  # row of the last position in the last window
        if getattr(self.net, "classes", False):  # P(class) P(word | class) for every word
            from rnn_cli.kernels.class_softmax import class_log_probs

            p, net = self.model.params, self.net
            out = np.zeros(self.model.cfg.vocab_size, np.float64)
            M = int(np.diff(net.offsets).max())
            class_log_probs(out, np.asarray(net.a[-1][last + 1, 0], np.float64), p.W_ya, p.b_y,
                            p.W_yc, p.b_c, net.members, net.offsets,
                            np.zeros(net.offsets.shape[0] - 1), np.zeros(M))
            return np.exp(out)
        logits, lse = self.net.logits, self.net.lse
        if hasattr(logits, "copy_to_host"):  # a CUDA network: fetch the rows from the device
            logits, lse = logits.copy_to_host(), lse.copy_to_host()
        row = np.asarray(logits[last], np.float64)
        return np.exp(row - float(lse[last]))


def top_k(probs: np.ndarray, k: int) -> np.ndarray:
    """Ids of the k largest probabilities, most probable first (ties: lower id first)."""
    k = min(k, probs.shape[0])
    return np.argsort(-probs, kind="stable")[:k]


@dataclass
class LineScore:
    """One scored sentence (a row of `rnn-cli score`). ids (N,) int32 are its tokens with the
    end-of-line symbol; nll (N,) float64 holds -ln P of each token given the ones before."""

    lineno: int
    line: str
    ids: np.ndarray
    nll: np.ndarray
    unknown: int

    @property
    def n(self) -> int:
        return int(self.ids.shape[0])

    @property
    def tokens(self) -> int:
        """Tokens scored (with the end-of-line symbol): the `tokens` column."""
        return self.n

    @functools.cached_property
    def logprob(self) -> float:
        """ln P(line): the sum of the per-token log-probabilities (chain rule); read once the
        line is scored (then kept)."""
        return -float(self.nll.sum())

    @property
    def log10prob(self) -> float:
        return self.logprob / math.log(10.0)

    @property
    def perplexity(self) -> float:
        """exp(-logprob / tokens); inf when it overflows."""
        return _exp(-self.logprob / self.n)


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _content_tokens(vocab, ids: np.ndarray) -> int:
    """Tokens of a line not counting the end-of-line symbol encode_lines appended."""
    return ids.shape[0] - (1 if vocab.eos_id is not None else 0)


class BatchScorer:
    """B lines at once: lane b of a B-stream network scores line b from a<0> = 0.

    Windows of T steps with the state carried (a line longer than T spans windows, as in
    `sequence_nll`); a lane whose line has ended is fed padding with target -1 (not scored), and a
    batch of fewer than B lines leaves the other lanes idle. On a CPU network the lines go into
    each thread's slice of lanes longest first and `Network.lane_steps` tells the recurrence where
    each one ends, so its per-step product covers the running lines only (as torch's packed
    sequences do): padding costs no recurrent work.
    """

    def __init__(self, scorer: Scorer, batch: int):
        cfg, wc = scorer.model.cfg, scorer.model.params.word_class
        # width of a row of the output layer's buffers: V, or C + the largest class
        width = cfg.vocab_size if wc is None else cfg.classes + int(np.bincount(wc).max())
        self.B = batch
        steps = max(1, min(EVAL_WINDOW, LOGIT_ROWS // (batch * width)))
        self.net = scorer.make_net(batch, steps)
        self.start = scorer.start
        self.lanes = _lane_order(batch, getattr(self.net, "chunks", 1))

    def score(self, seqs: list[np.ndarray], outs: list[np.ndarray]) -> None:
        """outs[b][i] = -ln P(seqs[b][i] | start, seqs[b][:i]) for up to B id sequences."""
        net, B, T = self.net, self.B, self.net.T
        order = sorted(range(len(seqs)), key=lambda i: -seqs[i].shape[0])  # longest first
        placed = [(self.lanes[k], seqs[i], outs[i]) for k, i in enumerate(order)]
        lane_steps = getattr(net, "lane_steps", None)  # None: a CUDA network runs every lane
        n = placed[0][1].shape[0]
        net.reset_state()
        try:
            for pos in range(0, n, T):
                w = min(T, n - pos)
                x, y = net.x_buf[:w], net.y_buf[:w]
                x[...] = max(self.start, 0)
                y[...] = -1
                if lane_steps is not None:
                    lane_steps[...] = 0
                for b, s, _ in placed:
                    m = min(w, s.shape[0] - pos)
                    if m <= 0:
                        break  # longest first: the rest have ended too
                    x[0, b] = self.start if pos == 0 else s[pos - 1]
                    x[1:m, b] = s[pos:pos + m - 1]
                    y[:m, b] = s[pos:pos + m]
                    if lane_steps is not None:
                        lane_steps[b] = m
                net.forward(x, y)
                nll = np.asarray(net.nll)[:w * B].reshape(w, B)  # (a CUDA network copies it)
                for b, s, out in placed:
                    m = min(w, s.shape[0] - pos)
                    if m <= 0:
                        break
                    out[pos:pos + m] = nll[:m, b]
        finally:
            if lane_steps is not None:
                lane_steps[...] = T


def _lane_order(batch: int, chunks: int) -> list[int]:
    """Lanes in the order lines sorted longest first fill them: dealt round-robin over the
    threads' slices (`cell._chunk`), so each slice holds a share of long and short lines and,
    within it, longer lines come first."""
    size = -(-batch // chunks)
    return [c * size + p for p in range(size) for c in range(chunks) if c * size + p < batch]


def _encode_line(vocab, lineno: int, line: str, encoded=None) -> tuple[np.ndarray, int]:
    """(ids, unknown) of a line (`encoded`: the pair, already computed); CorpusError when every
    token is unknown."""
    ids, unknown = encoded or vocab.encode_many([line])[0]
    if unknown and unknown >= _content_tokens(vocab, ids):
        raise CorpusError(f"line {lineno}: every token is unknown to the model: "
                          f"{_clip(line)!r}",
                          hint=f"the model's {vocab.level} vocabulary has {len(vocab)} "
                               "symbols; score text in the language it was trained on")
    return ids, unknown


def score_lines(scorer: Scorer, lines: Iterable[tuple[int, str]],
                batch: int = 1) -> Iterator[LineScore]:
    """Score each non-blank line as one sentence (state reset; + <EOS> / "\\n" as in training).

    batch > 1: `batch` lines at a time in parallel streams (`BatchScorer`), results still in
    input order, yielded READ_AHEAD batches at a time (encoded together: `Vocab.encode_many`).
    Raises CorpusError for a line whose tokens are all unknown to the model (its score would only
    measure <UNK>), after yielding every line before it, and for an input without any non-blank
    line.
    """
    vocab, seen = scorer.vocab, False
    batcher = scorer.batcher(batch) if batch > 1 else None
    pending: list[tuple[int, str]] = []
    for lineno, raw in lines:
        line = raw.rstrip("\n")
        if not line.strip():  # = is_blank(raw)
            continue
        seen = True
        if batcher is None:
            ids, unknown = _encode_line(vocab, lineno, line)
            nll = np.zeros(ids.shape[0], np.float64)
            scorer.sentence_nll(ids, out=nll)
            yield LineScore(lineno, line, ids, nll, unknown)
            continue
        pending.append((lineno, line))
        if len(pending) == batch * READ_AHEAD:
            yield from _score_group(batcher, vocab, pending)
            pending = []
    yield from _score_group(batcher, vocab, pending)
    if not seen:
        raise nothing_to_score()


def nothing_to_score() -> CorpusError:
    return CorpusError("nothing to score: the input is empty or has only blank lines",
                       hint="give a file or pipe with one sentence per line")


def is_blank(raw: str) -> bool:
    """A line `score_lines` skips."""
    return not raw.rstrip("\n").strip()


def _score_group(batcher: BatchScorer | None, vocab, group: list[tuple[int, str]]
                 ) -> Iterator[LineScore]:
    """Encode and score the (lineno, line) of `group`, B lines of similar length at a time;
    yields the LineScores in input order. A line of unknown tokens only: the lines before it are
    scored and yielded, then CorpusError."""
    out, bad = [], None
    for (lineno, line), enc in zip(group, vocab.encode_many([line for _, line in group])):
        try:
            ids, unknown = _encode_line(vocab, lineno, line, enc)
        except CorpusError as e:
            bad = e
            break
        out.append(LineScore(lineno, line, ids, np.zeros(ids.shape[0], np.float64), unknown))
    order = sorted(range(len(out)), key=lambda i: out[i].n)
    for k in range(0, len(order), batcher.B if batcher else 1):
        chunk = [out[i] for i in order[k:k + batcher.B]]
        batcher.score([r.ids for r in chunk], [r.nll for r in chunk])
    yield from out
    if bad is not None:
        raise bad


def _clip(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[:n] + "…"


class TotalScore:
    """The whole input as ONE stream, state carried across lines: exactly `sequence_nll` over
    all its ids (the validation loss when the input is the validation text).

    Ids are buffered and scored window by window with the network's window length, so the windows
    and the running sum (hence every float operation) are those of a single `sequence_nll` call,
    while memory stays constant for any input length.
    """

    def __init__(self, scorer: Scorer):
        self.scorer = scorer
        self.pending: list[np.ndarray] = []
        self.n_pending = 0
        self.prev = scorer.start  # input before the next id
        self.first = True
        self.nll = 0.0
        self.tokens = 0
        self.unknown = 0
        self.lines = 0

    def add(self, ids: np.ndarray, unknown: int, lines: int = 1) -> None:
        self.lines += lines
        self.unknown += unknown
        if ids.shape[0]:
            self.pending.append(ids)
            self.n_pending += ids.shape[0]
        if self.n_pending >= FLUSH_WINDOWS * self.scorer.net.T:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        if not self.n_pending:
            return
        ids = np.concatenate(self.pending)
        T = self.scorer.net.T
        cut = ids.shape[0] if final else ids.shape[0] // T * T
        rest = ids[cut:]
        for pos in range(0, cut, T):  # one window per call: the running sum of the one-call
            window = ids[pos:pos + T]   # sequence_nll is then reproduced bit for bit
            self.nll += sequence_nll(self.scorer.net, window, self.prev, reset=self.first)
            self.first = False
            self.prev = int(window[-1])
        self.tokens += cut
        self.pending = [rest] if rest.shape[0] else []
        self.n_pending = rest.shape[0]

    def finish(self) -> dict:
        """Flush and summarise: tokens, oov, logprob (nats), nats_per_token, perplexity."""
        self._flush(final=True)
        if self.tokens == 0:
            raise CorpusError("nothing to score: the input has no tokens",
                              hint="give a file or pipe with some text")
        if self.unknown >= self.tokens:
            raise CorpusError("every token of the input is unknown to the model",
                              hint="score text in the language the model was trained on")
        mean = self.nll / self.tokens
        return {"lines": self.lines, "tokens": self.tokens, "oov": self.unknown,
                "logprob": -self.nll, "nats_per_token": mean, "perplexity": _exp(mean)}


def total_ids(vocab, raw_line: str) -> tuple[np.ndarray, int]:
    """Ids of one raw line (with its "\\n", if any) such that concatenating them over a text gives
    `vocab.encode(text)`: characters as they are at char level; tokens + <EOS> at word level."""
    if vocab.level == "char":
        return vocab.encode(raw_line)
    return vocab.encode(raw_line.rstrip("\n"))


def total_blocks(vocab, lines: Iterable[tuple[int, str]],
                 block: int = 1024) -> Iterator[tuple[np.ndarray, int, int]]:
    """(ids, unknown, number of lines) for blocks of up to `block` raw lines, encoded at once
    (fewer Python calls than `total_ids` per line; the concatenation is the same
    `vocab.encode(text)`: word level ends every non-blank line with <EOS> either way)."""
    buf: list[str] = []
    for _, raw in lines:
        buf.append(raw)
        if len(buf) == block:
            yield (*vocab.encode("".join(buf)), len(buf))
            buf = []
    if buf:
        yield (*vocab.encode("".join(buf)), len(buf))
