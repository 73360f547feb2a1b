"""GRU and LSTM kernels, the embedding, dropout and weight tying, against the float64 references
(`tests/reference.py`) and central finite differences through the whole stacked network
(STYLE §3.4: equality with ref_ twins, gradient check on every parameter, serial == parallel,
compiled == .py_func)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

import reference as ref
import reference_cells as refc
from conftest import (B, FD_EPS, FD_MAX_REL_ERR, FD_MEAN_REL_ERR, FLOAT32_ATOL, FLOAT32_RTOL,
                      FLOAT64_ATOL, FLOAT64_RTOL, NOJIT, SERIAL_PARALLEL_RTOL, H, T, V, requires_jit,
                      tol)
from rnn_cli.config import ModelConfig
from rnn_cli.kernels import cell as rnn_cell
from rnn_cli.kernels import embed, gated_gemm, generate, gru, lstm
from rnn_cli.params import Params
from rnn_cli.tasks.lm.network import Network, sequence_nll

E = 4  # embedding width of the tiny tests (!= H, so shapes are checked)


def cfg_of(cell="lstm", layers=1, embed_=0, tie=False, dropout=0.0, act="tanh"):
    return ModelConfig(cell=cell, hidden=H, layers=layers, vocab_size=V, activation=act,
                       embed=(H if tie else embed_), tie_weights=tie, dropout=dropout).validate()


def make_params(cfg, seed=0, dtype=np.float64) -> Params:
    rng = np.random.default_rng(seed)
    p = Params(cfg, np.float64).init(rng)
    for name in ("b_a", "b_hn", "b_y"):  # non-zero biases so their use is checked too
        if name in p.views:
            p.views[name][...] += rng.uniform(-0.3, 0.3, p.views[name].shape)
    for name in ("W_aa", "W_ax", "W_ax_up"):  # larger weights: saturate gates a little
        p.views[name][...] *= 2.0
    return p.copy(dtype)


def make_window(rng, steps, batch=B):
    x = rng.integers(0, V, (steps, batch)).astype(np.int32)
    y = rng.integers(0, V, (steps, batch)).astype(np.int32)
    x[0, min(1, batch - 1)] = -1  # the zero input vector (start of a stream)
    y[-1, batch - 1] = -1  # a position that is not scored
    return x, y


def make_masks(rng, cfg, steps, batch=B):
    keep = 1.0 / (1.0 - cfg.dropout)
    m = [None if not cfg.embed else (rng.random((steps, batch, cfg.embed)) >= cfg.dropout) * keep]
    m += [(rng.random((steps, batch, H)) >= cfg.dropout) * keep for _ in range(cfg.layers)]
    return m


# Step of the central differences for the gated cells: conftest's FD_EPS (1e-5) is round-off bound
# here (window losses of ~21 nats: ~5e-10 absolute noise, max rel. error 4e-6, mean 5e-7 on
# lstm-1-tied); measured optimum 1e-4 (max 4e-7, mean 5e-8), 1e-3 is truncation bound (1e-5).
FD_EPS_GATED = 10 * FD_EPS


def central_differences(p: Params, loss, eps=FD_EPS_GATED) -> np.ndarray:
    g = np.zeros(len(p))
    for i in range(len(p)):
        keep = p.flat[i]
        p.flat[i] = keep + eps
        up = loss()
        p.flat[i] = keep - eps
        down = loss()
        p.flat[i] = keep
        g[i] = (up - down) / (2.0 * eps)
    return g


def relative_errors(analytic, numeric, floor=1e-4):
    """Relative error; the floor keeps the round-off of the differences (~1e-10 absolute, measured)
    on gradients below 1e-4 from counting as large relative errors (a Richardson step did not
    help: round-off, not truncation, is what remains)."""
    return np.abs(analytic - numeric) / np.maximum(np.abs(analytic) + np.abs(numeric), floor)


# ------------------------------------------------------------------------------------ kernels


@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "serial"])
def test_gru_forward_backward_match_reference(rng, dtype, parallel):
    xa = rng.normal(0, 1, (T, B, 3 * H)).astype(dtype)
    W = rng.normal(0, 0.5, (3 * H, H)).astype(dtype)
    b_hn = rng.normal(0, 0.5, H).astype(dtype)
    a = np.zeros((T + 1, B, H), dtype)
    a[0] = rng.uniform(-0.9, 0.9, (B, H))
    gates = np.zeros((T, B, 4 * H), dtype)
    fwd, bwd = (gru.gru_forward, gru.gru_backward) if parallel else (
        gru.gru_forward_serial, gru.gru_backward_serial)
    fwd(a, gates, xa, W, b_hn)
    ra, rg = refc.ref_gru_forward(a[0], xa, W, b_hn)
    assert_allclose(a, ra, **tol(dtype))
    assert_allclose(gates, rg, **tol(dtype))
    da = rng.normal(0, 1, (T, B, H)).astype(dtype)
    dz, dhh = np.zeros((T, B, 3 * H), dtype), np.zeros((T, B, 3 * H), dtype)
    bwd(dz, dhh, np.zeros((B, H), dtype), da, a, gates, W)
    rdz, rdhh = refc.ref_gru_backward(da, a, gates, W)
    assert_allclose(dz, rdz, **tol(dtype))
    assert_allclose(dhh, rdhh, **tol(dtype))


@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "serial"])
def test_lstm_forward_backward_match_reference(rng, dtype, parallel):
    xa = rng.normal(0, 1, (T, B, 4 * H)).astype(dtype)
    W = rng.normal(0, 0.5, (4 * H, H)).astype(dtype)
    a = np.zeros((T + 1, B, H), dtype)
    c = np.zeros((T + 1, B, H), dtype)
    a[0] = rng.uniform(-0.9, 0.9, (B, H))
    c[0] = rng.uniform(-2, 2, (B, H))
    gates = np.zeros((T, B, 5 * H), dtype)
    fwd, bwd = (lstm.lstm_forward, lstm.lstm_backward) if parallel else (
        lstm.lstm_forward_serial, lstm.lstm_backward_serial)
    fwd(a, c, gates, xa, W)
    ra, rc, rg = refc.ref_lstm_forward(a[0], c[0], xa, W)
    assert_allclose(a, ra, **tol(dtype))
    assert_allclose(c, rc, **tol(dtype))
    assert_allclose(gates, rg, **tol(dtype))
    da = rng.normal(0, 1, (T, B, H)).astype(dtype)
    dz = np.zeros((T, B, 4 * H), dtype)
    bwd(dz, np.zeros((B, H), dtype), np.zeros((B, H), dtype), da, c, gates, W)
    assert_allclose(dz, refc.ref_lstm_backward(da, c, gates, W), **tol(dtype))


def test_embed_forward_backward_match_reference(rng, dtype):
    W = rng.normal(0, 1, (V, E)).astype(dtype)
    x, _ = make_window(rng, T)
    e = np.full((T, B, E), np.nan, dtype)
    embed.embed_forward(e, W, x)
    assert_allclose(e, refc.ref_embed_forward(W, x), **tol(dtype))
    de = rng.normal(0, 1, (T, B, E)).astype(dtype)
    dW = np.ones((V, E), dtype)  # accumulates
    embed.embed_backward(dW, de, x)
    expect = 1.0 + np.einsum("tbv,tbe->ve", ref.onehot(x, V), de)
    assert_allclose(dW, expect, **tol(dtype))


def folded(M, b_a):
    """The forward table: [M + b_a; b_a] (V+1, GH), its last row for x < 0."""
    return np.vstack([M + b_a, b_a[None, :]]).astype(M.dtype)


def test_embed_table_forward_backward_match_reference(rng, dtype):
    """The folded input terms: xa = M[x] + b_a, and dM[v] = sum of dz over positions with x = v."""
    GH = 3 * H
    M = rng.normal(0, 1, (V, GH)).astype(dtype)
    b_a = rng.normal(0, 1, GH).astype(dtype)
    x, _ = make_window(rng, T)
    x[1, :] = 2  # a token repeated within the window: its row receives several additions
    xa = np.full((T, B, GH), np.nan, dtype)
    embed.table_forward(xa, folded(M, b_a), x)
    X = ref.onehot(x, V)  # (T, B, V), zero rows for x < 0
    assert_allclose(xa, X @ M.astype(np.float64) + b_a, **tol(dtype))
    dz = rng.normal(0, 1, (T, B, GH)).astype(dtype)
    dM0, db0 = rng.normal(0, 1, (V, GH)).astype(dtype), rng.normal(0, 1, GH).astype(dtype)
    dM, db = dM0.copy(), db0.copy()  # both accumulate
    embed.table_backward(dM, db, dz, x)
    assert_allclose(dM, dM0 + np.einsum("tbv,tbg->vg", X, dz), **tol(dtype))
    assert_allclose(db, db0 + dz.sum(axis=(0, 1)), **tol(dtype))


def _gemm_forward(cell_name, a0, c0, xa, tab, x, W, b_hn, steps, parallel):
    """Run one BLAS-per-step forward kernel; returns a (and c for the LSTM)."""
    dt, (Tn, Bn) = xa.dtype, x.shape
    a = np.zeros((Tn + 1, Bn, H), dt)
    a[0] = a0
    kind = "" if parallel else "_serial"
    chunks = 2 if parallel else 1
    if cell_name == "rnn":
        getattr(rnn_cell, "rnn_forward_gemm" + kind)(
            a, xa, tab, x, np.ascontiguousarray(W.T), rnn_cell.TANH, chunks, steps)
        return a, None
    G = 3 if cell_name == "gru" else 4
    gates = np.zeros((Tn, Bn, (G + 1) * H), dt)
    if cell_name == "gru":
        getattr(gated_gemm, "gru_forward_gemm" + kind)(
            a, gates, xa, tab, x, np.ascontiguousarray(W.T), b_hn, chunks, steps)
        return a, None
    c = np.zeros((Tn + 1, Bn, H), dt)
    c[0] = c0
    getattr(gated_gemm, "lstm_forward_gemm" + kind)(
        a, c, gates, xa, tab, x, np.ascontiguousarray(W.T), chunks, steps)
    return a, c


@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "serial"])
@pytest.mark.parametrize("cell_name", ["rnn", "gru", "lstm"])
def test_gemm_forward_reads_the_table_and_stops_lanes_at_their_steps(rng, dtype, cell_name,
                                                                   parallel):
    """The BLAS forward kernels (kernels/cell.py, kernels/gated_gemm.py) against the float64
    references: input terms from xa, or from rows of the folded table picked by x (equal to
    xa = table_forward); with per-lane steps, a lane's rows up to its end equal the full run's and
    the rows after it are zero (a<t>, and c<t> for the LSTM)."""
    G = {"rnn": 1, "gru": 3, "lstm": 4}[cell_name]
    Tn, Bn = 6, 5
    M = rng.normal(0, 1, (V, G * H)).astype(dtype)
    b_a = rng.normal(0, 0.5, G * H).astype(dtype)
    tab = folded(M, b_a)
    x = rng.integers(0, V, (Tn, Bn)).astype(np.int32)
    x[0, 1] = -1  # the zero input vector
    xa = np.zeros((Tn, Bn, G * H), dtype)
    embed.table_forward(xa, tab, x)
    W = rng.normal(0, 0.5, (G * H, H)).astype(dtype)
    b_hn = rng.normal(0, 0.5, H).astype(dtype)
    a0 = rng.uniform(-0.9, 0.9, (Bn, H)).astype(dtype)
    c0 = rng.uniform(-2, 2, (Bn, H)).astype(dtype)
    if cell_name == "rnn":
        ra, rc = ref.ref_rnn_forward(a0, xa, W, "tanh"), None
    elif cell_name == "gru":
        (ra, _), rc = refc.ref_gru_forward(a0, xa, W, b_hn), None
    else:
        ra, rc, _ = refc.ref_lstm_forward(a0, c0, xa, W)
    no_table = np.zeros((0, G * H), dtype)
    full = np.full(Bn, Tn, np.int32)
    for tb in (no_table, tab):
        a, c = _gemm_forward(cell_name, a0, c0, xa if tb is no_table else 0 * xa, tb, x, W,
                             b_hn, full, parallel)
        assert_allclose(a, ra, **tol(dtype))
        if c is not None:
            assert_allclose(c, rc, **tol(dtype))
    steps = np.array([6, 3, 0, 5, 1], np.int32)  # unsorted: lanes after a stopped one still run
    a, c = _gemm_forward(cell_name, a0, c0, xa, tab, x, W, b_hn, steps, parallel)
    for b in range(Bn):
        for out, want in ((a, ra), (c, rc)) if c is not None else ((a, ra),):
            assert_allclose(out[:steps[b] + 1, b], want[:steps[b] + 1, b], **tol(dtype))
            assert not out[steps[b] + 1:, b].any()


@requires_jit
@pytest.mark.parametrize("name", ["table_forward", "table_backward"])
def test_embed_table_compiled_equals_py_func(rng, name):
    x, _ = make_window(rng, T)
    args = (np.zeros((T, B, 3 * H)), rng.normal(0, 1, (V + 1, 3 * H)), x) \
        if name == "table_forward" else \
        (np.ones((V, 3 * H)), np.ones(3 * H), rng.normal(0, 1, (T, B, 3 * H)), x)
    outs = []
    for f in (getattr(embed, name), getattr(embed, name).py_func):
        copies = [np.copy(v) for v in args]
        f(*copies)
        outs.append(np.concatenate([c.ravel() for c in copies[:2]]))
    assert_allclose(outs[0], outs[1], rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)


@requires_jit
@pytest.mark.parametrize("name", ["gru_forward", "gru_backward", "lstm_forward", "lstm_backward"])
def test_compiled_equals_py_func(rng, name):
    mod = gru if name.startswith("gru") else lstm
    G, S = (3, 4) if mod is gru else (4, 5)
    xa = rng.normal(0, 1, (T, B, G * H))
    W = rng.normal(0, 0.5, (G * H, H))
    outs = []
    for f in (getattr(mod, name), getattr(mod, name).py_func):
        a = np.zeros((T + 1, B, H))
        a[0] = 0.3
        c = np.full((T + 1, B, H), 0.5)
        gates = np.zeros((T, B, S * H))
        args = (a, gates, xa, W, np.full(H, 0.1)) if mod is gru else (a, c, gates, xa, W)
        getattr(mod, name.replace("backward", "forward"))(*args)
        if name.endswith("forward"):
            f(*args)
            outs.append(np.concatenate([a.ravel(), gates.ravel()]))
        else:
            dz = np.zeros((T, B, G * H))
            da = np.linspace(-1, 1, T * B * H).reshape(T, B, H)
            if mod is gru:
                dhh = np.zeros_like(dz)
                f(dz, dhh, np.zeros((B, H)), da, a, gates, W)
                outs.append(np.concatenate([dz.ravel(), dhh.ravel()]))
            else:
                f(dz, np.zeros((B, H)), np.zeros((B, H)), da, c, gates, W)
                outs.append(dz.ravel())
    assert_allclose(outs[0], outs[1], rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)


# ------------------------------------------------------------------------------------ whole network

VARIANTS = {  # name: (cell, layers, embed, tie, dropout)
    "gru-1": ("gru", 1, 0, False, 0.0),
    "gru-2": ("gru", 2, 0, False, 0.0),
    "lstm-1": ("lstm", 1, 0, False, 0.0),
    "lstm-2": ("lstm", 2, 0, False, 0.0),
    "lstm-2-embed-dropout": ("lstm", 2, E, False, 0.4),
    "gru-2-tied-dropout": ("gru", 2, 0, True, 0.3),
    "lstm-1-tied": ("lstm", 1, 0, True, 0.0),
    "rnn-2-embed-dropout": ("rnn", 2, E, False, 0.5),
    # no embedding dropout and V <= T*B: layer 0's input terms come from the folded table
    "gru-1-embed": ("gru", 1, E, False, 0.0),
    "rnn-1-embed": ("rnn", 1, E, False, 0.0),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("carried", [False, True], ids=["zero-state", "carried-state"])
def test_network_matches_reference_and_finite_differences(variant, carried):
    """Every parameter of the stacked network (embedding, tying, dropout with a fixed mask)."""
    cell, layers, emb, tie, dropout = VARIANTS[variant]
    cfg = cfg_of(cell, layers, emb, tie, dropout)
    rng = np.random.default_rng(sum(map(ord, variant)) + carried)
    p = make_params(cfg, seed=layers)
    net = Network(p, batch=B, steps=T)
    x, y = make_window(rng, T)
    state = rng.uniform(-0.9, 0.9, (cfg.state_rows, B, H)) if carried else np.zeros(
        (cfg.state_rows, B, H))
    masks = make_masks(rng, cfg, T) if dropout else None
    grads = p.zeros_like()
    net.state[...] = state
    loss = net.forward(x, y, masks)
    grads.flat[...] = np.nan  # backward must overwrite every element
    net.backward(grads, x, y, 1.0)

    ref_loss, ref_state = refc.ref_cells_window_loss(p, cfg, x, y, state, masks)
    assert_allclose(loss, ref_loss, rtol=FLOAT64_RTOL)
    assert_allclose(net.state, ref_state, rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)

    numeric = central_differences(p, lambda: refc.ref_cells_window_loss(p, cfg, x, y, state,
                                                                       masks)[0])
    err = relative_errors(grads.flat, numeric)
    assert np.all(np.isfinite(grads.flat))
    assert err.max() < FD_MAX_REL_ERR, (err.max(), int(err.argmax()))
    assert err.mean() < FD_MEAN_REL_ERR, err.mean()
    for name in p.shapes:  # the check compared something in every block
        lo = sum(np.prod(s) for s in list(p.shapes.values())[:list(p.shapes).index(name)])
        block = numeric[int(lo):int(lo + np.prod(p.shapes[name]))]
        assert block.size == 0 or np.abs(block).max() > 1e-4, name


@pytest.mark.parametrize("variant", ["gru-1-embed", "rnn-1-embed", "lstm-1-tied",
                                     "lstm-2-embed-dropout", "gru-2", "gru-2-tied-dropout"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_embed_table_equals_direct_products(variant, dtype):
    """The table (V x G*H) gives the loss, state and every gradient of the direct path (with
    --embed the (T*B x E) @ (E x G*H) products, one-hot the column gather of W_ax), with and
    without dropout masks (masks on the embedding: always direct; one-hot: the same sums)."""
    cell, layers, emb, tie, dropout = VARIANTS[variant]
    cfg = cfg_of(cell, layers, emb, tie, dropout)
    rng = np.random.default_rng(12)
    p = make_params(cfg, dtype=dtype)
    x, y = make_window(rng, T)
    state = rng.uniform(-0.9, 0.9, (cfg.state_rows, B, H)).astype(dtype)
    masks = [None if m is None else m.astype(dtype) for m in make_masks(rng, cfg, T)] \
        if dropout else None
    results = []
    for table in (True, False):
        net = Network(p, batch=B, steps=T, embed_table=table)
        grads = p.zeros_like()
        grads.flat[...] = np.nan  # backward must overwrite every element
        net.state[...] = state
        loss = net.forward(x, y, masks)
        assert net._tabled == (table and (masks is None or not cfg.embed))
        net.backward(grads, x, y, 1.0 / (T * B))
        results.append((loss, grads.flat.copy(), net.state.copy()))
        for_eval = net.forward(x, y)  # evaluation (no masks) takes the table when allowed
        assert net._tabled == table
        results.append((for_eval,))
    kw = tol(dtype, "network") if cfg.embed else {"rtol": 0, "atol": 0}  # one-hot: same sums
    for tab, direct in zip(results[0] + results[1], results[2] + results[3]):
        assert_allclose(tab, direct, **kw)


@pytest.mark.parametrize("variant", ["gru-1-embed", "rnn-1-embed", "lstm-1-tied"])
def test_frozen_network_builds_its_table_once_with_the_same_numbers(variant):
    """frozen=True (scoring a loaded model): layer 0's input table is built at the first window
    only, and every window's loss and carried state equal those of a network that rebuilds it;
    an unfrozen network rebuilds it at every window (its parameters may have moved)."""
    cell, layers, emb, tie, dropout = VARIANTS[variant]
    cfg = cfg_of(cell, layers, emb, tie, dropout)
    rng = np.random.default_rng(5)
    p = make_params(cfg, dtype=np.float32)
    windows = [make_window(rng, T) for _ in range(3)]
    nets = [Network(p, batch=B, steps=T, embed_table=True, frozen=f) for f in (False, True)]
    for x, y in windows:
        losses = [net.forward(x, y) for net in nets]
        assert losses[0] == losses[1]
        assert np.array_equal(nets[0].state, nets[1].state)
    assert [net.table_builds for net in nets] == [len(windows), 1]


def test_scorer_networks_are_frozen():
    """Per-line scoring (`score`, the API, Dask workers) reads a loaded model that does not
    change, so its batch network keeps one input table."""
    from rnn_cli.checkpoint import Model
    from rnn_cli.tasks.lm.score import Scorer
    from rnn_cli.vocab import build_vocab

    text = "to be or not to be\nthat is the question\n"
    vocab = build_vocab(text, "char")
    cfg = ModelConfig(cell="gru", hidden=H, vocab_size=len(vocab), embed=E).validate()
    p = Params(cfg).init(np.random.default_rng(0))
    net = Scorer(Model(cfg, vocab, p)).batcher(4).net
    assert net.frozen and net.use_table


@pytest.mark.parametrize("variant", ["gru-2", "lstm-2-embed-dropout", "gru-2-tied-dropout"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_parallel_equals_serial_network(variant, dtype):
    cell, layers, emb, tie, dropout = VARIANTS[variant]
    cfg = cfg_of(cell, layers, emb, tie, dropout)
    rng = np.random.default_rng(6)
    p = make_params(cfg, dtype=dtype)
    x, y = make_window(rng, T)
    state = rng.uniform(-0.9, 0.9, (cfg.state_rows, B, H)).astype(dtype)
    masks = [None if m is None else m.astype(dtype) for m in make_masks(rng, cfg, T)] \
        if dropout else None
    results = []
    for parallel in (True, False):
        net = Network(p, batch=B, steps=T, parallel=parallel)
        grads = p.zeros_like()
        net.state[...] = state
        loss = net.forward(x, y, masks)
        net.backward(grads, x, y, 1.0 / (T * B))
        results.append((loss, grads.flat.copy(), net.state.copy()))
    kw = {"rtol": SERIAL_PARALLEL_RTOL, "atol": 1e-15} if dtype == np.float64 else {
        "rtol": FLOAT32_RTOL["parallel"], "atol": FLOAT32_ATOL["parallel"]}
    for par, ser in zip(*results):
        assert_allclose(par, ser, **kw)


@pytest.mark.parametrize("variant", ["lstm-2-embed-dropout", "gru-2-tied-dropout"])
def test_float32_network_matches_float64_reference(variant):
    cell, layers, emb, tie, dropout = VARIANTS[variant]
    cfg = cfg_of(cell, layers, emb, tie, dropout)
    rng = np.random.default_rng(9)
    p = make_params(cfg, dtype=np.float32)
    net = Network(p, batch=B, steps=T)
    x, y = make_window(rng, T)
    masks = [None if m is None else m.astype(np.float32) for m in make_masks(rng, cfg, T)]
    loss = net.forward(x, y, masks)
    assert_allclose(loss, refc.ref_cells_window_loss(p, cfg, x, y, net.state * 0, masks)[0],
                    rtol=FLOAT32_RTOL["network"])


def test_dropout_masks_are_seeded_scaled_and_off_without_masks():
    cfg = cfg_of("lstm", 2, E, False, 0.25)
    p = make_params(cfg)
    net = Network(p, batch=B, steps=T)
    m1 = [None if m is None else m.copy() for m in net.draw_masks(np.random.default_rng(1))]
    m2 = net.draw_masks(np.random.default_rng(1))
    for a, b in zip(m1, m2):
        assert_allclose(a, b, rtol=0, atol=0)
    allv = np.concatenate([m.ravel() for m in m1])
    assert set(np.unique(allv)) <= {0.0, 1.0 / 0.75}
    assert 0.05 < np.mean(allv == 0) < 0.5
    x, y = make_window(np.random.default_rng(2), T)
    loss = net.forward(x, y)  # evaluation: no masks, no dropout
    assert_allclose(loss, refc.ref_cells_window_loss(p, cfg, x, y, np.zeros((4, B, H)))[0],
                    rtol=FLOAT64_RTOL)
    assert Network(make_params(cfg_of("lstm")), B, T).draw_masks(np.random.default_rng()) is None


def test_gru_has_separate_candidate_bias():  # init statistics: tests/test_init.py
    g = Params(cfg_of("gru", 2)).init(np.random.default_rng(0))
    assert g.b_hn.shape == (2, H) and g.W_aa.shape == (2, 3 * H, H)


def test_tied_weights_share_memory():
    p = Params(cfg_of("gru", 1, tie=True))
    assert p.W_ya.shape == (V, H) and np.shares_memory(p.W_ya, p.W_emb)
    assert len(p) == sum(int(np.prod(s)) for s in p.shapes.values())
    with pytest.raises(Exception, match="--tie-weights"):
        ModelConfig(cell="gru", hidden=H, embed=3, tie_weights=True).validate()


# ------------------------------------------------------------------------------------ steps, scoring


@pytest.mark.parametrize("variant", ["gru-2", "lstm-2", "lstm-2-embed-dropout", "gru-2-tied-dropout",
                                     "rnn-2-embed-dropout"])
def test_stack_step_and_sequence_nll_match_reference(variant):
    cell, layers, emb, tie, dropout = VARIANTS[variant]
    cfg = cfg_of(cell, layers, emb, tie, dropout)
    p = make_params(cfg, dtype=np.float64)
    ids = np.random.default_rng(5).integers(0, V, 11).astype(np.int32)
    st = np.zeros((cfg.state_rows, H))
    args = _stack_args(p, cfg)
    xin, tmp = np.zeros(cfg.gates * H), np.zeros(H)
    for tok in (-1, 3, 0):
        expect = refc.ref_cells_step(p, cfg, st, tok)
        generate.stack_step(generate.CELL_CODES[cell], st, tok, *args, xin, tmp)
        assert_allclose(st, expect, rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL)
    # scoring one stream: independent of the window length
    totals = []
    for steps in (1, 4, 16):
        net = Network(p, batch=1, steps=steps, parallel=False)
        totals.append(sequence_nll(net, ids, -1))
    assert_allclose(totals, totals[0], rtol=1e-12)
    x = np.concatenate([[-1], ids[:-1]]).astype(np.int32)[:, None]
    expect = refc.ref_cells_window_loss(p, cfg, x, ids[:, None], np.zeros((cfg.state_rows, 1, H)))[0]
    assert_allclose(totals[0], expect, rtol=FLOAT64_RTOL)


def _stack_args(p, cfg):
    from rnn_cli.tasks.lm.network import ACTIVATIONS

    dt = p.flat.dtype
    W_emb = p.W_emb if cfg.embed else np.zeros((0, 0), dt)
    b_hn = p.b_hn if cfg.cell == "gru" else np.zeros((0, 0), dt)
    return W_emb, p.W_ax, p.W_ax_up, p.W_aa, p.b_a, b_hn, ACTIVATIONS[cfg.activation]


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_sampler_greedy_equals_reference_loop(cell):
    """The Sampler (fused compiled loop) draws what the reference network's argmax gives."""
    from rnn_cli.checkpoint import Model
    from rnn_cli.tasks.lm.sample import SampleConfig, Sampler
    from rnn_cli.vocab import build_vocab

    vocab = build_vocab("abcdef\n", "char")
    cfg = ModelConfig(cell=cell, hidden=H, layers=2, vocab_size=len(vocab), embed=E).validate()
    p = make_params(cfg, seed=3, dtype=np.float32)
    s = Sampler(Model(cfg, vocab, p))
    x0, _ = s.prime("ab")
    text = "".join(s.generate(SampleConfig(length=12, greedy=True), np.random.default_rng(0), x0))
    st = np.zeros((cfg.state_rows, H))
    tok, expect = vocab.eos_id if vocab.eos_id is not None else -1, []
    for t in [tok] + list(vocab.encode("ab")[0][:-1]):
        st = refc.ref_cells_step(p, cfg, st, int(t))
    prev = int(vocab.encode("ab")[0][-1])
    for _ in range(12):
        st = refc.ref_cells_step(p, cfg, st, prev)
        logits = ref.ref_output_logits(st[cfg.layers - 1], p.W_ya, p.b_y)
        logits[vocab.unk_id] = -np.inf
        prev = int(np.argmax(logits))
        expect.append(prev)
    assert text == vocab.decode(np.array(expect, np.int32))
