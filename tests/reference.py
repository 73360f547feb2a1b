"""Pure-NumPy float64 twins of the kernels: obvious and slow, written from the course-notes maths.

    a<t>     = g(W_aa a<t-1> + W_ax x<t> + b_a),   g = tanh or relu
    y_hat<t> = softmax(W_ya a<t> + b_y),           loss = sum_t sum_b -log y_hat<t>[y<t>]

Nothing here imports numba or the kernels, so a bug in a kernel cannot leak into its reference.
The one-hot input is an explicit dense one-hot matrix product (`onehot`), so the tests prove that
the kernels' column gather equals `W_ax @ onehot(x)`. Every function returns new arrays (float64)
and leaves its inputs alone. Activation codes equal `rnn_cli.kernels.cell.TANH/RELU` (tested).
"""

from __future__ import annotations

import math

import numpy as np

TANH = 0
RELU = 1
_ACT_CODES = {"tanh": TANH, "relu": RELU, TANH: TANH, RELU: RELU}


def _code(act) -> int:
    return _ACT_CODES[act]


def _f64(a):
    return np.array(a, dtype=np.float64, copy=True)


def activation(z, act):
    z = np.asarray(z, dtype=np.float64)
    return np.tanh(z) if _code(act) == TANH else np.maximum(z, 0.0)


def activation_grad_from_output(a, act):
    """g'(z) written with the stored output a = g(z): 1 - a^2 (tanh) or [a > 0] (relu)."""
    a = np.asarray(a, dtype=np.float64)
    return 1.0 - a * a if _code(act) == TANH else (a > 0.0).astype(np.float64)


def onehot(x, V):
    """Dense one-hot vectors for integer ids of any shape; id < 0 gives the zero vector."""
    x = np.asarray(x)
    out = np.zeros(x.shape + (V,), dtype=np.float64)
    for idx in np.ndindex(*x.shape):
        if x[idx] >= 0:
            out[idx + (int(x[idx]),)] = 1.0
    return out


# ------------------------------------------------------------------------------------ cell kernels


def ref_rnn_forward(a0, xa, W_aa, act):
    """a (T+1, B, H) with a[0] = a0 and a[t+1] = g(xa[t] + W_aa a[t]) for every stream."""
    xa, W_aa = _f64(xa), _f64(W_aa)
    T, B, H = xa.shape
    a = np.zeros((T + 1, B, H))
    a[0] = a0
    for t in range(T):
        for b in range(B):
            a[t + 1, b] = activation(xa[t, b] + W_aa @ a[t, b], act)
    return a


def ref_rnn_backward(da, a, W_aa, act):
    """dz (T, B, H): dz<t> = (da<t> + W_aa^T dz<t+1>) * g'(z<t>), truncated at the window start."""
    da, a, W_aa = _f64(da), _f64(a), _f64(W_aa)
    T, B, H = da.shape
    dz = np.zeros((T, B, H))
    for b in range(B):
        from_next = np.zeros(H)
        for t in range(T - 1, -1, -1):
            dz[t, b] = (da[t, b] + from_next) * activation_grad_from_output(a[t + 1, b], act)
            from_next = W_aa.T @ dz[t, b]
    return dz


def ref_gather_input_forward(W_ax, b_a, x):
    """xa (T, B, GH) = W_ax @ onehot(x<t>) + b_a, as a dense matrix product."""
    W_ax, b_a = _f64(W_ax), _f64(b_a)
    X = onehot(x, W_ax.shape[1])  # (T, B, V)
    T, B = X.shape[:2]
    xa = np.zeros((T, B, W_ax.shape[0]))
    for t in range(T):
        for b in range(B):
            xa[t, b] = W_ax @ X[t, b] + b_a
    return xa


def ref_gather_input_backward(dz, x, V):
    """(dW_ax (GH, V), db_a (GH,)): dW_ax = sum_t,b dz<t> onehot(x<t>)^T, db_a = sum_t,b dz<t>."""
    dz = _f64(dz)
    X = onehot(x, V)
    T, B, GH = dz.shape
    dW = np.zeros((GH, V))
    db = np.zeros(GH)
    for t in range(T):
        for b in range(B):
            dW += np.outer(dz[t, b], X[t, b])
            db += dz[t, b]
    return dW, db


# ------------------------------------------------------------------------------------ output layer


def _logsumexp(row):
    row = np.asarray(row, dtype=np.float64)
    m = np.max(row)
    return m + math.log(np.sum(np.exp(row - m)))


def ref_softmax(row):
    row = np.asarray(row, dtype=np.float64)
    e = np.exp(row - np.max(row))
    return e / np.sum(e)


def ref_softmax_xent_forward(logits, y):
    """(nll (R,), lse (R,), total): nll = lse - logit[y], rows with y < 0 not scored (nll 0)."""
    logits = _f64(logits)
    R = logits.shape[0]
    lse = np.array([_logsumexp(logits[r]) for r in range(R)])
    nll = np.array([lse[r] - logits[r, y[r]] if y[r] >= 0 else 0.0 for r in range(R)])
    return nll, lse, float(np.sum(nll))


def ref_softmax_xent_backward(logits, y, scale):
    """dlogits (R, V) = (softmax(logits) - onehot(y)) * scale; zero rows where y < 0."""
    logits = _f64(logits)
    R, V = logits.shape
    d = np.zeros((R, V))
    Y = onehot(y, V)
    for r in range(R):
        if y[r] >= 0:
            d[r] = (ref_softmax(logits[r]) - Y[r]) * scale
    return d


# ------------------------------------------------------------------------------------ optimizers


def ref_sgd_update(p, g, lr):
    return _f64(p) - lr * _f64(g)


def ref_adagrad_update(p, g, h, lr, eps):
    """Returns (p, h)."""
    p, g, h = _f64(p), _f64(g), _f64(h)
    h = h + g * g
    return p - lr * g / (np.sqrt(h) + eps), h


def ref_rmsprop_update(p, g, h, lr, decay, eps):
    """Returns (p, h)."""
    p, g, h = _f64(p), _f64(g), _f64(h)
    h = decay * h + (1.0 - decay) * g * g
    return p - lr * g / (np.sqrt(h) + eps), h


def ref_adam_update(p, g, m, v, lr_t, beta1, beta2, eps_t):
    """The kernel's form (bias corrections folded into lr_t, eps_t by the caller); (p, m, v)."""
    p, g, m, v = _f64(p), _f64(g), _f64(m), _f64(v)
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * g * g
    return p - lr_t * m / (np.sqrt(v) + eps_t), m, v


def ref_adam_textbook(p, g, m, v, t, lr, beta1, beta2, eps):
    """Kingma & Ba (2015) Algorithm 1, explicit bias-corrected moments, step t >= 1; (p, m, v)."""
    p, g, m, v = _f64(p), _f64(g), _f64(m), _f64(v)
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * g * g
    m_hat = m / (1.0 - beta1 ** t)
    v_hat = v / (1.0 - beta2 ** t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def ref_sum_squares(g):
    return float(np.sum(_f64(g) ** 2))


def ref_clip_values(g, limit):
    return np.clip(_f64(g), -limit, limit)


# ------------------------------------------------------------------------------------ whole network


def _views(params):
    """Accept a `Params` object or a dict of its named views."""
    return params.views if hasattr(params, "views") else params


def ref_window_forward(params, x, y, state, act="tanh"):
    """The stacked network over one window, written time step by time step.

    params: dict (or Params) with W_ax (H,V), W_ax_up (L-1,H,H), W_aa (L,H,H), b_a (L,H),
    W_ya (V,H), b_y (V,); x, y (T, B) ids (x < 0: zero input vector, y < 0: not scored);
    state (L, B, H) the carried hidden state. Returns a dict with `loss` (summed over time and
    batch), `nll` (T, B), `a` (list of L arrays (T+1, B, H)), `z` (list of L pre-activations
    (T, B, H)), `logits` (T, B, V) and `state` (L, B, H) the last hidden state of each layer.
    """
    p = {k: _f64(v) for k, v in _views(params).items()}
    x, y = np.asarray(x), np.asarray(y)
    T, B = x.shape
    L, H = p["W_aa"].shape[0], p["W_aa"].shape[2]
    V = p["W_ax"].shape[1]
    X = onehot(x, V)
    a_all, z_all = [], []
    below = None
    for layer in range(L):
        a = np.zeros((T + 1, B, H))
        z = np.zeros((T, B, H))
        a[0] = state[layer]
        for t in range(T):
            for b in range(B):
                if layer == 0:
                    inp = p["W_ax"] @ X[t, b]
                else:
                    inp = p["W_ax_up"][layer - 1] @ below[t + 1, b]
                z[t, b] = inp + p["W_aa"][layer] @ a[t, b] + p["b_a"][layer]
                a[t + 1, b] = activation(z[t, b], act)
        a_all.append(a)
        z_all.append(z)
        below = a
    logits = np.zeros((T, B, V))
    nll = np.zeros((T, B))
    for t in range(T):
        for b in range(B):
            logits[t, b] = p["W_ya"] @ below[t + 1, b] + p["b_y"]
            if y[t, b] >= 0:
                nll[t, b] = -math.log(ref_softmax(logits[t, b])[y[t, b]])
    return {
        "loss": float(np.sum(nll)),
        "nll": nll,
        "a": a_all,
        "z": z_all,
        "logits": logits,
        "state": np.stack([a[T] for a in a_all]),
    }


def ref_window_loss(params_views, x, y, state, act="tanh"):
    """Summed cross-entropy of one window of the stacked network (see `ref_window_forward`)."""
    return ref_window_forward(params_views, x, y, state, act)["loss"]


def ref_window_grads(params_views, x, y, state, act="tanh", scale=1.0):
    """Gradients of `scale * ref_window_loss` (BPTT truncated at the window start), composed from
    the ref_ kernel twins; dict name -> array shaped like the parameter."""
    p = {k: _f64(v) for k, v in _views(params_views).items()}
    fw = ref_window_forward(p, x, y, state, act)
    T, B = np.asarray(x).shape
    L = p["W_aa"].shape[0]
    V, H = p["W_ya"].shape
    R = T * B
    g = {k: np.zeros_like(v) for k, v in p.items()}
    dlogits = ref_softmax_xent_backward(fw["logits"].reshape(R, V), np.asarray(y).reshape(R), scale)
    top = fw["a"][-1][1:].reshape(R, H)
    g["W_ya"] = dlogits.T @ top
    g["b_y"] = dlogits.sum(axis=0)
    da = (dlogits @ p["W_ya"]).reshape(T, B, H)
    for layer in range(L - 1, -1, -1):
        a = fw["a"][layer]
        dz = ref_rnn_backward(da, a, p["W_aa"][layer], act)
        g["W_aa"][layer] = np.einsum("tbi,tbj->ij", dz, a[:T])
        g["b_a"][layer] = dz.sum(axis=(0, 1))
        if layer == 0:
            g["W_ax"], _ = ref_gather_input_backward(dz, x, V)
        else:
            below = fw["a"][layer - 1][1:]
            g["W_ax_up"][layer - 1] = np.einsum("tbi,tbj->ij", dz, below)
            da = np.einsum("tbi,ij->tbj", dz, p["W_ax_up"][layer - 1])
    return g


# ------------------------------------------------------------------------------------ sampling


def ref_rnn_step(a, x, W_ax0, W_ax_up, W_aa, b_a, act):
    """One step of the stacked network from state a (L, H) with input id x (< 0: zero vector);
    returns the new state. Layer l > 0 reads the new a<t> of layer l-1."""
    a = _f64(a)
    L, H = a.shape
    xv = onehot(np.array(x), W_ax0.shape[1])
    new = np.zeros_like(a)
    for layer in range(L):
        inp = np.asarray(W_ax0, np.float64) @ xv if layer == 0 else (
            np.asarray(W_ax_up[layer - 1], np.float64) @ new[layer - 1])
        new[layer] = activation(inp + np.asarray(W_aa[layer], np.float64) @ a[layer]
                                + np.asarray(b_a[layer], np.float64), act)
    return new


def ref_output_logits(a_top, W_ya, b_y):
    W_ya, a_top, b_y = (np.asarray(v, np.float64) for v in (W_ya, a_top, b_y))
    return W_ya @ a_top + b_y


def ref_kth_largest(values, k):
    """The k-th largest value (k >= 1), ties counted separately."""
    return np.sort(np.asarray(values))[::-1][k - 1]


def ref_draw_token(logits, temperature, top_k, greedy, ban_id, u, top_p=1.0):
    """(token, weights): the sampler's distribution and its inverse-CDF draw with uniform u.

    Allowed tokens: every id but `ban_id`. greedy: the first argmax among allowed tokens.
    top_k in (0, V): keep the allowed tokens whose logit is >= the k-th largest allowed logit (ties
    kept). top_p < 1 (nucleus): of those, walk the kept tokens from the largest logit down and
    keep the ones whose logit is >= the logit at which the running sum of weights first reaches
    top_p of the kept total (ties kept). weights[k] = exp((logit[k] - max_allowed) / temperature)
    for kept tokens, 0 otherwise (unnormalised). The draw is the first kept k with
    cumsum(weights)[k] > u * sum(weights).
    """
    logits = np.asarray(logits, dtype=np.float64)
    V = logits.shape[0]
    allowed = np.ones(V, dtype=bool)
    if 0 <= ban_id < V:
        allowed[ban_id] = False
    masked = np.where(allowed, logits, -np.inf)
    best = int(np.argmax(masked))
    keep = allowed.copy()
    if 0 < top_k < V:
        cut = ref_kth_largest(logits[allowed], top_k) if top_k <= allowed.sum() else -np.inf
        keep &= logits >= cut
    w = np.zeros(V)
    w[keep] = np.exp((logits[keep] - logits[best]) / temperature)
    if top_p < 1.0:
        total = 0.0
        for k in range(V):
            total += w[k]
        acc = 0.0
        for k in sorted(np.flatnonzero(keep), key=lambda i: -logits[i]):
            acc += w[k]
            if acc >= top_p * total:
                keep &= logits >= logits[k]
                break
        w[~keep] = 0.0
    if greedy:
        return best, w
    total = 0.0
    for k in range(V):  # summed in index order, like a hand-written loop
        total += w[k]
    target = u * total
    acc = 0.0
    last = best
    for k in range(V):
        if w[k] > 0.0:
            acc += w[k]
            last = k
            if acc > target:
                return k, w
    return last, w


def ref_log_softmax(logits):
    logits = np.asarray(logits, np.float64)
    return logits - _logsumexp(logits)


def ref_beam_search(step, logits_of, state, x0, K, N, stop_id=-1, ban_id=-1, alpha=0.0):
    """(tokens, ln P, finished, state) of beam search over K hypotheses, written with lists.

    step(state, x) -> new state, logits_of(state) -> logits: the network (float64). Each step
    extends every hypothesis by every allowed token with score + log softmax; the K best (ties: lower
    parent, then lower token) survive, and the greedy path (argmax of its logits, first of ties) is
    put in the last place if it fell out. stop_id >= 0: a chosen candidate ending in stop_id is
    finished (it leaves the beam); the best finished by score / length**alpha wins; the search
    ends when the beam is empty or its best score / (t+1)**alpha cannot beat it. Otherwise the
    best hypothesis after N steps. `state` returned: the winner's, its last token not fed.
    """
    beams = [(0.0, [], np.asarray(state, np.float64), x0, True)]  # score, tokens, state, x, greedy
    fin = None  # (normalised, raw, tokens, state)
    for t in range(N):
        cands = []
        for b, (score, toks, st, x, is_greedy) in enumerate(beams):
            new_st = step(st, x)
            logits = np.asarray(logits_of(new_st), np.float64)
            lp = ref_log_softmax(logits)
            allowed = [v for v in range(len(logits)) if v != ban_id]
            g = max(allowed, key=lambda v: (logits[v], -v))
            for v in allowed:
                cands.append((score + lp[v], b * len(logits) + v, toks + [v], new_st,
                              is_greedy and v == g))
        if not cands:
            break
        cands.sort(key=lambda c: (-c[0], c[1]))
        chosen = cands[:K]
        greedy = [c for c in cands if c[4]]
        if greedy and greedy[0] not in chosen:
            chosen[-1] = greedy[0]
        beams = []
        for score, _, toks, st, is_greedy in chosen:
            if toks[-1] == stop_id:
                norm = score / (t + 1.0) ** alpha
                if fin is None or norm > fin[0]:
                    fin = (norm, score, toks, st)
            else:
                beams.append((score, toks, st, toks[-1], is_greedy))
        if not beams:
            break
        if fin is not None and max(b[0] for b in beams) / (t + 1.0) ** alpha <= fin[0]:
            break
    if fin is not None:
        return fin[2], fin[1], True, fin[3]
    if not beams or not beams[0][1]:
        return [], 0.0, False, state
    best = max(range(len(beams)), key=lambda i: (beams[i][0], -i))
    return beams[best][1], beams[best][0], False, beams[best][2]


# ------------------------------------------------------------------------------ class softmax


def ref_class_log_probs(a, W_ya, b_y, W_yc, b_c, word_class):
    """(V,) log P(w | a) = log softmax(W_yc a + b_c)[c(w)] + log softmax over c(w)'s words of
    (W_ya a + b_y) (Mikolov et al. 2011), written from the definition."""
    a = _f64(a)
    zc = _f64(W_yc) @ a + _f64(b_c)
    zw = _f64(W_ya) @ a + _f64(b_y)
    out = np.zeros(zw.shape[0])
    log_pc = zc - _logsumexp(zc)
    for c in range(zc.shape[0]):
        members = np.flatnonzero(np.asarray(word_class) == c)
        out[members] = log_pc[c] + zw[members] - _logsumexp(zw[members])
    return out


def ref_class_xent_forward(top, W_ya, b_y, W_yc, b_c, word_class, y):
    """(nll (R,), total): nll = -log P(y | a) of the class softmax; rows with y < 0: 0."""
    nll = np.array([-ref_class_log_probs(top[r], W_ya, b_y, W_yc, b_c, word_class)[y[r]]
                    if y[r] >= 0 else 0.0 for r in range(top.shape[0])])
    return nll, float(np.sum(nll))
