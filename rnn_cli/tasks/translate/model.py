"""The translator's network: source embeddings -> the shared encoder -> the attentional decoder
(`decoder.py`), forward and backward over a batch of sentence pairs, its initialisation, and the
model file's format (config, the "src" and "tgt" vocabularies, parameter shapes). Never prints.

    e<s>   = src.W_emb[x<s>]                                   (S, B, E)    kernels/embed.py
    h      = Encoder(e, src lengths)                           (S, B, D)    D = dirs*H, encoder.py
    fin    = [h_fwd at the end; h_bwd at the start] (top layer)  (B, D)
    loss   = Decoder(h, fin, targets)                          decoder.py: bridge, attention,
                                                               recurrence, output layer
Backward runs the same way back: the decoder gives dLoss/dh and dLoss/dfin, the encoder takes them
as its output and final-state gradients, the source embedding gets the scatter-add.

Dropout (training only, masks from the run's Generator): on the source embeddings and between
encoder layers (`Encoder`), on the target embeddings, and on the output projection's units.

Parameters (one ParamSet, float32): `src.W_emb` (Vs, E), the encoder's `enc.*`, the decoder's
`dec.*` (decoder.Decoder.shapes). Initialisation as PyTorch's modules of the same network:
embeddings N(0, 1) (nn.Embedding; a target embedding tied to the output layer U(-1/sqrt(E),
1/sqrt(E)), the nn.Linear it also is), recurrent blocks U(-1/sqrt(H), 1/sqrt(H)) with b_a the
sum of torch's two biases (nn.GRU/LSTM, `EncoderSpec.init`), linear layers U(-1/sqrt(in),
1/sqrt(in)) (nn.Linear).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from rnn_cli.encoder import Buffers, Encoder, EncoderSpec
from rnn_cli.errors import UsageError
from rnn_cli.kernels import embed
from rnn_cli.params import ParamSet
from rnn_cli.tasks.translate import options as O
from rnn_cli.tasks.translate.decoder import Decoder
from rnn_cli.vocab import Vocab

CELLS = ("gru", "lstm")
ATTENTIONS = O.ATTENTIONS


@dataclass(frozen=True)
class TranslateConfig:
    """The translator's architecture, stored in its model file (meta.model)."""

    src_level: str = O.LEVEL  # char | word, per side
    tgt_level: str = O.LEVEL
    tokenizer: str = "words"  # word level: words | space
    lower: bool = False
    cell: str = O.CELL  # the encoder's and the decoder's
    hidden: int = O.HIDDEN  # H of each encoder direction
    layers: int = O.LAYERS  # encoder layers
    bidirectional: bool = O.BIDIRECTIONAL
    embed: int = O.EMBED  # E of both embeddings
    dec_hidden: int = O.DEC_HIDDEN  # the decoder's state size (0: `dec_size`'s choice)
    attention: str = O.ATTENTION
    attn_size: int = O.ATTN_SIZE  # A of additive attention (0: the decoder's state size)
    proj: int = O.PROJ  # output projection units P (0: logits from [s; ctx; e] directly)
    tie_weights: bool = O.TIE_WEIGHTS  # the output matrix is the target embedding (P == E)
    dropout: float = O.DROPOUT
    max_len: int = O.MAX_LEN  # tokens of a side (with <EOS>): longer training pairs are dropped

    def validate(self) -> "TranslateConfig":
        choices = {"src_level": ("char", "word"), "tgt_level": ("char", "word"),
                   "tokenizer": ("words", "space"), "cell": CELLS, "attention": ATTENTIONS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise UsageError(f"--{name.replace('_', '-')} must be one of "
                                 f"{', '.join(allowed)} (got {getattr(self, name)!r})")
        for name in ("hidden", "layers", "embed", "dec_hidden", "attn_size", "proj"):
            v, low = getattr(self, name), 1 if name in ("hidden", "layers", "embed") else 0
            if not isinstance(v, int) or isinstance(v, bool) or not low <= v <= 1 << 16:
                raise UsageError(f"--{name.replace('_', '-')} must be an integer "
                                 f"{'>= 1' if low else '>= 0'} (got {v!r})")
        if not isinstance(self.max_len, int) or not 2 <= self.max_len <= 1 << 20:
            raise UsageError(f"--max-len must be at least 2 (got {self.max_len!r})",
                             hint="a side needs a token and its <EOS>")
        if not (isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0):
            raise UsageError(f"--dropout must be in [0, 1) (got {self.dropout!r})")
        if self.tie_weights and self.proj != self.embed:
            raise UsageError(f"--tie-weights needs --proj equal to --embed (got {self.proj} and "
                             f"{self.embed})", hint="pass --proj E, or --no-tie-weights")
        if self.attention == "dot" and self.dec_hidden not in (0, self.enc_width):
            raise UsageError(f"--attention dot needs --dec-hidden equal to the encoder's output "
                             f"width ({self.enc_width})", hint="drop --dec-hidden")
        for name in ("lower", "bidirectional", "tie_weights"):
            if not isinstance(getattr(self, name), bool):
                raise UsageError(f"{name} is true or false")
        return self

    @classmethod
    def from_dict(cls, d: dict) -> "TranslateConfig":
        """From a stored dict: unknown keys (a newer version's) ignored, the rest validated."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names}).validate()

    @property
    def enc_width(self) -> int:
        return (2 if self.bidirectional else 1) * self.hidden

    @property
    def dec_size(self) -> int:
        """The decoder's state size: --dec-hidden, else --hidden (dot attention: the encoder's
        output width, which its scores need)."""
        return self.dec_hidden or (self.enc_width if self.attention == "dot" else self.hidden)

    def encoder_spec(self) -> EncoderSpec:
        return EncoderSpec(self.cell, self.hidden, self.layers, self.embed, self.bidirectional,
                           "tanh", "enc.")

    def decoder(self, V_tgt: int, dtype=np.float32, label_smoothing: float = 0.0) -> Decoder:
        Hd = self.dec_size
        return Decoder(self.cell, self.attention, Hd, self.embed, self.enc_width,
                       self.attn_size or Hd, V_tgt, self.enc_width, dtype, "dec.", self.proj,
                       self.tie_weights, label_smoothing)


def param_shapes(cfg: TranslateConfig, V_src: int, V_tgt: int) -> dict[str, tuple[int, ...]]:
    return {"src.W_emb": (V_src, cfg.embed), **cfg.encoder_spec().shapes(),
            **cfg.decoder(V_tgt).shapes()}


class Format:
    """The translator's model file format (`taskfile.TaskFormat`)."""

    kind, vocab_roles, label_roles = "translate", ("src", "tgt"), ()

    def check_config(self, config: dict) -> dict:
        return dataclasses.asdict(TranslateConfig.from_dict(config))

    def param_shapes(self, config, vocabs, labels) -> dict[str, tuple[int, ...]]:
        cfg = TranslateConfig.from_dict(config)
        for role, level in (("src", cfg.src_level), ("tgt", cfg.tgt_level)):
            if vocabs[role].level != level:
                raise ValueError(f"a {vocabs[role].level}-level {role} vocabulary in a model "
                                 f"whose {role} side is {level}-level")
            if vocabs[role].eos_id is None:
                raise ValueError(f"the {role} vocabulary has no end-of-sentence symbol")
        return param_shapes(cfg, len(vocabs["src"]), len(vocabs["tgt"]))


FORMAT = Format()


@dataclass
class Encoded:
    """A data set as the network reads it: ids of both sides (each ending with <EOS>), their
    lengths, and the target texts (the references of BLEU)."""

    src: list[np.ndarray]
    tgt: list[np.ndarray]
    refs: list[str]

    def __post_init__(self):
        self.src_lengths = np.array([s.shape[0] for s in self.src], np.int64)
        self.lengths = np.array([t.shape[0] for t in self.tgt], np.int64)


def lr_scales(cfg: TranslateConfig) -> list[tuple[str, int, int, float]]:
    """b_a rows holding two torch biases at 2x the rate, the encoder's and the decoder's."""
    H = cfg.dec_size
    two = 2 * H if cfg.cell == "gru" else 4 * H
    return cfg.encoder_spec().lr_scales() + [("dec.b_a", 0, two, 2.0)]


class TranslatorNet:
    """The network over a ParamSet (the trainer's `ExampleTask`): a teacher-forced batch's loss
    and gradients; `encode` for decoding (`translator.py`, `evaluate.py`)."""

    def __init__(self, cfg: TranslateConfig, src_vocab: Vocab, tgt_vocab: Vocab,
                 params: ParamSet | None = None, parallel: bool = True, dtype=np.float32,
                 label_smoothing: float = 0.0):
        self.cfg, self.src_vocab, self.tgt_vocab = cfg, src_vocab, tgt_vocab
        V_tgt = len(tgt_vocab)
        self.eos_id = tgt_vocab.eos_id  # the decoder's first input, and where decoding stops
        self.params = params if params is not None else \
            ParamSet(param_shapes(cfg, len(src_vocab), V_tgt), dtype)
        self.spec = cfg.encoder_spec()
        self.enc = Encoder(self.spec, self.params, cfg.dropout, parallel)
        self.dec = cfg.decoder(V_tgt, self.params.flat.dtype, label_smoothing)
        self.mem, self.ids = Buffers(self.params.flat.dtype), Buffers(np.int32)
        self._batch = None

    def init(self, rng: np.random.Generator) -> "TranslatorNet":
        """PyTorch's initialisation of the same modules (module docstring), in buffer order."""
        p, cfg = self.params, self.cfg
        p["src.W_emb"][...] = rng.standard_normal(p["src.W_emb"].shape)
        self.spec.init(p, rng)
        Hd, GH = cfg.dec_size, self.dec.G * cfg.dec_size
        fan_in = {"W_ax": Hd, "W_cx": Hd, "W_aa": Hd, "b_a": Hd, "b_hn": Hd, "v": self.dec.A,
                  "W_a": self.dec.D, "W_q": Hd, "W_k": self.dec.D, "b_k": self.dec.D,
                  "W_br": self.dec.Df, "b_br": self.dec.Df, "W_o": self.dec.F, "b_o": self.dec.F,
                  "W_ya": self.dec.P or self.dec.F, "b_y": self.dec.P or self.dec.F}
        for name, shape in self.dec.shapes().items():
            short, view = name[len("dec."):], p[name]
            if short == "W_emb":
                if cfg.tie_weights:
                    k = 1.0 / math.sqrt(cfg.embed)
                    view[...] = rng.uniform(-k, k, shape)
                else:
                    view[...] = rng.standard_normal(shape)
                continue
            k = 1.0 / math.sqrt(fan_in[short])
            view[...] = rng.uniform(-k, k, shape)
            if short == "b_a":  # torch's b_ih + b_hh (the GRU candidate's b_in alone)
                view[...] += rng.uniform(-k, k, shape)
                if self.dec.G == 3:
                    view[2 * Hd:GH] = rng.uniform(-k, k, Hd)
        return self

    def lr_scales(self):
        return lr_scales(self.cfg)

    def lengths(self, data: Encoded) -> np.ndarray:
        return data.lengths

    # ------------------------------------------------------------------ the source side
    def encode(self, src: list[np.ndarray], idx: np.ndarray, rng=None):
        """The encoder over sources idx: (x (S,B) int32, enc states (S,B,D), lengths (B,) int32,
        fin (B,D)); views of buffers the next call reuses. Dropout when `rng` is given."""
        lens = np.array([src[i].shape[0] for i in idx], np.int32)
        S, B, E = int(lens.max()), idx.shape[0], self.cfg.embed
        x = self.ids.view("x", (S, B))
        x[...] = -1
        for j, i in enumerate(idx):
            x[:lens[j], j] = src[i]
        e = self.mem.view("e_src", (S, B, E))
        embed.embed_forward(e, self.params["src.W_emb"], x)
        masks = self.enc.draw_masks(rng, S, B) if rng is not None else None
        h = self.enc.forward(e, lens, masks)
        top = self.enc.final_h[self.spec.layers - 1]  # (dirs, B, H)
        fin = self.mem.view("fin", (B, self.cfg.enc_width))
        fin.reshape(B, self.spec.dirs, self.spec.hidden)[...] = top.transpose(1, 0, 2)
        return x, h, lens, fin

    # ------------------------------------------------------------------ training passes
    def _targets(self, tgt: list[np.ndarray], idx: np.ndarray):
        """(y_in, y_out) (T,B) int32 of targets idx: <EOS> then the target shifted, and the
        target; -1 past each target's end."""
        lens = np.array([tgt[i].shape[0] for i in idx], np.int64)
        T, B = int(lens.max()), idx.shape[0]
        y_in, y_out = self.ids.view("y_in", (T, B)), self.ids.view("y_out", (T, B))
        y_in[...] = -1
        y_out[...] = -1
        for j, i in enumerate(idx):
            n = lens[j]
            y_out[:n, j] = tgt[i]
            y_in[0, j] = self.eos_id
            y_in[1:n, j] = tgt[i][:n - 1]
        return y_in, y_out

    def _masks(self, rng, T: int, B: int):
        """Dropout factors (0 or 1/(1-p)) for the target embeddings and the projection's
        units, (T,B,E) and (T,B,P) (None without dropout)."""
        p = self.cfg.dropout
        if rng is None or not p:
            return None, None
        out = []
        for name, width in (("emb_mask", self.cfg.embed), ("out_mask", self.dec.P)):
            if not width:
                out.append(None)
                continue
            m = self.mem.view(name, (T, B, width))
            rng.random(out=m, dtype=m.dtype)
            np.greater_equal(m, p, out=m, casting="unsafe")
            m *= 1.0 / (1.0 - p)
            out.append(m)
        return out[0], out[1]

    def forward(self, data: Encoded, idx: np.ndarray, rng: np.random.Generator | None) -> float:
        """Mean loss per target token of pairs idx (longest target first is fastest); dropout
        when `rng` is given."""
        x, h, lens, fin = self.encode(data.src, idx, rng)
        y_in, y_out = self._targets(data.tgt, idx)
        emb_mask, out_mask = self._masks(rng, *y_in.shape)
        self._batch = x
        return self.dec.forward(self.params, h, lens, fin, y_in, y_out, emb_mask, out_mask)

    def backward(self, grads: ParamSet) -> None:
        x = self._batch
        grads.flat[...] = 0.0  # the decoder and the embedding accumulate
        denc, dfin = self.dec.backward(self.params, grads)
        s = self.spec
        dfinal = self.mem.view("dfinal", (s.layers, s.dirs, x.shape[1], s.hidden))
        dfinal[...] = 0.0
        dfinal[s.layers - 1] = dfin.reshape(x.shape[1], s.dirs, s.hidden).transpose(1, 0, 2)
        de = self.enc.backward(grads, denc, dfinal)
        embed.embed_backward(grads["src.W_emb"], de, x)

    def evaluate(self, data: Encoded) -> dict:
        from rnn_cli.tasks.translate.evaluate import evaluate

        return evaluate(self, data)
