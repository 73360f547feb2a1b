"""Per-line scoring on a Dask cluster (`rnn-cli score --dask ADDRESS`); the optional `dask` extra.

Dask's distributed scheduler does the work a home-made pool would: worker processes, placing
tasks, moving data, noticing dead workers. This module only cuts the input into chunks and puts
the rows back in order:

- the model file's bytes are scattered once to every worker (`Client.scatter(broadcast=True)`);
  each worker validates them like any model file (`api.Model.from_bytes`, never pickle) and keeps
  the loaded model for the next chunks (`_WORKER_MODELS`, keyed by the bytes' SHA-256);
- the client reads the lines as a stream and submits chunks of CHUNK_LINES non-blank lines (a
  multiple of `score`'s read-ahead group of batch x READ_AHEAD lines, so each worker forms exactly
  the batches of a single-process run and the numbers are the same, bit for bit); at most
  `window` chunks are in flight (two per worker thread), so memory stays bounded on an endless
  stdin;
- the rows come back as a few numpy arrays per chunk: per line its number, token count, OOV
  count and ln P (32 bytes a line; with `tokens`, also every token id and -ln P, 12 bytes a
  token), and are yielded in input order, the lines' text taken from the client's copy of the
  chunk.

`--total` is refused with --dask (in cli_query): it carries the state across the whole input, so
each chunk would need the state at the end of the one before.

Nothing else imports dask: `require()` turns a missing extra into one line and the install hint.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator

import numpy as np

from rnn_cli import __version__, errors
from rnn_cli.errors import RnnCliError, UsageError
from rnn_cli.tasks.lm import api, score

CHUNK_LINES = 2048  # non-blank lines per task (rounded to whole read-ahead groups)
INSTALL_HINT = "install the extra: pip install 'rnn-cli[dask]'"
CONNECT_TIMEOUT = "20s"


def require():
    """The `distributed` module, or RnnCliError (exit 1) with the install hint."""
    try:
        import distributed
    except ImportError as e:
        raise RnnCliError(f"--dask needs Dask's distributed scheduler, which is not installed "
                          f"({e.name or 'distributed'})", hint=INSTALL_HINT) from None
    return distributed


def _local_workers(address: str) -> int | None:
    """N of "local:N" (None for a scheduler address)."""
    if not address.startswith("local:"):
        return None
    try:
        n = int(address[len("local:"):])
    except ValueError:
        n = 0
    if n < 1:
        raise UsageError(f"--dask {address}: expected local:N with N >= 1 worker processes",
                         hint="e.g. --dask local:4, or a scheduler address tcp://HOST:8786")
    return n


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class Session:
    """A Dask client (and, for local:N, the LocalCluster it started)."""

    def __init__(self, client, cluster=None, threads: int | None = None):
        self.client, self.cluster, self.threads = client, cluster, threads

    @classmethod
    def open(cls, address: str, threads: int | None = None, verbose: bool = False) -> Session:
        """Connect to the scheduler at `address`, or start `local:N` worker processes (one
        thread each, `threads` or cores / N kernel threads each); check that every worker runs
        this version of rnn-cli."""
        distributed = require()
        n = _local_workers(address)
        level = logging.INFO if verbose else logging.ERROR
        cluster = None
        try:
            if n is not None:
                per = threads or max(1, _cores() // n)
                env = {v: str(per) for v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS",
                                             "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
                cluster = distributed.LocalCluster(
                    n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                    silence_logs=level, env=env)
                client = distributed.Client(cluster)
            else:
                logging.getLogger("distributed").setLevel(level)
                client = distributed.Client(address, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as e:
            if cluster is not None:
                cluster.close()
            raise RnnCliError(f"--dask {address}: cannot reach the scheduler ({e})",
                              hint="start one with `dask scheduler` and workers with `dask "
                                   "worker ADDRESS`, or use --dask local:N") from None
        session = cls(client, cluster, threads)
        try:
            session._check_workers(address)
        except BaseException:
            session.close()
            raise
        return session

    def _check_workers(self, address: str) -> None:
        try:
            self.client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
        except TimeoutError:
            raise RnnCliError(f"--dask {address}: the scheduler has no workers",
                              hint="start some with `dask worker ADDRESS`") from None
        try:
            versions = self.client.run(_worker_version)
        except Exception as e:  # the workers cannot unpickle a function of rnn_cli
            raise RnnCliError(f"--dask {address}: the workers cannot run rnn-cli "
                              f"({type(e).__name__}: {e})",
                              hint=f"install rnn-cli {__version__} on every worker") from None
        other = sorted({v for v in versions.values() if v != __version__})
        if other:
            raise RnnCliError(f"--dask {address}: workers run rnn-cli {', '.join(other)}, this "
                              f"client {__version__}",
                              hint=f"install rnn-cli {__version__} on every worker")

    def describe(self) -> str:
        nthreads = self.client.nthreads()
        return (f"{len(nthreads)} worker(s), {sum(nthreads.values())} thread(s) at "
                f"{self.client.scheduler.address}")

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def score_lines(self, lm: api.Model, lines: Iterable[str], batch: int = 1,
                    tokens: bool = False, chunk_lines: int = CHUNK_LINES,
                    window: int | None = None) -> Iterator[score.LineScore | LineTotal]:
        """`lm.score_lines(lines, batch_size=batch)`, the chunks scored on the workers: the same
        rows, in the same order, with the same errors (raised after the rows before them).
        Without `tokens`, rows are `LineTotal`s (no per-token ids and nll: less to send back)."""
        with open(lm.path, "rb") as f:  # the file `lm` was loaded from, validated again there
            data = f.read()
        digest = hashlib.sha256(data).hexdigest()
        shipped = self.client.scatter(data, broadcast=True, hash=False)
        group = batch * score.READ_AHEAD if batch > 1 else 1
        per = group * max(1, chunk_lines // group)
        window = window or 2 * max(1, sum(self.client.nthreads().values()))
        inflight: deque = deque()
        buf: list[str] = []
        first, nonblank, seen = 1, 0, False

        def submit():
            fut = self.client.submit(_score_chunk, shipped, digest, lm.path, buf, first, batch,
                                     self.threads, tokens, pure=False)
            inflight.append((first, buf, fut))

        try:
            for lineno, raw in enumerate(lines, 1):
                buf.append(raw)
                nonblank += not score.is_blank(raw)
                if nonblank == per:
                    submit()
                    seen, buf, first, nonblank = True, [], lineno + 1, 0
                    while len(inflight) >= window:
                        yield from _rows(*inflight.popleft())
            if nonblank:
                submit()
                seen = True
        except RnnCliError:  # unreadable input: the rows of the chunks sent, then the error
            while inflight:
                yield from _rows(*inflight.popleft())
            raise
        while inflight:
            yield from _rows(*inflight.popleft())
        if not seen:
            raise score.nothing_to_score()


class LineTotal:
    """A row of `score` without its tokens: what `score.LineScore` gives, but for `ids`/`nll`."""

    __slots__ = ("lineno", "line", "n", "unknown", "logprob")

    def __init__(self, lineno: int, line: str, n: int, unknown: int, logprob: float):
        self.lineno, self.line, self.n, self.unknown, self.logprob = \
            lineno, line, n, unknown, logprob

    tokens = property(lambda self: self.n)
    log10prob = score.LineScore.log10prob
    perplexity = score.LineScore.perplexity


def _rows(first: int, lines: list[str], fut) -> Iterator[score.LineScore | LineTotal]:
    """The rows of one chunk, then its error (if a line could not be scored)."""
    try:
        linenos, lengths, unknown, logprob, ids, nll, error = fut.result()
    except RnnCliError:
        raise
    except Exception as e:  # a worker died, the connection broke, ...
        raise RnnCliError(f"--dask: scoring lines {first}-{first + len(lines) - 1} failed on "
                          f"the cluster ({type(e).__name__}: {e})",
                          hint="see the workers' logs; rerun with -v for Dask's own") from None
    ends = np.cumsum(lengths)
    starts = ends - lengths
    for k in range(linenos.shape[0]):
        lineno = int(linenos[k])
        line = lines[lineno - first].rstrip("\n")
        if ids is None:
            yield LineTotal(lineno, line, int(lengths[k]), int(unknown[k]), float(logprob[k]))
            continue
        a, b = int(starts[k]), int(ends[k])
        yield score.LineScore(lineno, line, ids[a:b], nll[a:b], int(unknown[k]))
    if error is not None:
        kind, message, hint = error
        cls = getattr(errors, kind, RnnCliError)
        cls = cls if isinstance(cls, type) and issubclass(cls, RnnCliError) else RnnCliError
        raise cls(message, hint=hint)


# -------------------------------------------------------------------- on the workers
_WORKER_MODELS: dict[tuple[str, int], api.Model] = {}
_LOCK = threading.Lock()


def _worker_version() -> str:
    return __version__


def _worker_model(data: bytes, digest: str, name: str, threads: int | None) -> api.Model:
    """This thread's model of `digest`, loaded (and validated) on first use; models of other
    digests are dropped."""
    key = (digest, threading.get_ident())
    with _LOCK:
        lm = _WORKER_MODELS.get(key)
        if lm is None:
            for k in [k for k in _WORKER_MODELS if k[0] != digest]:
                del _WORKER_MODELS[k]
            lm = _WORKER_MODELS[key] = api.Model.from_bytes(data, name=name, threads=threads)
    return lm


def _score_chunk(data: bytes, digest: str, name: str, lines: list[str], first: int, batch: int,
                 threads: int | None, tokens: bool):
    """Score one chunk on a worker: (line numbers, tokens per line, unknown per line, ln P per
    line, with `tokens` every token id and nll (else None, None), None or the (class name,
    message, hint) of the error that stopped it)."""
    rows, error = [], None
    try:
        lm = _worker_model(data, digest, name, threads)
        for r in lm.score_lines(lines, batch_size=batch, first_line=first):
            rows.append(r)
    except RnnCliError as e:
        error = (type(e).__name__, e.message, e.hint)
    linenos = np.array([r.lineno for r in rows], np.int64)
    lengths = np.array([r.n for r in rows], np.int64)
    unknown = np.array([r.unknown for r in rows], np.int64)
    logprob = np.array([r.logprob for r in rows], np.float64)  # the float LineScore gives
    ids = nll = None
    if tokens:
        ids = np.concatenate([r.ids for r in rows]).astype(np.int32) if rows else \
            np.zeros(0, np.int32)
        nll = np.concatenate([r.nll for r in rows]) if rows else np.zeros(0, np.float64)
    return linenos, lengths, unknown, logprob, ids, nll, error
