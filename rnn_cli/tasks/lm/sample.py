"""Sampling novel text: a generator of decoded pieces, never printing.

The seed's procedure: a<0> = 0, draw y<t> from y_hat<t>, feed it back as x<t+1>, stop at the
end-of-line symbol (`--lines`) or a length. The first input is the end-of-line symbol, so the text
starts where a line would start (the seed's x<1> = 0 when the vocabulary has no such symbol);
`--prime` text is fed through the network first and printed. `<UNK>` is never drawn unless allowed
(its probability is set to zero, which is the seed's "resample when <UNK> comes out").

Beam search (`Sampler.beam`, kernels/beam.py) replaces the draws by the K most probable partial
sequences; it prints nothing until a line (or the whole `-n` length) is decided.

A class-softmax model draws from its exact full distribution, log P(w) = log P(c(w)) +
log P(w | c(w)) for every word (`class_softmax.class_log_probs`), given to the same `draw_token`
as logits: softmax(log P / T) is P^(1/T) normalised, so temperature and top-k mean what they mean
for a full softmax. That path steps token by token from Python (word level: few tokens).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from rnn_cli.checkpoint import Model
from rnn_cli.errors import UsageError
from rnn_cli.kernels import beam, class_softmax, generate, sampling
from rnn_cli.tasks.lm.network import ACTIVATIONS
from rnn_cli.tasks.lm.train import start_id


@dataclass(frozen=True)
class SampleConfig:
    length: int | None = None  # tokens to draw (None: no limit by length)
    lines: int | None = None  # stop after this many end-of-line symbols
    temperature: float = 1.0
    top_k: int = 0  # 0: all tokens
    top_p: float = 1.0  # nucleus mass; 1: all tokens
    greedy: bool = False  # --argmax
    allow_unk: bool = False
    prime: str = ""
    beam: int = 0  # 0: draw; K >= 1: beam search over K hypotheses
    length_norm: float = 0.0  # beam --lines: compare finished lines by logP / length**alpha


BEAM_LINE_CAP = 1000  # the longest line beam search considers with --lines and no -n


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
        # gated cells, embeddings and the class softmax: the generic compiled step (generate.py)
        self.classes = cfg.softmax == "classes"
        self.generic = cfg.cell != "rnn" or cfg.embed > 0 or self.classes
        empty = np.zeros((0, 0), np.float32)
        self.cell_code = generate.CELL_CODES[cfg.cell]
        self.net_views = (p.W_emb if cfg.embed else empty, p.W_ax, p.W_ax_up, p.W_aa, p.b_a,
                          p.b_hn if cfg.cell == "gru" else empty)  # kernels/beam.py's net_step
        self.tmp = np.zeros(H, np.float32)
        if self.generic:
            self.views = self.net_views
        if self.classes:
            from rnn_cli.tasks.lm.classes import class_index

            members, offsets = class_index(p.word_class)
            M = int(np.diff(offsets).max())
            self.class_views = (p.W_ya, p.b_y, p.W_yc, p.b_c, members, offsets,
                                np.zeros(cfg.classes, np.float32), np.zeros(M, np.float32))
        self.logits = np.zeros(V, np.float32)
        self.probs = np.zeros(V, np.float64)
        self.scratch = np.zeros(V, np.float32)

    def prime(self, text: str, logprob: bool = False) -> tuple[int, int]:
        """Reset the state and feed `text` in one compiled call; returns (next input id, unknown
        tokens in text). With `logprob`, `self.prime_logprob` becomes ln P(text's tokens) from the
        start symbol (what `score --total` gives the text), and `self.prime_tokens` their count."""
        self.state[...] = 0.0
        self.prime_logprob, self.prime_tokens = 0.0, 0
        self.detok = self.vocab.detokenizer()
        x = start_id(self.vocab)
        if not text:
            return x, 0
        ids, unknown = self.vocab.encode(text, final_eos=False) if self.vocab.level == "word" \
            else self.vocab.encode(text)
        if ids.shape[0] == 0:
            return x, unknown
        # the start symbol (or the seed's zero vector, x = -1) first, as `score` and generation
        feed = np.concatenate([np.array([x], np.int32), ids[:-1]]).astype(np.int32)
        if logprob and self.classes:  # ln P(ids) from the full distribution of every step
            self.prime_tokens = int(ids.shape[0])
            top = self.state[self.model.cfg.layers - 1]
            for i in range(feed.shape[0]):
                generate.stack_step(self.cell_code, self.state, int(feed[i]), *self.net_views,
                                    self.act, self.h_tmp, self.tmp)
                class_softmax.class_log_probs(self.logits, top, *self.class_views)
                self.prime_logprob += float(self.logits[ids[i]])
        elif logprob:
            self.prime_tokens = int(ids.shape[0])
            self.prime_logprob = float(beam.feed_logprob(
                self.cell_code, self.state, feed, ids.astype(np.int32), *self.net_views,
                self.act, *self.out_views, self.logits, self.h_tmp, self.tmp))
        elif self.generic:
            generate.stack_feed(self.cell_code, self.state, feed, *self.views, self.act,
                                self.h_tmp, self.tmp)
        else:
            sampling.rnn_feed(self.state, feed, *self.views, self.act, self.h_tmp)
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
            if self.classes:
                n = self._generate_classes(out[:n_max], uniforms, x, temperature, sc, ban,
                                           stop_id)
            elif self.generic:
                n = generate.stack_generate(out[:n_max], uniforms, self.cell_code, self.state, x,
                                            *self.views, self.act, *self.out_views, temperature,
                                            sc.top_k, sc.top_p, sc.greedy, ban, stop_id,
                                            self.logits, self.probs, self.scratch, self.h_tmp,
                                            self.tmp)
            else:
                n = sampling.rnn_generate(out[:n_max], uniforms, self.state, x, *self.views,
                                          *self.out_views, self.act, temperature, sc.top_k,
                                          sc.top_p, sc.greedy, ban, stop_id, self.logits,
                                          self.probs, self.scratch, self.h_tmp)
            ids = out[:n]
            drawn += n
            if stop_id >= 0 and n and ids[-1] == stop_id:
                lines += 1
            x = int(ids[-1]) if n else x
            piece = detok.piece(ids)
            if piece:
                yield piece

    def beam(self, sc: SampleConfig, x0: int, report=None) -> Iterator[str]:
        """Yield the text chosen by beam search over sc.beam hypotheses (after `prime`).

        With sc.lines: one search per line, each ending at the end-of-line symbol and continuing
        from the state the previous line left (lines of up to BEAM_LINE_CAP tokens, or what is
        left of sc.length). Otherwise one search over sc.length tokens. `report(logprob, tokens,
        finished)` receives each search's ln P (the model's own, <UNK> excluded, never
        renormalised).
        """
        vocab, K, cfg = self.vocab, sc.beam, self.model.cfg
        if self.classes:  # beam.py forms full-softmax logits from W_ya, b_y
            raise UsageError("--beam runs with the full softmax only; this model has "
                             "--softmax classes", hint="sample without --beam (--argmax for the "
                             "most probable token at each step)")
        stop = vocab.eos_id if (sc.lines is not None and vocab.eos_id is not None) else -1
        ban = -1 if sc.allow_unk else vocab.unk_id
        V, H, R = cfg.vocab_size, cfg.hidden, self.state.shape[0]
        cap = sc.length if sc.lines is None else min(sc.length or BEAM_LINE_CAP, BEAM_LINE_CAP)
        out = np.zeros(cap, np.int32)
        bufs = (np.zeros((2, K, R, H), self.state.dtype), np.zeros((cap, K), np.int32),
                np.zeros((cap, K), np.int32), np.zeros(K * V), np.zeros(K * V),
                np.zeros(K, np.int64), np.zeros((2, K)), np.zeros_like(self.state))
        drawn, lines, x = 0, 0, x0
        while (sc.length is None or drawn < sc.length) and (sc.lines is None or lines < sc.lines):
            n_max = cap if sc.length is None else min(cap, sc.length - drawn)
            n, logprob, finished = beam.beam_search(
                out[:n_max], K, self.state, x, stop, ban, sc.length_norm, self.cell_code,
                *self.net_views, self.act, *self.out_views, *bufs, self.logits, self.h_tmp,
                self.tmp)
            if n == 0:
                return
            ids = out[:n]
            drawn += n
            lines += 1
            x = int(ids[-1])
            if report is not None:
                report(float(logprob), int(n), bool(finished))
            piece = self.detok.piece(ids)
            if piece:
                yield piece

    def _generate_classes(self, out, uniforms, x, temperature, sc, ban, stop_id) -> int:
        """`stack_generate` for a class-softmax model: the full distribution of every step."""
        top = self.state[self.model.cfg.layers - 1]
        for n in range(out.shape[0]):
            generate.stack_step(self.cell_code, self.state, x, *self.views, self.act, self.h_tmp,
                                self.tmp)
            class_softmax.class_log_probs(self.logits, top, *self.class_views)
            x = sampling.draw_token(self.probs, self.logits, temperature, sc.top_k, sc.top_p,
                                    sc.greedy, ban, uniforms[n], self.scratch)
            out[n] = x
            if x == stop_id:
                return n + 1
        return out.shape[0]
