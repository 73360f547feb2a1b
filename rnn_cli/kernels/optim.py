"""Parameter updates on flat float32 buffers: SGD, Adagrad, RMSprop, Adam.

Each rule updates `p` in place from the gradient `g`; optimizer state arrays have the same flat
layout as `p`. Bias corrections and schedules are computed by the caller and passed as scalars.
"""

from __future__ import annotations

import math

from rnn_cli.kernels._jit import njit_parallel, prange


@njit_parallel
def sgd_update(p, g, lr):
    """p -= lr * g."""
    for i in prange(p.shape[0]):
        p[i] -= lr * g[i]


@njit_parallel
def adagrad_update(p, g, h, lr, eps):
    """h += g^2; p -= lr * g / (sqrt(h) + eps)   (as min-char-rnn)."""
    for i in prange(p.shape[0]):
        h[i] += g[i] * g[i]
        p[i] -= lr * g[i] / (math.sqrt(h[i]) + eps)


@njit_parallel
def rmsprop_update(p, g, h, lr, decay, eps):
    """h = decay*h + (1-decay)*g^2; p -= lr * g / (sqrt(h) + eps)."""
    for i in prange(p.shape[0]):
        h[i] = decay * h[i] + (1.0 - decay) * g[i] * g[i]
        p[i] -= lr * g[i] / (math.sqrt(h[i]) + eps)


@njit_parallel
def adam_update(p, g, m, v, lr_t, beta1, beta2, eps_t):
    """Adam (Kingma & Ba 2015, Alg. 1 with the efficient form of section 2).

    m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;  p -= lr_t * m / (sqrt(v) + eps_t),
    lr_t = lr*sqrt(1-b2^t)/(1-b1^t) and eps_t = eps*sqrt(1-b2^t) from the caller.
    """
    for i in prange(p.shape[0]):
        m[i] = beta1 * m[i] + (1.0 - beta1) * g[i]
        v[i] = beta2 * v[i] + (1.0 - beta2) * g[i] * g[i]
        p[i] -= lr_t * m[i] / (math.sqrt(v[i]) + eps_t)
