"""CudaTrainer: `train.Trainer` with parameters, gradients and optimizer moments on the device.

Each step runs forward, backward, clipping and the update on the device; per step only the window
(x, y) goes in and the loss (one float64, the trainer checks it is finite) comes out. The host
copies are refreshed only when something reads them: evaluation (validation runs on the CPU: it is
one stream, token after token, where a GPU has nothing to parallelise), the periodic sample
preview, and checkpoints (`to_model`), which therefore hold exactly what a CPU run would write.
"""

from __future__ import annotations

import time

import numpy as np

from rnn_cli.config import ModelConfig, TrainConfig
from rnn_cli.cuda import optim as co
from rnn_cli.cuda.network import CudaNetwork, DeviceParams
from rnn_cli.tasks.lm.network import Network
from rnn_cli.params import Params
from rnn_cli.optimizer import Optimizer, apply_update
from rnn_cli.tasks.lm.train import Trainer


class DeviceOptimizer:
    """The update rules of `optimizer.Optimizer` with the moments on the device.

    `host` is the CPU Optimizer whose step counter (bias correction) and state dict (model file)
    this mirrors; `download()` refreshes its moments.
    """

    def __init__(self, host: Optimizer):
        from numba import cuda

        self.host = host
        self.state = {k: cuda.to_device(v) for k, v in host.state.items()}

    def update(self, p, g) -> None:
        host = self.host
        host.t += 1  # the host's step, learning-rate pieces and decayed rate
        apply_update(co, host.cfg.optim, host.lr, host.t, host.pieces, p, g, self.state)

    def download(self) -> None:
        for k, d in self.state.items():
            d.copy_to_host(self.host.state[k])


class CudaTrainer(Trainer):
    """A Trainer whose steps run on the device; see the module docstring for what is copied when."""

    def __init__(self, model, tcfg, train_ids, val_ids, rng):
        self._stale = False
        super().__init__(model, tcfg, train_ids, val_ids, rng)
        self.dparams = DeviceParams.from_host(self._host_params)
        self.dgrads = DeviceParams.zeros(model.cfg)
        self.dopt = DeviceOptimizer(self.opt)
        self.dnet = CudaNetwork(self.dparams, tcfg.batch_size, tcfg.seq_len)
        self.dnet.state.copy_to_device(np.ascontiguousarray(self.net.state, np.float32))

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

    def train_step(self) -> float:
        """One optimizer step on the next window, on the device; returns its mean nats per token."""
        tcfg, b, net = self.tcfg, self.batches, self.dnet
        x, y, reset = b.next_window()
        if reset:
            net.reset_state()
        R = x.shape[0] * x.shape[1]
        # dropout masks: drawn from the run's Generator by the CPU network, as a CPU run draws them
        net.forward(x, y, sync=False, masks=self.net.draw_masks(self.rng, x))
        net.backward(self.dgrads, x, y, 1.0 / R)
        co.clip_gradients(self.dgrads.flat, tcfg.clip, tcfg.clip_mode, net.sumsq, net.partials)
        self.dopt.update(self.dparams.flat, self.dgrads.flat)
        self._stale = True
        self.step += 1
        self.tokens += R
        return net.loss() / R  # the one host round trip of a step

    def evaluate(self) -> float:
        self.params  # refresh the host copy the CPU evaluation network reads
        return super().evaluate()

    def to_model(self, *, with_resume: bool = True):
        self.params
        self.dopt.download()
        self.dnet.state.copy_to_host(self.net.state)
        return super().to_model(with_resume=with_resume)


def warm_up(cfg: ModelConfig) -> float:
    """Compile every device kernel a run uses on a tiny network (numba-cuda compiles on first
    launch); returns seconds."""
    t0 = time.perf_counter()
    tiny = ModelConfig(**{**vars(cfg), "hidden": 2, "vocab_size": 3,
                          "embed": 2 if cfg.embed else 0})
    host = Params(tiny).init(np.random.default_rng(0))
    p = DeviceParams.from_host(host)
    g = DeviceParams.zeros(tiny)
    net = CudaNetwork(p, 1, 2)
    x = np.zeros((2, 1), np.int32)
    net.forward(x, x, masks=Network(host, 1, 2, parallel=False).draw_masks(
        np.random.default_rng(0), x))
    net.backward(g, x, x, 1.0)
    for mode in ("norm", "value"):
        co.clip_gradients(g.flat, 1.0, mode, net.sumsq, net.partials)
    for name in ("adam", "sgd", "adagrad", "rmsprop"):
        opt = DeviceOptimizer(Optimizer(TrainConfig(optim=name), len(p)))
        opt.update(p.flat, g.flat)
    net.loss()
    return time.perf_counter() - t0
