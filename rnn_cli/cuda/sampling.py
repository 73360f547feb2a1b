"""Sampling on the device: the twin of `kernels.generate.stack_generate` (every cell, depth and
input kind; no top-p), and `CudaSampler`.

One stream is sequential token after token, so the kernel is a single block that loops over a whole
chunk of tokens: its threads share the H (and V) units of each step, thread 0 draws, and
`syncthreads` separates the phases. One launch per chunk, one copy back (the drawn ids).

The uniforms come from the host's seeded numpy Generator, exactly as on the CPU, so the same seed
draws the same tokens wherever the arithmetic allows. Where it does not: the device sums the
recurrence and the logits in its own order and may fuse multiply-adds, so logits differ from the
CPU's in the last float32 bits (~1e-7 relative); a token can differ when a uniform falls that close
to a boundary of the cumulative distribution (or, under --argmax, when two logits tie that closely),
and from there on the two streams diverge. With V = 7 and random weights this has not been seen in
the tests; over long samples of a large vocabulary it will happen now and then.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator

import numpy as np
from numba import int32

from rnn_cli.cuda.backend import numba_cuda
from rnn_cli.kernels.cell import TANH
from rnn_cli.kernels.generate import GRU, LSTM
from rnn_cli.tasks.lm.sample import SampleConfig, Sampler

cuda = numba_cuda()

THREADS = 128  # threads of the one sampling block (H and V are walked in strides of it)


@cuda.jit(device=True)
def _kth_largest_dev(values, k, scratch, exclude):
    """The k-th largest of `values` leaving out index `exclude`, by quickselect on a copy in
    `scratch` (as kth_largest)."""
    n = values.shape[0]
    for i in range(n):
        scratch[i] = values[i]
    if exclude >= 0:
        scratch[exclude] = -math.inf
    lo = 0
    hi = n - 1
    want = k - 1
    while lo < hi:
        pivot = scratch[(lo + hi) // 2]
        i = lo
        j = hi
        while i <= j:
            while scratch[i] > pivot:
                i += 1
            while scratch[j] < pivot:
                j -= 1
            if i <= j:
                tmp = scratch[i]
                scratch[i] = scratch[j]
                scratch[j] = tmp
                i += 1
                j -= 1
        if want <= j:
            hi = j
        elif want >= i:
            lo = i
        else:
            break
    return scratch[want]


@cuda.jit(device=True)
def _draw_token_dev(probs, logits, temperature, top_k, greedy, ban_id, u, scratch):
    """As kernels.sampling.draw_token: softmax(logits / T) over the allowed tokens, drawn with u."""
    V = logits.shape[0]
    best = -1
    for k in range(V):
        if k != ban_id and (best < 0 or logits[k] > logits[best]):
            best = k
    if greedy:
        return best
    cut = -math.inf
    if 0 < top_k < V:
        cut = _kth_largest_dev(logits, top_k, scratch, ban_id)
    m = logits[best]
    total = 0.0
    for k in range(V):
        if k == ban_id or logits[k] < cut:
            probs[k] = 0.0
        else:
            probs[k] = math.exp((logits[k] - m) / temperature)
            total += probs[k]
    target = u * total
    acc = 0.0
    last = best
    for k in range(V):
        if probs[k] > 0.0:
            acc += probs[k]
            last = k
            if acc > target:
                return k
    return last


@functools.lru_cache(maxsize=None)
def _generate_kernel(nthreads: int):
    @cuda.jit
    def generate_kernel(out, count, uniforms, cell, state, x0, W_emb, W_ax0, W_ax_up, W_aa, b_a,
                        b_hn, has_emb, act, W_ya, b_y, temperature, top_k, greedy, ban_id,
                        stop_id, logits, probs, scratch, xin, h_tmp):
        """Twin of generate.stack_generate (without top-p), launched as ONE block: out (N,) int32
        out, count (1,) int32 out (tokens drawn), uniforms (N,) f64, state (S*L, H) in/out (LSTM:
        c in rows L..2L-1), logits (V,) f32, probs (V,) f64, scratch (V,) f32, xin (G*H,) f32,
        h_tmp (H,) f32. W_emb is read only when has_emb, b_hn only for the GRU."""
        shared = cuda.shared.array(2, int32)  # [0]: the next input token, [1]: stop flag
        tid = cuda.threadIdx.x
        L = W_aa.shape[0]
        GH = W_aa.shape[1]
        H = state.shape[1]
        V = W_ya.shape[0]
        E = W_ax0.shape[1]
        if tid == 0:
            shared[0] = x0
            shared[1] = 0
        cuda.syncthreads()
        n = 0
        while n < out.shape[0] and shared[1] == 0:
            x = shared[0]
            for layer in range(L):  # generate.stack_step: the input terms, then the cell
                for k in range(tid, GH, nthreads):
                    s = b_a[layer, k]
                    if layer > 0:
                        for j in range(H):
                            s += W_ax_up[layer - 1, k, j] * state[layer - 1, j]
                    elif x >= 0 and has_emb:
                        for j in range(E):
                            s += W_ax0[k, j] * W_emb[x, j]
                    elif x >= 0:
                        s += W_ax0[k, x]
                    xin[k] = s
                cuda.syncthreads()
                for i in range(tid, H, nthreads):
                    if cell == GRU:  # gru.gru_step
                        sr = xin[i]
                        sz = xin[H + i]
                        hn = b_hn[layer, i]
                        for j in range(H):
                            p = state[layer, j]
                            sr += W_aa[layer, i, j] * p
                            sz += W_aa[layer, H + i, j] * p
                            hn += W_aa[layer, 2 * H + i, j] * p
                        r = 1.0 / (1.0 + math.exp(-sr))
                        z = 1.0 / (1.0 + math.exp(-sz))
                        nn = math.tanh(xin[2 * H + i] + r * hn)
                        h_tmp[i] = (1.0 - z) * nn + z * state[layer, i]
                    elif cell == LSTM:  # lstm.lstm_step (c<t-1>[i] is read by unit i only)
                        si = xin[i]
                        sf = xin[H + i]
                        sg = xin[2 * H + i]
                        so = xin[3 * H + i]
                        for j in range(H):
                            p = state[layer, j]
                            si += W_aa[layer, i, j] * p
                            sf += W_aa[layer, H + i, j] * p
                            sg += W_aa[layer, 2 * H + i, j] * p
                            so += W_aa[layer, 3 * H + i, j] * p
                        ig = 1.0 / (1.0 + math.exp(-si))
                        fg = 1.0 / (1.0 + math.exp(-sf))
                        og = 1.0 / (1.0 + math.exp(-so))
                        cc = fg * state[L + layer, i] + ig * math.tanh(sg)
                        state[L + layer, i] = cc
                        h_tmp[i] = og * math.tanh(cc)
                    else:
                        s = xin[i]
                        for j in range(H):
                            s += W_aa[layer, i, j] * state[layer, j]
                        h_tmp[i] = math.tanh(s) if act == TANH else (s if s > 0.0 else 0.0)
                cuda.syncthreads()
                for i in range(tid, H, nthreads):
                    state[layer, i] = h_tmp[i]
                cuda.syncthreads()
            for k in range(tid, V, nthreads):  # output_logits
                s = b_y[k]
                for j in range(H):
                    s += W_ya[k, j] * state[L - 1, j]
                logits[k] = s
            cuda.syncthreads()
            if tid == 0:
                tok = _draw_token_dev(probs, logits, temperature, top_k, greedy, ban_id,
                                      uniforms[n], scratch)
                out[n] = tok
                shared[0] = tok
                if tok == stop_id:
                    shared[1] = 1
            cuda.syncthreads()
            n += 1
        if tid == 0:
            count[0] = n

    return generate_kernel


def stack_generate(out, count, uniforms, cell, state, x0, W_emb, W_ax0, W_ax_up, W_aa, b_a, b_hn,
                   act, W_ya, b_y, temperature, top_k, greedy, ban_id, stop_id, logits, probs,
                   scratch, xin, h_tmp):
    """Launch the one-block sampling kernel: arguments as generate.stack_generate (without top_p),
    plus count (1,) int32 that receives the number drawn; `cell` is a generate.CELL_CODES value.
    W_emb None: no embedding; b_hn None: not a GRU; W_ax_up of a one-layer model may be any
    (>=1, G*H, H) array (W_aa): such blocks are not read."""
    has_emb = W_emb is not None
    if W_emb is None or b_hn is None:
        dummy = cuda.device_array((1, 1), np.float32)
        W_emb = dummy if W_emb is None else W_emb
        b_hn = dummy if b_hn is None else b_hn
    _generate_kernel(THREADS)[1, THREADS](out, count, uniforms, cell, state, x0, W_emb, W_ax0,
                                          W_ax_up, W_aa, b_a, b_hn, has_emb, act, W_ya, b_y,
                                          temperature, top_k, greedy, ban_id, stop_id, logits,
                                          probs, scratch, xin, h_tmp)


class CudaSampler(Sampler):
    """Sampler whose draws run on the device. Priming (a short text) runs on the CPU kernels and
    the resulting state is uploaded once; the state then stays on the device across chunks."""

    def __init__(self, model):
        super().__init__(model)
        p, cfg = model.params, model.cfg
        H, V = cfg.hidden, cfg.vocab_size
        up = p.W_ax_up if cfg.layers > 1 else p.W_aa  # never read for one layer

        def dev(v):
            return None if v is None else cuda.to_device(np.ascontiguousarray(v))
        self.d_views = tuple(map(dev, (p.W_emb if cfg.embed else None, p.W_ax, up, p.W_aa, p.b_a,
                                       p.b_hn if cfg.cell == "gru" else None)))
        self.d_out_views = (dev(p.W_ya), dev(p.b_y))
        self.d_state = cuda.to_device(self.state)
        self.d_logits = cuda.device_array(V, np.float32)
        self.d_probs = cuda.device_array(V, np.float64)
        self.d_scratch = cuda.device_array(V, np.float32)
        self.d_xin = cuda.device_array(cfg.gates * H, np.float32)
        self.d_h = cuda.device_array(H, np.float32)
        self.d_count = cuda.device_array(1, np.int32)

    def prime(self, text: str, logprob: bool = False) -> tuple[int, int]:
        x, unknown = super().prime(text, logprob)
        self.d_state.copy_to_device(self.state)
        return x, unknown

    def generate(self, sc: SampleConfig, rng: np.random.Generator, x0: int,
                 chunk: int = 256) -> Iterator[str]:
        """As Sampler.generate (same uniforms from `rng`, same stopping), drawing on the device.
        --top-p and --beam are not implemented here (cli_sample runs them on the CPU)."""
        assert sc.top_p >= 1.0 and not sc.beam, "the CUDA sampler draws without top-p or beam"
        vocab = self.vocab
        stop = vocab.eos_id if vocab.eos_id is not None else -1
        ban = -1 if sc.allow_unk else vocab.unk_id
        d_out = cuda.device_array(chunk, np.int32)
        drawn, lines, x = 0, 0, x0
        temperature = max(sc.temperature, 1e-6)
        while (sc.length is None or drawn < sc.length) and (sc.lines is None or lines < sc.lines):
            n_max = chunk if sc.length is None else min(chunk, sc.length - drawn)
            stop_id = stop if sc.lines is not None else -1
            uniforms = cuda.to_device(rng.random(n_max))
            stack_generate(d_out[:n_max], self.d_count, uniforms, self.cell_code, self.d_state, x,
                           *self.d_views, self.act, *self.d_out_views, temperature, sc.top_k,
                           sc.greedy, ban, stop_id, self.d_logits, self.d_probs, self.d_scratch,
                           self.d_xin, self.d_h)
            n = int(self.d_count.copy_to_host()[0])
            ids = d_out[:n_max].copy_to_host()[:n]
            drawn += n
            if stop_id >= 0 and n and ids[-1] == stop_id:
                lines += 1
            x = int(ids[-1]) if n else x
            piece = self.detok.piece(ids)
            if piece:
                yield piece
