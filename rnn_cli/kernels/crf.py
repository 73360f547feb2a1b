"""The linear-chain CRF output layer of the tagger (Lafferty et al. 2001; Lample et al. 2016).

A tag sequence y of a sentence of L tokens scores

    s(y) = start[y_0] + sum_t em[t, y_t] + sum_{t>=1} trans[y_{t-1}, y_t] + end[y_{L-1}]

and P(y | x) = exp(s(y)) / Z, Z = sum over all K^L sequences (the forward algorithm, in log
space). Training minimises nll = log Z - s(gold); its gradient is "expected minus observed":

    d nll / d em[t, j]      = P(y_t = j) - [gold_t = j]
    d nll / d trans[i, j]   = sum_{t>=1} P(y_{t-1} = i, y_t = j) - #gold transitions i -> j
    d nll / d start[j]      = P(y_0 = j) - [gold_0 = j],   d end[j]: the same at t = L-1

with the marginals from forward-backward: P(y_t = j) = exp(alpha[t, j] + beta[t, j] - log Z),
P(y_{t-1} = i, y_t = j) = exp(alpha[t-1, i] + trans[i, j] + em[t, j] + beta[t, j] - log Z).
Decoding is Viterbi (max-product, with back-pointers); the marginals themselves (the
probabilities `--probs` prints) come from the backward kernel on a lane without gold.

Forbidden transitions (I-PER after O in BIO) are not the kernels' business: the caller passes
trans + mask, start + mask, end + mask with 0 for allowed and a large negative number for
forbidden (`rnn_cli.tasks.tag.tagset`), so a forbidden transition has probability 0 and a
gradient of 0 (unless a gold sequence uses it: `tagset.repair` the gold first). Viterbi with em = log-softmax outputs and trans = the mask alone is the
"constrained decoding" of a softmax tagger (any per-token logits do: log-softmax differs from
them by a per-token constant, which no path can avoid).

Layouts (time-major, like the encoder), every float array float64: emissions (T, B, K), lengths
(B,) int32 (lane b uses steps 0..lengths[b]-1; a lane of length 0 scores 0 and gets no
gradient), tags and path (T, B) int32, trans (K, K) [from, to], start (K,), end (K,); alpha,
beta, delta (T, B, K); nll, logz, score (B,). A lane with a tag of -1 within its length has no
gold (new text, or a tag the model never saw): log Z only, and its marginals from the backward
kernel. float64 only, so each kernel compiles once: the caller copies the float32 logits into a
float64 buffer (T·B·K numbers, less work than the T·B·K² exponentials that follow) and writes
trans + mask there anyway. The kernels run the lanes in parallel (prange); the transition
gradient goes through one (K, K) slice a lane, summed in order afterwards, so results do not
depend on the thread count. Nothing is allocated in the time loop.
"""

from __future__ import annotations

import math

from rnn_cli.kernels._jit import njit, njit_parallel, prange


@njit
def _alpha_lane(alpha, em, b, L, trans, start, end):
    """alpha[t, b, j] = log sum of exp(scores) of every prefix y_0..y_t with y_t = j
    (t < L); returns log Z of lane b."""
    K = em.shape[2]
    for j in range(K):
        alpha[0, b, j] = start[j] + em[0, b, j]
    for t in range(1, L):
        for j in range(K):
            m = alpha[t - 1, b, 0] + trans[0, j]
            for i in range(1, K):
                v = alpha[t - 1, b, i] + trans[i, j]
                if v > m:
                    m = v
            s = 0.0
            for i in range(K):
                s += math.exp(alpha[t - 1, b, i] + trans[i, j] - m)
            alpha[t, b, j] = em[t, b, j] + m + math.log(s)
    m = alpha[L - 1, b, 0] + end[0]
    for j in range(1, K):
        v = alpha[L - 1, b, j] + end[j]
        if v > m:
            m = v
    s = 0.0
    for j in range(K):
        s += math.exp(alpha[L - 1, b, j] + end[j] - m)
    return m + math.log(s)


@njit
def _beta_lane(beta, em, b, L, trans, end):
    """beta[t, b, i] = log sum of exp(scores) of every suffix after y_t = i, end score included."""
    K = em.shape[2]
    for i in range(K):
        beta[L - 1, b, i] = end[i]
    for t in range(L - 2, -1, -1):
        for i in range(K):
            m = trans[i, 0] + em[t + 1, b, 0] + beta[t + 1, b, 0]
            for j in range(1, K):
                v = trans[i, j] + em[t + 1, b, j] + beta[t + 1, b, j]
                if v > m:
                    m = v
            s = 0.0
            for j in range(K):
                s += math.exp(trans[i, j] + em[t + 1, b, j] + beta[t + 1, b, j] - m)
            beta[t, b, i] = m + math.log(s)


@njit
def _has_gold(tags, b, L):
    for t in range(L):
        if tags[t, b] < 0:
            return False
    return True


def _crf_nll_forward(nll, logz, alpha, emissions, lengths, tags, trans, start, end):
    """nll[b] = log Z_b - s_b(tags[:, b]) (0 for a lane without gold); returns sum_b nll[b].

    Writes nll (B,), logz (B,) and alpha[:lengths[b], b] (for crf_nll_backward)."""
    B = emissions.shape[1]
    for b in prange(B):
        L = lengths[b]
        nll[b] = 0.0
        if L <= 0:
            logz[b] = 0.0
            continue
        logz[b] = _alpha_lane(alpha, emissions, b, L, trans, start, end)
        if not _has_gold(tags, b, L):
            continue
        y = tags[0, b]
        s = start[y] + emissions[0, b, y]
        for t in range(1, L):
            yt = tags[t, b]
            s += trans[y, yt] + emissions[t, b, yt]
            y = yt
        s += end[y]
        nll[b] = logz[b] - s
    total = 0.0
    for b in range(B):
        total += nll[b]
    return total


def _crf_nll_backward(demissions, dtrans, dstart, dend, dtrans_lane, beta, alpha, logz,
                      emissions, lengths, tags, trans, end, scale):
    """The gradient of scale * sum_b nll[b] (after crf_nll_forward on the same inputs).

    demissions (T, B, K) is written (0 past each lane's length); dtrans (K, K), dstart (K,) and
    dend (K,) are accumulated (+=); dtrans_lane (B, K, K) and beta (T, B, K) are scratch. A lane
    without gold gets its marginals P(y_t = j) * scale in demissions and adds nothing to the
    parameters' gradients (forward, then backward with scale 1: the CRF's `--probs`)."""
    T = emissions.shape[0]
    B = emissions.shape[1]
    K = emissions.shape[2]
    for b in prange(B):
        L = lengths[b]
        for i in range(K):
            for j in range(K):
                dtrans_lane[b, i, j] = 0.0
        for t in range(L, T):
            for j in range(K):
                demissions[t, b, j] = 0.0
        if L <= 0:
            continue
        _beta_lane(beta, emissions, b, L, trans, end)
        lz = logz[b]
        gold = _has_gold(tags, b, L)
        for t in range(L):
            for j in range(K):
                demissions[t, b, j] = math.exp(alpha[t, b, j] + beta[t, b, j] - lz) * scale
            if gold:
                demissions[t, b, tags[t, b]] -= scale
        if not gold:
            continue
        for t in range(1, L):
            for i in range(K):
                a = alpha[t - 1, b, i] - lz
                for j in range(K):
                    dtrans_lane[b, i, j] += math.exp(
                        a + trans[i, j] + emissions[t, b, j] + beta[t, b, j]) * scale
            dtrans_lane[b, tags[t - 1, b], tags[t, b]] -= scale
    for b in range(B):  # in lane order: the same sums for any thread count
        L = lengths[b]
        if L <= 0 or not _has_gold(tags, b, L):
            continue
        for j in range(K):
            dstart[j] += demissions[0, b, j]
            dend[j] += demissions[L - 1, b, j]
        for i in range(K):
            for j in range(K):
                dtrans[i, j] += dtrans_lane[b, i, j]


def _viterbi_decode(path, score, delta, bp, emissions, lengths, trans, start, end):
    """path[:, b] = argmax_y s(y) over the lanes' sequences, score[b] = its s(y).

    path (T, B) int32 is written (-1 past each length); delta (T, B, K) float64 and bp (T, B, K)
    int32 are scratch. Ties go to the lowest tag index."""
    T = emissions.shape[0]
    B = emissions.shape[1]
    K = emissions.shape[2]
    for b in prange(B):
        L = lengths[b]
        for t in range(max(L, 0), T):
            path[t, b] = -1
        if L <= 0:
            score[b] = 0.0
            continue
        for j in range(K):
            delta[0, b, j] = start[j] + emissions[0, b, j]
        for t in range(1, L):
            for j in range(K):
                best = delta[t - 1, b, 0] + trans[0, j]
                arg = 0
                for i in range(1, K):
                    v = delta[t - 1, b, i] + trans[i, j]
                    if v > best:
                        best = v
                        arg = i
                delta[t, b, j] = best + emissions[t, b, j]
                bp[t, b, j] = arg
        best = delta[L - 1, b, 0] + end[0]
        arg = 0
        for j in range(1, K):
            v = delta[L - 1, b, j] + end[j]
            if v > best:
                best = v
                arg = j
        score[b] = best
        path[L - 1, b] = arg
        for t in range(L - 1, 0, -1):
            arg = bp[t, b, arg]
            path[t - 1, b] = arg


crf_nll_forward = njit_parallel(_crf_nll_forward)
crf_nll_backward = njit_parallel(_crf_nll_backward)
viterbi_decode = njit_parallel(_viterbi_decode)
