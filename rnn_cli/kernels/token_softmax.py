"""Per-token softmax cross-entropy over K tags, within each sentence's length (the tagger's
output layer without `--crf`).

    p[t, b] = softmax(logits[t, b]),   nll[t, b] = -log p[t, b, tags[t, b]]   (t < lengths[b])

Padding (t >= lengths[b]) never enters the loss: its nll is 0, its probabilities and gradient
are 0. A token whose tag is -1 (no gold: tagging new text, or a tag the model never saw) gets
its probabilities and no loss. The caller passes scale = 1 / (number of scored tokens) to take
the mean over real tokens.

Layouts (time-major, like the encoder): logits, probs, dlogits (T, B, K) float64, lengths (B,)
int32, tags (T, B) int32, nll (T, B) float64. float64 only, so each kernel compiles once (as the
CRF's: the caller copies the float32 logits of the output product into a float64 buffer, and the
gradient back). Lanes run in parallel (prange); the returned sum is taken in lane order
afterwards, so it does not depend on the thread count.
"""

from __future__ import annotations

import math

from rnn_cli.kernels._jit import njit_parallel, prange


def _token_xent_forward(nll, probs, logits, lengths, tags):
    """probs = softmax(logits) row by row (max-subtracted), nll as above; returns sum nll
    (float64). probs may be logits (overwritten in place)."""
    T = logits.shape[0]
    B = logits.shape[1]
    K = logits.shape[2]
    for b in prange(B):
        L = lengths[b]
        for t in range(T):
            if t >= L:
                nll[t, b] = 0.0
                for k in range(K):
                    probs[t, b, k] = 0.0
                continue
            m = logits[t, b, 0]
            for k in range(1, K):
                if logits[t, b, k] > m:
                    m = logits[t, b, k]
            y = tags[t, b]
            zy = logits[t, b, y] if y >= 0 else m
            s = 0.0
            for k in range(K):
                e = math.exp(logits[t, b, k] - m)
                probs[t, b, k] = e
                s += e
            inv = 1.0 / s
            for k in range(K):
                probs[t, b, k] *= inv
            nll[t, b] = (m + math.log(s) - zy) if y >= 0 else 0.0
    total = 0.0
    for b in range(B):
        for t in range(min(lengths[b], T)):
            total += nll[t, b]
    return total


def _token_xent_backward(dlogits, probs, lengths, tags, scale):
    """dlogits = (probs - onehot(tags)) * scale within lengths, 0 elsewhere (written, not
    accumulated; 0 for every k of a token whose tag is -1). dlogits may be probs."""
    T = probs.shape[0]
    B = probs.shape[1]
    K = probs.shape[2]
    for b in prange(B):
        L = lengths[b]
        for t in range(T):
            y = tags[t, b] if t < L else -1
            if y < 0:
                for k in range(K):
                    dlogits[t, b, k] = 0.0
                continue
            for k in range(K):
                dlogits[t, b, k] = probs[t, b, k] * scale
            dlogits[t, b, y] -= scale


token_xent_forward = njit_parallel(_token_xent_forward)
token_xent_backward = njit_parallel(_token_xent_backward)
