"""The classifier's network: embedding -> the shared encoder -> pooling over time -> linear ->
softmax over the K labels. Forward and backward over a batch of examples, evaluation, and the
model file's format (its config, vocabulary and label set, parameter shapes). Never prints.

    e<t>   = W_emb[x<t>]                                   (T, B, E)   kernels/embed.py
    s      = Encoder(e, lengths)                           (T, B, F)   F = dirs*H, encoder.py
    u      = pool_t s  (last | mean | max within lengths)  (B, F)      kernels/pooling.py
    z      = out.W u + out.b,  p = softmax(z)              (B, K)
    loss   = sum_b w_b (-log p_b[y_b]) / sum_b w_b                     kernels/label_loss.py

Pooling "last" is each direction's final state: the forward states at the last real position,
the reverse ones at position 0. Dropout (training only, masks from the run's Generator) on the
embeddings and every encoder layer's input (`Encoder`), and on u before the linear layer.
w_b: 1, or with class_weight "balanced" N / (K n_k) for an example of label k (n_k: training
examples of label k; scikit-learn's "balanced").

Parameters (one ParamSet, float32): `emb` (V, E) N(0, 1) as nn.Embedding; the encoder's blocks
`enc.*` (encoder.py, torch's initialisation); `out.W` (K, F), `out.b` (K,) U(-1/sqrt(F),
1/sqrt(F)) as nn.Linear.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field

import numpy as np

from rnn_cli.batching import eval_batches
from rnn_cli.encoder import GATES, Buffers, Encoder, EncoderSpec
from rnn_cli.errors import UsageError
from rnn_cli.kernels import embed, label_loss, pooling, ragged
from rnn_cli.params import ParamSet
from rnn_cli.tasks.classify import options as O
from rnn_cli.tasks.classify.metrics import classification_metrics
from rnn_cli.vocab import _WORDS_RE, Vocab

POOLS = ("last", "mean", "max")
EVAL_BATCH, EVAL_TOKENS = 256, 16384  # evaluation batches: examples, padded positions at most
FOLD_MAX = 1 << 24  # folded input tables of inference: values at most (64 MB of float32)


@dataclass(frozen=True)
class ClassifyConfig:
    """The classifier's architecture, stored in its model file (meta.model)."""

    level: str = O.LEVEL  # char | word: what a token is (vocab.py)
    tokenizer: str = "words"  # word level: words | space
    lower: bool = O.LOWER
    cell: str = O.CELL
    hidden: int = O.HIDDEN  # H per direction
    layers: int = O.LAYERS
    bidirectional: bool = O.BIDIRECTIONAL
    embed: int = O.EMBED  # E
    dropout: float = O.DROPOUT
    pool: str = O.POOL  # last | mean | max
    max_len: int = O.MAX_LEN  # tokens of an example read, at most (0: all); the rest is cut
    activation: str = "tanh"  # the rnn cell's g

    def validate(self) -> "ClassifyConfig":
        choices = {"level": ("char", "word"), "tokenizer": ("words", "space"),
                   "cell": tuple(GATES), "pool": POOLS, "activation": ("tanh", "relu")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise UsageError(f"--{name} must be one of {', '.join(allowed)} "
                                 f"(got {getattr(self, name)!r})")
        for name in ("hidden", "layers", "embed"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 1 << 16:
                raise UsageError(f"--{name} must be a positive integer (got {v!r})")
        if not isinstance(self.max_len, int) or not 0 <= self.max_len <= 1 << 24:
            raise UsageError(f"--max-len must be 0 (no limit) or positive (got {self.max_len!r})")
        if not (isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0):
            raise UsageError(f"--dropout must be in [0, 1) (got {self.dropout!r})")
        if self.activation != "tanh" and self.cell != "rnn":
            raise UsageError("--activation is the rnn cell's; gru and lstm have their own")
        if not isinstance(self.lower, bool) or not isinstance(self.bidirectional, bool):
            raise UsageError("lower and bidirectional are true or false")
        return self

    @classmethod
    def from_dict(cls, d: dict) -> "ClassifyConfig":
        """From a stored dict: unknown keys (a newer version's) ignored, the rest validated."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names}).validate()

    def encoder_spec(self) -> EncoderSpec:
        return EncoderSpec(self.cell, self.hidden, self.layers, self.embed, self.bidirectional,
                           self.activation, "enc.")


def param_shapes(cfg: ClassifyConfig, V: int, K: int) -> dict[str, tuple[int, ...]]:
    spec = cfg.encoder_spec()
    return {"emb": (V, cfg.embed), **spec.shapes(), "out.W": (K, spec.out_size), "out.b": (K,)}


class Format:
    """The classifier's model file format (`taskfile.TaskFormat`)."""

    kind, vocab_roles, label_roles = "classify", ("text",), ("label",)

    def check_config(self, config: dict) -> dict:
        return dataclasses.asdict(ClassifyConfig.from_dict(config))

    def param_shapes(self, config, vocabs, labels) -> dict[str, tuple[int, ...]]:
        if len(labels["label"]) < 2:
            raise ValueError("a classifier has at least two labels")
        cfg = ClassifyConfig.from_dict(config)
        if vocabs["text"].level != cfg.level:
            raise ValueError(f"a {vocabs['text'].level}-level vocabulary in a {cfg.level}-level "
                             "model")
        return param_shapes(cfg, len(vocabs["text"]), len(labels["label"]))


FORMAT = Format()


@dataclass
class Encoded:
    """A data set as the network reads it: token ids per example (cut to max_len), lengths,
    label indices (-1: a label the model does not know), and the gold label strings."""

    seqs: list[np.ndarray]  # int32 ids, one array per example ([] when flat is given)
    lengths: np.ndarray  # (N,) int64
    y: np.ndarray  # (N,) int32, -1 for an unknown label (or no label)
    gold: list[str]  # the first label of every example ("" when none)
    unknown_tokens: int = 0
    flat: np.ndarray | None = field(default=None, repr=False)  # the seqs one after another
    offsets: np.ndarray | None = field(default=None, repr=False)  # (N+1,) int64: where each starts

    def packed(self) -> tuple[np.ndarray, np.ndarray]:
        """(flat, offsets): every example's ids in one int32 array, and where each starts
        (made from `seqs` on first use)."""
        if self.flat is None:
            self.flat = np.concatenate(self.seqs).astype(np.int32, copy=False) if self.seqs \
                else np.zeros(0, np.int32)
            self.offsets = np.zeros(len(self.seqs) + 1, np.int64)
            np.cumsum([s.shape[0] for s in self.seqs], out=self.offsets[1:])
        return self.flat, self.offsets


def encode_texts(vocab: Vocab, texts: list[str]) -> tuple[list[np.ndarray], list[int]]:
    """(ids per text, unknown tokens per text) with the model's vocabulary; a text without a
    token gives a single <UNK>, so every example has a length of at least 1."""
    seqs, unknown = [], []
    for text in texts:
        ids, unk = vocab.encode(text, final_eos=False) if vocab.level == "word" else \
            vocab.encode(text)
        if ids.shape[0] == 0:
            ids, unk = np.array([vocab.unk_id], np.int32), 0
        seqs.append(ids)
        unknown.append(unk)
    return seqs, unknown


class _Ids(dict):
    """A word vocabulary's lookup: -1 for a word it does not have."""

    def __missing__(self, key):
        return -1


def word_ids(vocab: Vocab) -> _Ids:
    """The lookup `encode_block` takes for a word-level vocabulary (build once per model); a
    line end, which no word token is, gives -2."""
    ids = _Ids(vocab._lookup)
    ids["\n"] = -2
    return ids


_LINES_RE = re.compile(r"\n|" + _WORDS_RE.pattern)  # the "words" tokens and the line ends


def encode_block(vocab: Vocab, texts: list[str], ids: _Ids | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`encode_texts` of a block of texts at once: (flat ids int32, lengths (N,) int64, unknown
    tokens (N,) int64), the same ids as encode_texts gives one by one, one after another
    (`Encoded.flat`). ids: `word_ids(vocab)` (word level). The "words" tokenizer runs once over
    the texts joined by line ends (tokens never span one)."""
    n = len(texts)
    if not n:
        return np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.int64)
    if vocab.level == "word":
        ids = ids if ids is not None else word_ids(vocab)
        joined = "\n".join(texts)
        if vocab.tokenizer != "words" or joined.count("\n") != n - 1:  # or a text of lines
            return _encode_block_texts(vocab, texts, ids)
        toks = _LINES_RE.findall(joined.lower() if vocab.lower else joined)
        flat = np.fromiter(map(ids.__getitem__, toks), np.int32, len(toks))
        ends = flat == -2
        lengths = np.diff(np.concatenate([[-1], np.flatnonzero(ends), [flat.shape[0]]])) - 1
        flat = flat[~ends]
        empty = lengths == 0
        if empty.any():  # a text without a token is one <UNK>, not counted as unknown
            flat = np.insert(flat, np.cumsum(lengths)[empty], -1)
            lengths[empty] = 1
    else:
        parts = [t.lower() for t in texts] if vocab.lower else texts
        lengths = np.fromiter(map(len, parts), np.int64, n)
        empty = lengths == 0
        if empty.any():
            parts = [p or "\0" for p in parts]
            lengths[empty] = 1
        flat = vocab._char_ids("".join(parts))
        if empty.any():
            flat[np.cumsum(lengths)[empty] - 1] = -1
    missing = (flat < 0 if vocab.level == "word" else flat == vocab.unk_id).astype(np.int64)
    starts = np.zeros(n, np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    unknown = np.add.reduceat(missing, starts) if n else np.zeros(0, np.int64)
    unknown[empty] = 0
    flat[flat < 0] = vocab.unk_id
    return flat, lengths, unknown


def _encode_block_texts(vocab: Vocab, texts: list[str], ids: _Ids):
    """encode_block's word level text by text (the "space" tokenizer, texts of several lines)."""
    flat, lengths, unknown = [], [], []
    for ids_t, unk in zip(*encode_texts(vocab, texts)):
        flat.append(ids_t)
        lengths.append(ids_t.shape[0])
        unknown.append(unk)
    return np.concatenate(flat), np.array(lengths, np.int64), np.array(unknown, np.int64)


class ClassifierNet:
    """The network over a ParamSet (the trainer's `ExampleTask`): forward/backward of a batch,
    probabilities and metrics of a data set."""

    def __init__(self, cfg: ClassifyConfig, vocab_size: int, labels: list[str],
                 params: ParamSet | None = None, parallel: bool = True,
                 recurrence: str | None = None, dtype=np.float32):
        self.cfg, self.labels, self.K = cfg, list(labels), len(labels)
        self.params = params if params is not None else \
            ParamSet(param_shapes(cfg, vocab_size, self.K), dtype)
        self.spec = cfg.encoder_spec()
        self.enc = Encoder(self.spec, self.params, cfg.dropout, parallel, recurrence)
        self.mem, self.ids = Buffers(self.params.flat.dtype), Buffers(np.int32)
        self.mode = pooling.MODES[cfg.pool]
        self.split = cfg.hidden if cfg.bidirectional else self.spec.out_size
        self.weights: np.ndarray | None = None  # (K,) float64 per-label loss weights
        self._batch = None
        self.fold = False  # inference on folded input tables (`fold_inputs`)
        self._tables: list | None = None

    def fold_inputs(self) -> "ClassifierNet":
        """For a model whose parameters no longer change (a loaded Classifier): let inference
        read layer 0's input terms per token from tables (`Encoder.fold_tables`: emb W_ax^T +
        b_a, computed once), instead of multiplying every position's embedding, when the
        tables stay under FOLD_MAX values. The same numbers up to float32 rounding."""
        rows = self.params["emb"].shape[0] + 1
        self.fold = rows * GATES[self.cfg.cell] * self.cfg.hidden * self.spec.dirs <= FOLD_MAX
        self._tables = None
        return self

    def init(self, rng: np.random.Generator) -> "ClassifierNet":
        """PyTorch's initialisation of the same network (module docstring), in buffer order."""
        p, F = self.params, self.spec.out_size
        p["emb"][...] = rng.standard_normal(p["emb"].shape)
        self.spec.init(p, rng)
        k = 1.0 / math.sqrt(F)
        p["out.W"][...] = rng.uniform(-k, k, p["out.W"].shape)
        p["out.b"][...] = rng.uniform(-k, k, self.K)
        return self

    def lr_scales(self):
        return self.spec.lr_scales()

    def lengths(self, data: Encoded) -> np.ndarray:
        return data.lengths

    # ------------------------------------------------------------------ passes
    def _logits(self, data: Encoded, idx: np.ndarray, rng) -> np.ndarray:
        """Forward to the logits (B, K) of examples idx (longest first is fastest)."""
        p, m, E, F = self.params, self.mem, self.cfg.embed, self.spec.out_size
        lens = data.lengths[idx].astype(np.int32)
        T, B = int(lens.max()), idx.shape[0]
        x = self.ids.view("x", (T, B))
        flat, offsets = data.packed()
        ragged.fill_lanes(x, flat, offsets, np.asarray(idx, np.int64), lens)
        if rng is None and self.fold:  # a fixed model: layer 0's input terms from a table
            if self._tables is None:
                self._tables = self.enc.fold_tables(p["emb"])
            out = self.enc.forward(None, lens, ids=x, tables=self._tables,
                                   split_top=self.mode != pooling.MEAN)
        else:
            e = m.view("e", (T, B, E))
            embed.embed_forward(e, p["emb"], x)
            out = self.enc.forward(e, lens, self.enc.draw_masks(rng, T, B) if rng else None)
        u, arg = m.view("u", (B, F)), self.ids.view("arg", (B, F))
        if isinstance(out, list):  # each direction's states apart: max and last need no order
            H = self.cfg.hidden
            for d, a in enumerate(out):  # the reverse one's last state is its own last step
                part = m.view(f"u{d}", (B, H))
                pooling.pool_forward(part, self.ids.view(f"arg{d}", (B, H)), a, lens,
                                     self.mode, H)
                u[:, d * H:(d + 1) * H] = part
        else:
            pooling.pool_forward(u, arg, out, lens, self.mode, self.split)
        hm = None
        if rng is not None and self.cfg.dropout:
            hm = m.view("hm", (B, F))
            rng.random(out=hm, dtype=hm.dtype)
            np.greater_equal(hm, self.cfg.dropout, out=hm, casting="unsafe")
            hm *= 1.0 / (1.0 - self.cfg.dropout)
            u = np.multiply(u, hm, out=m.view("ud", (B, F)))
        z = m.view("z", (B, self.K))
        if rng is None:  # inference: each row's logits whatever the batch (label_loss.py)
            label_loss.linear_rows(z, u, p["out.W"], p["out.b"])
        else:
            np.matmul(u, p["out.W"].T, out=z)
            z += p["out.b"]
        self._batch = (x, lens, arg, u, hm)
        return z

    def forward(self, data: Encoded, idx: np.ndarray, rng: np.random.Generator | None) -> float:
        """Mean (weighted) cross-entropy of examples idx; dropout when `rng` is given."""
        z = self._logits(data, idx, rng)
        y = data.y[idx]
        if (y < 0).any():
            raise ValueError("training examples need known labels")
        w = self.weights[y] if self.weights is not None else np.ones(y.shape[0])
        B = idx.shape[0]
        self._probs, self._nll = self.mem.view("probs", (B, self.K)), np.zeros(B)
        self._y, self._w = y.astype(np.int32), w
        return label_loss.label_xent_forward(self._nll, self._probs, z, self._y, w)

    def backward(self, grads: ParamSet) -> None:
        p, m = self.params, self.mem
        x, lens, arg, u, hm = self._batch
        T, B = x.shape
        dz = self._probs
        label_loss.label_xent_backward(dz, self._probs, self._y, self._w)
        np.matmul(dz.T, u, out=grads["out.W"])
        np.sum(dz, axis=0, out=grads["out.b"])
        du = np.matmul(dz, p["out.W"], out=m.view("du", (B, self.spec.out_size)))
        if hm is not None:
            du *= hm
        dout = m.view("dout", (T, B, self.spec.out_size))
        pooling.pool_backward(dout, du, arg, lens, self.mode, self.split)
        de = self.enc.backward(grads, dout)
        grads["emb"][...] = 0.0
        embed.embed_backward(grads["emb"], de, x)

    def probs(self, data: Encoded, idx: np.ndarray) -> np.ndarray:
        """(B, K) label probabilities of examples idx, no dropout (a view the next call reuses)."""
        z = self._logits(data, idx, None)
        probs = self.mem.view("pp", z.shape)
        label_loss.softmax_rows(probs, z)
        return probs

    def predict_all(self, data: Encoded) -> np.ndarray:
        """(N, K) probabilities of every example, in input order (batched by length)."""
        out = np.zeros((data.lengths.shape[0], self.K), np.float64)
        for idx in eval_batches(data.lengths, EVAL_BATCH, EVAL_TOKENS):
            out[idx] = self.probs(data, idx)
        return out

    def evaluate(self, data: Encoded) -> dict:
        """Accuracy, macro-F1, per-label scores, confusion matrix (metrics.py) and "loss": the
        mean -log p[gold] over examples whose label the model knows (unweighted)."""
        P = self.predict_all(data)
        known = data.y >= 0
        metrics = classification_metrics(data.y, P.argmax(axis=1), self.labels, data.gold)
        nll = -np.log(np.maximum(P[known, data.y[known]], 1e-300))
        metrics["loss"] = float(nll.mean()) if nll.size else math.nan
        return metrics
