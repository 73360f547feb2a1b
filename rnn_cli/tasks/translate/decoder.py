"""The attentional decoder of the translator over a teacher-forced batch: loss, and gradients of
its parameters, of the encoder states and of the encoder's final states.

The network (kernels/decoder.py gives the equations), Bahdanau-style as the published 28.3-BLEU
model of bentrevett/pytorch-seq2seq (notebook 3):

    s<0>   = tanh(W_br fin + b_br)         fin = the encoder's final states ([forward; backward])
    ctx<t> = attend(s<t-1>, enc)           none | dot | general | additive (kernels/attention.py)
    s<t>   = cell(W_ax e<t> + W_cx ctx<t> + b_a, s<t-1>)     GRU or LSTM (LSTM: c<0> = 0)
    logits = W_ya [s<t>; ctx<t>; e<t>] + b_y,   loss = mean over real target tokens of -log p
with e<t> = W_emb[y<t-1>], y<0> = <EOS> (the start symbol is the end one, as fairseq does).

With an output projection of P units (`proj`, Luong et al. 2015's attentional layer), the logits
come from a narrower layer, which cuts the output layer's work by about F/P:

    o<t>   = tanh(W_o [s<t>; ctx<t>; e<t>] + b_o)       (P,)
    logits = W_ya o<t> + b_y,   or with `tie` (P = E)   W_emb o<t> + b_y   (Press & Wolf 2017)

Label smoothing eps (Szegedy et al. 2016): the loss of a token is (1 - eps) (-log p[y]) +
eps mean_v (-log p[v]), the cross-entropy with a target that puts eps/V on every token besides
1 - eps on y (torch's CrossEntropyLoss(label_smoothing=eps)). `forward` returns that mean;
`nll` keeps the plain negative log-likelihood of the batch (perplexity).

Parameters (`shapes()`, names after `prefix`; GH = 3H for GRU, 4H for LSTM; F = H + D + E):
    W_emb (V,E)  W_ax (GH,E)  W_cx (GH,D)  b_a (GH,)  W_aa (GH,H)  b_hn (H,) (GRU)
    W_a (H,D) (general);  W_q (A,H), W_k (A,D), b_k (A,), v (A,) (additive)
    W_br (H,Df)  b_br (H,)  W_ya (V,F)  b_y (V,);  with proj P: W_o (P,F), b_o (P,), then
    W_ya (V,P) unless tied, b_y (V,)
Gate blocks and biases follow the LM's cells (`kernels/gru.py`, `kernels/lstm.py`).

Batches: enc (S,B,D) (zero past each source's end), src_len (B,), fin (B,Df), y_in / y_out (T,B)
int32 with -1 past each target's end (target lengths are where y_out turns -1). Buffers are
kept between calls and grown to the largest batch seen; each call takes contiguous views of them.
"""

from __future__ import annotations

import numpy as np

from rnn_cli.kernels import attention as att
from rnn_cli.kernels import cell, embed
from rnn_cli.kernels import decoder as dk
from rnn_cli.kernels import smooth_xent as sx
from rnn_cli.kernels._jit import get_threads

CELLS = {"gru": dk.GRU, "lstm": dk.LSTM}


class Buffers:
    """Named scratch arrays, each a view of a flat block grown to the largest request."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        self._flat: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], zero: bool = False) -> np.ndarray:
        n = int(np.prod(shape))
        flat = self._flat.get(name)
        if flat is None or flat.size < n:
            flat = self._flat[name] = np.zeros(max(n, 1), self.dtype)
        view = flat[:n].reshape(shape)
        if zero:
            view[...] = 0.0
        return view


def rows(view: np.ndarray) -> np.ndarray:
    """A (T, B, W) view with contiguous rows (a column block of a wider buffer) as (T*B, W),
    without a copy (the BLAS calls write through it)."""
    out = view.reshape(-1, view.shape[-1])
    if not np.shares_memory(out, view):
        raise AssertionError("rows() would copy")
    return out


class Decoder:
    """Sizes and buffers of one decoder; `forward` then `backward` per training batch.

    cell "gru" | "lstm"; attention "none" | "dot" | "general" | "additive"; H hidden, E target
    embedding, D encoder state width (dot: must equal H), A attention size (additive), V target
    vocabulary, Df the encoder's final-state width (bridge input); proj P (0: none), tie (the
    output matrix is W_emb; needs P = E), label_smoothing eps in [0, 1).
    """

    def __init__(self, cell_name: str, attention: str, H: int, E: int, D: int, A: int, V: int,
                 Df: int, dtype=np.float32, prefix: str = "", proj: int = 0, tie: bool = False,
                 label_smoothing: float = 0.0):
        if attention == "dot" and D != H:
            raise ValueError(f"dot attention needs the encoder width D ({D}) to equal H ({H})")
        if tie and proj != E:
            raise ValueError(f"tied output weights need the projection ({proj}) to equal the "
                             f"target embedding ({E})")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label smoothing must be in [0, 1), got {label_smoothing}")
        self.P, self.tie, self.eps = int(proj), bool(tie), float(label_smoothing)
        self.cell, self.kind = CELLS[cell_name], att.KINDS[attention]
        self.cell_name, self.attention = cell_name, attention
        self.D = 0 if attention == "none" else D
        self.H, self.E, self.A, self.V, self.Df = H, E, A if attention == "additive" else 0, V, Df
        self.G = 3 if cell_name == "gru" else 4
        self.F = H + self.D + E
        self.prefix = prefix
        self.buf = Buffers(dtype)
        self.buf64 = Buffers(np.float64)  # the loss's per-row log-sum-exp and nll
        self.dtype = np.dtype(dtype)
        self._empty = np.zeros(0, self.dtype)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """{prefixed name: shape} of the parameters, in buffer order."""
        H, E, D, A, V, GH = self.H, self.E, self.D, self.A, self.V, self.G * self.H
        s = {"W_emb": (V, E), "W_ax": (GH, E), "W_cx": (GH, D), "b_a": (GH,), "W_aa": (GH, H)}
        if self.cell == dk.GRU:
            s["b_hn"] = (H,)
        if self.attention == "general":
            s["W_a"] = (H, D)
        if self.attention == "additive":
            s.update(W_q=(A, H), W_k=(A, D), b_k=(A,), v=(A,))
        s.update(W_br=(H, self.Df), b_br=(H,))
        if self.P:
            s.update(W_o=(self.P, self.F), b_o=(self.P,))
        if not self.tie:
            s["W_ya"] = (V, self.P or self.F)
        s["b_y"] = (V,)
        return {self.prefix + k: v for k, v in s.items()}

    def _out_matrix(self, params):
        """The (V, P or F) matrix of the logits: W_ya, or W_emb when tied."""
        return self._p(params, "W_emb" if self.tie else "W_ya")

    def _p(self, params, name):
        return params[self.prefix + name]

    # ------------------------------------------------------------------------------- forward
    def forward(self, params, enc, src_len, fin, y_in, y_out, emb_mask=None,
                out_mask=None) -> float:
        """Mean loss of y_out's real tokens (nats; label-smoothed when eps > 0); keeps what
        backward needs. emb_mask (T,B,E), out_mask (T,B,P): inverted-dropout factors for the
        target embeddings and the projection's output (None: no dropout)."""
        p = lambda n: self._p(params, n)  # noqa: E731
        H, D, E, F, GH = self.H, self.D, self.E, self.F, self.G * self.H
        T, B = y_in.shape
        S = enc.shape[0]
        nch = min(get_threads(), B)
        get = self.buf.get
        steps = np.ascontiguousarray(np.argmin(np.vstack([y_out, np.full((1, B), -1)]) >= 0,
                                               axis=0).astype(np.int32))
        feat = get("feat", (T + 1, B, F), zero=True)
        # the bridge: s<0> = tanh(fin W_br^T + b_br)
        s0 = feat[0, :, :H]
        dk.pgemm_rows(s0, fin, p("W_br"), False, True, 1.0, 0.0, nch)
        np.tanh(s0 + p("b_br"), out=s0)
        e = feat[1:, :, H + D:]
        e[...] = p("W_emb")[np.maximum(y_in, 0)]  # numpy: a kernel for this view's layout would
        e[y_in < 0] = 0.0  # be one more compiled build, for a copy of T*B rows
        if emb_mask is not None:
            e *= emb_mask
        xi = get("xi", (T, B, GH))
        dk.pgemm_rows(rows(xi), rows(e), p("W_ax"), False, True, 1.0, 0.0, nch)
        xi += p("b_a")
        keys = self._keys_forward(params, enc, nch)
        W_aaT = get("W_aaT", (H, GH))
        cell.transpose_into(W_aaT, p("W_aa"))
        W_cxT = get("W_cxT", (D, GH))
        cell.transpose_into(W_cxT, p("W_cx"))
        W_qT = get("W_qT", (H, self.A))
        if self.A:
            cell.transpose_into(W_qT, p("W_q"))
        gates = get("gates", (T, B, (4 if self.cell == dk.GRU else 5) * H))
        cs = get("cs", (T + 1, B, H) if self.cell == dk.LSTM else (0, 0, 0), zero=True)
        alpha = get("alpha", (T, B, S))
        q = get("q", (T, B, self.A))
        xc = get("xc", (B, GH))
        b_hn = p("b_hn") if self.cell == dk.GRU else self._empty
        v = p("v") if self.A else self._empty
        dk.decoder_forward(feat, gates, cs, alpha, q, xi, xc, enc, keys, src_len, steps, W_aaT,
                           W_cxT, W_qT, b_hn, v, self.cell, self.kind, nch)
        # the output layer over the real target positions only (their rows of feat, gathered)
        y_all = y_out.reshape(-1)
        sel = np.flatnonzero(y_all >= 0)
        R = self.n_tokens = int(sel.shape[0])
        X = rows(feat[1:])
        if R < T * B:
            X = np.take(X, sel, axis=0, out=get("X", (R, F)))
        om = None if out_mask is None else out_mask.reshape(T * B, -1)[sel]
        top = self._project(params, X, om, nch)
        logits = get("logits", (R, self.V))
        cell.pgemm(logits, top, self._out_matrix(params), False, True, 1.0, 0.0, nch)
        y = np.ascontiguousarray(y_all[sel], dtype=np.int32)
        nll, lse = self.buf64.get("nll", (R,)), self.buf64.get("lse", (R,))
        mean = self.buf64.get("mean", (R,))
        total = sx.smooth_xent_forward(nll, lse, mean, logits, p("b_y"), y)  # (+ b_y in place)
        self.nll = total
        if self.eps:  # eps * (mean_v -log p[v]) = eps * (lse - mean_v logits) per row
            total = (1.0 - self.eps) * total + self.eps * float((lse - mean).sum())
        self.saved = dict(enc=enc, src_len=src_len, fin=fin, y_in=y_in, y=y, sel=sel, X=X,
                          steps=steps, keys=keys, emb_mask=emb_mask, out_mask=om, top=top,
                          lse=lse, nch=nch, T=T, B=B, S=S,
                          gates=gates, cs=cs, alpha=alpha, q=q, W_q=p("W_q") if self.A else
                          np.zeros((0, H), self.dtype), v=v)
        return total / max(self.n_tokens, 1)

    def _project(self, params, X, out_mask, nch, W_oT=None):
        """What the logits read: the features X (R, F) themselves, or (proj) o = tanh(X W_o^T +
        b_o) (R, P), times out_mask when given (the pre-dropout o is kept as "o"). W_oT: a
        contiguous copy of W_o^T (F, P) to read instead of W_o (decoding: a product of few rows
        runs faster on it)."""
        if not self.P:
            return X
        o = self.buf.get("o", (X.shape[0], self.P))
        if W_oT is None:
            cell.pgemm(o, X, self._p(params, "W_o"), False, True, 1.0, 0.0, nch)
        else:
            cell.pgemm(o, X, W_oT, False, False, 1.0, 0.0, nch)
        o += self._p(params, "b_o")
        np.tanh(o, out=o)
        if out_mask is None:
            return o
        od = self.buf.get("od", o.shape)
        np.multiply(o, out_mask.reshape(o.shape), out=od)
        return od

    def _keys_forward(self, params, enc, nch):
        if self.attention == "dot":
            return enc
        S, B = enc.shape[0], enc.shape[1]
        if self.attention == "none":
            return self.buf.get("keys", (S, B, 0))
        W, bias = ((self._p(params, "W_a"), self._empty) if self.attention == "general" else
                   (self._p(params, "W_k"), self._p(params, "b_k")))
        keys = self.buf.get("keys", (S, B, W.shape[0]))
        att.keys_forward(keys, enc, W, bias, nch)
        return keys

    # ------------------------------------------------------------------------------ backward
    def backward(self, params, grads) -> tuple[np.ndarray, np.ndarray]:
        """Accumulate the loss's gradients into `grads` (same names as the parameters); return
        (denc (S,B,D), dfin (B,Df)), views of buffers valid until the next call."""
        p = lambda n: self._p(params, n)  # noqa: E731
        g = lambda n: self._p(grads, n)  # noqa: E731
        sv, get = self.saved, self.buf.get
        H, D, E, F, GH, A = self.H, self.D, self.E, self.F, self.G * self.H, self.A
        T, B, S, nch = sv["T"], sv["B"], sv["S"], sv["nch"]
        feat = get("feat", (T + 1, B, F))
        R, sel, X, top = self.n_tokens, sv["sel"], sv["X"], sv["top"]
        logits = get("logits", (R, self.V))
        db = get("db", (nch, self.V))
        sx.smooth_xent_backward(logits, db, logits, sv["lse"], sv["y"], 1.0 / max(R, 1),
                                self.eps, nch)
        g("b_y")[...] += db.sum(axis=0)
        W_out = self._out_matrix(params)
        cell.pgemm(g("W_emb" if self.tie else "W_ya"), logits, top, True, False, 1.0, 1.0, nch)
        dX = get("dX", (R, F))
        if self.P:
            dpre = get("dpre", top.shape)
            cell.pgemm(dpre, logits, W_out, False, False, 1.0, 0.0, nch)
            if sv["out_mask"] is not None:
                dpre *= sv["out_mask"]
            o = get("o", top.shape)
            dpre *= 1.0 - o * o
            cell.pgemm(g("W_o"), dpre, X, True, False, 1.0, 1.0, nch)
            g("b_o")[...] += dpre.sum(axis=0)
            cell.pgemm(dX, dpre, p("W_o"), False, False, 1.0, 0.0, nch)
        else:
            cell.pgemm(dX, logits, W_out, False, False, 1.0, 0.0, nch)
        dfeat = get("dfeat", (T + 1, B, F), zero=True)
        rows(dfeat[1:])[sel] = dX
        dxi, dhh = get("dxi", (T, B, GH)), get("dhh", (T, B, GH) if self.G == 3 else (0, 0, 0))
        dq = get("dq", (T, B, A))
        dnext, dcnext = get("dnext", (B, H)), get("dcnext", (B, H))
        enc, keys = sv["enc"], sv["keys"]
        denc = get("denc", enc.shape, zero=True)
        dkeys = denc if self.attention == "dot" else get("dkeys", keys.shape, zero=True)
        dv = get("dv", (B, A), zero=True)
        dk.decoder_backward(dfeat, dxi, dhh, dq, dnext, dcnext, dkeys, denc, dv, feat,
                            sv["gates"], sv["cs"], sv["alpha"], sv["q"], enc, keys,
                            sv["src_len"], sv["steps"], p("W_aa"), p("W_cx"), sv["W_q"], sv["v"],
                            self.cell, self.kind, nch)
        s_prev = rows(feat[:-1, :, :H])
        dgate = dhh if self.G == 3 else dxi
        dk.pgemm_rows(g("W_aa"), rows(dgate), s_prev, True, False, 1.0, 1.0, nch)
        if self.G == 3:
            g("b_hn")[...] += rows(dhh)[:, 2 * H:].sum(axis=0)
        if D:
            dk.pgemm_rows(g("W_cx"), rows(dxi), rows(feat[1:, :, H:H + D]), True, False, 1.0, 1.0,
                          nch)
        de = feat[1:, :, H + D:]
        dk.pgemm_rows(g("W_ax"), rows(dxi), rows(de), True, False, 1.0, 1.0, nch)
        g("b_a")[...] += rows(dxi).sum(axis=0)
        de = dfeat[1:, :, H + D:]
        dk.pgemm_rows(rows(de), rows(dxi), p("W_ax"), False, False, 1.0, 1.0, nch)
        if sv["emb_mask"] is not None:
            de *= sv["emb_mask"]
        embed.embed_backward(g("W_emb"), de, sv["y_in"])
        if A:
            dk.pgemm_rows(g("W_q"), rows(dq), s_prev, True, False, 1.0, 1.0, nch)
            g("v")[...] += dv.sum(axis=0)
            att.keys_backward(g("W_k"), g("b_k"), denc, dkeys, enc, p("W_k"), nch)
        elif self.attention == "general":
            att.keys_backward(g("W_a"), self._empty, denc, dkeys, enc, p("W_a"), nch)
        # the bridge: ds<0> = dnext; through tanh, then W_br
        s0 = feat[0, :, :H]
        dpre = dnext * (1.0 - s0 * s0)
        dk.pgemm_rows(g("W_br"), dpre, sv["fin"], True, False, 1.0, 1.0, nch)
        g("b_br")[...] += dpre.sum(axis=0)
        dfin = get("dfin", (B, self.Df))
        dk.pgemm_rows(dfin, dpre, p("W_br"), False, False, 1.0, 0.0, nch)
        return denc, dfin
