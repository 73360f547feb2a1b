"""Batches of sequences of different lengths: lane b of a (T, B, W) array holds a sequence of
lengths[b] <= T steps, and the positions t >= lengths[b] are padding. The shared encoder
(`rnn_cli/encoder.py`) runs its reverse direction as the forward recurrence over each sequence
reversed within its length, so it needs these copies:

    reverse_within(out, inp, lengths, add)   out[t, b] (+)= inp[len_b - 1 - t, b] for t < len_b
    copy_within(out, inp, lengths)           out[t, b] = inp[t, b] for t < len_b

and `fill_lanes`, which scatters the token ids of a batch's examples into its (T, B) lanes.

Both write exactly zero at the padding positions of `out` (add=False), so nothing left there
from an earlier batch can reach a sum. Reversal is its own inverse: the encoder reverses the
inputs of its reverse direction, runs the recurrence, and reverses the states back.

Layouts: out, inp (T, B, W) float32/float64 (either may be a strided slice of a wider array,
e.g. the reverse half of the (T, B, 2H) output), lengths (B,) int32 with 0 <= len_b <= T.
Serial: a copy of T*B rows costs less than waking the thread pool on a busy machine.
"""

from __future__ import annotations

from rnn_cli.kernels._jit import njit


@njit
def reverse_within(out, inp, lengths, add):
    """out[t, b] = inp[len_b - 1 - t, b] for t < len_b, 0 past it (add: out[t, b] += the same,
    padding left alone). out must not overlap inp."""
    T = out.shape[0]
    B = out.shape[1]
    W = out.shape[2]
    for b in range(B):
        n = lengths[b]
        for t in range(n):
            src = inp[n - 1 - t, b]
            dst = out[t, b]
            if add:
                for i in range(W):
                    dst[i] += src[i]
            else:
                for i in range(W):
                    dst[i] = src[i]
        if not add:
            for t in range(n, T):
                dst = out[t, b]
                for i in range(W):
                    dst[i] = 0.0


@njit
def copy_within(out, inp, lengths):
    """out[t, b] = inp[t, b] for t < len_b, 0 past it. out may be inp (zeroes its padding)."""
    T = out.shape[0]
    B = out.shape[1]
    W = out.shape[2]
    for t in range(T):
        for b in range(B):
            dst = out[t, b]
            if t < lengths[b]:
                src = inp[t, b]
                for i in range(W):
                    dst[i] = src[i]
            else:
                for i in range(W):
                    dst[i] = 0.0


@njit
def fill_lanes(x, flat, offsets, idx, lengths):
    """Token ids into the (T, B) int32 lanes of a batch: x[t, j] = flat[offsets[idx[j]] + t]
    for t < lengths[j], -1 past it. flat: every example's ids one after another, offsets (N+1,)
    int64 where each starts, idx (B,) the batch's examples, lengths (B,) int32 (at most each
    example's own length: a cut example gives its first lengths[j] ids)."""
    T = x.shape[0]
    for j in range(x.shape[1]):
        start = offsets[idx[j]]
        n = lengths[j]
        for t in range(n):
            x[t, j] = flat[start + t]
        for t in range(n, T):
            x[t, j] = -1
