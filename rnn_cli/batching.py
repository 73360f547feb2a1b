"""Batches of examples of different lengths, made by length (the task models' trainer and their
evaluation and prediction). Never prints.

Training (`ExampleBatches`), each epoch: the examples are shuffled, cut into pools of
`pool` x batch-size examples, each pool sorted by length (longest first), cut into batches of
at most `batch_size` examples (and, with `max_tokens`, at most that many padded positions:
examples x the longest one's length), and the batches of the whole epoch are shuffled. So a
batch holds examples of similar lengths (little padding; the encoder's lanes stop at their
ends anyway) and the order still varies from epoch to epoch (torchtext's BucketIterator,
fairseq's batches by size). Each epoch's order is drawn from its own generator,
`np.random.default_rng([seed, epoch])`: deterministic under `--seed`, and a resumed run needs
only (epoch, position) to continue exactly where it stopped (`state_dict`).

Evaluation and prediction (`eval_batches`): the same cut without shuffling, examples sorted by
length so that little is padding; callers put results back in input order by the indices.

Within a batch, examples come longest first: the shared encoder's BLAS recurrences then drop
each lane from the per-step product once it has ended (`encoder.py`).

`--max-len` is the only cut of an example, and it is counted: `cut_to_max_len`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

POOL = 50  # batches' worth of examples sorted together (more: less padding, less randomness)


@dataclass(frozen=True)
class CutReport:
    """What `--max-len` cut: examples longer than it, and the positions dropped from them."""

    max_len: int
    examples: int = 0
    tokens: int = 0
    longest: int = 0  # the longest example before the cut


def cut_to_max_len(seqs: list[np.ndarray], max_len: int) -> tuple[list[np.ndarray], CutReport]:
    """Each sequence cut to its first `max_len` positions (0: no limit), and what was cut."""
    lengths = np.array([s.shape[0] for s in seqs], np.int64)
    longest = int(lengths.max()) if lengths.size else 0
    if not max_len or longest <= max_len:
        return list(seqs), CutReport(max_len, 0, 0, longest)
    over = lengths > max_len
    out = [s[:max_len] if s.shape[0] > max_len else s for s in seqs]
    return out, CutReport(max_len, int(over.sum()), int((lengths[over] - max_len).sum()),
                          longest)


def _cut(order: np.ndarray, lengths: np.ndarray, batch_size: int, max_tokens: int
         ) -> list[np.ndarray]:
    """`order` (indices sorted longest first) cut into consecutive batches of at most
    `batch_size` examples and, with max_tokens > 0, at most that many padded positions (a single
    example longer than that is a batch of its own)."""
    batches, start, n = [], 0, order.shape[0]
    while start < n:
        longest = int(lengths[order[start]])
        size = batch_size
        if max_tokens:
            size = max(1, min(size, max_tokens // max(longest, 1)))
        batches.append(order[start:start + size])
        start += size
    return batches


def _sorted(idx: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """idx ordered longest first (ties: as given, so the order stays a function of the input)."""
    return idx[np.argsort(-lengths[idx], kind="stable")]


def eval_batches(lengths: np.ndarray, batch_size: int, max_tokens: int = 0) -> list[np.ndarray]:
    """Batches of example indices for evaluation or prediction: all examples sorted by length,
    longest first, cut as in training; every index exactly once."""
    lengths = np.asarray(lengths, np.int64)
    return _cut(_sorted(np.arange(lengths.shape[0]), lengths), lengths, batch_size, max_tokens)


class ExampleBatches:
    """Training batches of example indices, epoch after epoch (see the module docstring)."""

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int, max_tokens: int = 0,
                 pool: int = POOL):
        self.lengths = np.asarray(lengths, np.int64)
        if self.lengths.ndim != 1 or self.lengths.shape[0] == 0:
            raise ValueError("no examples to batch")
        if batch_size < 1 or max_tokens < 0 or pool < 1:
            raise ValueError("batch_size and pool must be positive, max_tokens >= 0")
        self.batch_size, self.seed, self.max_tokens, self.pool = batch_size, seed, max_tokens, pool
        self.epoch, self.position = 0, 0
        self._plan: list[np.ndarray] | None = None

    @property
    def examples_per_epoch(self) -> int:
        return int(self.lengths.shape[0])

    def max_shape(self) -> tuple[int, int]:
        """(longest example, most examples in a batch): bounds for the models' buffers."""
        return int(self.lengths.max()), min(self.batch_size, self.examples_per_epoch)

    def plan(self, epoch: int) -> list[np.ndarray]:
        """The batches of `epoch`, in order: a pure function of the lengths, the settings, the
        seed and the epoch number."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.examples_per_epoch)
        step = self.pool * self.batch_size
        batches = []
        for a in range(0, order.shape[0], step):
            batches += _cut(_sorted(order[a:a + step], self.lengths), self.lengths,
                            self.batch_size, self.max_tokens)
        return [batches[i] for i in rng.permutation(len(batches))]

    def _current(self) -> list[np.ndarray]:
        if self._plan is None:
            self._plan = self.plan(self.epoch)
        return self._plan

    def next(self) -> np.ndarray:
        """The next batch's example indices (longest first); moves on to the next epoch after
        the last batch of this one."""
        plan = self._current()
        if self.position >= len(plan):
            self.epoch, self.position, self._plan = self.epoch + 1, 0, None
            plan = self._current()
        idx = plan[self.position]
        self.position += 1
        return idx

    @property
    def at_epoch_end(self) -> bool:
        """Whether the last batch given was the last of its epoch."""
        return self.position >= len(self._current())

    def epochs_done(self) -> float:
        """Epochs completed so far, with the current one's share of its batches."""
        plan = self._current()
        if self.position >= len(plan):
            return float(self.epoch + 1)
        return self.epoch + self.position / len(plan)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        epoch, position = int(state["epoch"]), int(state["position"])
        if epoch < 0 or position < 0:
            raise ValueError(f"bad batch position {state}")
        self.epoch, self.position, self._plan = epoch, position, None
        if position > len(self._current()):
            raise ValueError(f"batch position {position} is past epoch {epoch}'s end")
