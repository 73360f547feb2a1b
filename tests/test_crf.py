"""The CRF kernels (`kernels/crf.py`, float64 only): log Z, marginals and Viterbi against
brute-force enumeration of every tag sequence (K 3, T <= 4), the NLL against the forward
recursion (`tests/reference_tag.py`), every gradient against central finite differences,
constrained decoding (forbidden transitions) against a brute-force search over the allowed paths
only, and compiled == `.py_func`. Padded steps are NaN in every test: a kernel that reads one
fails."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

import reference_tag as ref
from conftest import (FD_EPS, FD_MAX_REL_ERR, FD_MEAN_REL_ERR, FLOAT64_ATOL, FLOAT64_RTOL,
                      requires_jit)
from rnn_cli.kernels import crf

NEG = -1e30  # a forbidden transition, as the tagger's masks write it
LENGTHS = [4, 1, 3, 0, 2]  # a lane of every kind: full, one token, ragged, empty


def case(rng, lengths=LENGTHS, K=3):
    """(emissions, lengths, tags, trans, start, end): NaN emissions and tag 99 past each length."""
    lengths = np.array(lengths, np.int32)
    T, B = int(lengths.max()), lengths.shape[0]
    em = rng.normal(0, 1.5, (T, B, K))
    tags = rng.integers(0, K, (T, B)).astype(np.int32)
    for b, L in enumerate(lengths):
        em[L:, b] = np.nan
        tags[L:, b] = 99
    trans, start, end = rng.normal(0, 1, (K, K)), rng.normal(0, 1, K), rng.normal(0, 1, K)
    return em, lengths, tags, trans, start, end


def nll_forward(em, lengths, tags, trans, start, end):
    T, B, K = em.shape
    nll, logz, alpha = np.zeros(B), np.zeros(B), np.zeros((T, B, K))
    total = crf.crf_nll_forward(nll, logz, alpha, em, lengths, tags, trans, start, end)
    return total, nll, logz, alpha


def nll_backward(em, lengths, tags, trans, start, end, scale):
    T, B, K = em.shape
    _, _, logz, alpha = nll_forward(em, lengths, tags, trans, start, end)
    dem = np.full_like(em, np.nan)  # written everywhere, padding included
    dtrans, dstart, dend = np.ones((K, K)), np.ones(K), np.ones(K)  # accumulated into
    crf.crf_nll_backward(dem, dtrans, dstart, dend, np.zeros((B, K, K)), np.zeros((T, B, K)),
                         alpha, logz, em, lengths, tags, trans, end, scale)
    return dem, dtrans - 1.0, dstart - 1.0, dend - 1.0


def marginals(em, lengths, trans, start, end):
    """(P(y_t = j) (T, B, K), log Z (B,)): forward and backward on lanes without gold."""
    no_gold = np.full(em.shape[:2], -1, np.int32)
    _, nll, logz, _ = nll_forward(em, lengths, no_gold, trans, start, end)
    assert not nll.any()
    dem, dtrans, dstart, dend = nll_backward(em, lengths, no_gold, trans, start, end, 1.0)
    assert not dtrans.any() and not dstart.any() and not dend.any()
    return dem, logz


def test_log_partition_equals_brute_force(rng):
    em, lengths, tags, trans, start, end = case(rng)
    total, nll, logz, _ = nll_forward(em, lengths, tags, trans, start, end)
    for b, L in enumerate(lengths):
        want = ref.ref_crf_logz_brute(em[:L, b], trans, start, end) if L else 0.0
        assert_allclose(logz[b], want, rtol=FLOAT64_RTOL)
    want = ref.ref_crf_nll(em, lengths, tags, trans, start, end)
    assert_allclose(nll, want, rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)
    assert nll[lengths == 0] == 0.0 and np.all(nll[lengths > 0] > 0)  # -log P(gold) > 0
    assert_allclose(total, want.sum(), rtol=FLOAT64_RTOL)
    tags[0, 2] = -1  # a lane with a tag the model never saw: log Z only
    _, nll2, logz2, _ = nll_forward(em, lengths, tags, trans, start, end)
    assert nll2[2] == 0.0 and logz2[2] == logz[2] and np.array_equal(nll2[[0, 1, 4]], nll[[0, 1, 4]])


def test_nll_matches_the_forward_recursion_on_larger_sizes(rng):
    em, lengths, tags, trans, start, end = case(rng, [9, 2, 6, 1], K=7)
    total, nll, _, _ = nll_forward(em, lengths, tags, trans, start, end)
    assert_allclose(nll, ref.ref_crf_nll(em, lengths, tags, trans, start, end),
                    rtol=FLOAT64_RTOL)


def test_gradients_match_finite_differences(rng):
    em, lengths, tags, trans, start, end = case(rng)
    scale = 0.5
    dem, dtrans, dstart, dend = nll_backward(em, lengths, tags, trans, start, end, scale)
    for b, L in enumerate(lengths):
        assert not dem[L:, b].any(), "padding must get exactly zero gradient"

    def loss():
        return scale * ref.ref_crf_nll(em, lengths, tags, trans, start, end).sum()

    analytic, numeric = [], []
    for arr, grad in ((em, dem), (trans, dtrans), (start, dstart), (end, dend)):
        for idx in np.ndindex(*arr.shape):
            if arr is em and idx[0] >= lengths[idx[1]]:
                continue
            keep = arr[idx]
            arr[idx] = keep + FD_EPS
            up = loss()
            arr[idx] = keep - FD_EPS
            down = loss()
            arr[idx] = keep
            numeric.append((up - down) / (2 * FD_EPS))
            analytic.append(grad[idx])
    analytic, numeric = np.array(analytic), np.array(numeric)
    err = np.abs(analytic - numeric) / np.maximum(np.abs(analytic) + np.abs(numeric), 1e-4)
    assert err.max() < FD_MAX_REL_ERR, (err.max(), int(err.argmax()))
    assert err.mean() < FD_MEAN_REL_ERR, err.mean()
    # expected minus observed: every emission row of a real token sums to 0
    for b, L in enumerate(lengths):
        assert_allclose(dem[:L, b].sum(axis=-1), 0.0, atol=1e-12)


def test_marginals_equal_brute_force(rng):
    em, lengths, _, trans, start, end = case(rng)
    marg, logz = marginals(em, lengths, trans, start, end)
    for b, L in enumerate(lengths):
        assert not marg[L:, b].any()
        if L:
            node, _ = ref.ref_crf_marginals_brute(em[:L, b], trans, start, end)
            assert_allclose(marg[:L, b], node, rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)
            assert_allclose(logz[b], ref.ref_crf_logz_brute(em[:L, b], trans, start, end),
                            rtol=FLOAT64_RTOL)
            assert_allclose(marg[:L, b].sum(axis=-1), 1.0, rtol=FLOAT64_RTOL)


def viterbi(em, lengths, trans, start, end):
    T, B, K = em.shape
    path, score = np.zeros((T, B), np.int32), np.zeros(B)
    crf.viterbi_decode(path, score, np.zeros((T, B, K)), np.zeros((T, B, K), np.int32), em,
                       lengths, trans, start, end)
    return path, score


def test_viterbi_equals_brute_force(rng):
    for _ in range(4):
        em, lengths, _, trans, start, end = case(rng)
        path, score = viterbi(em, lengths, trans, start, end)
        for b, L in enumerate(lengths):
            assert np.all(path[L:, b] == -1)
            if L:
                want, want_score = ref.ref_viterbi_brute(em[:L, b], trans, start, end)
                assert path[:L, b].tolist() == want
                assert_allclose(score[b], want_score, rtol=FLOAT64_RTOL)


# Tags O, B-A, I-A, B-B, I-B: I-X only after B-X or I-X, and never first (BIO).
BIO = ["O", "B-A", "I-A", "B-B", "I-B"]


def bio_mask():
    K = len(BIO)
    trans, start = np.zeros((K, K)), np.zeros(K)
    for j, tag in enumerate(BIO):
        if tag.startswith("I-"):
            start[j] = NEG
            for i, prev in enumerate(BIO):
                if prev[2:] != tag[2:]:
                    trans[i, j] = NEG
    return trans, start, np.zeros(K)


def bio_valid(path):
    prev = "O"
    for y in path:
        tag = BIO[y]
        if tag.startswith("I-") and prev[2:] != tag[2:]:
            return False
        prev = tag
    return True


def test_constrained_viterbi_over_softmax_outputs_never_emits_invalid_bio(rng):
    trans, start, end = bio_mask()
    lengths = np.array([4, 3, 1, 4], np.int32)
    for _ in range(5):
        logits = rng.normal(0, 1, (4, 4, len(BIO)))
        logits[..., [2, 4]] += 1.5  # the unconstrained argmax is full of invalid I- tags
        logp = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
        path, score = viterbi(logp, lengths, trans, start, end)
        for b, L in enumerate(lengths):
            assert bio_valid(path[:L, b])
            want, want_score = ref.ref_viterbi_brute(logp[:L, b], trans, start, end, bio_valid)
            assert path[:L, b].tolist() == want
            assert_allclose(score[b], want_score, rtol=FLOAT64_RTOL)
        assert np.array_equal(viterbi(logits, lengths, trans, start, end)[0], path)


def test_forbidden_transitions_have_probability_zero(rng):
    mask_trans, mask_start, _ = bio_mask()
    em, lengths, _, trans, start, end = case(rng, [4, 2], K=len(BIO))
    trans, start = trans + mask_trans, start + mask_start
    T, B, K = em.shape
    marg, logz = marginals(em, lengths, trans, start, end)
    assert not marg[0, :, [2, 4]].any()  # no sentence starts with I-
    for b, L in enumerate(lengths):
        scores = [s for p, s in ref.ref_all_paths(em[:L, b], trans, start, end) if bio_valid(p)]
        assert_allclose(logz[b], ref._lse(scores), rtol=FLOAT64_RTOL)
    tags = np.zeros((T, B), np.int32)  # an all-O gold: the gradient of a forbidden entry is 0
    _, dtrans, dstart, _ = nll_backward(em, lengths, tags, trans, start, end, 1.0)
    assert not dtrans[mask_trans < 0].any() and not dstart[mask_start < 0].any()


@requires_jit
@pytest.mark.parametrize("name", ["crf_nll_forward", "crf_nll_backward", "viterbi_decode"])
def test_compiled_equals_py_func(rng, name):
    em, lengths, tags, trans, start, end = case(rng)
    T, B, K = em.shape
    _, _, logz, alpha = nll_forward(em, lengths, tags, trans, start, end)
    outs = []
    for f in (getattr(crf, name), getattr(crf, name).py_func):
        bufs = {
            "crf_nll_forward": lambda: (np.zeros(B), np.zeros(B), np.zeros((T, B, K)), em,
                                        lengths, tags, trans, start, end),
            "crf_nll_backward": lambda: (np.zeros((T, B, K)), np.zeros((K, K)), np.zeros(K),
                                         np.zeros(K), np.zeros((B, K, K)), np.zeros((T, B, K)),
                                         alpha, logz, em, lengths, tags, trans, end, 0.5),
            "viterbi_decode": lambda: (np.zeros((T, B), np.int32), np.zeros(B),
                                       np.zeros((T, B, K)), np.zeros((T, B, K), np.int32), em,
                                       lengths, trans, start, end),
        }[name]()
        ret = f(*bufs)
        n_out = {"crf_nll_forward": 3, "crf_nll_backward": 4, "viterbi_decode": 2}[name]
        outs.append(np.concatenate([np.nan_to_num(np.ravel(a)) for a in bufs[:n_out]]
                                   + [np.ravel(ret if ret is not None else [])]))
    assert_allclose(outs[0], outs[1], rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)
