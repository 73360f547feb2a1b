"""The attentional decoder (kernels/decoder.py through tasks/translate/decoder.py): loss and
attention against the float64 twin in tests/reference_seq2seq.py, every parameter's gradient and
the encoder's by central finite differences, ragged lengths, serial = parallel, float32."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import reference_seq2seq as ref
from conftest import FD_EPS, NOJIT, SERIAL_PARALLEL_RTOL, requires_jit, tol
from rnn_cli.kernels import _jit
from rnn_cli.kernels import decoder as dk
from rnn_cli.tasks.translate.decoder import Decoder

S, B, T, H, E, A, V, DF = 4, 3, 4, 3, 2, 3, 5, 4
SRC_LEN = np.array([4, 2, 3], np.int32)
TGT_LEN = [4, 1, 3]
VARIANTS = [(c, k) for c in ("gru", "lstm") for k in ("none", "dot", "general", "additive")]
IDS = [f"{c}-{k}" for c, k in VARIANTS]
# FD step for the whole decoder (gated cells; see test_cells.FD_EPS_GATED)
FD_STEP = 10 * FD_EPS


def make(cell, kind, seed=0, dtype=np.float64, **out):
    rng = np.random.default_rng(seed)
    D = H if kind == "dot" else 4
    dec = Decoder(cell, kind, H, E, D, A, V, DF, dtype=dtype, **out)
    params = {k: rng.normal(0, 0.5, shape).astype(dtype) for k, shape in dec.shapes().items()}
    enc = rng.normal(0, 1, (S, B, D))
    for b, n in enumerate(SRC_LEN):
        enc[n:, b] = 0.0
    fin = rng.normal(0, 1, (B, DF))
    y_out = rng.integers(0, V, (T, B)).astype(np.int32)
    y_in = np.vstack([np.full((1, B), 1), y_out[:-1]]).astype(np.int32)  # 1 plays <EOS>
    for b, n in enumerate(TGT_LEN):
        y_out[n:, b] = -1
        y_in[n:, b] = -1
    return dec, params, enc.astype(dtype), fin.astype(dtype), y_in, y_out


def run(dec, params, enc, fin, y_in, y_out, mask=None):
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    loss = dec.forward(params, enc, SRC_LEN, fin, y_in, y_out, mask)
    denc, dfin = dec.backward(params, grads)
    return loss, grads, denc.copy(), dfin.copy()


@pytest.mark.parametrize("cell,kind", VARIANTS, ids=IDS)
def test_loss_and_attention_match_reference(cell, kind, dtype):
    dec, params, enc, fin, y_in, y_out = make(cell, kind, dtype=dtype)
    loss = dec.forward(params, enc, SRC_LEN, fin, y_in, y_out)
    want, logits, alpha = ref.ref_decoder_loss(cell, kind, enc, SRC_LEN, fin, y_in, y_out, params)
    assert loss == pytest.approx(want, **{"rel": tol(dtype, "network")["rtol"]})
    real = y_out >= 0
    got = dec.buf.get("logits", (int(real.sum()), V))  # the real positions' rows, in (t, b) order
    assert_allclose(got, logits[real], **tol(dtype, "network"))
    got_alpha = dec.buf.get("alpha", (T, B, S))
    assert_allclose(got_alpha, alpha, **tol(dtype, "network"))
    assert not got_alpha[~real].any()  # past a target's end: no attention


def _fd_coords(x, rng):
    """Every coordinate (compiled), or three of each block (JIT off: the loss runs as Python)."""
    idx = list(np.ndindex(*x.shape))
    if NOJIT and len(idx) > 3:
        idx = [idx[i] for i in rng.choice(len(idx), 3, replace=False)]
    return idx


@pytest.mark.parametrize("cell,kind", VARIANTS, ids=IDS)
def test_gradients_match_finite_differences(cell, kind):
    dec, params, enc, fin, y_in, y_out = make(cell, kind)
    rng = np.random.default_rng(1)
    mask = rng.choice([0.0, 2.0], (T, B, E)) if kind == "additive" else None  # dropout too
    _, grads, denc, dfin = run(dec, params, enc, fin, y_in, y_out, mask)
    grads = grads | {"enc": denc, "fin": dfin}
    wrt = params | {"enc": enc, "fin": fin}
    for name, x in wrt.items():
        for i in _fd_coords(x, rng):
            if name == "enc" and i[0] >= SRC_LEN[i[1]]:
                continue  # padding: checked below to get exactly nothing
            keep = x[i]
            x[i] = keep + FD_STEP
            up = dec.forward(params, enc, SRC_LEN, fin, y_in, y_out, mask)
            x[i] = keep - FD_STEP
            down = dec.forward(params, enc, SRC_LEN, fin, y_in, y_out, mask)
            x[i] = keep
            numeric = (up - down) / (2 * FD_STEP)
            assert grads[name][i] == pytest.approx(numeric, rel=1e-5, abs=1e-8), (name, i)


@pytest.mark.parametrize("cell,kind", [("gru", "additive"), ("lstm", "general")])
def test_padding_never_enters_the_loss(cell, kind):
    """Junk in the encoder states past a source's end and any tokens past a target's end change
    nothing: not the loss, not a gradient; the padded states get exactly zero gradient."""
    dec, params, enc, fin, y_in, y_out = make(cell, kind)
    loss, grads, denc, dfin = run(dec, params, enc, fin, y_in, y_out)
    junk = enc.copy()
    for b, n in enumerate(SRC_LEN):
        junk[n:, b] = 7.0
    loss2, grads2, denc2, dfin2 = run(dec, params, junk, fin, y_in, y_out)
    assert loss2 == loss
    for k in grads:
        assert_array_equal(grads2[k], grads[k], err_msg=k)
    assert_array_equal(denc2, denc)
    for b, n in enumerate(SRC_LEN):
        assert not denc[n:, b].any()


@requires_jit
@pytest.mark.parametrize("cell,kind", [("gru", "additive"), ("lstm", "dot")])
def test_parallel_equals_serial(cell, kind):
    dec, params, enc, fin, y_in, y_out = make(cell, kind)
    outs = []
    for threads in (2, 1):
        old = _jit.get_threads()
        _jit.set_threads(threads)
        try:
            loss, grads, denc, dfin = run(dec, params, enc, fin, y_in, y_out)
        finally:
            _jit.set_threads(old)
        outs.append(np.concatenate([[loss], denc.ravel(), dfin.ravel()] +
                                   [grads[k].ravel() for k in sorted(grads)]))
    assert_allclose(outs[0], outs[1], rtol=SERIAL_PARALLEL_RTOL, atol=1e-14)


def test_float32_follows_float64():
    dec64, p64, enc, fin, y_in, y_out = make("gru", "additive")
    dec32 = Decoder("gru", "additive", H, E, enc.shape[2], A, V, DF, dtype=np.float32)
    p32 = {k: v.astype(np.float32) for k, v in p64.items()}
    l64, g64, d64, _ = run(dec64, {k: v.astype(np.float32).astype(np.float64)
                                   for k, v in p64.items()}, enc.astype(np.float32).astype(
        np.float64), fin.astype(np.float32).astype(np.float64), y_in, y_out)
    l32, g32, d32, _ = run(dec32, p32, enc.astype(np.float32), fin.astype(np.float32), y_in, y_out)
    assert l32 == pytest.approx(l64, rel=1e-5)
    for k in g64:
        assert_allclose(g32[k], g64[k], rtol=1e-3, atol=1e-5, err_msg=k)


# the output layer's variants: a projection of 3 units, one tied to the target embedding (P = E),
# with label smoothing and dropout on the projection
OUTPUTS = [dict(proj=3), dict(proj=E, tie=True, label_smoothing=0.1), dict(label_smoothing=0.2)]
OUT_IDS = ["proj", "tied-smoothed", "smoothed"]


@pytest.mark.parametrize("out", OUTPUTS, ids=OUT_IDS)
def test_output_variants_match_reference_and_finite_differences(out):
    dec, params, enc, fin, y_in, y_out = make("gru", "additive", **out)
    rng = np.random.default_rng(2)
    assert ("W_ya" in dec.shapes()) == (not out.get("tie"))
    om = rng.choice([0.0, 2.0], (T, B, dec.P)) if dec.P else None
    loss = dec.forward(params, enc, SRC_LEN, fin, y_in, y_out, None, om)
    want, logits, _ = ref.ref_decoder_loss("gru", "additive", enc, SRC_LEN, fin, y_in, y_out,
                                           params, eps=dec.eps, out_mask=om)
    assert loss == pytest.approx(want, rel=tol(np.float64)["rtol"])
    real = y_out >= 0
    got = dec.buf.get("logits", (int(real.sum()), V))
    assert_allclose(got, logits[real], **tol(np.float64))
    nll, _, _ = ref.ref_decoder_loss("gru", "additive", enc, SRC_LEN, fin, y_in, y_out, params,
                                     out_mask=om)
    assert dec.nll / dec.n_tokens == pytest.approx(nll, rel=1e-10)  # plain NLL kept
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    denc, dfin = dec.backward(params, grads)
    grads |= {"enc": denc.copy(), "fin": dfin.copy()}
    for name, x in (params | {"enc": enc, "fin": fin}).items():
        for i in _fd_coords(x, rng):
            if name == "enc" and i[0] >= SRC_LEN[i[1]]:
                continue
            keep = x[i]
            x[i] = keep + FD_STEP
            up = dec.forward(params, enc, SRC_LEN, fin, y_in, y_out, None, om)
            x[i] = keep - FD_STEP
            down = dec.forward(params, enc, SRC_LEN, fin, y_in, y_out, None, om)
            x[i] = keep
            numeric = (up - down) / (2 * FD_STEP)
            assert grads[name][i] == pytest.approx(numeric, rel=1e-5, abs=1e-8), (name, i)


def test_tied_output_needs_matching_sizes():
    with pytest.raises(ValueError, match="tied"):
        Decoder("gru", "additive", 3, 2, 4, 3, 5, 4, proj=3, tie=True)


def test_dot_attention_needs_equal_widths():
    with pytest.raises(ValueError, match="dot attention"):
        Decoder("gru", "dot", 3, 2, 4, 3, 5, 4)


def test_pgemm_rows_reads_and_writes_column_blocks(rng):
    big = rng.normal(0, 1, (6, 9))
    W = rng.normal(0, 1, (4, 3))
    out = np.zeros((6, 9))
    dk.pgemm_rows(out[:, 2:6], big[:, 5:8], W, False, True, 1.0, 0.0, 2)
    assert_allclose(out[:, 2:6], big[:, 5:8] @ W.T, rtol=1e-12)
    assert not out[:, :2].any() and not out[:, 6:].any()
    dW = np.ones((4, 3))
    dk.pgemm_rows(dW, out[:, 2:6], big[:, 5:8], True, False, 1.0, 1.0, 2)
    assert_allclose(dW, 1.0 + out[:, 2:6].T @ big[:, 5:8], rtol=1e-12)


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_smooth_xent_kernels_match_numpy(rng, dtype, eps):
    """The output loss kernels (kernels/smooth_xent.py) against numpy in float64: the biased
    logits, lse, nll, row means, and dLoss/dz with its column sums per chunk of rows."""
    from rnn_cli.kernels import smooth_xent as sx

    R, Vv, chunks = 7, 11, 3
    z0 = rng.normal(0, 3, (R, Vv))
    b = rng.normal(0, 1, Vv)
    y = rng.integers(0, Vv, R).astype(np.int32)
    z = (z0 + b).astype(dtype).astype(np.float64)
    logits = z0.astype(dtype)
    nll, lse, mean = np.zeros(R), np.zeros(R), np.zeros(R)
    total = sx.smooth_xent_forward(nll, lse, mean, logits, b.astype(dtype), y)
    want_lse = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
    assert_allclose(logits, z, **tol(dtype))
    assert_allclose(lse, want_lse, **tol(dtype))
    assert_allclose(nll, want_lse - z[np.arange(R), y], **tol(dtype))
    assert_allclose(mean, z.mean(1), **tol(dtype))
    assert total == pytest.approx(nll.sum(), rel=1e-12)
    scale = 1.0 / R
    p = np.exp(z - want_lse[:, None])
    onehot = np.eye(Vv)[y]
    want = scale * (p - (1 - eps) * onehot - eps / Vv)
    db = np.zeros((chunks, Vv), dtype)
    sx.smooth_xent_backward(logits, db, logits, lse, y, scale, eps, chunks)
    assert_allclose(logits, want, **tol(dtype))
    assert_allclose(db.sum(0), want.sum(0), **tol(dtype))
