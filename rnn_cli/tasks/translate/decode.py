"""Decoding a batch of encoded sources: greedy, and beam search with a length penalty and n-best.

Both run the one-step kernel (`kernels/decoder.decoder_step`, the same arithmetic as a step of
training) over lanes: greedy has one lane per unfinished sentence; beam search up to K lanes
(hypotheses) per sentence, all sentences in one call per step. Scores are the model's own
log-probabilities, log softmax(logits)[y], summed in float64 over the output tokens including the
final <EOS>.

Length penalty (GNMT, Wu et al. 2016): a finished hypothesis of `n` output tokens (its <EOS>
counted) is ranked by  logP / lp(n),  lp(n) = ((5 + n) / 6) ** alpha;  alpha = 0 ranks by logP.
A hypothesis that reaches `max_len` tokens without <EOS> is finished there (cut), ranked the same
way and marked `finished=False`.

Beam search: each step expands the live hypotheses of a sentence to their K * V continuations and
keeps the K best by logP; one that ends in <EOS> leaves the beam for the finished list (the beam
shrinks for that step, as in the LM's `--beam`). The greedy continuation of the greedy path is
always kept (it replaces the K-th place when it fell out), so the best result is never ranked
below greedy decoding's. A sentence stops when nothing is live, or when it has N finished
hypotheses and no live one can still beat the N-th: a live logP can only fall, and lp grows with
length, so logP / lp(max_len) bounds what it can reach (exact: with K large enough the search is
exhaustive, which the tests check).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnn_cli.kernels import cell, topk
from rnn_cli.kernels import decoder as dk
from rnn_cli.kernels._jit import get_threads
from rnn_cli.tasks.translate.decoder import Buffers


def length_penalty(n: int | np.ndarray, alpha: float):
    """GNMT's lp(n) = ((5 + n) / 6) ** alpha."""
    return ((5.0 + np.asarray(n, np.float64)) / 6.0) ** alpha


@dataclass
class Hypothesis:
    tokens: list[int]  # output ids without the final <EOS>
    logprob: float  # log P of the tokens and the <EOS> (when finished)
    score: float  # logprob / lp(len), what the n-best list is sorted by
    finished: bool  # ended by <EOS> (False: cut at max_len)
    attention: np.ndarray  # (len(tokens) + finished, S) the weights of each output step


class Stepper:
    """A decoder's parameters prepared for stepping over one batch of encoded sources.

    dec: a `decoder.Decoder`; enc (S,B,D), src_len (B,), fin (B,Df) from the encoder. `s0` (B,H)
    is the bridge's initial state of each source; `step` advances L lanes by one token."""

    def __init__(self, dec, params, enc, src_len, fin):
        p = lambda n: params[dec.prefix + n]  # noqa: E731
        self.dec, self.params, self.p = dec, params, p
        H, D, GH, A, dt = dec.H, dec.D, dec.G * dec.H, dec.A, dec.dtype
        self.enc = np.ascontiguousarray(enc, dtype=dt)
        self.src_len = np.ascontiguousarray(src_len, dtype=np.int32)
        B = self.enc.shape[1]
        self.nch = get_threads()
        self.keys = dec._keys_forward(params, self.enc, min(self.nch, B)).copy()
        self.s0 = np.tanh(np.asarray(fin, dt) @ p("W_br").T + p("b_br")).astype(dt)
        self.W = {}
        for name, shape in (("W_ax", (dec.E, GH)), ("W_aa", (H, GH)), ("W_cx", (D, GH)),
                            ("W_q", (H, A))):
            self.W[name] = np.zeros(shape, dt)
            if name != "W_q" or A:
                cell.transpose_into(self.W[name], p(name))
        W_out = dec._out_matrix(params)  # (V, P or F): the logits read a contiguous W_out^T,
        self.W_outT = np.zeros((W_out.shape[1], W_out.shape[0]), dt)  # which a product of few
        cell.transpose_into(self.W_outT, W_out)  # lanes runs up to 3x faster on (OpenBLAS)
        self.W_oT = np.zeros((dec.F, dec.P), dt)  # the projection's likewise
        if dec.P:
            cell.transpose_into(self.W_oT, p("W_o"))
        self.b_hn = p("b_hn") if dec.G == 3 else dec._empty
        self.v = p("v") if A else dec._empty
        self.buf, self.buf64 = Buffers(dt), Buffers(np.float64)  # per-step scratch, reused

    def start(self, lane_src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(s, c) for lanes starting on the sources lane_src: s<0>, and c<0> = 0 (LSTM)."""
        s = self.s0[lane_src].copy()
        return s, np.zeros_like(s) if self.dec.G == 4 else np.zeros((0, 0), s.dtype)

    def advance(self, s, c, y_prev, lane_src):
        """(logits (L,V), s<t> (L,H), c<t>, attention (L,S)) of one step of L lanes; logits and
        attention are views of buffers the next step reuses."""
        dec, get = self.dec, self.buf.get
        L, H, F, S = s.shape[0], dec.H, dec.F, self.enc.shape[0]
        feat = get("feat", (2, L, F))
        feat[0, :, :H] = s
        cs = get("cs", (2, L, H) if dec.G == 4 else (0, 0, 0))
        if dec.G == 4:
            cs[0] = c
        alpha = get("alpha", (L, S), zero=True)
        nch = min(self.nch, L)
        dk.decoder_step(feat, get("gates", (L, (4 if dec.G == 3 else 5) * H)), cs, alpha,
                        get("q", (L, dec.A)), get("xc", (L, dec.G * H)),
                        np.ascontiguousarray(y_prev, np.int32),
                        np.ascontiguousarray(lane_src, np.int32), self.enc, self.keys,
                        self.src_len, self.p("W_emb"), self.W["W_ax"], self.p("b_a"),
                        self.W["W_aa"], self.W["W_cx"], self.W["W_q"], self.b_hn, self.v,
                        dec.cell, dec.kind, nch)
        logits = get("logits", (L, dec.V))
        top = dec._project(self.params, feat[1], None, nch, self.W_oT)
        cell.pgemm(logits, top, self.W_outT, False, False, 1.0, 0.0, nch)
        logits += self.p("b_y")
        return logits, feat[1, :, :H].copy(), (cs[1].copy() if dec.G == 4 else c), alpha

    def step(self, s, c, y_prev, lane_src):
        """(log-probabilities (L,V) float64, s<t> (L,H), c<t>, attention (L,S)) of one step."""
        logits, s, c, alpha = self.advance(s, c, y_prev, lane_src)
        logp = self.buf64.get("logp", logits.shape)
        dk.log_softmax_rows(logp, logits)
        return logp, s, c, alpha

    def step_greedy(self, s, c, y_prev, lane_src):
        """(the most probable next tokens (L,) int32, their log-probabilities (L,), s, c,
        attention) of one step, without the full log-softmax rows."""
        logits, s, c, alpha = self.advance(s, c, y_prev, lane_src)
        L = logits.shape[0]
        y, logp = np.empty((L, 1), np.int32), np.empty((L, 1))
        topk.topk_rows(y, logp, self.buf64.get("lse", (L,)), logits)  # the first argmax
        return y[:, 0], logp[:, 0], s, c, alpha


def greedy(stepper: Stepper, eos_id: int, max_len: int) -> list[Hypothesis]:
    """The most probable token at every step, for every source of the batch."""
    B, S = stepper.enc.shape[1], stepper.enc.shape[0]
    lanes = np.arange(B)
    s, c = stepper.start(lanes)
    y = np.full(B, eos_id, np.int32)
    toks = np.full((max_len, B), -1, np.int64)  # step t's token of each source (-1: ended)
    atts = np.zeros((max_len, B, S), stepper.enc.dtype)
    lp = np.zeros(B)
    n_out = np.zeros(B, np.int64)  # output steps of each source, its <EOS> counted
    done = np.zeros(B, bool)
    for t in range(max_len):
        y, logp_y, s, c, alpha = stepper.step_greedy(s, c, y, lanes)
        lp[lanes] += logp_y
        atts[t, lanes] = alpha
        toks[t, lanes] = y
        n_out[lanes] = t + 1
        ended = y == eos_id
        if ended.any():
            done[lanes[ended]] = True
            keep = np.flatnonzero(~ended)
            lanes, y, s = lanes[keep], y[keep], s[keep]
            c = c[keep] if c.size else c
        if not len(lanes):
            break
    out = []
    for b in range(B):
        n = int(n_out[b])
        tk = toks[:n - 1 if done[b] else n, b].tolist()
        out.append(Hypothesis(tk, float(lp[b]), float(lp[b] / length_penalty(n, 0.0)),
                              bool(done[b]), atts[:n, b].astype(stepper.enc.dtype)))
    return out


def beam_search(stepper: Stepper, eos_id: int, max_len: int, K: int, n_best: int = 1,
                alpha: float = 0.0) -> list[list[Hypothesis]]:
    """The n_best (<= K) best hypotheses of every source of the batch, best first."""
    if not 1 <= n_best <= K:
        raise ValueError(f"n_best ({n_best}) must be between 1 and the beam size ({K})")
    B = stepper.enc.shape[1]
    lane_src = np.arange(B)
    s, c = stepper.start(lane_src)
    y = np.full(B, eos_id, np.int32)
    score = np.zeros(B)
    greedy_lane = np.arange(B)  # per source: its greedy path's lane, -1 once finished
    hist: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (parent, token, alpha) a step
    finished: list[list[tuple[float, float, int, int, bool]]] = [[] for _ in range(B)]
    lp_max = float(length_penalty(max_len, alpha))
    for t in range(max_len):
        logits, s, c, alpha_t = stepper.advance(s, c, y, lane_src)
        alpha_t = alpha_t.copy()  # (the stepper reuses its buffer)
        L, V = logits.shape
        k = min(K, V)
        # each lane's k best continuations (the source's K best are among them), then the K
        # best of each source's lanes: by score, ties by (lane rank in the source, token)
        top_tok, top_lp = np.empty((L, k), np.int32), np.empty((L, k))
        topk.topk_rows(top_tok, top_lp, np.empty(L), logits)
        cand = (score[:, None] + top_lp).ravel()
        rank = np.arange(L) - np.searchsorted(lane_src, lane_src, "left")
        flat = (rank[:, None] * V + top_tok).ravel()
        src_c = np.repeat(lane_src, k)
        order = np.lexsort((flat, -cand, src_c))
        pos = np.arange(order.size) - np.searchsorted(src_c[order], src_c[order], "left")
        chosen = order[pos < K]
        parents, tokens, scores, srcs = [], [], [], []
        bounds = np.flatnonzero(np.diff(src_c[chosen])) + 1
        for group in np.split(chosen, bounds):
            b = int(src_c[group[0]])
            top = group.tolist()
            g = greedy_lane[b]
            gi = int(g) * k if g >= 0 else -1  # the greedy lane's best continuation
            if g >= 0 and gi not in top:
                top[-1] = gi
            new_g = -1
            for i in top:
                lane, tok = i // k, int(top_tok[i // k, i % k])
                if tok < 0:
                    continue
                if tok == eos_id or t == max_len - 1:
                    finished[b].append((cand[i] / float(length_penalty(t + 1, alpha)),
                                        float(cand[i]), t, lane, tok == eos_id, tok))
                    continue
                if i == gi:
                    new_g = len(parents)
                parents.append(lane)
                tokens.append(tok)
                scores.append(cand[i])
                srcs.append(b)
            greedy_lane[b] = new_g
        hist.append((np.array(parents, np.int64), np.array(tokens, np.int32), alpha_t))
        # sources that are done: nothing live, or N finished none of the live can beat
        keep = np.ones(len(parents), bool)
        srcs_a = np.array(srcs, np.int64)
        for b in np.unique(srcs_a).tolist():
            fin = sorted((f[0] for f in finished[b]), reverse=True)
            if len(fin) >= n_best:
                live = np.array(scores)[srcs_a == b]
                if live.max() / lp_max <= fin[n_best - 1]:
                    keep[srcs_a == b] = False
                    greedy_lane[b] = -1
        idx = np.flatnonzero(keep)
        remap = np.full(len(parents), -1)
        remap[idx] = np.arange(idx.size)
        for b in range(B):
            if greedy_lane[b] >= 0:
                greedy_lane[b] = remap[greedy_lane[b]]
        if not idx.size:
            break
        par = np.array(parents, np.int64)[idx]
        hist[-1] = (par, np.array(tokens, np.int32)[idx], alpha_t)
        s = s[par]
        c = c[par] if c.size else c
        y = np.array(tokens, np.int32)[idx]
        score = np.array(scores)[idx]
        lane_src = srcs_a[idx]
    return [_n_best(finished[b], hist, n_best) for b in range(B)]


def _n_best(fin, hist, n_best) -> list[Hypothesis]:
    """Back-track the n_best finished entries (norm, raw, step, parent lane, finished, token)."""
    out = []
    for norm, raw, t, lane, done, tok in sorted(fin, key=lambda f: (-f[0], f[2]))[:n_best]:
        toks = [] if done else [tok]
        atts = [hist[t][2][lane]]
        for u in range(t - 1, -1, -1):
            parent, token, alpha_u = hist[u]
            toks.append(int(token[lane]))
            lane = int(parent[lane])
            atts.append(alpha_u[lane])
        out.append(Hypothesis(toks[::-1], raw, norm, done, np.array(atts[::-1])))
    return out

