"""The per-token softmax cross-entropy of the tagger (`kernels/token_softmax.py`, float64):
against its NumPy twin (`tests/reference_tag.py`), its gradient against central finite
differences of the mean over real tokens, padding (NaN logits past each length: never read) and untagged tokens
(-1: probabilities, no loss), in place, and compiled == `.py_func`."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

import reference_tag as ref
from conftest import (FD_EPS, FD_MAX_REL_ERR, FD_MEAN_REL_ERR, FLOAT64_ATOL, FLOAT64_RTOL,
                      requires_jit)
from rnn_cli.kernels import token_softmax as ts

K = 4


def case(rng, lengths=(4, 1, 3, 0)):
    lengths = np.array(lengths, np.int32)
    T, B = int(lengths.max()), lengths.shape[0]
    logits = rng.normal(0, 2, (T, B, K))
    tags = rng.integers(0, K, (T, B)).astype(np.int32)
    tags[1, 0] = -1  # a token without gold
    for b, L in enumerate(lengths):
        logits[L:, b] = np.nan
        tags[L:, b] = 99
    return logits, lengths, tags


def forward(logits, lengths, tags, in_place=False):
    nll = np.full(logits.shape[:2], np.nan)
    probs = logits if in_place else np.full_like(logits, np.nan)
    total = ts.token_xent_forward(nll, probs, logits, lengths, tags)
    return total, nll, probs


def test_forward_matches_reference(rng):
    logits, lengths, tags = case(rng)
    total, nll, probs = forward(logits, lengths, tags)
    want_nll, want_probs = ref.ref_token_xent(logits, lengths, tags)
    assert_allclose(nll, want_nll, rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)
    assert_allclose(probs, want_probs, rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)
    assert_allclose(total, want_nll.sum(), rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)
    assert nll[1, 0] == 0.0 and probs[1, 0].sum() == pytest.approx(1.0, rel=1e-6)
    for b, L in enumerate(lengths):
        assert not probs[L:, b].any() and not nll[L:, b].any()
    _, nll2, probs2 = forward(logits.copy(), lengths, tags, in_place=True)
    assert_allclose(nll2, nll, rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)
    assert_allclose(probs2, probs, rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)


def test_backward_matches_finite_differences_of_the_mean(rng):
    logits, lengths, tags = case(rng)
    scored = sum(int((tags[:L, b] >= 0).sum()) for b, L in enumerate(lengths))
    scale = 1.0 / scored
    _, _, probs = forward(logits, lengths, tags)
    dlogits = np.full_like(logits, np.nan)
    ts.token_xent_backward(dlogits, probs, lengths, tags, scale)
    for b, L in enumerate(lengths):
        assert not dlogits[L:, b].any(), "padding must get exactly zero gradient"
    assert not dlogits[1, 0].any()  # no gold, no gradient

    def loss():
        return scale * ref.ref_token_xent(logits, lengths, tags)[0].sum()

    analytic, numeric = [], []
    for idx in np.ndindex(*logits.shape):
        if idx[0] >= lengths[idx[1]]:
            continue
        keep = logits[idx]
        logits[idx] = keep + FD_EPS
        up = loss()
        logits[idx] = keep - FD_EPS
        down = loss()
        logits[idx] = keep
        numeric.append((up - down) / (2 * FD_EPS))
        analytic.append(dlogits[idx])
    analytic, numeric = np.array(analytic), np.array(numeric)
    err = np.abs(analytic - numeric) / np.maximum(np.abs(analytic) + np.abs(numeric), 1e-4)
    assert err.max() < FD_MAX_REL_ERR and err.mean() < FD_MEAN_REL_ERR, (err.max(), err.mean())
    ts.token_xent_backward(probs, probs, lengths, tags, scale)  # in place: the same numbers
    assert_allclose(probs, dlogits, rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)


def test_huge_logits_stay_finite(rng):
    logits, lengths, tags = case(rng)
    logits *= 1e4
    total, nll, probs = forward(logits, lengths, tags)
    assert np.isfinite(total) and np.all(np.isfinite(nll)) and np.all(np.isfinite(probs))


@requires_jit
@pytest.mark.parametrize("name", ["token_xent_forward", "token_xent_backward"])
def test_compiled_equals_py_func(rng, name):
    logits, lengths, tags = case(rng)
    _, _, probs = forward(logits, lengths, tags)
    outs = []
    for f in (getattr(ts, name), getattr(ts, name).py_func):
        if name == "token_xent_forward":
            bufs = (np.zeros(logits.shape[:2]), np.zeros_like(logits), logits, lengths, tags)
            ret = f(*bufs)
            outs.append(np.concatenate([bufs[0].ravel(), bufs[1].ravel(), [ret]]))
        else:
            out = np.zeros_like(probs)
            f(out, probs, lengths, tags, 0.25)
            outs.append(out.ravel())
    assert_allclose(outs[0], outs[1], rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)
