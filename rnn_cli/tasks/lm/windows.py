"""A running text's token ids cut for truncated backpropagation through time (the language
model's batches): the train/validation split, the batch shape that fits, and the windows.

What lives here: `split_train_val` (contiguous split, validation = the tail), `fit_batch_shape`
(shrink batch size, then sequence length, until enough windows fit), `Batches` (B parallel
contiguous streams walked in windows of T steps, resumable from plain ints) and `sequence_nll`
(one stream scored in windows of a network with the state carried: validation and `score`).
Reading the text is `rnn_cli.corpus`'s; the ids come from `rnn_cli.idcache`.

Windows (as char-rnn / PyTorch word_language_model `batchify`): with N ids, B streams of length
L = (N-1)//B; stream b holds ids[b*L : (b+1)*L] and its targets are the same ids shifted by one.
An epoch is the windows_per_epoch = L//T full windows; the ragged tail (< T steps per stream) is
dropped, so every window is exactly (T, B). The hidden state carries from one window to the next
within an epoch and must be reset at the start of each epoch (`reset` / `reset_state`).
"""

from __future__ import annotations

import numpy as np

from rnn_cli.corpus import release_pages
from rnn_cli.errors import CorpusError, UsageError

MIN_SEQ_LEN = 2  # fit_batch_shape never shrinks the sequence length below this
RELEASE_EVERY = 1024  # Batches drops the pages of a memory-mapped id array it has read this often


# -------------------------------------------------------------------- splitting
def split_train_val(ids: np.ndarray, val_frac: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) views of `ids`: val is the last floor(len * val_frac) ids (none for 0)."""
    if not 0.0 <= val_frac < 1.0:
        raise UsageError(f"--val-frac must be in [0, 1), got {val_frac!r}",
                         hint="e.g. --val-frac 0.1 keeps the last 10% for validation")
    n = len(ids)
    n_val = int(n * val_frac + 1e-9)  # the epsilon keeps 100 * 0.29 from rounding down to 28
    return ids[: n - n_val], ids[n - n_val:]


def fit_batch_shape(n_tokens: int, batch_size: int, seq_len: int,
                    min_windows: int = 4) -> tuple[int, int, bool]:
    """(B, T, adjusted): the largest B <= batch_size, then T <= seq_len, that give at least
    `min_windows` windows per epoch over `n_tokens` ids. Shrinks B first (down to 1), then T (down
    to MIN_SEQ_LEN); CorpusError, naming the minimum number of tokens, when nothing fits.
    """
    for name, value in (("--batch-size", batch_size), ("--seq-len", seq_len),
                        ("min_windows", min_windows)):
        if int(value) != value or value < 1:
            raise UsageError(f"{name} must be a positive integer, got {value!r}",
                             hint=f"e.g. {name} 32" if name != "min_windows" else None)
    min_t = min(seq_len, MIN_SEQ_LEN)
    need = min_windows * min_t + 1
    if n_tokens < need:
        raise CorpusError(
            f"the training text has {n_tokens} tokens, too few for {min_windows} windows: at "
            f"least {need} tokens are needed (batch size 1, sequence length {min_t})",
            hint="use a longer corpus, or a smaller --val-frac")
    usable = n_tokens - 1  # the last id is only ever a target
    b = min(batch_size, usable // (seq_len * min_windows))
    if b >= 1:
        return b, seq_len, b != batch_size
    t = max(min_t, min(seq_len, usable // min_windows))
    return 1, t, True


# -------------------------------------------------------------------- batching
class Batches:
    """B parallel contiguous streams over `ids`, walked in (T, B) windows (see module docstring).

    `next_window()` (or next(batches)) returns (x, y, reset): x, y are (T, B) int32 buffers that
    are REUSED by the next call (copy them to keep them); y[t, b] is the id after x[t, b] in
    stream b; reset is True for the first window of an epoch, when the caller must zero the
    hidden state. `position` is the index in the epoch of the window the next call returns,
    `epoch` its epoch (from 0); after the last window the next epoch starts from the beginning.
    """

    def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int):
        ids = ids if isinstance(ids, np.ndarray) else np.asarray(ids)
        if ids.ndim != 1 or ids.dtype.kind not in "iu":
            raise UsageError("Batches needs a 1-D integer id array",
                             hint="encode the text with Vocab.encode first")
        if batch_size < 1 or seq_len < 1:
            raise UsageError(f"batch size and sequence length must be >= 1, got {batch_size}, "
                             f"{seq_len}", hint="e.g. --batch-size 32 --seq-len 64")
        self.n_tokens = len(ids)
        self.batch_size, self.seq_len = int(batch_size), int(seq_len)
        self.stream_len = max(self.n_tokens - 1, 0) // self.batch_size  # L
        self.windows_per_epoch = self.stream_len // self.seq_len
        if self.windows_per_epoch < 1:
            raise CorpusError(
                f"{self.n_tokens} tokens cannot fill {self.batch_size} streams of "
                f"{self.seq_len + 1} tokens (needs at least "
                f"{self.batch_size * self.seq_len + 1})",
                hint="lower --batch-size or --seq-len, or use a longer corpus")
        self._ids = ids  # read a window at a time: a memory-mapped id file is never loaded whole
        # (T+1, B) indices of the first window: stream b starts at b*L; x rows 0..T-1, y rows 1..T
        self._first = (np.arange(self.seq_len + 1, dtype=np.int64)[:, None]
                       + np.arange(self.batch_size, dtype=np.int64)[None, :] * self.stream_len)
        self._index = np.empty_like(self._first)
        self._x = np.empty((self.seq_len, self.batch_size), dtype=np.int32)  # (T, B)
        self._y = np.empty((self.seq_len, self.batch_size), dtype=np.int32)  # (T, B)
        self.epoch = 0
        self.position = 0

    @property
    def reset_state(self) -> bool:
        """True when the window the next call returns starts an epoch (reset the hidden state)."""
        return self.position == 0

    @property
    def tokens_per_epoch(self) -> int:
        """Number of predicted targets in one epoch (windows * T * B)."""
        return self.windows_per_epoch * self.seq_len * self.batch_size

    def next_window(self) -> tuple[np.ndarray, np.ndarray, bool]:
        """(x, y, reset) of the current window, then advance (see the class docstring)."""
        reset = self.position == 0
        np.add(self._first, self.position * self.seq_len, out=self._index)
        window = self._ids[self._index]  # (T+1, B)
        self._x[...] = window[:-1]
        self._y[...] = window[1:]
        self.position += 1
        if self.position % RELEASE_EVERY == 0:
            release_pages(self._ids)
        if self.position == self.windows_per_epoch:
            self.position = 0
            self.epoch += 1
        return self._x, self._y, reset

    def __iter__(self) -> Batches:
        return self

    def __next__(self) -> tuple[np.ndarray, np.ndarray, bool]:
        return self.next_window()

    def state_dict(self) -> dict[str, int]:
        """Plain ints: where the walk stands and the shape it was made for."""
        return {"epoch": self.epoch, "position": self.position, "n_tokens": self.n_tokens,
                "batch_size": self.batch_size, "seq_len": self.seq_len}

    def load_state_dict(self, state: dict) -> None:
        """Continue at the window `state` points to; CorpusError if it was for another shape."""
        mine = self.state_dict()
        for key in ("n_tokens", "batch_size", "seq_len"):
            if int(state.get(key, -1)) != mine[key]:
                raise CorpusError(
                    f"the saved batch position is for {key}={state.get(key)!r}, but this run "
                    f"has {key}={mine[key]}",
                    hint="resume with the same corpus, --val-frac, --batch-size and --seq-len")
        epoch, position = int(state["epoch"]), int(state["position"])
        if epoch < 0 or not 0 <= position < self.windows_per_epoch:
            raise CorpusError(f"the saved batch position (epoch {epoch}, window {position}) is "
                              "out of range", hint="the checkpoint may be damaged")
        self.epoch, self.position = epoch, position


def sequence_nll(net, ids: np.ndarray, start_id: int, out: np.ndarray | None = None,
                 reset: bool = True, total: float = 0.0) -> float:
    """Sum over i of -log P(ids[i] | start, ids[:i]) for one stream (net.B must be 1).

    The first input is `start_id` (the end-of-line symbol, or -1 for the zero vector), then the ids
    themselves; windows of `net.T` with the state carried, so the result does not depend on T.
    `out` (len(ids),) float64 receives the per-token nll. This is the validation loss, and `score`.
    `total`: a sum to continue (with reset=False, scoring a sequence in consecutive parts).
    """
    if reset:
        net.reset_state()
    n, pos, prev = ids.shape[0], 0, start_id
    while pos < n:
        T = min(net.T, n - pos)
        x, y = net.x_buf[:T], net.y_buf[:T]
        x[0, 0] = prev
        x[1:, 0] = ids[pos:pos + T - 1]
        y[:, 0] = ids[pos:pos + T]
        total += net.forward(x, y)
        if out is not None:
            out[pos:pos + T] = net.nll[:T]
        prev = ids[pos + T - 1]
        pos += T
    return total
