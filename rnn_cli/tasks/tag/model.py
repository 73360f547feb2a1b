"""The tagger's network: word embeddings and a character-level encoder of each word -> the
shared bidirectional encoder -> per-token scores -> softmax or a linear-chain CRF. Forward and
backward over a batch of sentences (`data.Batch`), decoding, probabilities, and the model
file's format. Never prints.

    w<t>  = W_emb[x<t>]                                       (T, B, E)   the word's embedding
    c     = [fwd final | rev final] of CharEnc(W_char[chars]) (U, 2 Hc)   each distinct word of
                                                              the batch, its characters read
                                                              both ways (Lample et al. 2016)
    h     = Encoder([w<t> ; c[slot<t>]], lengths)             (T, B, F)   F = dirs*H, encoder.py
    s<t>  = out.W h<t> + out.b                                (T, B, K)   per-token tag scores
    loss  = softmax: mean over tokens of -log softmax(s<t>)[y<t>]          kernels/token_softmax
            --crf:   sum over sentences of -log P(y | s), / tokens         kernels/crf.py

Both losses are divided by the batch's tokens (so --lr means the same with and without --crf;
the CRF's is a sentence-level likelihood, summed). Decoding never emits a sequence the tag
scheme forbids (I-PER after O in BIO): Viterbi over the scores with the scheme's transition
masks (`tagset.transition_mask`), plus the learned transitions with --crf; a tag set without a
scheme (parts of speech) takes each token's best tag. The scores are copied into float64 for
the output kernels (they compile once, in float64).

Dropout (training only, masks from the run's Generator): on the word encoder's input (the word
embedding and the character vector), between its layers (`Encoder`), and on h before the
output layer. A word unseen in training is <UNK> for W_emb; its characters still give it a
vector of its own (names, typos, hashtags).

Parameters (one ParamSet, float32): `emb` (V, E) N(0, 1) as nn.Embedding; `char_emb` (C, Ec)
N(0, 1); `char.*` the character encoder (one bidirectional layer of the same cell, Hc units);
`enc.*` the word encoder; `out.W` (K, F), `out.b` (K,) U(-1/sqrt(F), 1/sqrt(F)) as nn.Linear;
with --crf `crf.trans` (K, K) [from, to], `crf.start` (K,), `crf.end` (K,), zeros.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from rnn_cli.encoder import GATES, Buffers, Encoder, EncoderSpec
from rnn_cli.errors import UsageError
from rnn_cli.kernels import cell, crf, embed, token_softmax
from rnn_cli.params import ParamSet
from rnn_cli.tasks.tag import options as O
from rnn_cli.tasks.tag.data import CHAR_GROUPS, Batch, char_groups
from rnn_cli.tasks.tag.evaluate import evaluate, run_all
from rnn_cli.tasks.tag.infer import cached_scores
from rnn_cli.tasks.tag.tagset import SCHEMES, TagSet

@dataclass(frozen=True)
class TagConfig:
    """The tagger's architecture, stored in its model file (meta.model)."""

    cell: str = O.CELL  # of both encoders
    hidden: int = O.HIDDEN  # H per direction, word encoder
    layers: int = O.LAYERS
    bidirectional: bool = O.BIDIRECTIONAL
    embed: int = O.EMBED  # E, word embeddings
    char_embed: int = O.CHAR_EMBED  # Ec
    char_hidden: int = O.CHAR_HIDDEN  # Hc per direction of the character encoder (0: none)
    dropout: float = O.DROPOUT
    crf: bool = O.CRF
    lower: bool = O.LOWER  # word embeddings of lower-cased words (characters keep the case)
    max_len: int = O.MAX_LEN  # training sentences cut to this many tokens (0: none); never at
    #                           tag time
    activation: str = "tanh"  # the rnn cell's g
    scheme: str = "none"  # the tag scheme (tagset.SCHEMES), from the training tags

    def validate(self) -> "TagConfig":
        for name, allowed in (("cell", tuple(GATES)), ("activation", ("tanh", "relu")),
                              ("scheme", SCHEMES)):
            if getattr(self, name) not in allowed:
                raise UsageError(f"--{name} must be one of {', '.join(allowed)} "
                                 f"(got {getattr(self, name)!r})")
        for name, low in (("hidden", 1), ("layers", 1), ("embed", 1), ("char_embed", 1),
                          ("char_hidden", 0)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not low <= v <= 1 << 16:
                raise UsageError(f"--{name.replace('_', '-')} must be an integer >= {low} "
                                 f"(got {v!r})")
        if not isinstance(self.max_len, int) or not 0 <= self.max_len <= 1 << 24:
            raise UsageError(f"--max-len must be 0 (no limit) or positive (got {self.max_len!r})")
        if not (isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0):
            raise UsageError(f"--dropout must be in [0, 1) (got {self.dropout!r})")
        if self.activation != "tanh" and self.cell != "rnn":
            raise UsageError("--activation is the rnn cell's; gru and lstm have their own")
        if not all(isinstance(getattr(self, f), bool) for f in ("crf", "lower", "bidirectional")):
            raise UsageError("crf, lower and bidirectional are true or false")
        return self

    @classmethod
    def from_dict(cls, d: dict) -> "TagConfig":
        """From a stored dict: unknown keys (a newer version's) ignored, the rest validated."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names}).validate()

    def char_spec(self) -> EncoderSpec | None:
        if not self.char_hidden:
            return None
        return EncoderSpec(self.cell, self.char_hidden, 1, self.char_embed, True,
                           self.activation, "char.")

    def encoder_spec(self) -> EncoderSpec:
        return EncoderSpec(self.cell, self.hidden, self.layers,
                           self.embed + 2 * self.char_hidden, self.bidirectional,
                           self.activation, "enc.")


def param_shapes(cfg: TagConfig, V: int, C: int, K: int) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {"emb": (V, cfg.embed)}
    cspec = cfg.char_spec()
    if cspec is not None:
        shapes["char_emb"] = (C, cfg.char_embed)
        shapes.update(cspec.shapes())
    spec = cfg.encoder_spec()
    shapes.update(spec.shapes())
    shapes["out.W"], shapes["out.b"] = (K, spec.out_size), (K,)
    if cfg.crf:
        shapes["crf.trans"], shapes["crf.start"], shapes["crf.end"] = (K, K), (K,), (K,)
    return shapes


class Format:
    """The tagger's model file format (`taskfile.TaskFormat`)."""

    kind, vocab_roles, label_roles = "tag", ("word", "char"), ("tag",)

    def check_config(self, config: dict) -> dict:
        return dataclasses.asdict(TagConfig.from_dict(config))

    def param_shapes(self, config, vocabs, labels) -> dict[str, tuple[int, ...]]:
        cfg = TagConfig.from_dict(config)
        if vocabs["word"].level != "word" or vocabs["char"].level != "char":
            raise ValueError("the tagger's vocabularies are one of words and one of characters")
        TagSet(labels["tag"], cfg.scheme)  # a valid tag set under the stored scheme
        return param_shapes(cfg, len(vocabs["word"]), len(vocabs["char"]), len(labels["tag"]))


FORMAT = Format()


class TaggerNet:
    """The network over a ParamSet (the trainer's `ExampleTask` over `data.TagData`)."""

    def __init__(self, cfg: TagConfig, V: int, C: int, tags: list[str],
                 params: ParamSet | None = None, parallel: bool = True,
                 recurrence: str | None = None, dtype=np.float32):
        self.cfg, self.tagset, self.K = cfg, TagSet(tags, cfg.scheme), len(tags)
        self.params = params if params is not None else \
            ParamSet(param_shapes(cfg, V, C, self.K), dtype)
        self.spec, self.cspec = cfg.encoder_spec(), cfg.char_spec()
        self.enc = Encoder(self.spec, self.params, cfg.dropout, parallel, recurrence)
        # the character encoder, once per group of word lengths (CHAR_GROUPS): its own
        # buffers each, the same parameters; cgrads: one group's gradient, summed into grads
        self.cencs = [] if self.cspec is None else \
            [Encoder(self.cspec, self.params, 0.0, parallel, recurrence)
             for _ in range(len(CHAR_GROUPS) + 1)]
        self.cgrads = None if self.cspec is None else \
            ParamSet(self.cspec.shapes(), self.params.flat.dtype)
        dt = self.params.flat.dtype
        self.mem, self.f64 = Buffers(dt), Buffers(np.float64)
        self.masks = self.tagset.mask()  # (K, K), (K,), (K,) float64: 0 or FORBIDDEN
        self.cache = None  # infer.TypeCache of a loaded Tagger (fixed parameters) or None
        self._batch = None

    def init(self, rng: np.random.Generator) -> "TaggerNet":
        """PyTorch's initialisation of the same network (module docstring), in buffer order."""
        p, F = self.params, self.spec.out_size
        p["emb"][...] = rng.standard_normal(p["emb"].shape)
        if self.cspec is not None:
            p["char_emb"][...] = rng.standard_normal(p["char_emb"].shape)
            self.cspec.init(p, rng)
        self.spec.init(p, rng)
        k = 1.0 / math.sqrt(F)
        p["out.W"][...] = rng.uniform(-k, k, p["out.W"].shape)
        p["out.b"][...] = rng.uniform(-k, k, self.K)
        if self.cfg.crf:
            for name in ("crf.trans", "crf.start", "crf.end"):
                p[name][...] = 0.0
        return self

    def lr_scales(self):
        return self.spec.lr_scales() + (self.cspec.lr_scales() if self.cspec else [])

    def lengths(self, data) -> np.ndarray:
        return data.lengths

    # ------------------------------------------------------------------ forward
    def char_vectors(self, chars: np.ndarray, clens: np.ndarray) -> np.ndarray:
        """(U, 2 Hc): the final character states, forward | reverse, of the words whose
        character ids are the columns of `chars` (Tc, U), of lengths `clens` (longest first).
        They run in groups of similar lengths (CHAR_GROUPS), so that little of the character
        encoder's work is padding. Each character's input terms are rows of tables folded from
        the character embeddings at each call (`Encoder.fold_tables`: the alphabet is small),
        and backward sums into those rows, as the char-level language model does; W_aa^T is
        made once a call for all the groups."""
        p, m, Hc = self.params, self.mem, self.cfg.char_hidden
        cv = m.view("cv", (chars.shape[1], 2 * Hc))
        tables = self.cencs[0].fold_tables(p["char_emb"])
        wt = {}
        for d in range(self.cspec.dirs):
            W = p[self.cspec.names(0, d)["W_aa"]]
            wt[0, d] = m.view(f"cwt{d}", W.shape[::-1])
            cell.transpose_into(wt[0, d], W)
        self._groups = []
        for g, (a, z) in enumerate(char_groups(clens)):
            L = int(clens[a])
            cx = np.ascontiguousarray(chars[:L, a:z])
            enc = self.cencs[g]
            enc.frozen_wt = wt
            enc.forward(None, clens[a:z], ids=cx, tables=tables, states=False,
                        emb=p["char_emb"])
            cv[a:z, :Hc], cv[a:z, Hc:] = enc.final_h[0, 0], enc.final_h[0, 1]
            self._groups.append((g, a, z, cx))
        return cv

    def scores(self, b: Batch, rng: np.random.Generator | None) -> np.ndarray:
        """The per-token tag scores (T, B, K) float64 of a batch (dropout when `rng` is given);
        a view the next call reuses. Keeps what backward needs. With a `cache` (a loaded
        Tagger's; no dropout, no backward), layer 0's input terms come from it (`infer.py`)."""
        if rng is None and self.cache is not None and b.names is not None:
            return cached_scores(self, b)
        p, m, cfg = self.params, self.mem, self.cfg
        T, B = b.x.shape
        E, D, F = cfg.embed, self.spec.input_size, self.spec.out_size
        inp = m.view("inp", (T, B, D))
        inp[:, :, :E] = p["emb"][b.x]  # padding reads row -1: never used past a lane's end
        if self.cencs:
            inp[:, :, E:] = self.char_vectors(b.cx, b.clens)[b.slot]
        train = rng is not None and cfg.dropout > 0
        out = self.enc.forward(inp, b.lens, self.enc.draw_masks(rng, T, B) if train else None)
        hm = None
        if train:
            hm = m.view("hm", (T, B, F))
            rng.random(out=hm, dtype=hm.dtype)
            np.greater_equal(hm, cfg.dropout, out=hm, casting="unsafe")
            hm *= 1.0 / (1.0 - cfg.dropout)
            out = np.multiply(out, hm, out=m.view("hd", (T, B, F)))
        self._batch = (b, out, hm)
        return self.output(out)

    def output(self, h: np.ndarray) -> np.ndarray:
        """(T, B, K) float64 tag scores out.W h + out.b of the top states h (T, B, F)."""
        T, B, F = h.shape
        p, K = self.params, self.K
        z = self.mem.view("z", (T * B, K))
        np.matmul(h.reshape(T * B, F), p["out.W"].T, out=z)
        z += p["out.b"]
        em = self.f64.view("em", (T, B, K))
        em[...] = z.reshape(T, B, K)
        return em

    def _crf_tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """trans, start, end as the CRF kernels read them: the learned scores (--crf) plus the
        scheme's masks, float64."""
        f, (mt, ms, me), K = self.f64, self.masks, self.K
        tr, st, en = f.view("trans", (K, K)), f.view("start", (K,)), f.view("end", (K,))
        if self.cfg.crf:
            p = self.params
            np.add(p["crf.trans"], mt, out=tr)
            np.add(p["crf.start"], ms, out=st)
            np.add(p["crf.end"], me, out=en)
        else:
            tr[...], st[...], en[...] = mt, ms, me
        return tr, st, en

    def _nll(self, em: np.ndarray, b: Batch) -> tuple[float, int]:
        """(sum of the loss over the batch, tokens scored): every token with a known tag for
        the softmax; with --crf the sentences whose tags are all known."""
        T, B, K = em.shape
        f = self.f64
        if not self.cfg.crf:
            nll, probs = f.view("nll", (T, B)), f.view("probs", (T, B, K))
            return token_softmax.token_xent_forward(nll, probs, em, b.lens, b.y), \
                int(np.count_nonzero(b.y >= 0))
        tr, st, en = self._crf_tables()
        nll, logz, alpha = f.view("nllb", (B,)), f.view("logz", (B,)), f.view("alpha", (T, B, K))
        total = crf.crf_nll_forward(nll, logz, alpha, em, b.lens, b.y, tr, st, en)
        known = (b.y >= 0).sum(axis=0) == b.lens
        return total, int(b.lens[known].sum())

    def forward(self, data, idx: np.ndarray, rng: np.random.Generator | None) -> float:
        """The mean loss per token of sentences idx (module docstring); dropout if rng."""
        b = data.batch(idx)
        em = self.scores(b, rng)
        total, n = self._nll(em, b)
        self._scale = 1.0 / max(n, 1)
        return total * self._scale

    # ------------------------------------------------------------------ backward
    def backward(self, grads: ParamSet) -> None:
        p, m, f, cfg = self.params, self.mem, self.f64, self.cfg
        b, h, hm = self._batch
        T, B = b.x.shape
        E, F, K = cfg.embed, self.spec.out_size, self.K
        em = f.view("em", (T, B, K))
        d = f.view("d", (T, B, K))
        if not cfg.crf:
            token_softmax.token_xent_backward(d, f.view("probs", (T, B, K)), b.lens, b.y,
                                              self._scale)
        else:
            tr, _, en = self._crf_tables()
            dtr, dst, den = f.view("dtrans", (K, K)), f.view("dstart", (K,)), f.view("dend", (K,))
            dtr[...], dst[...], den[...] = 0.0, 0.0, 0.0
            crf.crf_nll_backward(d, dtr, dst, den, f.view("dlane", (B, K, K)),
                                 f.view("beta", (T, B, K)), f.view("alpha", (T, B, K)),
                                 f.view("logz", (B,)), em, b.lens, b.y, tr, en, self._scale)
            grads["crf.trans"][...], grads["crf.start"][...], grads["crf.end"][...] = \
                dtr, dst, den
        dz = m.view("dz", (T * B, K))
        dz[...] = d.reshape(T * B, K)
        np.matmul(dz.T, h.reshape(T * B, F), out=grads["out.W"])
        np.sum(dz, axis=0, out=grads["out.b"])
        dh = m.view("dh", (T, B, F))
        np.matmul(dz, p["out.W"], out=dh.reshape(T * B, F))
        if hm is not None:
            dh *= hm
        dinp = self.enc.backward(grads, dh)  # (T, B, E + 2 Hc)
        de = m.view("de", (T, B, E))
        de[...] = dinp[:, :, :E]
        grads["emb"][...] = 0.0
        embed.embed_backward(grads["emb"], de, b.x)
        if self.cencs:
            self._char_backward(grads, dinp[:, :, E:], b)

    def _char_backward(self, grads: ParamSet, dc_tok: np.ndarray, b: Batch) -> None:
        """The character encoder's gradients from d(loss)/d(char vector) of every token."""
        m, Hc, cg = self.mem, self.cfg.char_hidden, self.cgrads
        T, B = b.x.shape
        U = b.cx.shape[1]
        dc = m.view("dc", (T, B, 2 * Hc))
        dc[...] = dc_tok
        dcv = m.view("dcv", (U, 2 * Hc))
        dcv[...] = 0.0
        embed.embed_backward(dcv, dc, b.slot)  # each word's vector: the sum over its tokens
        for name in cg.shapes:
            grads[name][...] = 0.0
        C, GH = self.params["char_emb"].shape[0], GATES[self.cspec.cell] * Hc
        sums = [m.view(f"dM{d}", (C, GH)) for d in range(self.cspec.dirs)]
        for dM in sums:
            dM[...] = 0.0
        for g, a, z, cx in self._groups:
            dfh = m.view("dfh", (1, 2, z - a, Hc))
            dfh[0, 0], dfh[0, 1] = dcv[a:z, :Hc], dcv[a:z, Hc:]
            self.cencs[g].backward(cg, None, d_final_h=dfh, table_sums=sums)
            for name in cg.shapes:
                view = grads[name]
                view += cg[name]
        # the tables' rows summed over the groups: W_ax's blocks and char_emb, one product each
        grads["char_emb"][...] = self.cencs[0].table_finish(grads, sums, self.params["char_emb"])

    # ------------------------------------------------------------------ decoding
    def decode(self, em: np.ndarray, lens: np.ndarray) -> np.ndarray:
        """(T, B) int32 tag ids, -1 past each length: the best sequence the scheme allows
        (Viterbi with the masks, and the learned transitions with --crf), or each token's best
        tag for a tag set without a scheme."""
        T, B, K = em.shape
        if not self.cfg.crf and self.tagset.scheme == "none":
            path = em.argmax(axis=2).astype(np.int32)
            path[np.arange(T)[:, None] >= lens[None, :]] = -1
            return path
        f = self.f64
        tr, st, en = self._crf_tables()
        path = np.empty((T, B), np.int32)
        crf.viterbi_decode(path, f.view("score", (B,)), f.view("delta", (T, B, K)),
                           np.empty((T, B, K), np.int32), em, lens, tr, st, en)
        return path

    def tag_probs(self, em: np.ndarray, lens: np.ndarray) -> np.ndarray:
        """(T, B, K) float64 per-token tag probabilities: the softmax, or with --crf the
        marginals P(y_t = k | sentence) (forward-backward); 0 past each length."""
        T, B, K = em.shape
        f = self.f64
        none = np.full((T, B), -1, np.int32)
        probs = f.view("tp", (T, B, K))
        if not self.cfg.crf:
            token_softmax.token_xent_forward(f.view("nll", (T, B)), probs, em, lens, none)
            return probs
        tr, st, en = self._crf_tables()
        logz, alpha = f.view("logz", (B,)), f.view("alpha", (T, B, K))
        crf.crf_nll_forward(f.view("nllb", (B,)), logz, alpha, em, lens, none, tr, st, en)
        crf.crf_nll_backward(probs, f.view("dtrans", (K, K)), f.view("dstart", (K,)),
                             f.view("dend", (K,)), f.view("dlane", (B, K, K)),
                             f.view("beta", (T, B, K)), alpha, logz, em, lens, none, tr, en, 1.0)
        return probs

    # ------------------------------------------------------------------ data sets
    def run_all(self, data, probs: bool = False, loss: bool = False):
        """`evaluate.run_all` of this network."""
        return run_all(self, data, probs, loss)

    def evaluate(self, data) -> dict:
        """`evaluate.evaluate` of this network (the trainer's validation)."""
        return evaluate(self, data)
