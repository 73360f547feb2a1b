"""One window of the network on the device: the twin of `rnn_cli.network.Network`.

Parameters live in one flat device buffer with named views (`DeviceParams`, the same layout as
`params.Params`, so a host copy is one memcpy and model files do not depend on the device). Every
activation buffer is allocated once; per window only x and y (T*B int32 each) go to the device and,
when asked, the loss (one float64) comes back.

    forward:  xa = W_ax x + b_a (gather) -> a<t> = g(xa<t> + W_aa a<t-1>) -> logits = a W_ya^T + b_y
    backward: dlogits = (y_hat - y) * scale -> dW_ya, db_y, da -> dz through time -> dW_aa, dW_ax,
              db_a

`CudaNetwork` also offers what `network.sequence_nll` uses (reset_state, T, x_buf, y_buf, forward,
nll), so the scoring and validation code can run a B = 1 network on the device unchanged.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from rnn_cli.cuda import kernels as ck
from rnn_cli.network import ACTIVATIONS
from rnn_cli.params import Params, param_shapes


class DeviceParams:
    """A flat float32 device buffer and its named views, laid out as `params.Params`."""

    def __init__(self, cfg, flat=None):
        self.cfg = cfg
        self.shapes = param_shapes(cfg)
        sizes = [math.prod(s) for s in self.shapes.values()]
        self.flat = cuda.device_array(sum(sizes), np.float32) if flat is None else flat
        self.views = {}
        offset = 0
        for (name, shape), n in zip(self.shapes.items(), sizes):
            # a zero-size view (W_ax_up of a one-layer model) is never read; skip the device
            # array of size 0, whose support differs between the driver and the simulator
            self.views[name] = self.flat[offset:offset + n].reshape(shape) if n else None
            offset += n

    @classmethod
    def from_host(cls, params: Params) -> "DeviceParams":
        return cls(params.cfg, cuda.to_device(np.ascontiguousarray(params.flat, np.float32)))

    @classmethod
    def zeros(cls, cfg) -> "DeviceParams":
        out = cls(cfg)
        ck.fill(out.flat, 0.0)
        return out

    def __getattr__(self, name):
        views = self.__dict__.get("views")
        if views is not None and name in views:
            return views[name]
        raise AttributeError(name)

    def __len__(self) -> int:
        return self.flat.shape[0]

    def to_host(self, params: Params | None = None) -> Params:
        """Copy into `params` (or a new Params) and return it."""
        params = params if params is not None else Params(self.cfg)
        params.flat[:] = self.flat.copy_to_host()
        return params

    def upload(self, params: Params) -> None:
        self.flat.copy_to_device(np.ascontiguousarray(params.flat, np.float32))


class CudaNetwork:
    """Device buffers and passes for windows of up to `steps` x `batch` tokens."""

    def __init__(self, params: DeviceParams, batch: int, steps: int):
        cfg = params.cfg
        self.params, self.cfg, self.B, self.T = params, cfg, batch, steps
        L, H, V, GH = cfg.layers, cfg.hidden, cfg.vocab_size, cfg.gates * cfg.hidden
        R = steps * batch
        self.act = ACTIVATIONS[cfg.activation]
        f32 = np.float32
        self.a = [cuda.device_array((steps + 1, batch, H), f32) for _ in range(L)]  # (T+1, B, H)
        self.xa = cuda.device_array((steps, batch, GH), f32)  # (T, B, GH)
        self.dz = cuda.device_array((steps, batch, GH), f32)  # (T, B, GH)
        self.da = cuda.device_array((steps, batch, H), f32)  # (T, B, H)
        self.W_T = cuda.device_array((H, H), f32)  # (H, H) W_aa^T of the layer being run
        self.logits = cuda.device_array((R, V), f32)  # (R, V), overwritten by dlogits
        self._nll = cuda.device_array(R, np.float64)  # (R,)
        self.lse = cuda.device_array(R, np.float64)  # (R,)
        self.state = cuda.device_array((L, batch, H), f32)  # (L, B, H) carried between windows
        self.total = cuda.device_array(1, np.float64)  # summed nll of the last forward
        self.sumsq = cuda.device_array(1, np.float64)  # squared gradient norm (clipping)
        self.partials = cuda.device_array(ck.PARTIALS, np.float64)
        self.x_dev = cuda.device_array((steps, batch), np.int32)
        self.y_dev = cuda.device_array((steps, batch), np.int32)
        self.x_buf = np.zeros((steps, batch), np.int32)  # host staging, as Network's
        self.y_buf = np.zeros((steps, batch), np.int32)
        ck.fill(self.state, 0.0)  # a[l][0] is copied from it by forward, a[l][1:] written there
        self._T = 0

    def reset_state(self) -> None:
        ck.fill(self.state, 0.0)

    @property
    def nll(self) -> np.ndarray:
        """Per-position nll of the last forward window (R,), copied to the host."""
        return self._nll.copy_to_host()

    def loss(self) -> float:
        """The summed nll of the last forward window (waits for the device)."""
        return float(self.total.copy_to_host()[0])

    def forward(self, x: np.ndarray, y: np.ndarray | None = None, sync: bool = True) -> float:
        """Run a window x (T, B) int32 from the carried state, as Network.forward.

        Returns the summed nll (0 without y); with sync=False returns nan at once and leaves the
        sum on the device for `loss()` (so the backward pass is queued without waiting).
        """
        p, T = self.params, x.shape[0]
        R, H = T * self.B, self.cfg.hidden
        self._T = T
        self.x_dev[:T].copy_to_device(np.ascontiguousarray(x, np.int32))
        xa = self.xa[:T]
        below = None
        for layer in range(self.cfg.layers):
            a = self.a[layer][:T + 1]
            a[0].copy_to_device(self.state[layer])
            if layer == 0:
                ck.gather_input_forward(xa, p.W_ax, p.b_a[0], self.x_dev[:T])
            else:
                xa2 = xa.reshape(R, H)
                ck.matmul(xa2, below[1:].reshape(R, H), p.W_ax_up[layer - 1], trans_b=True)
                ck.add_bias(xa2, p.b_a[layer])
            ck.rnn_forward(a, xa, p.W_aa[layer], self.act, self.W_T)
            self.state[layer].copy_to_device(a[T])
            below = a
        logits = self.logits[:R]
        ck.matmul(logits, below[1:].reshape(R, H), p.W_ya, trans_b=True)
        ck.add_bias(logits, p.b_y)
        if y is None:
            return 0.0
        self.y_dev[:T].copy_to_device(np.ascontiguousarray(y, np.int32))
        ck.softmax_xent_forward(self._nll[:R], self.lse[:R], logits, self.y_dev[:T].reshape(R),
                                self.total, self.partials)
        return self.loss() if sync else math.nan

    def backward(self, grads: DeviceParams, x=None, y=None, scale: float = 1.0) -> None:
        """Gradients of `scale * sum(nll)` of the last forward window, written into `grads`.

        x and y are those of the forward call (already on the device); they are accepted for the
        signature of Network.backward and not copied again.
        """
        p, T = self.params, self._T
        R, H = T * self.B, self.cfg.hidden
        y_dev = self.y_dev[:T].reshape(R)
        dlogits = self.logits[:R]
        ck.softmax_xent_backward(dlogits, dlogits, self.lse[:R], y_dev, scale)
        top = self.a[-1][1:T + 1].reshape(R, H)
        ck.matmul(grads.W_ya, dlogits, top, trans_a=True)
        ck.col_sum(grads.b_y, dlogits)
        da, dz = self.da[:T], self.dz[:T]
        ck.matmul(da.reshape(R, H), dlogits, p.W_ya)
        for layer in range(self.cfg.layers - 1, -1, -1):
            a = self.a[layer][:T + 1]
            ck.rnn_backward(dz, da, a, p.W_aa[layer], self.act)
            dz2 = dz.reshape(R, H)
            ck.matmul(grads.W_aa[layer], dz2, a[:T].reshape(R, H), trans_a=True)
            if layer == 0:
                ck.fill(grads.W_ax, 0.0)
                ck.fill(grads.b_a[0], 0.0)
                ck.gather_input_backward(grads.W_ax, grads.b_a[0], dz, self.x_dev[:T])
            else:
                below = self.a[layer - 1][1:T + 1].reshape(R, H)
                ck.col_sum(grads.b_a[layer], dz2)
                ck.matmul(grads.W_ax_up[layer - 1], dz2, below, trans_a=True)
                ck.matmul(da.reshape(R, H), dz2, p.W_ax_up[layer - 1])
