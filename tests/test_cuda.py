"""The CUDA path against the CPU path: every device kernel, one window, one training step, sampling.

Runs under numba's CUDA simulator (`make test-cudasim`, NUMBA_ENABLE_CUDASIM=1 before Python starts)
or on a real GPU (`make test-gpu`); the module is skipped at collection otherwise, without importing
numba.cuda, so the CPU suite pays nothing for it. Tiny shapes (STYLE §3.4: H=4, V=7, T=3, B=2) and
tiny launches (16 threads per block, 4x4 matmul tiles) keep the simulator to a few blocks a launch:
the simulator runs every thread of a block as a Python thread, so its cost is the number of
threads launched (a default 256-lane `score` network took minutes; the tests pass --batch-size 2).
The CPU kernels are the twins: float32 on both sides, compared within float32 tolerances.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from rnn_cli.cuda import backend

if not (backend.simulator_enabled() or backend.device_present_cheaply()):
    pytest.skip("no GPU and NUMBA_ENABLE_CUDASIM is not set (see `make test-cudasim`)",
                allow_module_level=True)
_OK, _WHY = backend.probe()
if not _OK:
    pytest.skip(f"CUDA target not usable: {_WHY}", allow_module_level=True)

cuda = backend.numba_cuda()

from rnn_cli import checkpoint  # noqa: E402
from rnn_cli.config import ModelConfig, TrainConfig  # noqa: E402
from rnn_cli.cuda import blas, cells  # noqa: E402
from rnn_cli.cuda import kernels as ck  # noqa: E402
from rnn_cli.cuda import optim as co  # noqa: E402
from rnn_cli.cuda import sampling as cs  # noqa: E402
from rnn_cli.cuda.network import CudaNetwork, DeviceParams  # noqa: E402
from rnn_cli.cuda.train import CudaTrainer, DeviceOptimizer  # noqa: E402
from rnn_cli.kernels import cell, embed, generate, gru, lstm, optim, output  # noqa: E402
from rnn_cli.tasks.lm.network import Network, sequence_nll  # noqa: E402
from rnn_cli.params import Params  # noqa: E402
from rnn_cli.tasks.lm.sample import SampleConfig, Sampler  # noqa: E402
from rnn_cli.optimizer import Optimizer, clip_gradients  # noqa: E402
from rnn_cli.tasks.lm.train import Trainer  # noqa: E402
from rnn_cli.vocab import build_vocab  # noqa: E402

pytestmark = pytest.mark.cuda

H, V, T, B = 4, 7, 3, 2
# float32 device vs float32 CPU: one kernel (a few roundings), a whole window / step (many).
KERNEL = {"rtol": 2e-5, "atol": 1e-6}
NETWORK = {"rtol": 1e-4, "atol": 1e-6}
ACTS = (cell.TANH, cell.RELU)
TEXT = "tea at ten.\neat a tea.\nten at a tent.\n" * 6  # V = 8: 7 characters + <UNK>


SIM = backend.simulator_enabled()


@pytest.fixture(autouse=True)
def tiny_launches(monkeypatch):
    monkeypatch.setattr(ck, "THREADS", 16)
    monkeypatch.setattr(blas, "TILE", 4)
    monkeypatch.setattr(blas, "REG", 2)
    monkeypatch.setattr(ck, "PARTIALS", 2)
    monkeypatch.setattr(ck, "COLS", 4)  # column sums: 4 x 2 threads a block, chunks of 4 rows,
    monkeypatch.setattr(ck, "LANES", 2)  # at most 3 chunks (so longer chunks past 12 rows)
    monkeypatch.setattr(ck, "CHUNK_ROWS", 4)
    monkeypatch.setattr(ck, "MAX_CHUNKS", 3)
    monkeypatch.setattr(cs, "THREADS", 4)


def f32(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def tokens(rng, *shape):
    x = rng.integers(0, V, size=shape).astype(np.int32)
    x.flat[1] = -1  # the zero-vector input / an unscored row
    x.flat[2] = x.flat[3]  # a repeated token: the scatter-add must not race
    return x


def dev(a):
    return cuda.to_device(np.ascontiguousarray(a))


def test_resolve_picks_the_device_and_silences_occupancy_warnings(monkeypatch):
    from numba.cuda.core import config

    monkeypatch.delenv("NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS", raising=False)
    monkeypatch.setattr(config, "CUDA_LOW_OCCUPANCY_WARNINGS", 1)
    assert backend.resolve("cuda") == backend.resolve("auto") == "cuda"
    assert config.CUDA_LOW_OCCUPANCY_WARNINGS == 0
    assert backend.resolve("cpu") == "cpu"


# ------------------------------------------------------------------------------------- kernels


def test_gather_input_forward_and_backward():
    rng = np.random.default_rng(0)
    W, b, x = f32(rng, H, V), f32(rng, H), tokens(rng, T, B)
    xa = np.zeros((T, B, H), np.float32)
    cell.gather_input_forward(xa, W, b, x)
    d_xa = cuda.device_array((T, B, H), np.float32)
    ck.gather_input_forward(d_xa, dev(W), dev(b), dev(x))
    assert_array_equal(d_xa.copy_to_host(), xa)  # a copy and one add: exact

    dz = f32(rng, T, B, H)
    dW, db = np.zeros((H, V), np.float32), np.zeros(H, np.float32)
    d_dW, d_db = dev(np.full((H, V), np.nan, np.float32)), dev(np.full(H, np.nan, np.float32))
    cell.gather_input_backward(dW, db, dz, x)  # the CPU's accumulates; the device's overwrites
    ck.gather_input_backward(d_dW, d_db, dev(dz), dev(ck.token_order(x, V)))
    assert_allclose(d_dW.copy_to_host(), dW, **KERNEL)
    assert_allclose(d_db.copy_to_host(), db, **KERNEL)


def test_token_order_sorts_positions_stably_with_bounds():
    x = np.array([[3, -1, 0], [3, 2, 0]], np.int32)  # V = 5: token 1 and 4 absent
    got = ck.token_order(x, 5)
    R = x.size
    assert got[:R].tolist() == [1, 2, 5, 4, 0, 3]  # -1 first; each token's positions in order
    assert got[R:].tolist() == [1, 3, 3, 4, 6, 6]
    assert got.dtype == np.int32


@pytest.mark.parametrize("name,act", [("rnn", cell.TANH), ("rnn", cell.RELU), ("gru", 0),
                                      ("lstm", 0)])
def test_cell_forward_and_backward_match_cpu(name, act):
    """cells.forward/backward (matmul per step + gate kernel) against the CPU cell kernels."""
    rng = np.random.default_rng(1)
    G, G2 = {"rnn": (1, 0), "gru": (3, 4), "lstm": (4, 5)}[name]
    a = np.zeros((T + 1, B, H), np.float32)
    c = np.zeros((T + 1, B, H), np.float32)
    a[0], c[0] = f32(rng, B, H), f32(rng, B, H)
    xa, W, b_hn = f32(rng, T, B, G * H), f32(rng, G * H, H, scale=0.5), f32(rng, H)
    gates = np.zeros((T, B, max(G2, 1) * H), np.float32)
    d_a, d_c, d_g = dev(a), dev(c), dev(gates)
    d_xa, d_W = dev(xa), dev(W)
    if name == "rnn":
        cell.rnn_forward_serial(a, xa, W, act)
    elif name == "gru":
        gru.gru_forward_serial(a, gates, xa, W, b_hn)
    else:
        lstm.lstm_forward_serial(a, c, gates, xa, W)
    gemm = blas.make_gemm()  # cuBLAS on a GPU, the tiled kernel on the simulator
    cells.forward(name, d_a, d_c, d_g, d_xa, d_W, dev(b_hn), act,
                  cuda.device_array((B, G * H), np.float32), gemm)
    assert_allclose(d_a.copy_to_host(), a, **KERNEL)
    if G2:
        assert_allclose(d_g.copy_to_host(), gates, **KERNEL)
    if name == "lstm":
        assert_allclose(d_c.copy_to_host(), c, **KERNEL)

    da = f32(rng, T, B, H)
    dz, dhh = np.zeros((T, B, G * H), np.float32), np.zeros((T, B, G * H), np.float32)
    dnext, dcnext = np.zeros((B, H), np.float32), np.zeros((B, H), np.float32)
    if name == "rnn":
        cell.rnn_backward_serial(dz, dnext, da, a, W, act)
    elif name == "gru":
        gru.gru_backward_serial(dz, dhh, dnext, da, a, gates, W)
    else:
        lstm.lstm_backward_serial(dz, dnext, dcnext, da, c, gates, W)
    d_dz, d_dhh = cuda.device_array(dz.shape, np.float32), cuda.device_array(dz.shape, np.float32)
    cells.backward(name, d_dz, d_dhh, cuda.device_array((T, B, H), np.float32), dev(da), d_a, d_c,
                   d_g, d_W, act, cuda.device_array((B, H), np.float32), gemm)
    assert_allclose(d_dz.copy_to_host(), dz, **KERNEL)
    if name == "gru":
        assert_allclose(d_dhh.copy_to_host(), dhh, **KERNEL)


def test_embedding_dropout_product_and_offset_column_sum():
    rng = np.random.default_rng(14)
    E = 3
    W, x = f32(rng, V, E), tokens(rng, T, B)
    e = np.zeros((T, B, E), np.float32)
    embed.embed_forward(e, W, x)
    d_e = cuda.device_array((T, B, E), np.float32)
    ck.embed_forward(d_e, dev(W), dev(x))
    assert_array_equal(d_e.copy_to_host(), e)
    de, dW = f32(rng, T, B, E), f32(rng, V, E)  # accumulates into what is there
    d_dW = dev(dW)
    embed.embed_backward(dW, de, x)
    ck.embed_backward(d_dW, dev(de), dev(ck.token_order(x, V)))
    assert_allclose(d_dW.copy_to_host(), dW, **KERNEL)
    m = (rng.random((T, B, E)) > 0.5).astype(np.float32) * 2.0
    ck.mul(d_e, d_e, dev(m))  # in place, as the dropout of the embedding output
    assert_array_equal(d_e.copy_to_host(), e * m)
    A, out = f32(rng, 6, 3 * H), cuda.device_array(H, np.float32)
    ck.col_sum(out, dev(A), 2 * H)  # the GRU's b_hn gradient: the n block of dhh
    assert_allclose(out.copy_to_host(), A[:, 2 * H:].sum(axis=0), **KERNEL)


@pytest.mark.parametrize("trans_a", (False, True))
@pytest.mark.parametrize("trans_b", (False, True))
@pytest.mark.parametrize("kind", ("numba", "cublas"))
def test_matmul_all_transposes_ragged_tiles(trans_a, trans_b, kind, monkeypatch):
    """The tiled kernel (2 x 2 blocks of 8 x 8, all ragged) and cuBLAS (on a GPU), on views into
    larger buffers as the network passes them (a time step's rows, an offset block)."""
    if kind == "cublas" and SIM:
        pytest.skip("cuBLAS needs a GPU")
    monkeypatch.setenv("RNN_CLI_CUDA_GEMM", kind)
    gemm = blas.make_gemm()
    assert gemm.kind == kind
    rng = np.random.default_rng(2)
    M, K, N = 9, 6, 11
    A = f32(rng, K, M) if trans_a else f32(rng, M, K)
    Bm = f32(rng, N, K) if trans_b else f32(rng, K, N)
    expect = (A.T if trans_a else A) @ (Bm.T if trans_b else Bm)
    big_a = dev(np.concatenate([f32(rng, 2, *A.shape), A[None]]))
    C = dev(np.full((3, M, N), np.nan, np.float32))  # every element must be written
    gemm.gemm(C[1], big_a[2], dev(Bm), trans_a, trans_b)
    got = C.copy_to_host()
    assert_allclose(got[1], expect, **KERNEL)
    assert np.isnan(got[0]).all() and np.isnan(got[2]).all()  # nothing outside C[1]


def test_bias_and_column_sum():
    rng = np.random.default_rng(3)
    C, bias = f32(rng, 6, V), f32(rng, V)
    d_C = dev(C)
    ck.add_bias(d_C, dev(bias))
    assert_allclose(d_C.copy_to_host(), C + bias, **KERNEL)
    out = cuda.device_array(V, np.float32)
    ck.col_sum(out, dev(C))
    assert_allclose(out.copy_to_host(), C.sum(axis=0), **KERNEL)
    tall = f32(rng, 15, V)  # 3 chunks of 5 rows (the cap of 3 chunks: longer than 4 rows each)
    ck.col_sum(out, dev(tall), 0, ck.col_sum_scratch(V))
    assert_allclose(out.copy_to_host(), tall.sum(axis=0), **KERNEL)


def test_softmax_xent_forward_and_backward():
    rng = np.random.default_rng(4)
    R = T * B
    logits, y = f32(rng, R, V, scale=3.0), tokens(rng, R)
    nll, lse = np.zeros(R), np.zeros(R)
    total = output.softmax_xent_forward(nll, lse, logits, y)
    d_nll, d_lse = cuda.device_array(R, np.float64), cuda.device_array(R, np.float64)
    d_total, partials = cuda.device_array(1, np.float64), cuda.device_array(2, np.float64)
    d_logits = dev(logits)
    ck.softmax_xent_forward(d_nll, d_lse, d_logits, dev(y), d_total, partials)
    assert_allclose(d_nll.copy_to_host(), nll, **KERNEL)
    assert_allclose(d_lse.copy_to_host(), lse, **KERNEL)
    assert_allclose(d_total.copy_to_host()[0], total, **KERNEL)

    ck.softmax_xent_backward(d_logits, d_logits, d_lse, dev(y), 0.25)  # in place, as the CPU
    output.softmax_xent_backward(logits, logits, lse, y, 0.25)
    assert_allclose(d_logits.copy_to_host(), logits, **KERNEL)


@pytest.mark.parametrize("clip,mode",
                         [(0.5, "norm"), (50.0, "norm"), (0.3, "value"), (0.0, "norm")])
def test_gradient_clipping(clip, mode):
    g = f32(np.random.default_rng(5), 101)  # several blocks, fewer partials than blocks
    d_g = dev(g)
    sumsq, partials = cuda.device_array(1, np.float64), cuda.device_array(2, np.float64)
    co.clip_gradients(d_g, clip, mode, sumsq, partials)
    exact = np.sqrt(np.sum(g.astype(np.float64) ** 2))
    norm = clip_gradients(g, clip, mode)
    # the device squares in float64; the CPU kernel's fastmath build squares in float32 (seen
    # with numba 0.68.1: relative error ~2e-9), so the device is compared with the exact norm
    assert_allclose(np.sqrt(sumsq.copy_to_host()[0]), exact, rtol=1e-12)
    assert_allclose(norm, exact, rtol=1e-6)
    assert_allclose(d_g.copy_to_host(), g, **KERNEL)


def test_reduction_is_deterministic_and_exact_in_float64():
    x = np.random.default_rng(6).standard_normal(1000)
    out, partials = cuda.device_array(1, np.float64), cuda.device_array(2, np.float64)
    ck.sum_into(out, dev(x), partials)
    first = out.copy_to_host()[0]
    ck.sum_into(out, dev(x), partials)
    assert out.copy_to_host()[0] == first
    assert_allclose(first, x.sum(), rtol=1e-12)


@pytest.mark.parametrize("rule", ("adam", "sgd", "adagrad", "rmsprop"))
def test_optimizer_updates_match_cpu(rule):
    rng = np.random.default_rng(7)
    p, g = f32(rng, 40), f32(rng, 40)
    cpu = Optimizer(TrainConfig(optim=rule, lr=0.01), 40)
    gpu_host = Optimizer(TrainConfig(optim=rule, lr=0.01), 40)
    gpu = DeviceOptimizer(gpu_host)
    d_p, d_g = dev(p), dev(g)
    for _ in range(3):
        cpu.update(p, g)
        gpu.update(d_p, d_g)
    gpu.download()
    assert_allclose(d_p.copy_to_host(), p, **KERNEL)
    assert gpu_host.t == cpu.t == 3
    for k in cpu.state:
        assert_allclose(gpu_host.state[k], cpu.state[k], **KERNEL)
    # the device rules answer every call apply_update makes (the CPU kernels' names)
    assert callable(getattr(optim, f"{rule}_update"))
    assert callable(getattr(co.HyperRules, f"{rule}_update"))


# ------------------------------------------------------------------------------------ sampling


GEN_CASES = [  # cell, activation, layers, embedding width, top_k, argmax, banned id, stop id
    ("rnn", cell.TANH, 1, 0, 0, False, -1, -1), ("rnn", cell.RELU, 2, 0, 3, False, 2, -1),
    ("rnn", cell.TANH, 2, 3, 0, True, 0, -1), ("gru", 0, 2, 0, 0, False, -1, 4),
    ("gru", 0, 1, 3, 3, False, 2, -1), ("lstm", 0, 2, 3, 0, True, 0, -1),
    ("lstm", 0, 1, 0, 0, False, -1, 4)]


@pytest.mark.parametrize("name,act,L,E,top_k,greedy,ban,stop", GEN_CASES)
def test_generate_kernel_matches_cpu(name, act, L, E, top_k, greedy, ban, stop):
    """The one-block sampling kernel against generate.stack_generate, every cell and input kind."""
    rng = np.random.default_rng(8)
    G = generate.CELL_CODES[name]
    GH = {"rnn": 1, "gru": 3, "lstm": 4}[name] * H
    empty = np.zeros((0, 0), np.float32)
    W_emb = f32(rng, V, E) if E else empty
    b_hn = f32(rng, L, H, scale=0.1) if name == "gru" else empty
    views = (W_emb, f32(rng, GH, E or V), f32(rng, max(L - 1, 1), GH, H, scale=0.6),
             f32(rng, L, GH, H, scale=0.6), f32(rng, L, GH, scale=0.1), b_hn)
    out_views = (f32(rng, V, H, scale=1.5), f32(rng, V, scale=0.1))
    N, temperature = 12, 0.8
    uniforms = rng.random(N)
    state = f32(rng, (2 if name == "lstm" else 1) * L, H, scale=0.3)
    out = np.zeros(N, np.int32)
    a = state.copy()
    n = generate.stack_generate(out, uniforms, G, a, 1, *views, act, *out_views, temperature,
                                top_k, 1.0, greedy, ban, stop, np.zeros(V, np.float32),
                                np.zeros(V), np.zeros(V, np.float32), np.zeros(GH, np.float32),
                                np.zeros(H, np.float32))
    d_views = [dev(v) if v.size else None for v in views]
    d_out, count, d_a = cuda.device_array(N, np.int32), cuda.device_array(1, np.int32), dev(state)
    cs.stack_generate(d_out, count, dev(uniforms), G, d_a, 1, *d_views, act,
                      *map(dev, out_views), temperature, top_k, greedy, ban, stop,
                      cuda.device_array(V, np.float32), cuda.device_array(V, np.float64),
                      cuda.device_array(V, np.float32), cuda.device_array(GH, np.float32),
                      cuda.device_array(H, np.float32))
    assert count.copy_to_host()[0] == n
    assert_array_equal(d_out.copy_to_host()[:n], out[:n])
    assert_allclose(d_a.copy_to_host(), a, **KERNEL)


# -------------------------------------------------------------------- network and training step


NETS = {  # every cell, depth, input kind, tied weights, dropout (masks from the CPU network)
    "rnn-tanh": dict(cell="rnn"),
    "rnn-relu-2": dict(cell="rnn", activation="relu", layers=2),
    "gru-2": dict(cell="gru", layers=2),
    "gru-embed-dropout": dict(cell="gru", embed=3, dropout=0.3),
    "gru-2-embed-dropout": dict(cell="gru", layers=2, embed=3, dropout=0.3),  # (the FD check)
    "lstm-2-tied-dropout": dict(cell="lstm", layers=2, embed=H, tie_weights=True, dropout=0.3),
}


def _nets(kw, dtype=np.float32):
    cfg = ModelConfig(hidden=H, vocab_size=V, **kw).validate()
    p = Params(cfg).init(np.random.default_rng(9))
    return cfg, p, Network(p, B, T, parallel=False), CudaNetwork(DeviceParams.from_host(p), B, T)


@pytest.mark.parametrize("kind", [k for k in NETS if k != "gru-2-embed-dropout"])
def test_window_logits_loss_and_every_gradient_match_cpu(kind):
    cfg, p, net, dnet = _nets(NETS[kind])
    rng = np.random.default_rng(10)
    g, dg = p.zeros_like(), DeviceParams.zeros(cfg)
    for window in range(2):  # the second starts from the carried state
        x, y = tokens(rng, T, B), tokens(rng, T, B)
        masks = net.draw_masks(rng)
        loss = net.forward(x, y, masks)
        assert_allclose(dnet.forward(x, y, masks=masks), loss, **NETWORK)
        assert_allclose(dnet.logits.copy_to_host(), net.logits, **NETWORK)
        assert_allclose(dnet.nll, net.nll, **NETWORK)
        assert_allclose(dnet.state.copy_to_host(), net.state, **NETWORK)
        if window == 0:
            continue  # (the first window only carries its state into the second)
        net.backward(g, x, y, 1.0 / (T * B))
        dnet.backward(dg, x, y, 1.0 / (T * B))
        got = dg.to_host()
        for name in p.views:
            scale = max(1.0, float(np.abs(g.views[name]).max(initial=0.0)))
            assert_allclose(got.views[name], g.views[name], rtol=NETWORK["rtol"],
                            atol=NETWORK["atol"] * scale, err_msg=f"{name}, window {window}")


@pytest.mark.parametrize("kind", ("gru-2-embed-dropout",))
def test_device_gradient_matches_finite_differences(kind):
    """The whole window's device gradient against central differences of the loss, taken in
    float64 by the CPU network at the same (float32) parameters and dropout masks."""
    cfg, p, _, dnet = _nets(NETS[kind])
    rng = np.random.default_rng(15)
    x, y = tokens(rng, T, B), tokens(rng, T, B)
    p64 = p.copy(np.float64)
    net64 = Network(p64, B, T, parallel=False)
    masks = net64.draw_masks(rng)
    scale = 1.0 / (T * B)
    dg = DeviceParams.zeros(cfg)
    dnet.forward(x, y, masks=[None if m is None else m.astype(np.float32) for m in masks])
    dnet.backward(dg, x, y, scale)
    got = dg.to_host().flat

    def loss():
        net64.reset_state()
        return net64.forward(x, y, masks) * scale
    eps, fd = 1e-6, np.zeros(len(p64))
    for i in range(len(p64)):
        keep = p64.flat[i]
        p64.flat[i] = keep + eps
        up = loss()
        p64.flat[i] = keep - eps
        fd[i] = (up - loss()) / (2 * eps)
        p64.flat[i] = keep
    assert_allclose(got, fd, rtol=1e-3, atol=2e-5 * max(1.0, np.abs(fd).max()))


def test_sequence_nll_runs_unchanged_on_the_device_network():
    """What validation and `score` use: one stream, windows of 3 with the state carried."""
    cfg = ModelConfig(hidden=H, layers=2, vocab_size=V, cell="lstm")  # c carried as well
    p = Params(cfg).init(np.random.default_rng(12))
    ids = np.random.default_rng(13).integers(0, V, 10).astype(np.int32)  # a ragged last window
    want, got = np.zeros(10), np.zeros(10)
    total = sequence_nll(Network(p, 1, 3, parallel=False), ids, 0, want)
    assert_allclose(sequence_nll(CudaNetwork(DeviceParams.from_host(p), 1, 3), ids, 0, got),
                    total, **NETWORK)
    assert_allclose(got, want, **NETWORK)


def _model(cfg_kw=None, tcfg_kw=None):
    vocab = build_vocab(TEXT, "char")
    ids, _ = vocab.encode(TEXT)
    cfg = ModelConfig(hidden=H, vocab_size=len(vocab), **(cfg_kw or {}))
    tcfg = TrainConfig(batch_size=B, seq_len=T, eval_every=2, clip=1.0, **(tcfg_kw or {}))
    params = Params(cfg).init(np.random.default_rng(11))
    return checkpoint.Model(cfg, vocab, params, tcfg), ids


@pytest.mark.parametrize("cfg_kw,optim_name,clip_mode", [
    (dict(cell="gru", layers=2, dropout=0.2), "adam", "norm"),  # the default model's cell
    (dict(cell="lstm", embed=H, tie_weights=True, dropout=0.2), "sgd", "value")])
def test_training_steps_match_cpu(cfg_kw, optim_name, clip_mode):
    runs = []
    for cls in (Trainer, CudaTrainer):
        model, ids = _model(cfg_kw, {"optim": optim_name, "clip_mode": clip_mode})
        tr = cls(model, model.train_cfg, ids[:150], ids[150:], np.random.default_rng(0))
        losses = [tr.train_step() for _ in range(3)]
        runs.append((tr, losses))
    (cpu, l_cpu), (gpu, l_gpu) = runs
    assert_allclose(l_gpu, l_cpu, **NETWORK)
    assert_allclose(gpu.params.flat, cpu.params.flat, **NETWORK)  # host copy refreshed on read
    assert_allclose(gpu.evaluate(), cpu.evaluate(), **NETWORK)
    m_cpu, m_gpu = cpu.to_model(), gpu.to_model()
    assert m_gpu.state["step"] == m_cpu.state["step"] == 3
    assert_allclose(m_gpu.state["carry"], m_cpu.state["carry"], **NETWORK)
    for k in m_cpu.opt:
        assert_allclose(m_gpu.opt[k], m_cpu.opt[k], rtol=1e-3, atol=1e-7, err_msg=k)


# ---------------------------------------------------------------------- sampling and model files


def test_same_seed_same_sample_on_cpu_and_device():
    model, _ = _model({"cell": "lstm", "layers": 2, "embed": 3})
    for sc in (SampleConfig(length=20), SampleConfig(length=16, top_k=3, temperature=0.7),
               SampleConfig(lines=2, prime="tea ")):
        texts = []
        for cls in (Sampler, cs.CudaSampler):
            s = cls(model)
            x0, _ = s.prime(sc.prime)
            texts.append("".join(s.generate(sc, np.random.default_rng(5), x0, chunk=16)))
        assert texts[0] == texts[1], sc


def test_train_on_device_then_sample_on_cpu_and_device(tmp_path, capsys):
    from rnn_cli.cli import main

    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT)
    common = ["--hidden", str(H), "--steps", "2", "--batch-size", "2", "--seq-len", "3",
              "--eval-every", "1", "--seed", "3", "-q", "--dropout", "0.1"]
    # (the default cell: a GRU; dropout masks come from the run's Generator on either device)
    assert main(["train", str(corpus), "-o", str(tmp_path / "g.npz"), "--device", "cuda",
                 *common]) == 0
    assert main(["train", str(corpus), "-o", str(tmp_path / "c.npz"), "--device", "cpu",
                 *common]) == 0
    for device, out in (("cuda", "c.npz"), ("cpu", "g.npz")):  # resume each on the other device
        assert main(["train", str(corpus), "-o", str(tmp_path / out), "--device", device,
                     "--resume", *common[:2], "--steps", "3", "-q"]) == 0
    g, c = checkpoint.load(str(tmp_path / "g.npz")), checkpoint.load(str(tmp_path / "c.npz"))
    assert_allclose(g.params.flat, c.params.flat, **NETWORK)  # the same file, up to float32
    assert (g.resume_flat is None) == (c.resume_flat is None)
    if c.resume_flat is not None:
        assert_allclose(g.resume_flat, c.resume_flat, **NETWORK)
    for k in c.opt:
        assert_allclose(g.opt[k], c.opt[k], rtol=1e-3, atol=1e-7, err_msg=k)
    assert g.state["step"] == c.state["step"] == 3
    capsys.readouterr()
    texts = []
    for device in ("cpu", "cuda", "auto"):
        assert main(["sample", "-m", str(tmp_path / "g.npz"), "-n", "20", "--seed", "1",
                     "--device", device]) == 0
        texts.append(capsys.readouterr().out)
    assert texts[0] == texts[1] == texts[2] and len(texts[0]) >= 20


def test_score_and_predict_on_the_device_equal_cpu(tmp_path):
    import json

    from clihelp import run_cli  # main() in this process: no simulator start-up per command

    vocab = build_vocab("abc ab\nca cab\n" * 4, "char")
    cfg = ModelConfig(hidden=4, vocab_size=len(vocab), cell="gru", embed=4,
                      tie_weights=True).validate()
    params = Params(cfg).init(np.random.default_rng(3))
    path = tmp_path / "m.npz"
    checkpoint.save(checkpoint.Model(cfg, vocab, params), str(path))

    def run(*args):
        proc = run_cli(*args, "-m", path, "--json", input=b"abc\ncab a\n")
        assert proc.returncode == 0, proc.stderr.decode()
        return [json.loads(line) for line in proc.stdout.decode().splitlines()]
    # two lanes for the two lines (the default 256 lanes cost minutes of simulated threads)
    for cmd in (["score", "--batch-size", "2", "-"], ["score", "--total", "-"],
                ["predict", "ca", "-k", "3"]):
        cpu, gpu = run(*cmd), run(*cmd, "--device", "cuda")
        assert len(cpu) == len(gpu)
        for a, b in zip(cpu, gpu):
            for key, value in a.items():
                if isinstance(value, float):
                    assert b[key] == pytest.approx(value, rel=1e-5), (cmd, key)


# ------------------------------------------------ the fast path: equal losses, graph = eager

GPU_ONLY = pytest.mark.skipif(SIM, reason="CUDA graphs and cuBLAS need a real GPU")


def _corpus_model(H_, B_, T_, tcfg_kw=None, **cfg_kw):
    """A model on the first 60k characters of the bundled Shakespeare (a real char vocabulary;
    on the simulator TEXT, whose 8 symbols keep the simulated launches small)."""
    from pathlib import Path

    text = TEXT if SIM else (Path(__file__).resolve().parents[1] / "corpora" /
                             "shakespeare.txt").read_text()[:60_000]
    vocab = build_vocab(text, "char")
    ids, _ = vocab.encode(text)
    cfg = ModelConfig(hidden=H_, vocab_size=len(vocab), **cfg_kw).validate()
    tcfg = TrainConfig(batch_size=B_, seq_len=T_, **(tcfg_kw or {}))
    return checkpoint.Model(cfg, vocab, Params(cfg).init(np.random.default_rng(11)), tcfg), ids


@pytest.mark.parametrize("cell", ("lstm",) if SIM else ("rnn", "gru", "lstm"))
def test_losses_at_equal_steps_equal_the_cpu_paths(cell, monkeypatch):
    """Issue 31's check: the device trainer as it runs by default (on a GPU: cuBLAS products in
    float32, every step after the first one CUDA graph) and the CPU trainer, from the same
    parameters on the same windows, give the same loss at every step to float32 rounding. On the
    simulator: the LSTM (test_training_steps_match_cpu has the others) at H 8, B 2, T 4, 2 steps;
    on a GPU: each cell at H 256, B 32, T 32, 12 steps."""
    monkeypatch.delenv("RNN_CLI_CUDA_TF32", raising=False)
    monkeypatch.delenv("RNN_CLI_CUDA_GRAPH", raising=False)
    H_, B_, T_, n = (8, 2, 4, 2) if SIM else (256, 32, 32, 12)
    runs = []
    for cls in (Trainer, CudaTrainer):
        model, ids = _corpus_model(H_, B_, T_, cell=cell, embed=0, dropout=0.0)
        tr = cls(model, model.train_cfg, ids, ids[:0], np.random.default_rng(0))
        runs.append((tr, [tr.train_step() for _ in range(n)]))
    (cpu, l_cpu), (gpu, l_gpu) = runs
    assert_allclose(l_gpu, l_cpu, rtol=1e-4)
    # parameters: Adam moves each by up to lr (2e-3) a step whatever the gradient's size, so a
    # weight whose gradient is ~0 can take float32 rounding to a step of either sign (seen on an
    # H200: 2 of 345,152 weights 6e-5 apart after 12 steps); a tenth of a step is the bound
    assert_allclose(gpu.params.flat, cpu.params.flat, rtol=1e-3, atol=2e-4)
    if not SIM:  # what ran: cuBLAS (float32) and the graph
        assert gpu.path() == {"gemm": "cublas", "tf32": False, "graph": True,
                              "graph_nodes": gpu.path()["graph_nodes"]}, gpu.path()


@GPU_ONLY
@pytest.mark.parametrize("cfg_kw", [dict(cell="gru", layers=2, embed=16, dropout=0.2),
                                    dict(cell="lstm", embed=64, tie_weights=True, dropout=0.1)])
def test_graph_replays_equal_launching_step_by_step(cfg_kw, monkeypatch):
    """The captured step against the same step launched kernel by kernel: every input that
    changes per step (ids, token order, dropout masks, the optimizer's scalars, the state reset
    at an epoch start: 8 windows an epoch here) reaches the graph. Both run cuBLAS."""
    results = []
    for graph in ("1", "0"):
        monkeypatch.setenv("RNN_CLI_CUDA_GRAPH", graph)
        model, ids = _corpus_model(64, 8, 16, {"lr_schedule": "cosine", "steps": 20}, **cfg_kw)
        tr = CudaTrainer(model, model.train_cfg, ids[:8 * 16 * 8 + 1], ids[:0],
                         np.random.default_rng(0))
        losses = []
        for i in range(20):
            tr.set_rate(float(i))  # a learning rate that changes every step
            losses.append(tr.train_step())
        results.append((tr.path(), losses, tr.params.flat.copy()))
    (p_graph, l_graph, w_graph), (p_eager, l_eager, w_eager) = results
    assert p_graph["graph"] and not p_eager["graph"], (p_graph, p_eager)
    assert_allclose(l_graph, l_eager, rtol=1e-6)
    assert_allclose(w_graph, w_eager, rtol=1e-5, atol=1e-7)


@GPU_ONLY
def test_tf32_products_stay_close_to_float32(monkeypatch):
    """RNN_CLI_CUDA_TF32=1: the products on TF32 tensor cores; the loss of the same steps moves
    by far less than the 1% that would show in a training curve."""
    out = []
    for tf32 in ("0", "1"):
        monkeypatch.setenv("RNN_CLI_CUDA_TF32", tf32)
        model, ids = _corpus_model(256, 32, 32, cell="lstm", embed=0, dropout=0.0)
        tr = CudaTrainer(model, model.train_cfg, ids, ids[:0], np.random.default_rng(0))
        out.append(([tr.train_step() for _ in range(12)], tr.path()))
    (l32, p32), (ltf, ptf) = out
    assert not p32["tf32"] and ptf["tf32"]
    assert_allclose(ltf, l32, rtol=1e-2)
