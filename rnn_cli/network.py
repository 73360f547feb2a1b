"""One window of the network, forward and backward, with every buffer allocated once.

The sequential part (the recurrence through time) runs in the compiled kernels of `kernels.cell`;
the products that do not depend on the previous time step (upper layers' input terms, the output
layer and its gradients) are done once per window as large matrix products by numpy's BLAS, where
they run at the machine's GEMM speed. Shape letters as in `kernels/__init__.py`; R = T*B.

    forward:  xa = W_ax x + b_a (gather) -> a<t> = g(xa<t> + W_aa a<t-1>) -> logits = a W_ya^T + b_y
    backward: dlogits = (y_hat - y)/R -> dW_ya, db_y, da -> dz through time -> dW_aa, dW_ax, db_a

`backward` overwrites the gradient buffers (one window per optimizer step).
"""

from __future__ import annotations

import os

import numpy as np

from rnn_cli.kernels import _jit, blas, cell, output
from rnn_cli.params import Params

ACTIVATIONS = {"tanh": cell.TANH, "relu": cell.RELU}
RECURRENCES = ("gemm", "loops")


def pick_recurrence(batch: int, hidden: int) -> str:
    """gemm: one BLAS product per step and thread (fast from H ~ 32 up when numpy's OpenBLAS is
    there); loops: compiled dot products. RNN_CLI_RECURRENCE=gemm|loops overrides (benchmarks)."""
    forced = os.environ.get("RNN_CLI_RECURRENCE")
    if forced in RECURRENCES:
        return forced
    return "gemm" if blas.BACKEND.startswith("openblas") and hidden >= 32 else "loops"


class Network:
    """Buffers and passes for windows of up to `steps` x `batch` tokens."""

    def __init__(self, params: Params, batch: int, steps: int, parallel: bool = True,
                 recurrence: str | None = None):
        cfg = params.cfg
        self.params, self.cfg, self.B, self.T = params, cfg, batch, steps
        L, H, V, GH = cfg.layers, cfg.hidden, cfg.vocab_size, cfg.gates * cfg.hidden
        dt = params.flat.dtype  # float32 in use; float64 for gradient checks
        R = steps * batch
        self.act = ACTIVATIONS[cfg.activation]
        self.a = [np.zeros((steps + 1, batch, H), dt) for _ in range(L)]  # (T+1, B, H)
        self.xa = np.zeros((steps, batch, GH), dt)  # (T, B, GH) input terms of one layer
        self.dz = np.zeros((steps, batch, GH), dt)  # (T, B, GH)
        self.da = np.zeros((steps, batch, H), dt)  # (T, B, H) gradient arriving at a layer
        self.dnext = np.zeros((batch, H), dt)  # (B, H)
        self.logits = np.zeros((R, V), dt)  # (R, V), overwritten by dlogits in backward
        self.nll = np.zeros(R, np.float64)  # (R,) -log y_hat[y] per position
        self.lse = np.zeros(R, np.float64)  # (R,) log-sum-exp per row
        self.state = np.zeros((L, batch, H), dt)  # carried between windows
        self.x_buf = np.zeros((steps, batch), np.int32)
        self.y_buf = np.zeros((steps, batch), np.int32)
        self.threads = _jit.get_threads() if parallel else 1
        self.recurrence = recurrence or pick_recurrence(batch, H)
        gemm_path = self.recurrence == "gemm"
        chunks = min(self.threads, batch)
        # one slice of the batch: the serial build (a parallel region for one thread only adds
        # a wake-up of the pool, which costs whole scheduler slices on a busy machine)
        if chunks > 1:
            fwd, bwd = (cell.rnn_forward_gemm, cell.rnn_backward_gemm) if gemm_path else \
                (cell.rnn_forward, cell.rnn_backward)
        else:
            fwd, bwd = (cell.rnn_forward_gemm_serial, cell.rnn_backward_gemm_serial) if gemm_path \
                else (cell.rnn_forward_serial, cell.rnn_backward_serial)
        if gemm_path:
            self.WT = np.zeros((H, H), dt)  # (H, H) W_aa^T of the layer being run

            def _fwd(a, xa, W):
                np.copyto(self.WT, W.T)
                fwd(a, xa, self.WT, self.act, chunks)
            self._fwd = _fwd
            self._bwd = lambda dz, dn, da, a, W: bwd(dz, dn, da, a, W, self.act, chunks)
        else:
            self._fwd = lambda a, xa, W: fwd(a, xa, W, self.act)
            self._bwd = lambda dz, dn, da, a, W: bwd(dz, dn, da, a, W, self.act)
        self._T = 0

    def _matmul(self, C, A, B, trans_a=False, trans_b=False, beta=0.0) -> None:
        """C = op(A) op(B) + beta C with the rows of C split over the threads."""
        chunks = max(1, min(self.threads, C.shape[0] // 16))
        mm = cell.pgemm if chunks > 1 else cell.pgemm_serial
        mm(C, A, B, trans_a, trans_b, 1.0, beta, chunks)

    def reset_state(self) -> None:
        self.state[...] = 0.0

    def forward(self, x: np.ndarray, y: np.ndarray | None = None) -> float:
        """Run a window x (T, B) int32 from the carried state; returns the summed nll (0 without y).

        The carried state moves on to the window's last hidden state. Per-position nll is left in
        `self.nll[:T*B]` (row t*B + b) and the logits in `self.logits`.
        """
        p, T = self.params, x.shape[0]
        R, H, GH = T * self.B, self.cfg.hidden, self.cfg.gates * self.cfg.hidden
        self._T = T
        xa = self.xa[:T]
        below = None
        for layer in range(self.cfg.layers):
            a = self.a[layer][:T + 1]
            a[0] = self.state[layer]
            if layer == 0:
                cell.gather_input_forward(xa, p.W_ax, p.b_a[0], x)
            else:
                xa[...] = p.b_a[layer]
                self._matmul(xa.reshape(R, GH), below[1:].reshape(R, H), p.W_ax_up[layer - 1],
                             trans_b=True, beta=1.0)
            self._fwd(a, xa, p.W_aa[layer])
            self.state[layer] = a[T]
            below = a
        logits = self.logits[:R]
        logits[...] = p.b_y
        self._matmul(logits, below[1:].reshape(R, H), p.W_ya, trans_b=True, beta=1.0)
        if y is None:
            return 0.0
        return output.softmax_xent_forward(self.nll[:R], self.lse[:R], logits, y.reshape(R))

    def backward(self, grads: Params, x: np.ndarray, y: np.ndarray, scale: float) -> None:
        """Gradients of `scale * sum(nll)` of the last forward window, written into `grads`."""
        p, T = self.params, self._T
        R, H, GH = T * self.B, self.cfg.hidden, self.cfg.gates * self.cfg.hidden
        dlogits = self.logits[:R]
        output.softmax_xent_backward(dlogits, dlogits, self.lse[:R], y.reshape(R), scale)
        top = self.a[-1][1:T + 1].reshape(R, H)
        self._matmul(grads.W_ya, dlogits, top, trans_a=True)
        np.sum(dlogits, axis=0, out=grads.b_y)
        da, dz = self.da[:T], self.dz[:T]
        self._matmul(da.reshape(R, H), dlogits, p.W_ya)
        for layer in range(self.cfg.layers - 1, -1, -1):
            a = self.a[layer][:T + 1]
            self._bwd(dz, self.dnext, da, a, p.W_aa[layer])
            dz2 = dz.reshape(R, GH)
            self._matmul(grads.W_aa[layer], dz2, a[:T].reshape(R, H), trans_a=True)
            if layer == 0:
                grads.W_ax[...] = 0.0
                grads.b_a[0] = 0.0
                cell.gather_input_backward(grads.W_ax, grads.b_a[0], dz, x)
            else:
                below = self.a[layer - 1][1:T + 1].reshape(R, H)
                np.sum(dz2, axis=0, out=grads.b_a[layer])
                self._matmul(grads.W_ax_up[layer - 1], dz2, below, trans_a=True)
                self._matmul(da.reshape(R, H), dz2, p.W_ax_up[layer - 1])


def sequence_nll(net: Network, ids: np.ndarray, start_id: int, out: np.ndarray | None = None,
                 reset: bool = True) -> float:
    """Sum over i of -log P(ids[i] | start, ids[:i]) for one stream (net.B must be 1).

    The first input is `start_id` (the end-of-line symbol, or -1 for the zero vector), then the ids
    themselves; windows of `net.T` with the state carried, so the result does not depend on T.
    `out` (len(ids),) float64 receives the per-token nll. This is the validation loss, and `score`.
    """
    if reset:
        net.reset_state()
    n, pos, total, prev = ids.shape[0], 0, 0.0, start_id
    while pos < n:
        T = min(net.T, n - pos)
        x, y = net.x_buf[:T], net.y_buf[:T]
        x[0, 0] = prev
        x[1:, 0] = ids[pos:pos + T - 1]
        y[:, 0] = ids[pos:pos + T]
        total += net.forward(x, y)
        if out is not None:
            out[pos:pos + T] = net.nll[:T]
        prev = ids[pos + T - 1]
        pos += T
    return total
