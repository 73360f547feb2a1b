"""The regularisers of training as masks drawn from the run's Generator: randomness stays out of
the kernels, `network.Network` multiplies by the masks (and the CUDA network uploads them).

Dropout sites as in `network.Network`: 0 the embedding output (E wide, with --embed), l = 1..L-1
the input of layer l, L the input of the output layer (H wide). Inverted: kept values are scaled
by 1/(1-p), so evaluation (no masks) needs no rescaling.

    --dropout P --dropout-mask step     a fresh mask at every position: (T, B, W) per site
    --dropout P --dropout-mask locked   one mask per stream and window, the same at each of its
                                        T steps (variational dropout, Gal & Ghahramani 2016;
                                        AWD-LSTM's LockedDropout): a (1, B, W) mask per site
    --embed-dropout Q                   whole words: one draw per vocabulary row and window, the
                                        row's every use in the window dropped or kept (AWD-LSTM's
                                        embedded_dropout); folded into site 0's mask as
                                        m0[t, b, :] *= keep[x[t, b]] / (1 - Q), which is the same
                                        as masking the rows of W_emb (tied: only its input use)
    --weight-drop R                     DropConnect on the recurrent weights W_aa (AWD-LSTM's
                                        WeightDrop): one (G*H, H) mask per layer and window; the
                                        window runs on W_aa * mask, dW_aa is masked likewise

Draws, in this order, from the one Generator (a seed reproduces a run): the site masks 0..L, the
vocabulary rows, the weight masks of layers 0..L-1. With --dropout-mask step alone the draws are
exactly those of the files written before the other three existed, so such a file resumes as it
trained.
"""

from __future__ import annotations

import numpy as np

from rnn_cli.config import ModelConfig


class Masks(list):
    """One window's masks: [m_0, m_1 .. m_L], each (T, B, W), (1, B, W) or None (site not
    dropped), and `weights`: None, or a (G*H, H) mask of W_aa per layer."""

    weights: list | None = None


class MaskDrawer:
    """Buffers for one network's masks (allocated once), refilled by `draw` every window."""

    def __init__(self, cfg: ModelConfig, steps: int, batch: int, dtype):
        self.cfg, self.dtype = cfg, dtype
        L, H, E, T = cfg.layers, cfg.hidden, cfg.embed, steps
        locked = cfg.dropout_mask == "locked"
        rows = 1 if locked else T  # time rows of a site's mask
        self.sites = [None] * (L + 1)  # the uniforms of --dropout, turned into its masks
        if cfg.dropout:
            self.sites = [np.zeros((rows, batch, E), dtype) if E else None] + \
                [np.zeros((rows, batch, H), dtype) for _ in range(L)]
        # site 0 with whole-word dropout varies with the word at each position: (T, B, E)
        self.site0 = np.zeros((T, batch, E), dtype) if cfg.embed_dropout else None
        self.rows = np.zeros(cfg.vocab_size, dtype) if cfg.embed_dropout else None  # (V,)
        self.weights = [np.zeros((cfg.gates * H, H), dtype) for _ in range(L)] \
            if cfg.weight_drop else None

    @property
    def active(self) -> bool:
        cfg = self.cfg
        return bool(cfg.dropout or cfg.embed_dropout or cfg.weight_drop)

    def draw(self, rng: np.random.Generator, x: np.ndarray | None = None) -> Masks | None:
        """Fresh masks for the next training window x (T, B) (x is needed by --embed-dropout
        only); None when the model has no regulariser."""
        cfg = self.cfg
        if not self.active:
            return None
        for m in self.sites:
            if m is not None:
                _bernoulli(rng, m, cfg.dropout)
        out = Masks(self.sites)
        if self.rows is not None:
            if x is None:
                raise ValueError("--embed-dropout masks need the window's input ids")
            _bernoulli(rng, self.rows, cfg.embed_dropout)
            T = x.shape[0]
            m0 = self.site0[:T]
            # x < 0 (a stream's zero input) has a zero embedding whatever row it reads
            np.copyto(m0, self.rows[x][:, :, None])
            if self.sites[0] is not None:
                m0 *= self.sites[0][:T]
            out[0] = self.site0
        if self.weights is not None:
            for m in self.weights:
                _bernoulli(rng, m, cfg.weight_drop)
            out.weights = self.weights
        return out


def _bernoulli(rng: np.random.Generator, m: np.ndarray, p: float) -> None:
    """m <- 1/(1-p) with probability 1-p, else 0, from uniforms drawn into m itself."""
    rng.random(out=m, dtype=m.dtype)
    np.greater_equal(m, p, out=m, casting="unsafe")
    m *= 1.0 / (1.0 - p)


def expand(m: np.ndarray, steps: int) -> np.ndarray:
    """A site mask as (steps, B, W), repeating a locked (1, B, W) mask over time."""
    return np.broadcast_to(m[:steps], (steps,) + m.shape[1:])
