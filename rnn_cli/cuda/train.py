"""CudaTrainer: `train.Trainer` with parameters, gradients and optimizer moments on the device.

Each step runs forward, backward, clipping and the update on the device, on one stream; per step
only the window goes in (x, y and x's token order: one int32 copy from pinned memory; with dropout
also the masks) and the loss (one float64) comes out. The host copies are refreshed only when
something reads them: evaluation (validation runs on the CPU: it is one stream, token after token,
where a GPU has nothing to parallelise), the periodic sample preview, and checkpoints
(`to_model`), which therefore hold exactly what a CPU run would write.

The step as one CUDA graph (graph.py): the first step of a trainer runs launch by launch (it
compiles the kernels and lets cuBLAS pick its kernels); the second is captured, from the copy of
the staged window to the copy of the loss back, and from then on every step is one graph launch
and one wait. What changes per step reaches the graph through fixed buffers: the window's ids
(`CudaNetwork.stage`), the optimizer's scalars (`optim.HyperRules`), the dropout masks (copied in
before the launch); the state reset of an epoch start is one kernel before it. If capturing fails
the trainer keeps launching step by step (`path()` says which ran; RNN_CLI_CUDA_GRAPH=0 asks for
that).
"""

from __future__ import annotations

import time

import numpy as np

from rnn_cli.config import ModelConfig, TrainConfig
from rnn_cli.cuda import graph as cgraph
from rnn_cli.cuda import optim as co
from rnn_cli.cuda.backend import guard, numba_cuda, setting
from rnn_cli.cuda.blas import make_gemm
from rnn_cli.cuda.network import CudaNetwork, DeviceParams
from rnn_cli.optimizer import Optimizer, apply_update
from rnn_cli.params import Params
from rnn_cli.tasks.lm.network import Network
from rnn_cli.tasks.lm.train import Trainer

cuda = numba_cuda()


class DeviceOptimizer:
    """The update rules of `optimizer.Optimizer` with the moments on the device.

    `host` is the CPU Optimizer whose step counter (bias correction), learning rate and state dict
    (model file) this mirrors; `download()` refreshes its moments. An update is `stage()` (the host
    side: the counter and the scalars, into pinned memory) then `enqueue()` (launches only: the
    scalars' copy and the kernels; capturable).
    """

    def __init__(self, host: Optimizer, stream=0):
        self.host = host
        self.state = {k: cuda.to_device(v) for k, v in host.state.items()}
        self.rules = co.HyperRules(len(host.pieces), stream)
        self._none = np.empty(0, np.float32)  # what stage() slices: it launches nothing

    def stage(self) -> None:
        host = self.host
        host.t += 1  # the host's step, learning-rate pieces and decayed rate
        self.rules.begin(launch=False)
        apply_update(self.rules, host.cfg.optim, host.lr, host.t, host.pieces, self._none,
                     self._none, {k: self._none for k in self.state})

    def enqueue(self, p, g) -> None:
        host = self.host
        self.rules.upload()
        self.rules.begin(launch=True)
        apply_update(self.rules, host.cfg.optim, host.lr, host.t, host.pieces, p, g, self.state)

    def update(self, p, g) -> None:
        self.stage()
        self.enqueue(p, g)

    def download(self) -> None:
        for k, d in self.state.items():
            d.copy_to_host(self.host.state[k])


class CudaTrainer(Trainer):
    """A Trainer whose steps run on the device; see the module docstring for what is copied when."""

    def __init__(self, model, tcfg, train_ids, val_ids, rng):
        self._stale = False
        super().__init__(model, tcfg, train_ids, val_ids, rng)
        with guard("setting up the model on the GPU"):
            self.stream = cuda.stream()
            self.dparams = DeviceParams.from_host(self._host_params)
            self.dgrads = DeviceParams.zeros(model.cfg)
            self.dopt = DeviceOptimizer(self.opt, self.stream)
            self.dnet = CudaNetwork(self.dparams, tcfg.batch_size, tcfg.seq_len, self.stream,
                                    make_gemm(self.stream))
            self.dnet.state.copy_to_device(np.ascontiguousarray(self.net.state, np.float32))
            self._loss = cuda.pinned_array(1, np.float64)
        self._graphs: dict = {}  # (T, dropout) -> captured step
        self._use_graph = cgraph.available() and setting("GRAPH", "1") not in ("0", "")
        self._eager_steps = 0
        self.graph_error = ""  # why capturing failed (the trainer then runs step by step)

    # The host parameters are read by evaluation, previews and checkpoints: refresh them lazily.
    @property
    def params(self) -> Params:
        if self._stale:
            self.dparams.to_host(self._host_params)
            self._stale = False
        return self._host_params

    @params.setter
    def params(self, value: Params) -> None:
        self._host_params = value

    def _enqueue(self, T: int) -> None:
        """The device work of one step, launches and copies only (what a graph captures)."""
        net, tcfg, s = self.dnet, self.tcfg, self.stream
        net.copy_staged()
        net.run_forward(T, True)
        net.run_backward(self.dgrads, 1.0 / (T * net.B))
        co.clip_gradients(self.dgrads.flat, tcfg.clip, tcfg.clip_mode, net.sumsq, net.partials, s)
        self.dopt.enqueue(self.dparams.flat, self.dgrads.flat)
        net.total.copy_to_host(self._loss, stream=s)

    def _launch(self, T: int) -> None:
        key = (T, self.dnet._dropping)
        g = self._graphs.get(key)
        if g is None and self._use_graph and self._eager_steps > 0:
            try:
                g = self._graphs[key] = cgraph.Graph(self.stream, lambda: self._enqueue(T))
            except Exception as e:  # keep training, launch by launch
                self._use_graph, self.graph_error = False, f"{type(e).__name__}: {e}"
        if g is not None:
            g.launch()
        else:
            self._enqueue(T)
            self._eager_steps += 1

    def train_step(self) -> float:
        """One optimizer step on the next window, on the device; returns its mean nats per token."""
        x, y, reset = self.batches.next_window()
        net = self.dnet
        T, R = x.shape[0], x.shape[0] * x.shape[1]
        # dropout masks: drawn from the run's Generator by the CPU network, as a CPU run draws them
        masks = self.net.draw_masks(self.rng)
        with guard("a training step on the GPU"):
            if reset:
                net.reset_state()
            net.upload_masks(masks, T)
            net.stage(x, y)
            self.dopt.stage()
            self._launch(T)
            net.synchronize()  # the one wait of a step
        self._stale = True
        self.step += 1
        self.tokens += R
        return float(self._loss[0]) / R

    def path(self) -> dict:
        """How the steps ran: the products (cublas / numba, tf32), and whether as a CUDA graph."""
        g = next(iter(self._graphs.values()), None)
        return {"gemm": self.dnet.gemm.kind, "tf32": bool(self.dnet.gemm.tf32),
                "graph": g is not None, "graph_nodes": g.nodes if g is not None else 0,
                **({"graph_error": self.graph_error} if self.graph_error else {})}

    def run(self, on_event=lambda kind, info: None, should_stop=lambda: False) -> dict:
        return super().run(on_event, should_stop) | {"cuda": self.path()}

    def evaluate(self) -> float:
        self.params  # refresh the host copy the CPU evaluation network reads
        return super().evaluate()

    def to_model(self, *, with_resume: bool = True):
        self.dnet.synchronize()
        self.params
        self.dopt.download()
        self.dnet.state.copy_to_host(self.net.state)
        return super().to_model(with_resume=with_resume)


def warm_up(cfg: ModelConfig) -> float:
    """Compile every device kernel a run uses on a tiny network (numba-cuda compiles on first
    launch); returns seconds. A failure is one RnnCliError line (backend.guard)."""
    t0 = time.perf_counter()
    with guard("compiling the GPU kernels"):
        tiny = ModelConfig(**{**vars(cfg), "hidden": 2, "vocab_size": 3,
                              "embed": 2 if cfg.embed else 0})
        host = Params(tiny).init(np.random.default_rng(0))
        p = DeviceParams.from_host(host)
        g = DeviceParams.zeros(tiny)
        stream = cuda.stream()
        net = CudaNetwork(p, 1, 2, stream)
        x = np.zeros((2, 1), np.int32)
        net.forward(x, x, masks=Network(host, 1, 2, parallel=False).draw_masks(
            np.random.default_rng(0)))
        net.backward(g, x, x, 1.0)
        for mode in ("norm", "value"):
            co.clip_gradients(g.flat, 1.0, mode, net.sumsq, net.partials, stream)
        for name in ("adam", "sgd", "adagrad", "rmsprop"):
            opt = DeviceOptimizer(Optimizer(TrainConfig(optim=name), len(p)), stream)
            opt.update(p.flat, g.flat)
        net.loss()
    return time.perf_counter() - t0
