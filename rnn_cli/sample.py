"""Sampling novel text: a generator of decoded pieces, never printing.

The seed's procedure: a<0> = 0, draw y<t> from y_hat<t>, feed it back as x<t+1>, stop at the
end-of-line symbol (`--lines`) or a length. The first input is the end-of-line symbol, so the text
starts where a line would start (the seed's x<1> = 0 when the vocabulary has no such symbol);
`--prime` text is fed through the network first and printed. `<UNK>` is never drawn unless allowed
(its probability is set to zero, which is the seed's "resample when <UNK> comes out").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from rnn_cli.checkpoint import Model
from rnn_cli.kernels import generate, sampling
from rnn_cli.network import ACTIVATIONS
from rnn_cli.train import start_id


@dataclass(frozen=True)
class SampleConfig:
    length: int | None = None  # tokens to draw (None: no limit by length)
    lines: int | None = None  # stop after this many end-of-line symbols
    temperature: float = 1.0
    top_k: int = 0  # 0: all tokens
    greedy: bool = False  # --argmax
    allow_unk: bool = False
    prime: str = ""


class Sampler:
    """Holds the compiled-kernel views and scratch buffers for one model."""

    def __init__(self, model: Model):
        self.model, p, cfg = model, model.params, model.cfg
        self.vocab = model.vocab
        self.act = ACTIVATIONS[cfg.activation]
        self.views = (p.W_ax, p.W_ax_up, p.W_aa, p.b_a)
        self.out_views = (p.W_ya, p.b_y)
        V, H = cfg.vocab_size, cfg.hidden
        self.state = np.zeros((cfg.state_rows, H), np.float32)  # (L, H); LSTM: (2L, H), c below h
        self.h_tmp = np.zeros(cfg.gates * H, np.float32)
        # gated cells and embeddings: the generic compiled step (kernels/generate.py)
        self.generic = cfg.cell != "rnn" or cfg.embed > 0
        if self.generic:
            empty = np.zeros((0, 0), np.float32)
            self.cell_code = generate.CELL_CODES[cfg.cell]
            self.views = (p.W_emb if cfg.embed else empty, p.W_ax, p.W_ax_up, p.W_aa, p.b_a,
                          p.b_hn if cfg.cell == "gru" else empty)
            self.tmp = np.zeros(H, np.float32)
        self.logits = np.zeros(V, np.float32)
        self.probs = np.zeros(V, np.float64)
        self.scratch = np.zeros(V, np.float32)

    def prime(self, text: str) -> tuple[int, int]:
        """Reset the state and feed `text`; returns (next input id, unknown tokens in text)."""
        self.state[...] = 0.0
        self.detok = self.vocab.detokenizer()
        x = start_id(self.vocab)
        if not text:
            return x, 0
        ids, unknown = self.vocab.encode(text, final_eos=False) if self.vocab.level == "word" \
            else self.vocab.encode(text)
        if ids.shape[0] == 0:
            return x, unknown
        feed = np.concatenate([np.array([x], np.int32), ids[:-1]]) if x >= 0 else ids[:-1]
        if self.generic:
            generate.stack_feed(self.cell_code, self.state, feed.astype(np.int32), *self.views,
                                self.act, self.h_tmp, self.tmp)
        else:
            sampling.rnn_feed(self.state, feed.astype(np.int32), *self.views, self.act, self.h_tmp)
        self.detok.piece(ids)  # so the first drawn word is spaced after the prime
        return int(ids[-1]), unknown

    def generate(self, sc: SampleConfig, rng: np.random.Generator, x0: int,
                 chunk: int = 256) -> Iterator[str]:
        """Yield decoded text pieces as they are drawn (after `prime`)."""
        vocab = self.vocab
        stop = vocab.eos_id if vocab.eos_id is not None else -1
        ban = -1 if sc.allow_unk else vocab.unk_id
        detok = self.detok
        out = np.zeros(chunk, np.int32)
        drawn, lines, x = 0, 0, x0
        temperature = max(sc.temperature, 1e-6)
        while (sc.length is None or drawn < sc.length) and (sc.lines is None or lines < sc.lines):
            n_max = chunk if sc.length is None else min(chunk, sc.length - drawn)
            stop_id = stop if sc.lines is not None else -1
            uniforms = rng.random(n_max)
            if self.generic:
                n = generate.stack_generate(out[:n_max], uniforms, self.cell_code, self.state, x,
                                            *self.views, self.act, *self.out_views, temperature,
                                            sc.top_k, sc.greedy, ban, stop_id, self.logits,
                                            self.probs, self.scratch, self.h_tmp, self.tmp)
            else:
                n = sampling.rnn_generate(out[:n_max], uniforms, self.state, x, *self.views,
                                          *self.out_views, self.act, temperature, sc.top_k,
                                          sc.greedy, ban, stop_id, self.logits, self.probs,
                                          self.scratch, self.h_tmp)
            ids = out[:n]
            drawn += n
            if stop_id >= 0 and n and ids[-1] == stop_id:
                lines += 1
            x = int(ids[-1]) if n else x
            piece = detok.piece(ids)
            if piece:
                yield piece
