"""The public Python API of rnn-cli: load a model file once, then score, predict and sample.

    import rnn_cli

    lm = rnn_cli.Model.load("words.npz")            # validated like every model file
    rows = list(lm.score_lines(["the cat sat on the mat", "mat the on sat cat the"]))
    rows[0].logprob, rows[0].tokens, rows[0].perplexity       # the columns of `rnn-cli score`
    lm.score_total(open("ptb.test.txt")).perplexity           # `rnn-cli score --total`
    lm.predict("the cat sat on the", k=3).candidates          # `rnn-cli predict`
    lm.sample(length=200, temperature=0.8, seed=1).text()     # `rnn-cli sample`

The numbers are those of the commands, which call this module (`cli_query.py`, `cli_sample.py`
and `dask_score.py` keep only flags, printing and exit codes): `score_lines` gives the rows of
`rnn-cli score`, `score_total` its `--total` summary, `predict` and `sample` those of the commands
of the same name. Nothing here prints; errors are the project's exceptions (`RnnCliError` and its
subclasses in `rnn_cli.errors`, each with a `.message` and a `.hint`); notices (e.g. a device
fallback) go to the `warn` callable given to `load`, by default `warnings.warn` with
`RnnCliWarning`. Only numpy is imported here; the compiled kernels load on first use.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rnn_cli import checkpoint
from rnn_cli.errors import CorpusError, RnnCliError, RnnCliWarning, UsageError

if TYPE_CHECKING:  # score.py imports numba: loaded on first use, not with this module
    from rnn_cli.tasks.lm.score import LineScore

__all__ = ["Model", "Prediction", "Candidate", "Summary", "Sampling"]

Warn = Callable[[str], None]


def _default_warn(msg: str) -> None:
    warnings.warn(msg, RnnCliWarning, stacklevel=3)


@dataclass(frozen=True)
class Candidate:
    """One possible next token and its probability."""

    token: str
    prob: float

    @property
    def logprob(self) -> float:
        """ln prob (-inf for a probability of 0)."""
        return math.log(self.prob) if self.prob > 0 else -math.inf


@dataclass(frozen=True)
class Prediction:
    """The most probable next tokens after a context, most probable first."""

    context: str
    context_tokens: int  # tokens the context was read as
    oov: int  # of them, tokens not in the vocabulary (read as <UNK>)
    candidates: list[Candidate]


@dataclass(frozen=True)
class Summary:
    """The whole input as one stream, the state carried across lines (`rnn-cli score --total`):
    at char level, on the validation text, this is the validation loss of training."""

    lines: int
    tokens: int
    oov: int
    logprob: float  # ln P of every token (nats)
    nats_per_token: float
    perplexity: float  # exp(nats_per_token); inf when it overflows
    bits_per_char: float | None  # char level only

    @property
    def log10prob(self) -> float:
        return self.logprob / math.log(10.0)


class Model:
    """A loaded model file: load once (`Model.load`), then ask it questions.

    A Model holds its parameters and forward buffers; it is not safe to use from several threads
    at once (give each thread its own Model).
    """

    def __init__(self, file: checkpoint.Model, device: str = "cpu", path: str | None = None,
                 requested: str | None = None, warn: Warn | None = None):
        """Wrap an already validated `checkpoint.Model` (use `Model.load` to read a file); it
        stays available as `.file` (config, vocabulary, parameters, training state)."""
        self.file, self.device, self.path = file, device, path
        self.requested = requested or device  # the device asked for ("auto" may fall back)
        self._warn = warn or _default_warn
        self._scorer = None

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(cls, path: str | os.PathLike | None = None, *, level: str | None = None,
             device: str = "cpu", threads: int | None = None, warn: Warn | None = None) -> Model:
        """Read and validate a model file.

        path: the `.npz` written by `rnn-cli train` (None: the stored model of `level`).
        level: "char" or "word"; when given, the model must be of that level.
        device: "cpu", "cuda" or "auto" (the GPU if there is one, else the CPU with a notice).
        threads: CPU threads of the compiled kernels (process-wide; None: all cores).
        Raises ModelFileError for a missing, damaged or foreign file, RnnCliError for an
        unusable device.
        """
        from rnn_cli.cuda.backend import for_model, resolve

        warn = warn or _default_warn
        resolved = resolve(device, warn)  # no numba.cuda import for "cpu"
        if threads:
            _set_threads(threads)
        where = checkpoint.resolve_model_path(os.fspath(path) if path is not None else None,
                                              level)
        file = checkpoint.load(where, level)
        return cls(file, for_model(resolved, device, file.cfg, warn), where, device, warn)

    @classmethod
    def from_bytes(cls, data: bytes, *, name: str = "<model bytes>", level: str | None = None,
                   threads: int | None = None) -> Model:
        """A model from the bytes of a model file (same checks as `load`; CPU)."""
        if threads:
            _set_threads(threads)
        return cls(checkpoint.load_bytes(data, name, level), "cpu", name)

    # ---------------------------------------------------------------- description
    @property
    def level(self) -> str:
        """"char" or "word"."""
        return self.file.vocab.level

    @property
    def vocab_size(self) -> int:
        return self.file.cfg.vocab_size

    @property
    def symbols(self) -> list[str]:
        """The vocabulary, by token id."""
        return list(self.file.vocab.symbols)

    def __repr__(self) -> str:
        cfg = self.file.cfg
        return (f"rnn_cli.Model({self.path!r}: {self.level} {cfg.cell}, {cfg.layers} x "
                f"{cfg.hidden}, V {cfg.vocab_size}, {self.device})")

    # ---------------------------------------------------------------- scoring
    def scorer(self):
        """The validation forward path (`score.Scorer`), built once; on the GPU for "cuda"."""
        if self._scorer is None:
            from rnn_cli.tasks.lm import score

            if self.device != "cuda":
                self._scorer = score.Scorer(self.file)
            else:
                from rnn_cli.cuda.network import CudaNetwork, DeviceParams
                from rnn_cli.tasks.lm.train import EVAL_WINDOW

                dp = DeviceParams.from_host(self.file.params)
                self._scorer = score.Scorer(self.file, net=CudaNetwork(dp, 1, EVAL_WINDOW),
                                            make_net=lambda b, t: CudaNetwork(dp, b, t))
        return self._scorer

    def score_lines(self, lines: Iterable[str], *, batch_size: int = 256,
                    first_line: int = 1) -> Iterator[LineScore]:
        """Score each line as one sentence from a<0> = 0, with its end-of-line symbol:
        one `LineScore` per non-blank line (blank lines are skipped), in input order.

        lines: strings, one line each (a trailing newline is ignored), e.g. an open text file;
        numbered from `first_line` in error messages. batch_size: lines scored at once in
        parallel streams (1: each line as soon as it is read; the numbers agree to float32
        rounding). A generator: lines are read as results are taken, memory stays bounded.
        Raises CorpusError at a line whose every token is unknown to the model (after yielding
        the lines before it) and when there is no non-blank line at all.
        """
        from rnn_cli.tasks.lm import score

        if batch_size < 1:
            raise UsageError(f"batch_size must be >= 1, got {batch_size}")
        numbered = enumerate(lines, first_line)
        return score.score_lines(self.scorer(), numbered, batch=batch_size)

    def score_total(self, text: str | Iterable[str]) -> Summary:
        """The whole input as one stream, the state carried across lines (`score --total`).

        text: a string, or lines with their newlines (e.g. an open text file), read once.
        Raises CorpusError for an input without tokens or with only unknown ones.
        """
        from rnn_cli.tasks.lm import score

        lines = text.splitlines(keepends=True) if isinstance(text, str) else text
        total = score.TotalScore(self.scorer())
        vocab = self.file.vocab
        for ids, unknown, n_lines in score.total_blocks(vocab, enumerate(lines, 1)):
            total.add(ids, unknown, n_lines)
        s = total.finish()
        bpc = s["nats_per_token"] / math.log(2.0) if vocab.level == "char" else None
        return Summary(s["lines"], s["tokens"], s["oov"], s["logprob"], s["nats_per_token"],
                       s["perplexity"], bpc)

    # ---------------------------------------------------------------- next token
    def next_probs(self, context: str) -> tuple[np.ndarray, int, int]:
        """(P(next token | context) over the vocabulary as a (V,) float64 array, tokens of the
        context, of them unknown). The context is fed from a<0> = 0 after the start symbol.
        Raises CorpusError when every token of a non-empty context is unknown."""
        vocab = self.file.vocab
        ids, unknown = vocab.encode(context, final_eos=False) if vocab.level == "word" \
            else vocab.encode(context)
        if unknown and unknown == ids.shape[0]:
            raise CorpusError(f"every token of the context is unknown to the model: "
                              f"{context[:60]!r}",
                              hint="give a context in the language the model was trained on")
        probs = self.scorer().next_probs(ids.astype(np.int32))
        return probs, int(ids.shape[0]), int(unknown)

    def predict(self, context: str, k: int = 5) -> Prediction:
        """The k most probable next tokens after `context` (ties: lower token id first)."""
        from rnn_cli.tasks.lm import score

        if k < 1:
            raise UsageError(f"k must be >= 1, got {k}")
        probs, n, unknown = self.next_probs(context)
        syms = self.file.vocab.symbols
        best = [Candidate(syms[i], float(probs[i])) for i in score.top_k(probs, k).tolist()]
        return Prediction(context, n, unknown, best)

    # ---------------------------------------------------------------- sampling
    def sample(self, length: int | None = None, *, lines: int | None = None,
               temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
               argmax: bool = False, beam: int = 0, length_norm: float = 0.0, prime: str = "",
               allow_unk: bool = False, seed: int | None = None, prime_logprob: bool = False,
               chunk: int = 1024,
               on_beam: Callable[[float, int, bool], None] | None = None) -> Sampling:
        """Novel text, drawn token by token from a<0> = 0 (after feeding `prime`).

        length: tokens to draw (None: 500, or no limit when `lines` is given; 0: no limit);
        lines: stop after this many end-of-line symbols. temperature / top_k (0: all) / top_p
        (1: all) shape each draw; argmax takes the most probable token; beam=K searches the K
        most probable continuations instead (length_norm: compare finished lines by
        logP / tokens**alpha). `<UNK>` is never drawn
        unless allow_unk. seed: the same seed gives the same text.
        Returns a `Sampling`: iterate it for the decoded text pieces (the prime is not
        repeated). With prime_logprob, its `prime_logprob` is ln P(prime) from the start symbol.
        on_beam(logprob, tokens, finished) is called after each beam search.
        """
        from rnn_cli.tasks.lm.sample import SampleConfig, Sampler

        if length is None:
            length = 500 if lines is None else 0
        length = length or None  # 0: no end
        if lines is not None and self.file.vocab.eos_id is None:
            raise UsageError("--lines needs a model whose vocabulary has an end-of-line symbol",
                             hint="use -n/--length instead")
        if beam and length is None and lines is None:
            raise UsageError("--beam needs an end: -n 0 streams without one",
                             hint="give -n N (tokens) or --lines N")
        sc = SampleConfig(length=length, lines=lines, temperature=temperature, top_k=top_k,
                          top_p=top_p, greedy=argmax, allow_unk=allow_unk, prime=prime,
                          beam=beam, length_norm=length_norm)
        device = self.device
        if device == "cuda" and (beam or top_p < 1.0):  # the CUDA sampler only draws
            what = "--beam" if beam else "--top-p"
            if self.requested == "cuda":
                raise RnnCliError(f"--device cuda does not run {what} (the CUDA sampler only "
                                  "draws)", hint=f"use --device cpu (or auto) with {what}")
            self._warn(f"--device auto: {what} runs on the CPU")
            device = "cpu"
        if device == "cuda":
            from rnn_cli.cuda.sampling import CudaSampler

            sampler = CudaSampler(self.file)
        else:
            sampler = Sampler(self.file)
        x0, unknown = sampler.prime(prime, logprob=prime_logprob)
        if beam:
            pieces = sampler.beam(sc, x0, report=on_beam)
        else:
            pieces = sampler.generate(sc, np.random.default_rng(seed), x0, chunk=chunk)
        return Sampling(pieces, unknown, sampler.prime_logprob if prime_logprob else None,
                        sampler.prime_tokens)


class Sampling:
    """The text of one `Model.sample` call, as an iterator of decoded pieces (a generator: the
    tokens are drawn as the pieces are taken)."""

    def __init__(self, pieces: Iterator[str], prime_oov: int, prime_logprob: float | None,
                 prime_tokens: int):
        self._pieces = pieces
        self.prime_oov = prime_oov  # tokens of the prime not in the vocabulary (read as <UNK>)
        self.prime_logprob = prime_logprob  # ln P(prime), when asked for
        self.prime_tokens = prime_tokens

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        return next(self._pieces)

    def text(self) -> str:
        """Everything drawn, as one string (for a finite length or number of lines)."""
        return "".join(self)


def _set_threads(threads: int) -> None:
    from rnn_cli.kernels import _jit

    _jit.set_threads(threads)

