"""Gradient clipping and the optimizer updates on the device: twins of optimizer.clip_gradients and
kernels/optim.py, on flat float32 buffers (elementwise, one thread per element).

The global norm is reduced on the device (kernels.sum_squares) and read there by the scaling
kernel, so clipping needs no host round trip. The step's scalars (learning rate, Adam's bias
corrections) are computed on the host by `optimizer.apply_update`, exactly as for the CPU, and
reach the kernels through a small device buffer (`HyperRules`), not as launch arguments: so one
captured CUDA graph serves every step (the graph copies the buffer in from pinned host memory).
"""

from __future__ import annotations

import math

import numpy as np

from rnn_cli.cuda import kernels as ck
from rnn_cli.cuda.backend import numba_cuda
from rnn_cli.cuda.kernels import _blocks

cuda = numba_cuda()


@cuda.jit
def scale_by_norm_kernel(g, sumsq, clip):
    """g *= clip / ||g|| when ||g|| > clip; the norm is read on the device (no host round trip)."""
    i = cuda.grid(1)
    if i < g.shape[0]:
        norm = math.sqrt(sumsq[0])
        if norm > clip:
            g[i] *= clip / norm


@cuda.jit
def clip_values_kernel(g, limit):
    """Clip every element to [-limit, limit] (the seed's np.clip)."""
    i = cuda.grid(1)
    if i < g.shape[0]:
        if g[i] > limit:
            g[i] = limit
        elif g[i] < -limit:
            g[i] = -limit


def clip_gradients(g, clip: float, mode: str, sumsq, partials, stream=0) -> None:
    """Twin of optimizer.clip_gradients, in place on the device; the norm before clipping is left in
    sumsq[0] (squared; read it with copy_to_host only when it is logged)."""
    ck.sum_squares(sumsq, g, partials, stream)
    if clip > 0:
        if mode == "norm":
            scale_by_norm_kernel[_blocks(g.shape[0]), ck.THREADS, stream](g, sumsq, clip)
        elif mode == "value":
            clip_values_kernel[_blocks(g.shape[0]), ck.THREADS, stream](g, clip)


# The rules read their step's scalars from hyper[j], hyper[j + 1] (float64, on the device).


@cuda.jit
def sgd_update_kernel(p, g, hyper, j):
    """p -= lr * g;  lr = hyper[j]."""
    i = cuda.grid(1)
    if i < p.shape[0]:
        p[i] -= hyper[j] * g[i]


@cuda.jit
def adagrad_update_kernel(p, g, h, hyper, j, eps):
    """h += g^2; p -= lr * g / (sqrt(h) + eps);  lr = hyper[j]."""
    i = cuda.grid(1)
    if i < p.shape[0]:
        h[i] += g[i] * g[i]
        p[i] -= hyper[j] * g[i] / (math.sqrt(h[i]) + eps)


@cuda.jit
def rmsprop_update_kernel(p, g, h, hyper, j, decay, eps):
    """h = decay*h + (1-decay)*g^2; p -= lr * g / (sqrt(h) + eps);  lr = hyper[j]."""
    i = cuda.grid(1)
    if i < p.shape[0]:
        h[i] = decay * h[i] + (1.0 - decay) * g[i] * g[i]
        p[i] -= hyper[j] * g[i] / (math.sqrt(h[i]) + eps)


@cuda.jit
def adam_update_kernel(p, g, m, v, hyper, j, beta1, beta2):
    """Adam, as optim.adam_update: lr_t = hyper[j], eps_t = hyper[j + 1] (bias-corrected)."""
    i = cuda.grid(1)
    if i < p.shape[0]:
        m[i] = beta1 * m[i] + (1.0 - beta1) * g[i]
        v[i] = beta2 * v[i] + (1.0 - beta2) * g[i] * g[i]
        p[i] -= hyper[j] * m[i] / (math.sqrt(v[i]) + hyper[j + 1])


class HyperRules:
    """The `rules` that `optimizer.apply_update` calls, for the device: each call puts its scalars
    in the next two slots of `host` (pinned float64) and, when `launch` is set, enqueues the kernel
    that reads them from `dev` (which the caller fills from `host` first, on the same stream)."""

    def __init__(self, slots: int, stream=0):
        self.host = cuda.pinned_array(max(2 * slots, 2), np.float64)
        self.host[:] = 0.0
        self.dev = cuda.to_device(self.host)
        self.stream, self.launch, self.j = stream, False, 0

    def begin(self, launch: bool) -> None:
        self.launch, self.j = launch, 0

    def upload(self) -> None:
        self.dev.copy_to_device(self.host, stream=self.stream)

    def _put(self, a: float, b: float = 0.0) -> int:
        j = self.j
        self.host[j], self.host[j + 1] = a, b
        self.j += 2
        return j

    def _go(self, p) -> tuple:
        return _blocks(p.shape[0]), ck.THREADS, self.stream

    def sgd_update(self, p, g, lr) -> None:
        j = self._put(lr)
        if self.launch:
            sgd_update_kernel[self._go(p)](p, g, self.dev, j)

    def adagrad_update(self, p, g, h, lr, eps) -> None:
        j = self._put(lr)
        if self.launch:
            adagrad_update_kernel[self._go(p)](p, g, h, self.dev, j, eps)

    def rmsprop_update(self, p, g, h, lr, decay, eps) -> None:
        j = self._put(lr)
        if self.launch:
            rmsprop_update_kernel[self._go(p)](p, g, h, self.dev, j, decay, eps)

    def adam_update(self, p, g, m, v, lr_t, beta1, beta2, eps_t) -> None:
        j = self._put(lr_t, eps_t)
        if self.launch:
            adam_update_kernel[self._go(p)](p, g, m, v, self.dev, j, beta1, beta2)
