"""Pure-NumPy float64 twins of the tagger's kernels (`kernels/crf.py`, `kernels/token_softmax.py`):
the CRF by brute-force enumeration of every tag sequence (tiny K and T only) and by the textbook
forward recursion, the per-token softmax cross-entropy row by row.

Nothing here imports numba or the kernels. Every function returns new float64 arrays.
"""

from __future__ import annotations

import itertools

import numpy as np


def _lse(x, axis=None):
    x = np.asarray(x, dtype=np.float64)
    m = np.max(x, axis=axis, keepdims=True)
    out = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    return out.squeeze() if axis is None else np.squeeze(out, axis=axis)


def ref_path_score(em, path, trans, start, end):
    """s(y) = start[y0] + sum_t em[t, y_t] + sum_t trans[y_{t-1}, y_t] + end[y_{L-1}]; em (L, K)."""
    em, trans = np.asarray(em, np.float64), np.asarray(trans, np.float64)
    s = float(start[path[0]]) + float(end[path[-1]])
    for t, y in enumerate(path):
        s += em[t, y]
        if t:
            s += trans[path[t - 1], y]
    return s


def ref_all_paths(em, trans, start, end):
    """[(path, score)] of every one of the K^L sequences of one sentence, em (L, K)."""
    L, K = np.shape(em)
    return [(p, ref_path_score(em, p, trans, start, end))
            for p in itertools.product(range(K), repeat=L)]


def ref_crf_logz_brute(em, trans, start, end):
    """log Z of one sentence by enumerating every path."""
    return float(_lse([s for _, s in ref_all_paths(em, trans, start, end)]))


def ref_crf_marginals_brute(em, trans, start, end):
    """(node (L, K), pair (L, K, K)) marginals by enumeration; pair[t, i, j] = P(y_{t-1}=i, y_t=j)."""
    L, K = np.shape(em)
    paths = ref_all_paths(em, trans, start, end)
    logz = _lse([s for _, s in paths])
    node, pair = np.zeros((L, K)), np.zeros((L, K, K))
    for p, s in paths:
        w = np.exp(s - logz)
        for t in range(L):
            node[t, p[t]] += w
            if t:
                pair[t, p[t - 1], p[t]] += w
    return node, pair


def ref_viterbi_brute(em, trans, start, end, allowed=None):
    """(best path, its score) by enumeration; `allowed(path) -> bool` restricts the search."""
    best = None
    for p, s in ref_all_paths(em, trans, start, end):
        if allowed is not None and not allowed(p):
            continue
        if best is None or s > best[1]:
            best = (p, s)
    return list(best[0]), best[1]


def ref_crf_nll(em, lengths, tags, trans, start, end):
    """nll (B,) = log Z - s(gold) by the forward recursion (a textbook twin, any size)."""
    em = np.asarray(em, np.float64)
    trans, start, end = (np.asarray(a, np.float64) for a in (trans, start, end))
    nll = np.zeros(em.shape[1])
    for b, L in enumerate(lengths):
        if L <= 0:
            continue
        alpha = start + em[0, b]
        for t in range(1, L):
            alpha = _lse(alpha[:, None] + trans, axis=0) + em[t, b]
        logz = _lse(alpha + end)
        nll[b] = logz - ref_path_score(em[:L, b], list(tags[:L, b]), trans, start, end)
    return nll


def ref_token_xent(logits, lengths, tags):
    """(nll (T, B), probs (T, B, K)) of a per-token softmax within lengths (0 past them; a tag
    of -1: probabilities and no loss)."""
    z = np.asarray(logits, np.float64)
    T, B, K = z.shape
    nll, probs = np.zeros((T, B)), np.zeros((T, B, K))
    for b in range(B):
        for t in range(min(lengths[b], T)):
            lse = _lse(z[t, b])
            probs[t, b] = np.exp(z[t, b] - lse)
            if tags[t, b] >= 0:
                nll[t, b] = lse - z[t, b, tags[t, b]]
    return nll, probs


def ref_tagger_scores(p, cfg, sentences):
    """Per-token tag scores [(L, K)] of the tagger (rnn_cli/tasks/tag/model.py), one sentence and
    one word at a time: sentences [(word ids (L,), [character ids of each token])]; p {name:
    array}, cfg a TagConfig. Each word's character vector is its own run of the character
    encoder twin (no sharing between tokens, no batch)."""
    from reference_tasks import ref_encoder

    out = []
    for words, chars in sentences:
        parts = [np.asarray(p["emb"], np.float64)[np.asarray(words)]]
        if cfg.char_hidden:
            vecs = []
            for c in chars:
                e = np.asarray(p["char_emb"], np.float64)[np.asarray(c)][:, None, :]
                _, fh, _ = ref_encoder(p, cfg.cell, cfg.char_hidden, 1, True, e, [len(c)],
                                       act=cfg.activation, prefix="char.")
                vecs.append(np.concatenate([fh[0, 0, 0], fh[0, 1, 0]]))
            parts.append(np.array(vecs))
        x = np.concatenate(parts, axis=1)[:, None, :]
        h, _, _ = ref_encoder(p, cfg.cell, cfg.hidden, cfg.layers, cfg.bidirectional, x,
                              [len(words)], act=cfg.activation)
        out.append(h[:, 0] @ np.asarray(p["out.W"], np.float64).T + p["out.b"])
    return out
