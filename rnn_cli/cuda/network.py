"""One window of the network on the device: the twin of `rnn_cli.tasks.lm.network.Network`.

Parameters live in one flat device buffer with named views (`DeviceParams`, the same layout as
`params.Params`, so a host copy is one memcpy and model files do not depend on the device). Every
activation buffer is allocated once; per window only x, y and x's positions sorted by token (for
the input gradients; int32, one copy) go to the device (with dropout also the window's masks,
drawn on the host from the run's Generator exactly as the CPU path draws them) and, when asked,
the loss (one float64) comes back.

Everything runs on the network's `stream`, the products through `gemm` (blas.py). The passes are
split into what the host does (`forward`/`backward`: copy the window in, then launch) and what
only launches (`run_forward`/`run_backward`, after `stage` + `copy_staged`): the trainer captures
the latter, with the copy from pinned memory, into one CUDA graph (step.py).

    forward:  xa = W_ax x + b_a (gather; with --embed: W_ax W_emb[x] + b_a) -> the cell through
              time (cells.py) -> upper layers: xa = W_ax_up a_below + b_a -> logits = a W_ya^T + b_y
    backward: dlogits = (y_hat - y) * scale -> dW_ya, db_y, da -> dz through time -> dW_aa,
              dW_ax (, dW_emb), db_a (, db_hn)

Every cell (rnn, gru, lstm), stacked layers, the embedding, tied weights (W_ya is W_emb's view, its
gradient the sum of both uses) and inverted dropout (masks on the embedding output, every upper
layer's input and the output layer's input, as `network.Network`). Not here: the class softmax.

`CudaNetwork` also offers what `network.sequence_nll` uses (reset_state, T, x_buf, y_buf, forward,
nll), so the scoring and validation code can run a B = 1 network on the device unchanged.
"""

from __future__ import annotations

import math

import numpy as np
from rnn_cli.cuda import cells
from rnn_cli.cuda import kernels as ck
from rnn_cli.cuda.backend import numba_cuda
from rnn_cli.cuda.blas import make_gemm
from rnn_cli.params import Params, param_shapes
from rnn_cli.tasks.lm.network import ACTIVATIONS

cuda = numba_cuda()


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
        if "W_ya" not in self.views:  # tied: the output layer reads the embedding
            self.views["W_ya"] = self.views["W_emb"]

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

    def __init__(self, params: DeviceParams, batch: int, steps: int, stream=0, gemm=None):
        cfg = params.cfg
        if getattr(cfg, "softmax", "full") != "full":
            raise ValueError("the CUDA network has the full softmax only")
        self.params, self.cfg, self.B, self.T = params, cfg, batch, steps
        self.stream = stream
        self.gemm = gemm if gemm is not None else make_gemm(stream)
        L, H, V, GH, E = cfg.layers, cfg.hidden, cfg.vocab_size, cfg.gates * cfg.hidden, cfg.embed
        R = steps * batch
        self.act = ACTIVATIONS[cfg.activation]
        self.cell = cfg.cell
        f32 = np.float32

        def dev(*shape, dtype=f32):
            return cuda.device_array(shape, dtype)
        self.a = [dev(steps + 1, batch, H) for _ in range(L)]  # (T+1, B, H)
        self.c = [dev(steps + 1, batch, H) for _ in range(L)] if cfg.cell == "lstm" else None
        G2 = {"gru": 4, "lstm": 5}.get(cfg.cell, 0)  # gate rows stored per step for backward
        self.gates = [dev(steps, batch, G2 * H) for _ in range(L)] if G2 else None
        self.xa = dev(steps, batch, GH)  # (T, B, GH)
        self.hh = dev(batch, GH)  # (B, GH) a<t> W_aa^T of the step being run
        self.emb = dev(steps, batch, E) if E else None  # (T, B, E) W_emb[x], dropped in place
        self._dev = dev
        self.dz = None  # backward's buffers: allocated by the first backward (`_grad_buffers`),
        # so the forward-only networks of score and predict take ~40% less device memory
        # dropout sites as network.Network: 0 the embedding output, 1..L-1 layer l's input, L the
        # output layer's; masks (uploaded per window) and the dropped copies of sites 1..L
        self.masks = ([dev(steps, batch, E) if E else None]
                      + [dev(steps, batch, H) for _ in range(L)]) if cfg.dropout else None
        self.drop = [None] + [dev(steps, batch, H) for _ in range(L)] if cfg.dropout else None
        self.logits = dev(R, V)  # (R, V), overwritten by dlogits
        self._nll = dev(R, dtype=np.float64)  # (R,)
        self.lse = dev(R, dtype=np.float64)  # (R,)
        self.state = dev(cfg.state_rows, batch, H)  # (S*L, B, H) carried between windows
        self.total = dev(1, dtype=np.float64)  # summed nll of the last forward
        self.sumsq = dev(1, dtype=np.float64)  # squared gradient norm (clipping)
        self.partials = dev(ck.PARTIALS, dtype=np.float64)
        # the window's int32 inputs, one buffer: x (T, B) | y (T, B) | token_order(x) (R + V + 1)
        self.ints = dev(3 * R + V + 1, dtype=np.int32)
        self.x_dev = self.ints[:R].reshape(steps, batch)
        self.y_dev = self.ints[R:2 * R].reshape(steps, batch)
        self._ints_host = None  # pinned staging of `stage` (the trainer's), made on first use
        self.x_buf = np.zeros((steps, batch), np.int32)  # host staging, as Network's
        self.y_buf = np.zeros((steps, batch), np.int32)
        self.colsum = ck.col_sum_scratch(max(GH, V, E))
        ck.fill(self.state, 0.0, stream)  # a[l][0] is copied from it by forward
        self._T = 0
        self._dropping = False

    def _grad_buffers(self) -> None:
        cfg, dev, T, B = self.cfg, self._dev, self.T, self.B
        H, GH, E = cfg.hidden, cfg.gates * cfg.hidden, cfg.embed
        self.dz = dev(T, B, GH)  # (T, B, GH)
        self.da = dev(T, B, H)  # (T, B, H)
        self.dn = dev(B, H)  # (B, H) the recurrent gradient of the step being run
        self.dhh = dev(T, B, GH) if cfg.cell == "gru" else None  # (T, B, 3H)
        self.dcarry = dev(T, B, H) if cfg.cell != "rnn" else None  # (T, B, H) dh / dc
        self.demb = dev(T, B, E) if E else None  # (T, B, E)

    def reset_state(self) -> None:
        ck.fill(self.state, 0.0, self.stream)

    def synchronize(self) -> None:
        (self.stream if self.stream else cuda).synchronize()

    @property
    def nll(self) -> np.ndarray:
        """Per-position nll of the last forward window (R,), copied to the host."""
        self.synchronize()
        return self._nll.copy_to_host()

    def loss(self) -> float:
        """The summed nll of the last forward window (waits for the device)."""
        self.synchronize()
        return float(self.total.copy_to_host()[0])

    def _order_view(self, T: int):
        R = T * self.B
        return self.ints[2 * self.T * self.B:][:R + self.cfg.vocab_size + 1]

    # ----------------------------------------------------------------- host side of a window

    def upload_masks(self, masks: list | None, T: int) -> None:
        """The dropout masks of `Network.draw_masks` (or None: no dropout this window)."""
        self._dropping = masks is not None and self.masks is not None
        if self._dropping:
            for dst, m in zip(self.masks, masks):
                if dst is not None:
                    dst[:T].copy_to_device(np.ascontiguousarray(m[:T], np.float32),
                                           stream=self.stream)

    def stage(self, x: np.ndarray, y: np.ndarray) -> None:
        """Write x, y (T, B) and x's token order into pinned host memory, for `copy_staged` (the
        caller makes sure the previous copy has run: the trainer waits for every step)."""
        if self._ints_host is None:
            self._ints_host = cuda.pinned_array(self.ints.shape[0], np.int32)
            self._ints_host[:] = 0
        T, R, SB = x.shape[0], x.size, self.T * self.B
        h = self._ints_host
        h[:R] = x.reshape(-1)
        h[SB:SB + R] = y.reshape(-1)
        ck.token_order(x, self.cfg.vocab_size, h[2 * SB:2 * SB + R + self.cfg.vocab_size + 1])

    def copy_staged(self) -> None:
        """Queue the copy of the staged inputs to the device (capturable into a graph)."""
        self.ints.copy_to_device(self._ints_host, stream=self.stream)

    def forward(self, x: np.ndarray, y: np.ndarray | None = None, sync: bool = True,
                masks: list | None = None) -> float:
        """Run a window x (T, B) int32 from the carried state, as Network.forward.

        masks: the host dropout masks of `Network.draw_masks` (training only), uploaded here.
        Returns the summed nll (0 without y); with sync=False returns nan at once and leaves the
        sum on the device for `loss()` (so the backward pass is queued without waiting).
        """
        T = x.shape[0]
        self.upload_masks(masks, T)
        self.x_dev[:T].copy_to_device(np.ascontiguousarray(x, np.int32), stream=self.stream)
        if y is not None:
            self.y_dev[:T].copy_to_device(np.ascontiguousarray(y, np.int32), stream=self.stream)
        self.run_forward(T, y is not None)
        if y is None:
            return 0.0
        return self.loss() if sync else math.nan

    def backward(self, grads: DeviceParams, x=None, y=None, scale: float = 1.0) -> None:
        """Gradients of `scale * sum(nll)` of the last forward window, written into `grads`.

        x: that window's input (T, B), for its token order (the inputs' gradients; None: read back
        from the device); y is accepted for the signature of Network.backward (already there).
        """
        T = self._T
        x = self.x_dev[:T].copy_to_host() if x is None else np.asarray(x, np.int32)[:T]
        order = ck.token_order(x, self.cfg.vocab_size)
        self._order_view(T).copy_to_device(order, stream=self.stream)
        self.run_backward(grads, scale)

    # ----------------------------------------------------------------- launches only

    def _drop(self, site: int, a, T: int):
        """a (T, B, W) times this window's mask at `site` (a itself without dropout; site 0, the
        embedding output, in place)."""
        if not self._dropping:
            return a
        out = self.drop[site][:T] if site else a
        ck.mul(out, a, self.masks[site][:T], self.stream)
        return out

    def run_forward(self, T: int, with_loss: bool = True) -> None:
        """The forward pass of a window already on the device (x_dev[:T], y_dev[:T] with_loss)."""
        p, cfg, s, gemm = self.params, self.cfg, self.stream, self.gemm
        L, H, GH, E = cfg.layers, cfg.hidden, cfg.gates * cfg.hidden, cfg.embed
        R = T * self.B
        self._T = T
        x_dev = self.x_dev[:T]
        xa = self.xa[:T]
        xa2 = xa.reshape(R, GH)
        below = None
        for layer in range(L):
            a = self.a[layer][:T + 1]
            a[0].copy_to_device(self.state[layer], stream=s)
            if layer == 0 and E:
                e = self.emb[:T]
                ck.embed_forward(e, p.W_emb, x_dev, s)
                e = self._drop(0, e, T)
                gemm.gemm(xa2, e.reshape(R, E), p.W_ax, trans_b=True)
                ck.add_bias(xa2, p.b_a[0], s)
            elif layer == 0:
                ck.gather_input_forward(xa, p.W_ax, p.b_a[0], x_dev, s)
            else:
                inp = self._drop(layer, below[1:], T)
                gemm.gemm(xa2, inp.reshape(R, H), p.W_ax_up[layer - 1], trans_b=True)
                ck.add_bias(xa2, p.b_a[layer], s)
            c = None
            if self.c is not None:
                c = self.c[layer][:T + 1]
                c[0].copy_to_device(self.state[L + layer], stream=s)
            gates = self.gates[layer][:T] if self.gates is not None else None
            cells.forward(self.cell, a, c, gates, xa, p.W_aa[layer],
                          p.b_hn[layer] if self.cell == "gru" else None, self.act, self.hh,
                          gemm, s)
            self.state[layer].copy_to_device(a[T], stream=s)
            if c is not None:
                self.state[L + layer].copy_to_device(c[T], stream=s)
            below = a
        top = self._drop(L, below[1:], T)
        logits = self.logits[:R]
        gemm.gemm(logits, top.reshape(R, H), p.W_ya, trans_b=True)
        ck.add_bias(logits, p.b_y, s)
        if with_loss:
            ck.softmax_xent_forward(self._nll[:R], self.lse[:R], logits,
                                    self.y_dev[:T].reshape(R), self.total, self.partials, s)

    def run_backward(self, grads: DeviceParams, scale: float = 1.0) -> None:
        """The backward pass of the last forward window (its token order on the device)."""
        p, cfg, T, s, gemm = self.params, self.cfg, self._T, self.stream, self.gemm
        L, H, GH, E = cfg.layers, cfg.hidden, cfg.gates * cfg.hidden, cfg.embed
        R = T * self.B
        if self.dz is None:
            self._grad_buffers()
        order, y_dev = self._order_view(T), self.y_dev[:T].reshape(R)
        drop, cs = self._dropping, self.colsum
        dlogits = self.logits[:R]
        ck.softmax_xent_backward(dlogits, dlogits, self.lse[:R], y_dev, scale, s)
        top = (self.drop[L][:T] if drop else self.a[-1][1:T + 1]).reshape(R, H)
        gemm.gemm(grads.W_ya, dlogits, top, trans_a=True)  # tied: W_emb's, the embedding adds
        ck.col_sum(grads.b_y, dlogits, 0, cs, s)
        da, dz = self.da[:T], self.dz[:T]
        da2, dz2 = da.reshape(R, H), dz.reshape(R, GH)
        gemm.gemm(da2, dlogits, p.W_ya)
        if drop:
            ck.mul(da, da, self.masks[L][:T], s)
        for layer in range(L - 1, -1, -1):
            a = self.a[layer][:T + 1]
            c = self.c[layer][:T + 1] if self.c is not None else None
            gates = self.gates[layer][:T] if self.gates is not None else None
            dhh = self.dhh[:T] if self.dhh is not None else None
            dcarry = self.dcarry[:T] if self.dcarry is not None else None
            cells.backward(self.cell, dz, dhh, dcarry, da, a, c, gates, p.W_aa[layer], self.act,
                           self.dn, gemm, s)
            rec = (dhh if dhh is not None else dz).reshape(R, GH)
            gemm.gemm(grads.W_aa[layer], rec, a[:T].reshape(R, H), trans_a=True)
            if dhh is not None:
                ck.col_sum(grads.b_hn[layer], rec, 2 * H, cs, s)
            if layer == 0 and E:
                e = self.emb[:T].reshape(R, E)  # dropped in place by forward
                gemm.gemm(grads.W_ax, dz2, e, trans_a=True)
                ck.col_sum(grads.b_a[0], dz2, 0, cs, s)
                de = self.demb[:T]
                gemm.gemm(de.reshape(R, E), dz2, p.W_ax)
                if drop:
                    ck.mul(de, de, self.masks[0][:T], s)
                if not cfg.tie_weights:
                    ck.fill(grads.W_emb, 0.0, s)
                ck.embed_backward(grads.W_emb, de, order, s)
            elif layer == 0:
                ck.gather_input_backward(grads.W_ax, grads.b_a[0], dz, order, cs, s)
            else:
                below = (self.drop[layer][:T] if drop else self.a[layer - 1][1:T + 1])
                ck.col_sum(grads.b_a[layer], dz2, 0, cs, s)
                gemm.gemm(grads.W_ax_up[layer - 1], dz2, below.reshape(R, H), trans_a=True)
                gemm.gemm(da2, dz2, p.W_ax_up[layer - 1])
                if drop:
                    ck.mul(da, da, self.masks[layer][:T], s)
