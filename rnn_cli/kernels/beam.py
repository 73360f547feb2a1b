"""Beam search and prime scoring for every cell (rnn, gru, lstm), depth and input kind.

`beam_search` finds a high-probability continuation under the model by keeping the K most probable
partial sequences (hypotheses) at each step; `feed_logprob` feeds known tokens (a prime) and sums
their log-probabilities. Both step the network with `net_step`, which runs exactly the arithmetic
of the sampler (the seed's plain one-hot RNN through `sampling.rnn_step`, every other model through
`generate.stack_step`), so `--beam 1` reproduces `--argmax` bit for bit.

Scores are the model's own log-probabilities, log softmax(W_ya a + b_y)[y], summed in float64:
banning <UNK> only removes candidates, it never renormalises, so a printed line scores what
`rnn-cli score` gives it.

    state    (R, H)        the network state (R = L rows; LSTM: 2L, c below h), in/out
    states   (2, K, R, H)  the hypotheses' states, two generations (current, next)
    bp, tk   (N, K) int32  back-pointer to the parent slot, and token, of each step and slot
    cand     (K*V,) f64    candidate scores; scratch (K*V,) f64; sel (K,) int64
    score    (2, K) f64    the hypotheses' log-probabilities; fin_state (R, H) out
    logits (V,), xin (G*H,), tmp (H,) scratch
"""

from __future__ import annotations

import math

from rnn_cli.kernels._jit import njit
from rnn_cli.kernels.generate import RNN, stack_step
from rnn_cli.kernels.sampling import kth_largest, output_logits, rnn_step


@njit
def net_step(cell, state, x, W_emb, W_ax0, W_ax_up, W_aa, b_a, b_hn, act, xin, tmp):
    """One step of the stacked network with the sampler's own arithmetic (x < 0: zero input)."""
    if cell == RNN and W_emb.shape[0] == 0:
        rnn_step(state, x, W_ax0, W_ax_up, W_aa, b_a, act, xin)
    else:
        stack_step(cell, state, x, W_emb, W_ax0, W_ax_up, W_aa, b_a, b_hn, act, xin, tmp)


@njit
def log_sum_exp(logits):
    """log sum_k exp(logits[k]) in float64, shifted by the maximum."""
    m = logits[0]
    for k in range(logits.shape[0]):
        if logits[k] > m:
            m = logits[k]
    s = 0.0
    for k in range(logits.shape[0]):
        s += math.exp(logits[k] - m)
    return m + math.log(s)


@njit
def feed_logprob(cell, state, feed, targets, W_emb, W_ax0, W_ax_up, W_aa, b_a, b_hn, act, W_ya,
                 b_y, logits, xin, tmp):
    """Feed `feed` (T,) through the network and return sum_t log P(targets[t] | feed[:t+1])."""
    top = W_aa.shape[0] - 1
    total = 0.0
    for t in range(feed.shape[0]):
        net_step(cell, state, feed[t], W_emb, W_ax0, W_ax_up, W_aa, b_a, b_hn, act, xin, tmp)
        output_logits(logits, state[top], W_ya, b_y)
        total += logits[targets[t]] - log_sum_exp(logits)
    return total


@njit
def _select(cand, n, K, scratch, sel):
    """The (up to) K largest finite entries of cand[:n] into sel, largest first, ties by index;
    returns how many (no allocation: a quickselect cut, then an insertion sort of <= K ids)."""
    finite = 0
    for i in range(n):
        if cand[i] > -math.inf:
            finite += 1
    k = K if K < finite else finite
    if k == 0:
        return 0
    cut = kth_largest(cand[:n], k, scratch)
    c = 0
    for i in range(n):  # above the cut first, then ties at the cut in index order
        if cand[i] > cut:
            sel[c] = i
            c += 1
    for i in range(n):
        if c == k:
            break
        if cand[i] == cut:
            sel[c] = i
            c += 1
    for i in range(1, k):
        j = i
        while j > 0 and (cand[sel[j]] > cand[sel[j - 1]] or
                         (cand[sel[j]] == cand[sel[j - 1]] and sel[j] < sel[j - 1])):
            s = sel[j]
            sel[j] = sel[j - 1]
            sel[j - 1] = s
            j -= 1
    return k


@njit
def beam_search(out, K, state, x0, stop_id, ban_id, alpha, cell, W_emb, W_ax0, W_ax_up, W_aa,
                b_a, b_hn, act, W_ya, b_y, states, bp, tk, cand, scratch, sel, score, fin_state,
                logits, xin, tmp):
    """Beam search over K hypotheses from `state` with first input x0, for up to len(out) steps.

    stop_id < 0: hypotheses run len(out) tokens and the most probable wins. stop_id >= 0: drawing
    stop_id finishes a hypothesis (it takes one of the K places of its step, so the beam shrinks)
    and the search ends when none is left or none can beat the best finished one by
    logP / length**alpha at its current length (exact for alpha = 0, where scores only fall).
    The greedy path (the sampler's argmax at every step) is always kept in the beam, so the result
    is never less probable than --argmax's (K = 1 is --argmax).

    out (N,) int32 receives the tokens; state becomes that of the winner with its last token not
    yet fed (the sampler's convention). Returns (count, log-probability, finished).
    """
    V = W_ya.shape[0]
    N = out.shape[0]
    top = W_aa.shape[0] - 1
    cur = 0
    states[0, 0] = state
    score[0, 0] = 0.0
    alive = 1
    greedy = 0  # the slot of the greedy path (-1 once it has finished)
    fin_score = -math.inf  # best finished, length-normalised; its raw score, step, parent slot
    fin_raw = -math.inf
    fin_t = -1
    fin_k = -1
    last_t = -1
    for t in range(N):
        g_pick = -1
        for k in range(alive):
            x = x0 if t == 0 else tk[t - 1, k]
            net_step(cell, states[cur, k], x, W_emb, W_ax0, W_ax_up, W_aa, b_a, b_hn, act, xin,
                     tmp)
            output_logits(logits, states[cur, k, top], W_ya, b_y)
            lse = log_sum_exp(logits)
            best = -1
            for v in range(V):
                if v == ban_id:
                    cand[k * V + v] = -math.inf
                else:
                    cand[k * V + v] = score[cur, k] + (logits[v] - lse)
                    if best < 0 or logits[v] > logits[best]:
                        best = v
            if k == greedy:
                g_pick = k * V + best
        n_sel = _select(cand, alive * V, K, scratch, sel)
        if n_sel == 0:
            break
        if g_pick >= 0:  # keep the greedy path: it replaces the last place if it fell out
            found = False
            for i in range(n_sel):
                if sel[i] == g_pick:
                    found = True
            if not found:
                sel[n_sel - 1] = g_pick
        nxt = 1 - cur
        new_alive = 0
        new_greedy = -1
        for i in range(n_sel):
            k = sel[i] // V
            v = sel[i] % V
            s = cand[sel[i]]
            if v == stop_id:
                norm = s / math.pow(t + 1.0, alpha)
                if norm > fin_score:
                    fin_score, fin_raw, fin_t, fin_k = norm, s, t, k
                    fin_state[...] = states[cur, k]
                continue
            states[nxt, new_alive] = states[cur, k]
            score[nxt, new_alive] = s
            bp[t, new_alive] = k
            tk[t, new_alive] = v
            if sel[i] == g_pick:
                new_greedy = new_alive
            new_alive += 1
        cur = nxt
        greedy = new_greedy
        alive = new_alive
        last_t = t
        if alive == 0:
            break
        if fin_t >= 0:
            lead = -math.inf
            for i in range(alive):
                if score[cur, i] > lead:
                    lead = score[cur, i]
            if lead / math.pow(t + 1.0, alpha) <= fin_score:
                break
    if fin_t >= 0:  # a finished hypothesis wins: back-track from its parent, then stop_id
        out[fin_t] = stop_id
        k = fin_k
        for t in range(fin_t - 1, -1, -1):
            out[t] = tk[t, k]
            k = bp[t, k]
        state[...] = fin_state
        return fin_t + 1, fin_raw, True
    if last_t < 0:
        return 0, 0.0, False
    w = 0  # no finished one (stop_id < 0, or the length ran out): the most probable alive
    for i in range(alive):
        if score[cur, i] > score[cur, w]:
            w = i
    state[...] = states[cur, w]
    raw = score[cur, w]
    k = w
    for t in range(last_t, -1, -1):
        out[t] = tk[t, k]
        k = bp[t, k]
    return last_t + 1, raw, False
