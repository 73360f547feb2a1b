"""What an encoder is (`EncoderSpec`: its cell, sizes and parameter names and shapes, PyTorch's
initialisation, the per-block learning-rate scales) and which recurrence it runs
(`pick_recurrence`): the shared encoder (`encoder.py`) runs what this describes.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from rnn_cli.kernels import blas, cell
from rnn_cli.params import ParamSet

GATES = {"rnn": 1, "gru": 3, "lstm": 4}
ACTIVATIONS = {"tanh": cell.TANH, "relu": cell.RELU}
TWO_BIAS_LR_SCALE = 2.0  # as optimizer.TWO_BIAS_LR_SCALE: b_a is torch's two biases' sum


def pick_recurrence(hidden: int) -> str:
    """gemm (one BLAS product per step and thread) from H 32 when numpy's OpenBLAS is there,
    else compiled loops; RNN_CLI_RECURRENCE=gemm|loops overrides (as for the language model)."""
    forced = os.environ.get("RNN_CLI_RECURRENCE")
    if forced in ("gemm", "loops"):
        return forced
    return "gemm" if blas.BACKEND.startswith("openblas") and hidden >= 32 else "loops"


@dataclass(frozen=True)
class EncoderSpec:
    """What an encoder is: its parameter shapes follow from these fields alone."""

    cell: str  # rnn | gru | lstm
    hidden: int  # H per direction
    layers: int  # L
    input_size: int  # D
    bidirectional: bool = False
    activation: str = "tanh"  # the rnn cell's g (tanh | relu)
    prefix: str = "enc."  # of the parameter names

    @property
    def dirs(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def out_size(self) -> int:
        return self.dirs * self.hidden

    def names(self, layer: int, d: int) -> dict[str, str]:
        """{"W_ax": full name, ...} of layer `layer`, direction d (0 forward, 1 reverse)."""
        sfx = f"_l{layer}" + ("_reverse" if d else "")
        keys = ("W_ax", "W_aa", "b_a") + (("b_hn",) if self.cell == "gru" else ())
        return {k: f"{self.prefix}{k}{sfx}" for k in keys}

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """{name: shape} of every block, in buffer order (layer, then direction)."""
        GH, H, out = GATES[self.cell] * self.hidden, self.hidden, {}
        for layer in range(self.layers):
            D = self.input_size if layer == 0 else self.out_size
            for d in range(self.dirs):
                n = self.names(layer, d)
                out[n["W_ax"]], out[n["W_aa"]], out[n["b_a"]] = (GH, D), (GH, H), (GH,)
                if self.cell == "gru":
                    out[n["b_hn"]] = (H,)
        return out

    def init(self, params: ParamSet, rng: np.random.Generator) -> None:
        """PyTorch's initialisation of nn.RNN/GRU/LSTM, k = 1/sqrt(H): weights U(-k, k); b_a
        the sum of torch's two biases, U(-k, k) + U(-k, k) (GRU candidate block: b_in alone);
        b_hn U(-k, k). Blocks drawn in buffer order (params.Params.init's rules)."""
        k, H = 1.0 / math.sqrt(self.hidden), self.hidden
        for name, shape in self.shapes().items():
            view = params[name]
            if "b_a_l" in name:
                view[...] = rng.uniform(-k, k, shape) + rng.uniform(-k, k, shape)
                if self.cell == "gru":
                    view[2 * H:] = rng.uniform(-k, k, H)
            else:
                view[...] = rng.uniform(-k, k, shape)

    def lr_scales(self) -> list[tuple[str, int, int, float]]:
        """b_a's rows with two torch biases at 2x the rate (`optimizer.task_lr_pieces`)."""
        H, GH = self.hidden, GATES[self.cell] * self.hidden
        two = 2 * H if self.cell == "gru" else GH
        return [(self.names(layer, d)["b_a"], 0, two, TWO_BIAS_LR_SCALE)
                for layer in range(self.layers) for d in range(self.dirs)]
