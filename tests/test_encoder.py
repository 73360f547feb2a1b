"""The shared encoder (rnn_cli/encoder.py) and its ragged-copy kernels, against the float64 twin
(`tests/reference_tasks.py`: every example run on its own) and central finite differences of
every parameter and every input, on ragged lengths, stacked and bidirectional, every cell."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

import reference_tasks as reft
from conftest import (FD_EPS, FD_MAX_REL_ERR, FD_MEAN_REL_ERR, FLOAT64_ATOL, FLOAT64_RTOL,
                      SERIAL_PARALLEL_RTOL, requires_jit, tol)
from rnn_cli.encoder import Encoder, EncoderSpec
from rnn_cli.kernels import ragged
from rnn_cli.params import ParamSet

CELLS = ("rnn", "gru", "lstm")
H, D, T, B, L = 3, 2, 5, 4, 2
LENGTHS = np.array([5, 2, 4, 1], np.int32)  # ragged, not sorted, one full lane, one of 1 step
FD_EPS_GATED = 10 * FD_EPS  # as tests/test_cells.py: round-off bound at 1e-5 for gated cells


def make(cell, bidirectional=True, layers=L, dtype=np.float64, seed=0, act="tanh"):
    spec = EncoderSpec(cell, H, layers, D, bidirectional, act)
    p = ParamSet(spec.shapes(), np.float64)
    rng = np.random.default_rng(seed)
    spec.init(p, rng)
    p.flat[...] *= 2.0  # larger weights: the gates saturate a little
    return spec, p.copy(dtype)


def inputs(rng, dtype=np.float64, lengths=LENGTHS):
    x = rng.uniform(-1, 1, (T, len(lengths), D)).astype(dtype)
    return x, lengths


def central_differences(flat, loss, eps):
    g = np.zeros(flat.shape[0])
    for i in range(flat.shape[0]):
        keep = flat[i]
        flat[i] = keep + eps
        up = loss()
        flat[i] = keep - eps
        down = loss()
        flat[i] = keep
        g[i] = (up - down) / (2.0 * eps)
    return g


def relative_errors(analytic, numeric, floor=1e-4):
    return np.abs(analytic - numeric) / np.maximum(np.abs(analytic) + np.abs(numeric), floor)


# ------------------------------------------------------------------------------------ kernels
def test_reverse_within_and_copy_within(rng):
    x = rng.standard_normal((T, B, 3))
    out = np.full_like(x, np.nan)
    ragged.reverse_within(out, x, LENGTHS, False)
    back = np.full_like(x, np.nan)
    ragged.reverse_within(back, out, LENGTHS, False)
    for b, n in enumerate(LENGTHS):
        assert_allclose(out[:n, b], x[:n, b][::-1], rtol=0)
        assert not out[n:, b].any() and not back[n:, b].any()
        assert_allclose(back[:n, b], x[:n, b], rtol=0)
    acc = np.ones_like(x)
    ragged.reverse_within(acc, x, LENGTHS, True)
    assert_allclose(acc[:2, 1], 1 + x[:2, 1][::-1], rtol=0) and (acc[2:, 1] == 1).all()
    wide = np.full((T, B, 6), np.nan)  # a strided half of a wider array
    ragged.copy_within(wide[:, :, 3:], x, LENGTHS)
    assert np.isnan(wide[:, :, :3]).all()
    for b, n in enumerate(LENGTHS):
        assert_allclose(wide[:n, b, 3:], x[:n, b], rtol=0) and not wide[n:, b, 3:].any()


# ------------------------------------------------------------------------------------ encoder
@pytest.mark.parametrize("recurrence", ["gemm", "loops"])
@pytest.mark.parametrize("bidirectional", [True, False], ids=["bi", "uni"])
@pytest.mark.parametrize("cell", CELLS)
def test_forward_matches_reference(rng, cell, bidirectional, recurrence, dtype):
    spec, p = make(cell, bidirectional, dtype=dtype)
    x, lens = inputs(rng, dtype)
    enc = Encoder(spec, p, recurrence=recurrence)
    out = enc.forward(x, lens)
    r_out, r_fh, r_fc = reft.ref_encoder(p.views, cell, H, L, bidirectional, x, lens)
    assert out.shape == (T, B, spec.out_size)
    assert_allclose(out, r_out, **tol(dtype, "network"))
    assert_allclose(enc.final_h, r_fh, **tol(dtype, "network"))
    if cell == "lstm":
        assert_allclose(enc.final_c, r_fc, **tol(dtype, "network"))
    for b, n in enumerate(lens):
        assert not out[n:, b].any()  # exactly zero past each lane's end


def _loss_weights(rng, spec, batch=B):
    wo = rng.standard_normal((T, batch, spec.out_size))  # also non-zero past the ends
    wh = rng.standard_normal((L, spec.dirs, batch, H))
    wc = rng.standard_normal((L, spec.dirs, batch, H))
    return wo, wh, wc


def _ref_loss(p, spec, x, lens, wo, wh, wc, masks=None):
    out, fh, fc = reft.ref_encoder(p.views, spec.cell, H, L, spec.bidirectional, x, lens, masks,
                                   spec.activation)
    return (out * wo).sum() + (fh * wh).sum() + (fc * wc).sum()


@pytest.mark.parametrize("dropout", [False, True], ids=["", "dropout"])
@pytest.mark.parametrize("cell", CELLS)
def test_gradients_match_finite_differences(cell, dropout):
    """Every parameter and every input, through d_out, d_final_h and (LSTM) d_final_c."""
    rng = np.random.default_rng(len(cell) + dropout)
    spec, p = make(cell)
    x, lens = inputs(rng)
    wo, wh, wc = _loss_weights(rng, spec)
    if cell != "lstm":
        wc[...] = 0.0
    enc = Encoder(spec, p, dropout=0.5 if dropout else 0.0, recurrence="gemm")
    masks = enc.draw_masks(rng, T, B)
    masks = None if masks is None else [m.copy() for m in masks]
    enc.forward(x, lens, masks)
    grads = p.zeros_like()
    grads.flat[...] = np.nan  # backward must write every element
    dx = enc.backward(grads, wo, wh, wc if cell == "lstm" else None)
    assert np.isfinite(grads.flat).all()

    def loss():
        return _ref_loss(p, spec, x, lens, wo, wh, wc, masks)
    eps = FD_EPS if cell == "rnn" else FD_EPS_GATED
    err = relative_errors(grads.flat, central_differences(p.flat, loss, eps))
    assert err.max() < FD_MAX_REL_ERR, (err.max(), int(err.argmax()))
    assert err.mean() < FD_MEAN_REL_ERR, err.mean()
    num_dx = central_differences(x.reshape(-1), loss, eps).reshape(x.shape)
    for b, n in enumerate(lens):
        assert not dx[n:, b].any()  # padding carries exactly zero gradient
    err = relative_errors(dx.ravel(), num_dx.ravel())
    assert err.max() < FD_MAX_REL_ERR, (err.max(), int(err.argmax()))


@pytest.mark.parametrize("cell", CELLS)
def test_padding_never_reaches_the_gradients(rng, cell):
    """Values of d_out past the ends and of the inputs past the ends change nothing, bit for bit;
    the loop recurrences give the BLAS ones' numbers."""
    spec, p = make(cell)
    x, lens = inputs(rng)
    wo, wh, _ = _loss_weights(rng, spec)
    results = []
    for variant in range(3):
        xv, wov = x.copy(), wo.copy()
        if variant:
            for b, n in enumerate(lens):
                xv[n:, b], wov[n:, b] = 1e3 * variant, -7.0 * variant
        enc = Encoder(spec, p, recurrence="loops" if variant == 2 else "gemm")
        out = enc.forward(xv, lens).copy()
        g = p.zeros_like()
        dx = enc.backward(g, wov, wh).copy()
        results.append((out, g.flat.copy(), dx))
    for out, g, dx in results[1:2]:
        assert np.array_equal(out, results[0][0]) and np.array_equal(g, results[0][1])
        assert np.array_equal(dx, results[0][2])
    for a, b in zip(results[0], results[2]):
        assert_allclose(b, a, rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)


@pytest.mark.parametrize("recurrence", ["gemm", "loops"])
@pytest.mark.parametrize("cell", CELLS)
def test_training_on_folded_tables_equals_the_embedded_inputs(rng, cell, recurrence):
    """Layer 0 reading its input terms from tables folded from an embedding (`emb=`): the
    states, every block's gradient and d(emb) (the sum of d_inp over each id's positions) are
    those of the embedded inputs; ids past the ends are -1 (the padding row)."""
    spec, p = make(cell)
    V = 6
    emb = rng.uniform(-1, 1, (V, D))
    ids = rng.integers(0, V, (T, B)).astype(np.int32)
    for b, n in enumerate(LENGTHS):
        ids[n:, b] = -1
    wo, wh, wc = _loss_weights(rng, spec)
    fc = wc if cell == "lstm" else None
    enc = Encoder(spec, p, recurrence=recurrence)
    x = np.where(ids[:, :, None] >= 0, emb[ids], 0.0)
    want_out = enc.forward(x, LENGTHS).copy()
    want_h = enc.final_h.copy()
    want = p.zeros_like()
    dx = enc.backward(want, wo, wh, fc)
    want_demb = np.zeros_like(emb)
    for t in range(T):
        for b in range(B):
            if ids[t, b] >= 0:
                want_demb[ids[t, b]] += dx[t, b]
    got = p.zeros_like()
    got.flat[...] = np.nan  # backward must write every element
    out = enc.forward(None, LENGTHS, ids=ids, tables=enc.fold_tables(emb), emb=emb)
    assert_allclose(out, want_out, rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)
    assert_allclose(enc.final_h, want_h, rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)
    demb = enc.backward(got, wo, wh, fc)
    assert demb.shape == emb.shape
    assert_allclose(got.flat, want.flat, rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)
    assert_allclose(demb, want_demb, rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)
    # the rows' sums kept over two passes (as the tagger's character groups), finished once
    sums = [np.zeros((V, p[spec.names(0, d)["W_ax"]].shape[0])) for d in range(spec.dirs)]
    twice = p.zeros_like()
    for _ in range(2):
        enc.forward(None, LENGTHS, ids=ids, tables=enc.fold_tables(emb), emb=emb)
        assert enc.backward(got, wo, wh, fc, table_sums=sums) is None
        twice.flat[...] += got.flat
    demb = enc.table_finish(twice, sums, emb)
    assert_allclose(twice.flat, 2 * want.flat, rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)
    assert_allclose(demb, 2 * want_demb, rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)
    enc.forward(None, LENGTHS, ids=ids, tables=enc.fold_tables(emb))
    with pytest.raises(ValueError, match="folded"):
        enc.backward(got, wo)  # inference tables: no backward


@requires_jit
@pytest.mark.parametrize("cell", CELLS)
def test_parallel_equals_serial(rng, cell):
    spec, p = make(cell)
    x, lens = inputs(rng)
    wo, wh, wc = _loss_weights(rng, spec)
    got = []
    for parallel in (True, False):
        enc = Encoder(spec, p, parallel=parallel, recurrence="gemm")
        out = enc.forward(x, lens).copy()
        g = p.zeros_like()
        dx = enc.backward(g, wo, wh, wc if cell == "lstm" else None).copy()
        got.append((out, g.flat.copy(), dx))
    for a, b in zip(*got):
        assert_allclose(a, b, rtol=SERIAL_PARALLEL_RTOL, atol=FLOAT64_ATOL)


def test_buffers_grow_and_smaller_batches_reuse_them(rng):
    """A bigger batch after a smaller one, then the smaller again: the same numbers as fresh."""
    spec, p = make("gru")
    enc = Encoder(spec, p)
    small = (rng.uniform(-1, 1, (3, 2, D)), np.array([3, 1], np.int32))
    big = inputs(rng)
    first = enc.forward(*small).copy()
    enc.forward(*big)
    assert_allclose(enc.forward(*small), first, rtol=0)
    fresh = Encoder(spec, p)
    assert_allclose(fresh.forward(*big), enc.forward(*big), rtol=0)


def test_bad_shapes_are_refused(rng):
    spec, p = make("rnn", bidirectional=False)
    enc = Encoder(spec, p)
    x, lens = inputs(rng)
    for bad in (np.array([5, 0, 1, 1], np.int32), np.array([6, 1, 1, 1], np.int32)):
        with pytest.raises(ValueError):
            enc.forward(x, bad)
    with pytest.raises(ValueError):
        enc.forward(x[:, :, :1].copy(), lens)
    enc.forward(x, lens)
    with pytest.raises(ValueError):  # the rnn has no cell state
        enc.backward(p.zeros_like(), None, None, np.zeros((L, 1, B, H)))


def test_names_init_and_lr_scales():
    spec = EncoderSpec("gru", 4, 2, 3, True, prefix="char.")
    shapes = spec.shapes()
    assert list(shapes)[:5] == ["char.W_ax_l0", "char.W_aa_l0", "char.b_a_l0", "char.b_hn_l0",
                                "char.W_ax_l0_reverse"]
    assert shapes["char.W_ax_l1"] == (12, 8) and shapes["char.b_hn_l1_reverse"] == (4,)
    p = ParamSet(shapes)
    spec.init(p, np.random.default_rng(0))
    k = 0.5
    assert np.abs(p["char.W_aa_l1"]).max() <= k and np.abs(p["char.b_a_l0"][:8]).max() <= 2 * k
    assert np.abs(p["char.b_a_l0"][8:]).max() <= k  # the candidate's b_in alone
    assert spec.lr_scales()[0] == ("char.b_a_l0", 0, 8, 2.0) and len(spec.lr_scales()) == 4


def test_float32_matches_float64_reference(rng):
    spec, p = make("lstm", dtype=np.float32)
    x, lens = inputs(rng, np.float32)
    enc = Encoder(spec, p)
    out = enc.forward(x, lens)
    r_out, _, _ = reft.ref_encoder(p.views, "lstm", H, L, True, x, lens)
    assert_allclose(out, r_out, **tol(np.float32, "network"))
    assert out.dtype == np.float32
