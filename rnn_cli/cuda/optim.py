"""Gradient clipping and the optimizer updates on the device: twins of optimizer.clip_gradients and
kernels/optim.py, on flat float32 buffers (elementwise, one thread per element).

The global norm is reduced on the device (kernels.sum_squares) and read there by the scaling
kernel, so clipping needs no host round trip. Bias corrections are computed by the caller.
"""

from __future__ import annotations

import math

from numba import cuda

from rnn_cli.cuda import kernels as ck
from rnn_cli.cuda.kernels import _blocks


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


def clip_gradients(g, clip: float, mode: str, sumsq, partials) -> None:
    """Twin of optimizer.clip_gradients, in place on the device; the norm before clipping is left in
    sumsq[0] (squared; read it with copy_to_host only when it is logged)."""
    ck.sum_squares(sumsq, g, partials)
    if clip > 0:
        if mode == "norm":
            scale_by_norm_kernel[_blocks(g.shape[0]), ck.THREADS](g, sumsq, clip)
        elif mode == "value":
            clip_values_kernel[_blocks(g.shape[0]), ck.THREADS](g, clip)


@cuda.jit
def sgd_update_kernel(p, g, lr):
    """p -= lr * g."""
    i = cuda.grid(1)
    if i < p.shape[0]:
        p[i] -= lr * g[i]


@cuda.jit
def adagrad_update_kernel(p, g, h, lr, eps):
    """h += g^2; p -= lr * g / (sqrt(h) + eps)."""
    i = cuda.grid(1)
    if i < p.shape[0]:
        h[i] += g[i] * g[i]
        p[i] -= lr * g[i] / (math.sqrt(h[i]) + eps)


@cuda.jit
def rmsprop_update_kernel(p, g, h, lr, decay, eps):
    """h = decay*h + (1-decay)*g^2; p -= lr * g / (sqrt(h) + eps)."""
    i = cuda.grid(1)
    if i < p.shape[0]:
        h[i] = decay * h[i] + (1.0 - decay) * g[i] * g[i]
        p[i] -= lr * g[i] / (math.sqrt(h[i]) + eps)


@cuda.jit
def adam_update_kernel(p, g, m, v, lr_t, beta1, beta2, eps_t):
    """Adam, as optim.adam_update: m, v moments; lr_t and eps_t bias-corrected by the caller."""
    i = cuda.grid(1)
    if i < p.shape[0]:
        m[i] = beta1 * m[i] + (1.0 - beta1) * g[i]
        v[i] = beta2 * v[i] + (1.0 - beta2) * g[i] * g[i]
        p[i] -= lr_t * m[i] / (math.sqrt(v[i]) + eps_t)


def sgd_update(p, g, lr) -> None:
    sgd_update_kernel[_blocks(p.shape[0]), ck.THREADS](p, g, lr)


def adagrad_update(p, g, h, lr, eps) -> None:
    adagrad_update_kernel[_blocks(p.shape[0]), ck.THREADS](p, g, h, lr, eps)


def rmsprop_update(p, g, h, lr, decay, eps) -> None:
    rmsprop_update_kernel[_blocks(p.shape[0]), ck.THREADS](p, g, h, lr, decay, eps)


def adam_update(p, g, m, v, lr_t, beta1, beta2, eps_t) -> None:
    adam_update_kernel[_blocks(p.shape[0]), ck.THREADS](p, g, m, v, lr_t, beta1, beta2, eps_t)
