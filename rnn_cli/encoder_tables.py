"""Layer 0 of the encoder on tables folded from a small embedding (`encoder.Encoder`'s base):
every position's input terms W_ax e + b_a are one of V rows, so they are made once and read by
token id, in inference (a fixed model's tables) and in training (the tagger's characters: a
table per batch), with backward summing dz into the rows (`kernels/embed.py`):

    M = emb W_ax^T (+ b_a)   (V, G*H);   dM[v] = sum of dz<t> where x<t> = v
    dW_ax = dM^T emb,   d_emb = dM W_ax      (V-sized products instead of (T*B)-sized ones)
"""

from __future__ import annotations

import numpy as np

from rnn_cli.encoder_spec import GATES
from rnn_cli.kernels import embed
from rnn_cli.params import ParamSet


class FoldedInput:
    """fold_tables, the backward through them, and table_finish; mixed into Encoder (which
    provides spec, params, dtype, mem, _matmul, and the _fold, _fold_emb, _v state)."""

    def fold_tables(self, emb: np.ndarray) -> list[np.ndarray]:
        """Layer 0's input terms of every token of embeddings `emb` (V, D): per direction a
        (V+1, G*H) table, rows emb[v] W_ax^T + b_a and a last row b_a (ids < 0), read by
        `forward(None, lengths, ids=..., tables=...)` instead of multiplying each position's
        input (the LM's folded table). Stale once the parameters change: inference makes them
        once per model, training once per batch (then `forward(..., emb=emb)`)."""
        s, p, GH = self.spec, self.params, GATES[self.spec.cell] * self.spec.hidden
        out = []
        for d in range(s.dirs):
            n = s.names(0, d)
            tab = np.empty((emb.shape[0] + 1, GH), self.dtype)
            tab[:] = p[n["b_a"]]
            self._matmul(tab[:-1], np.ascontiguousarray(emb), p[n["W_ax"]], trans_b=True,
                         beta=1.0)
            out.append(tab)
        return out

    def _back_table(self, grads, n: dict, d: int, dz: np.ndarray, sums: list | None) -> None:
        """Layer 0's input gradients through the folded tables: dM[v] = the sum of dz over the
        positions reading row v (padding's dz is zero), added to sums[d] when given
        (W_ax's block left at zero for `table_finish`), else finished here."""
        tab, ids = self._fold[d]
        V, GH = self._fold_emb.shape[0], tab.shape[1]
        db = grads[n["b_a"]]
        db[...] = 0.0
        if sums is not None:
            embed.table_backward(sums[d], db, dz, ids)
            grads[n["W_ax"]][...] = 0.0
            return
        dM = self.mem.view("dM", (V, GH))
        dM[...] = 0.0
        embed.table_backward(dM, db, dz, ids)
        self._v["demb"] = self._finish_one(grads, d, dM, self._fold_emb)

    def table_finish(self, grads: ParamSet, sums: list, emb: np.ndarray) -> np.ndarray:
        """After backward passes with `table_sums` (per direction (V, G*H), summed over them):
        writes layer 0's W_ax blocks of `grads`, dW_ax = dM^T emb, and returns d(loss)/d(emb)
        (V, D) = sum over directions of dM W_ax (a view of a buffer the next call reuses)."""
        for d in range(self.spec.dirs):
            demb = self._finish_one(grads, d, sums[d], emb)
        return demb

    def _finish_one(self, grads, d: int, dM: np.ndarray, emb: np.ndarray) -> np.ndarray:
        n = self.spec.names(0, d)
        self._matmul(grads[n["W_ax"]], dM, emb, trans_a=True)
        demb = self.mem.view("demb", emb.shape)
        self._matmul(demb, dM, self.params[n["W_ax"]], beta=1.0 if d else 0.0)
        return demb


def reversed_ids(ids: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """ids (T, B) reversed within each lane's length, -1 past it."""
    T, B = ids.shape
    src = lens[None, :] - 1 - np.arange(T)[:, None]
    return np.where(src >= 0, ids[np.maximum(src, 0), np.arange(B)], -1).astype(np.int32)
