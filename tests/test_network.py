"""`Network` (kernels + BLAS) against the float64 reference network and finite differences.

Gradient check (STYLE §3.4.2): central differences of `ref_window_loss` on every parameter element,
for tanh and relu, one and two layers, a full and a shorter window, zero and carried state.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

import reference as ref
from conftest import (B, FD_EPS, FD_MAX_REL_ERR, FD_MEAN_REL_ERR, FLOAT32_ATOL, FLOAT32_RTOL,
                      FLOAT64_ATOL, FLOAT64_RTOL, SERIAL_PARALLEL_RTOL, H, T, V, tol)
from rnn_cli.config import ModelConfig
from rnn_cli.params import Params
from rnn_cli.tasks.lm.network import Network, sequence_nll

PARAM_NAMES = ("W_ax", "W_ax_up", "W_aa", "b_a", "W_ya", "b_y")


def make_params(act: str, layers: int, seed: int = 0, dtype=np.float64) -> Params:
    cfg = ModelConfig(activation=act, hidden=H, layers=layers, vocab_size=V).validate()
    rng = np.random.default_rng(seed)
    p = Params(cfg, np.float64).init(rng)
    # non-zero biases so their use in the forward pass is checked too; relu: keep units alive
    p.b_a[...] = rng.uniform(-0.3, 0.3, p.b_a.shape) if act == "tanh" else rng.uniform(
        0.05, 0.4, p.b_a.shape)
    p.b_y[...] = rng.normal(0.0, 0.3, p.b_y.shape)
    return p.copy(dtype)


def make_window(rng, steps: int, batch: int = B):
    x = rng.integers(0, V, (steps, batch)).astype(np.int32)
    y = rng.integers(0, V, (steps, batch)).astype(np.int32)
    x[0, min(1, batch - 1)] = -1  # the zero vector input (start of a stream)
    y[-1, batch - 1] = -1  # a position that is not scored
    return x, y


def make_state(rng, act: str, layers: int, batch: int = B):
    if act == "tanh":
        return rng.uniform(-0.9, 0.9, (layers, batch, H))
    return rng.uniform(0.0, 0.9, (layers, batch, H))


def central_differences(p: Params, loss) -> np.ndarray:
    """d loss / d p.flat[i] for every i, perturbing the flat buffer (the views follow)."""
    g = np.zeros(len(p))
    for i in range(len(p)):
        keep = p.flat[i]
        p.flat[i] = keep + FD_EPS
        up = loss()
        p.flat[i] = keep - FD_EPS
        down = loss()
        p.flat[i] = keep
        g[i] = (up - down) / (2.0 * FD_EPS)
    return g


def relative_errors(analytic, numeric, floor=1e-8):
    return np.abs(analytic - numeric) / np.maximum(np.abs(analytic) + np.abs(numeric), floor)


def run_window(net: Network, grads: Params, x, y, state, scale=1.0):
    net.state[...] = state
    loss = net.forward(x, y)
    grads.flat[...] = np.nan  # backward must overwrite every element
    net.backward(grads, x, y, scale)
    return loss


# -------------------------------------------------------------------------------- gradient check


@pytest.mark.parametrize("act", ["tanh", "relu"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("window", ["full", "short"])
@pytest.mark.parametrize("carried", [False, True], ids=["zero-state", "carried-state"])
def test_window_matches_reference_and_finite_differences(act, layers, window, carried):
    rng = np.random.default_rng(100 + 10 * layers + (act == "relu"))
    p = make_params(act, layers, seed=layers)
    net = Network(p, batch=B, steps=T)
    if window == "short":  # leave stale values in every buffer beyond the short window
        xf, yf = make_window(rng, T)
        net.forward(xf, yf)
        net.backward(p.zeros_like(), xf, yf, 1.0)
    steps = T if window == "full" else T - 2
    x, y = make_window(rng, steps)
    state = make_state(rng, act, layers) if carried else np.zeros((layers, B, H))

    grads = p.zeros_like()
    loss = run_window(net, grads, x, y, state)

    fw = ref.ref_window_forward(p, x, y, state, act)
    if act == "relu":  # finite differences must not cross a kink of max(z, 0)
        # (perturbing one parameter by FD_EPS moves a pre-activation by about FD_EPS * |input|)
        assert min(np.abs(z).min() for z in fw["z"]) > 10 * FD_EPS
    assert_allclose(loss, fw["loss"], rtol=FLOAT64_RTOL)
    assert_allclose(net.nll[:steps * B].reshape(steps, B), fw["nll"], rtol=FLOAT64_RTOL,
                    atol=FLOAT64_ATOL)
    assert_allclose(net.state, fw["state"], rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)

    expect = ref.ref_window_grads(p, x, y, state, act)
    for name in PARAM_NAMES:
        assert_allclose(grads.views[name], expect[name], rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL,
                        err_msg=name)

    numeric = central_differences(p, lambda: ref.ref_window_loss(p, x, y, state, act))
    err = relative_errors(grads.flat, numeric)
    assert np.all(np.isfinite(grads.flat))
    assert err.max() < FD_MAX_REL_ERR, (err.max(), int(err.argmax()))
    assert err.mean() < FD_MEAN_REL_ERR, err.mean()
    assert np.abs(numeric).max() > 1e-2  # the check compared something


def test_backward_scale_is_linear_and_repeatable():
    """Gradients scale with `scale`; forward+backward again gives bit-identical gradients
    (backward overwrites, never accumulates; it consumes the logits, so it needs a forward)."""
    rng = np.random.default_rng(3)
    p = make_params("tanh", 2)
    net = Network(p, batch=B, steps=T)
    x, y = make_window(rng, T)
    state = make_state(rng, "tanh", 2)
    g1, g2, g3 = p.zeros_like(), p.zeros_like(), p.zeros_like()
    run_window(net, g1, x, y, state, 1.0)
    run_window(net, g2, x, y, state, 1.0 / (T * B))
    run_window(net, g3, x, y, state, 1.0 / (T * B))
    assert_allclose(g2.flat, g1.flat / (T * B), rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)
    assert_allclose(g3.flat, g2.flat, rtol=0, atol=0)


def test_forward_without_targets_advances_state():
    rng = np.random.default_rng(4)
    p = make_params("tanh", 2)
    net = Network(p, batch=B, steps=T)
    x, y = make_window(rng, T)
    state = make_state(rng, "tanh", 2)
    net.state[...] = state
    assert net.forward(x) == 0.0
    fw = ref.ref_window_forward(p, x, y, state, "tanh")
    assert_allclose(net.state, fw["state"], rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)
    assert_allclose(net.logits[:T * B], fw["logits"].reshape(T * B, V), rtol=FLOAT64_RTOL,
                    atol=FLOAT64_ATOL)
    net.reset_state()
    assert not net.state.any()


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_float32_network_matches_float64_reference(act):
    rng = np.random.default_rng(5)
    p = make_params(act, 2, dtype=np.float32)
    net = Network(p, batch=B, steps=T)
    x, y = make_window(rng, T)
    state = make_state(rng, act, 2).astype(np.float32)
    grads = p.zeros_like()
    loss = run_window(net, grads, x, y, state, 1.0)
    assert grads.flat.dtype == np.float32
    assert_allclose(loss, ref.ref_window_loss(p, x, y, state, act), **tol(np.float32, "network"))
    expect = ref.ref_window_grads(p, x, y, state, act)
    scale = max(np.abs(v).max() for v in expect.values() if v.size)
    for name in PARAM_NAMES:  # absolute tolerance relative to the largest gradient
        assert_allclose(grads.views[name], expect[name], rtol=FLOAT32_RTOL["network"],
                        atol=FLOAT32_ATOL["network"] * scale, err_msg=name)


# ------------------------------------------------------------------------------------ parallel


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_parallel_equals_serial_network(dtype, act):
    rng = np.random.default_rng(6)
    p = make_params(act, 2, dtype=dtype)
    x, y = make_window(rng, T)
    state = make_state(rng, act, 2).astype(dtype)
    results = []
    for parallel in (True, False):
        net = Network(p, batch=B, steps=T, parallel=parallel)
        grads = p.zeros_like()
        loss = run_window(net, grads, x, y, state, 1.0 / (T * B))
        results.append((loss, grads.flat.copy(), net.state.copy()))
    (l_par, g_par, s_par), (l_ser, g_ser, s_ser) = results
    if dtype == np.float64:
        kw = {"rtol": SERIAL_PARALLEL_RTOL, "atol": 1e-15}
    else:
        kw = {"rtol": FLOAT32_RTOL["parallel"], "atol": FLOAT32_ATOL["parallel"]}
    assert_allclose(l_par, l_ser, **kw)
    assert_allclose(g_par, g_ser, **kw)
    assert_allclose(s_par, s_ser, **kw)


# ------------------------------------------------------------------------------------ sequence_nll


def ref_sequence_nll(p: Params, ids, start_id, act):
    """Token by token with the reference step: per-token -log P(ids[i] | start, ids[:i])."""
    v = p.views
    a = np.zeros((p.cfg.layers, H))
    prev, out = start_id, []
    for tok in ids:
        a = ref.ref_rnn_step(a, prev, v["W_ax"], v["W_ax_up"], v["W_aa"], v["b_a"], act)
        logits = ref.ref_output_logits(a[-1], v["W_ya"], v["b_y"])
        out.append(ref.ref_softmax_xent_forward(logits[None, :], np.array([tok]))[0][0])
        prev = tok
    return np.array(out)


@pytest.mark.parametrize("act,layers", [("tanh", 1), ("tanh", 2), ("relu", 2)])
@pytest.mark.parametrize("start_id", [-1, 0])
def test_sequence_nll_is_independent_of_window_length(act, layers, start_id):
    rng = np.random.default_rng(7)
    p = make_params(act, layers)
    ids = rng.integers(0, V, 20).astype(np.int32)
    expect = ref_sequence_nll(p, ids, start_id, act)
    totals = []
    for steps in (1, 3, 50):
        net = Network(p, batch=1, steps=steps)
        net.state[...] = 0.5  # reset=True must clear a stale state
        out = np.full(ids.shape[0], np.nan)
        totals.append(sequence_nll(net, ids, start_id, out))
        assert_allclose(out, expect, rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)
    assert_allclose(totals, expect.sum(), rtol=FLOAT64_RTOL)
    assert_allclose(totals[1:], totals[0], rtol=1e-12)
    # and equals the window reference on one window [start, ids[:-1]] -> ids
    x = np.concatenate([[start_id], ids[:-1]]).astype(np.int32)[:, None]
    state = np.zeros((layers, 1, H))
    assert_allclose(totals[0], ref.ref_window_loss(p, x, ids[:, None], state, act),
                    rtol=FLOAT64_RTOL)


def test_sequence_nll_without_reset_continues_the_state():
    rng = np.random.default_rng(8)
    p = make_params("tanh", 2)
    ids = rng.integers(0, V, 12).astype(np.int32)
    net = Network(p, batch=1, steps=5)
    whole = sequence_nll(net, ids, -1)
    first = sequence_nll(net, ids[:7], -1)
    rest = sequence_nll(net, ids[7:], int(ids[6]), reset=False)
    assert_allclose(first + rest, whole, rtol=1e-12)
