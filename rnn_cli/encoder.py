"""The shared recurrent encoder of the task models (classifier, tagger, translator's source side).

Dense inputs in, states out, over a batch of sequences of different lengths:

    inp (T, B, D)    the task's input vectors (its embeddings; the tagger's word embeddings
                     concatenated with its character encoder's output), any values past a
                     lane's end (they are never read)
    lengths (B,)     int32, 1 <= len_b <= T: lane b holds positions 0 .. len_b - 1
    out (T, B, dirs*H)   the top layer's states, exactly zero past each lane's end; with
                     `bidirectional`, [forward | reverse] along the last axis
    final_h (L, dirs, B, H)   each layer's and direction's final state: forward a<len_b>, reverse
                     its last step (the state at position 0); final_c likewise for the LSTM

`--layers` L of rnn/gru/lstm (the LM's cells, `kernels/cell.py`, `gru.py`, `lstm.py`,
`gated_gemm.py`); layer l+1 reads layer l's (T, B, dirs*H) states. The reverse direction runs
the same recurrence kernels on each sequence reversed within its length (`kernels/ragged.py`)
and its states are reversed back, so both directions are the forward kernels. The BLAS
recurrences stop each lane at its end (`lane_steps`), so padding costs no recurrent work;
lanes sorted longest first within each thread's slice of the batch skip the most. Inverted
dropout (masks from `draw_masks`, drawn from the run's Generator) on the input of every layer.

Parameters live in the task's ParamSet under these names (`encoder_spec.EncoderSpec`; prefix
e.g. "enc."; `_reverse` for the reverse direction, PyTorch's suffix; G gate blocks: 1 rnn,
3 gru [r z n], 4 lstm [i f g o]):

    <prefix>W_ax_l<l>[_reverse]   (G*H, D_l)   D_0 = D, D_l = dirs*H above
    <prefix>W_aa_l<l>[_reverse]   (G*H, H)
    <prefix>b_a_l<l>[_reverse]    (G*H,)       torch's b_ih + b_hh (GRU candidate: b_in only)
    <prefix>b_hn_l<l>[_reverse]   (H,)         GRU only: the candidate's recurrent bias

Backward takes d_out (and optionally d_final_h / d_final_c), writes (overwrites) the encoder's
blocks of a gradient ParamSet, and returns d_inp (T, B, D) for the layers below. Layer 0 can
also read its input terms from tables folded from a small embedding (`fold_tables` in
`encoder_tables.py`: the LM's char-level table); given that embedding (`forward(..., emb=)`),
backward sums dz into the tables' rows and returns d(loss)/d(emb) (V, D) instead of d_inp: the
same sums in another order, V-sized products instead of (T*B)-sized ones. Padding
positions carry exactly zero gradient whatever d_out holds there. Buffers grow to the largest
batch seen (`reserve` sizes them up front); each batch uses contiguous views of their prefixes
(the BLAS kernels compute offsets from the array shapes). Never prints.
"""

from __future__ import annotations

import numpy as np

from rnn_cli.encoder_spec import (  # noqa: F401 (EncoderSpec: the tasks import it from here)
    ACTIVATIONS, GATES, EncoderSpec, pick_recurrence)
from rnn_cli.encoder_tables import FoldedInput, reversed_ids
from rnn_cli.kernels import _jit, cell, embed, gated_gemm, gru, lstm, ragged
from rnn_cli.params import Buffers, ParamSet  # noqa: F401 (Buffers: for the tasks too)


class Encoder(FoldedInput):
    """Forward and backward passes of an EncoderSpec over the blocks of `params`."""

    def __init__(self, spec: EncoderSpec, params: ParamSet, dropout: float = 0.0,
                 parallel: bool = True, recurrence: str | None = None):
        if spec.cell not in GATES or spec.activation not in ACTIVATIONS:
            raise ValueError(f"unknown cell {spec.cell!r} or activation {spec.activation!r}")
        if spec.activation != "tanh" and spec.cell != "rnn":
            raise ValueError("only the rnn cell takes an activation")
        self.spec, self.params, self.dropout = spec, params, float(dropout)
        self.dtype = params.flat.dtype
        self.threads = _jit.get_threads() if parallel else 1
        self.recurrence = recurrence or pick_recurrence(spec.hidden)
        self.act = ACTIVATIONS[spec.activation]
        self.mem = Buffers(self.dtype)
        H, GH = spec.hidden, GATES[spec.cell] * spec.hidden
        self.WT = np.zeros((H, GH), self.dtype)  # (H, G*H) W_aa^T of the block being run
        self.no_table = np.zeros((0, GH), self.dtype)  # the BLAS kernels then read xa
        self.no_ids = np.zeros((1, 1), np.int32)
        # {(layer, d): W_aa^T} made by the caller: once per model when the parameters are fixed
        # (inference), or once a batch for encoders sharing them (the tagger's character groups)
        self.frozen_wt: dict | None = None
        self._T = self._B = 0
        self._x: dict[int, np.ndarray] = {}  # each layer's (dropped) input of the last forward
        self._fold: list | None = None  # [(table, ids)] per direction: a folded forward
        self._fold_emb: np.ndarray | None = None  # the embedding folded, when backward follows
        self.final_h: np.ndarray | None = None  # (L, dirs, B, H) after forward
        self.final_c: np.ndarray | None = None  # (L, dirs, B, H) after forward, LSTM only

    # ------------------------------------------------------------------ buffers
    def reserve(self, steps: int, batch: int) -> None:
        """Allocate every buffer for batches of up to `steps` x `batch` now (forward and
        backward otherwise grow them on first use)."""
        self._buffers(steps, batch)

    def _buffers(self, T: int, B: int) -> dict:
        s, m = self.spec, self.mem
        H, GH, W = s.hidden, GATES[s.cell] * s.hidden, s.out_size
        gw = {"rnn": 0, "gru": 4 * H, "lstm": 5 * H}[s.cell]
        v = {"xa": m.view("xa", (T, B, GH)), "dz": m.view("dz", (T + 1, B, GH)),
             "da": m.view("da", (T + 1, B, H)), "dnext": m.view("dnext", (B, H)),
             "dcnext": m.view("dcnext", (B, H)),
             "final_h": m.view("final_h", (s.layers, s.dirs, B, H)),
             "final_c": m.view("final_c", (s.layers, s.dirs, B, H))}
        if s.cell == "gru":
            v["dhh"] = m.view("dhh", (T, B, 3 * H))
        for layer in range(s.layers):
            D = s.input_size if layer == 0 else W
            for d in range(s.dirs):
                v[f"a{layer}{d}"] = m.view(f"a{layer}{d}", (T + 1, B, H))
                if gw:  # (T+1 rows: the LSTM's d_final_c enters through one more step)
                    v[f"g{layer}{d}"] = m.view(f"g{layer}{d}", (T + 1, B, gw))
                if s.cell == "lstm":
                    v[f"c{layer}{d}"] = m.view(f"c{layer}{d}", (T + 1, B, H))
            if self.dropout:
                v[f"in{layer}"] = m.view(f"in{layer}", (T, B, D))  # the dropped input
            if s.bidirectional:
                v[f"rev{layer}"] = m.view(f"rev{layer}", (T, B, D))
                v[f"out{layer}"] = m.view(f"out{layer}", (T, B, W))
                v[f"drev{layer}"] = m.view(f"drev{layer}", (T, B, D))
            v[f"din{layer}"] = m.view(f"din{layer}", (T, B, D))
        return v

    def _matmul(self, C, A, B, trans_a=False, trans_b=False, beta=0.0) -> None:
        """C = op(A) op(B) + beta C (C-contiguous 2-D), the rows of C split over the threads."""
        chunks = max(1, min(self.threads, C.shape[0] // 16))
        mm = cell.pgemm if chunks > 1 else cell.pgemm_serial
        mm(C, A, B, trans_a, trans_b, 1.0, beta, chunks)

    # ------------------------------------------------------------------ dropout
    def draw_masks(self, rng: np.random.Generator, steps: int, batch: int) -> list | None:
        """Inverted-dropout masks (0 or 1/(1-p)) for the input of every layer of the next
        training batch, [(T, B, D), (T, B, dirs*H) x (L-1)]; None without dropout."""
        p = self.dropout
        if not p:
            return None
        s = self.spec
        masks = [self.mem.view(f"mask{layer}", (steps, batch, s.input_size if layer == 0
                                                else s.out_size)) for layer in range(s.layers)]
        for m in masks:
            rng.random(out=m, dtype=m.dtype)
            np.greater_equal(m, p, out=m, casting="unsafe")
            m *= 1.0 / (1.0 - p)
        return masks

    # ------------------------------------------------------------------ forward
    def forward(self, inp: np.ndarray | None, lengths: np.ndarray, masks: list | None = None,
                ids: np.ndarray | None = None, tables: list | None = None,
                split_top: bool = False, states: bool = True, emb: np.ndarray | None = None
                ) -> np.ndarray | list[np.ndarray] | None:
        """The top layer's states (T, B, dirs*H) for inputs (T, B, D) and lengths (B,); the
        final states are left in `self.final_h` / `self.final_c` (L, dirs, B, H). masks: from
        `draw_masks` (training), None (evaluation). `inp` must stay unchanged until backward.
        The returned array and the final states are views of buffers the next call reuses.
        Inference on folded tables (`fold_tables`): inp None, ids (T, B) int32 the tokens
        (any value past a lane's end); no masks, no backward after it. split_top (inference):
        a bidirectional encoder returns its top layer's states per direction, [forward,
        reverse] (T, B, H) each in its own time order (the reverse one: position len_b - 1 - t
        at row t), without joining them into one array. states=False: the top layer's states
        are not written (returns None; the final states only). emb: with tables, the (V, D)
        embedding they were folded from, now, when a backward follows (training on tables)."""
        s = self.spec
        T, B, D = inp.shape if tables is None else (*ids.shape, s.input_size)
        if D != s.input_size or lengths.shape != (B,) or getattr(inp, "dtype", self.dtype) \
                != self.dtype:
            raise ValueError(f"inputs {(T, B, D)}, lengths {lengths.shape}: expected "
                             f"(T, B, {s.input_size}) {self.dtype} and (B,)")
        if B == 0 or lengths.min() < 1 or lengths.max() > T:
            raise ValueError("every lane needs a length in [1, T]")
        v = self._v = self._buffers(T, B)
        self._T, self._B, self._masks = T, B, masks
        lens = self._lens = np.array(lengths, np.int32)  # (B,) a copy: kept for backward
        x = np.ascontiguousarray(inp) if tables is None else None
        rows = np.arange(B)
        if masks is not None and (not self.dropout or tables is not None):
            raise ValueError("dropout masks given to an encoder built without dropout, or "
                             "with folded tables")
        self._fold_emb = None if tables is None else emb
        self._fold = None if tables is None else [(tables[d], np.ascontiguousarray(
            ids, np.int32) if d == 0 else reversed_ids(ids, lens)) for d in range(s.dirs)]
        for layer in range(s.layers):
            if masks is not None:
                np.multiply(x, masks[layer], out=v[f"in{layer}"])
                x = v[f"in{layer}"]
            self._x[layer] = x
            apart = split_top and s.bidirectional and layer == s.layers - 1
            out = v[f"out{layer}"] if s.bidirectional and not apart else [] if apart else None
            for d in range(s.dirs):
                src = x
                if d and x is not None:
                    src = v[f"rev{layer}"]
                    ragged.reverse_within(src, x, lens, False)
                a = self._run(layer, d, src, T, B)
                if not states and layer == s.layers - 1:
                    out = None
                elif apart:
                    out.append(a[1:])
                elif s.bidirectional:
                    half = out[:, :, d * s.hidden:(d + 1) * s.hidden]
                    if d:
                        ragged.reverse_within(half, a[1:], lens, False)
                    else:
                        ragged.copy_within(half, a[1:], lens)
                else:
                    out = a[1:]
                self.final_h = v["final_h"]
                self.final_h[layer, d] = a[lens, rows]
                if s.cell == "lstm":
                    self.final_c = v["final_c"]
                    self.final_c[layer, d] = v[f"c{layer}{d}"][lens, rows]
            x = out
        return x

    def _run(self, layer: int, d: int, src: np.ndarray, T: int, B: int) -> np.ndarray:
        """One direction of one layer over inputs `src` (in that direction's time order);
        returns its states a (T+1, B, H), a[0] = 0, zero past each lane's end."""
        s, v, p = self.spec, self._v, self.params
        n, GH = s.names(layer, d), GATES[s.cell] * s.hidden
        R, lens = T * B, self._lens
        xa = v["xa"]
        gemm = self.recurrence == "gemm"
        tab, ids = self.no_table, self.no_ids
        if layer == 0 and self._fold is not None:  # the input terms are table rows
            tab, ids = self._fold[d]
            if not gemm:  # the loop kernels read xa
                embed.table_forward(xa, tab, ids)
                tab, ids = self.no_table, self.no_ids
        else:
            xa[...] = p[n["b_a"]]
            self._matmul(xa.reshape(R, GH), src.reshape(R, src.shape[2]), p[n["W_ax"]],
                         trans_b=True, beta=1.0)
        a = v[f"a{layer}{d}"]
        a[0] = 0.0
        W = p[n["W_aa"]]
        if not gemm:  # the loop kernels run every lane to T: let them read zeros past the ends
            ragged.copy_within(xa, xa, lens)
        chunks = min(self.threads, B)
        kind = "" if chunks > 1 else "_serial"
        if gemm and self.frozen_wt is not None:  # fixed parameters: W_aa^T made once
            WT = self.frozen_wt[layer, d]
        elif gemm:
            WT = self.WT
            cell.transpose_into(WT, W)
        if s.cell == "rnn":
            if gemm:
                getattr(cell, "rnn_forward_gemm" + kind)(a, xa, tab, ids, WT, self.act, chunks,
                                                         lens)
            else:
                getattr(cell, "rnn_forward" + kind)(a, xa, W, self.act)
        elif s.cell == "gru":
            g = v[f"g{layer}{d}"][:T]
            if gemm:
                getattr(gated_gemm, "gru_forward_gemm" + kind)(
                    a, g, xa, tab, ids, WT, p[n["b_hn"]], chunks, lens)
            else:
                getattr(gru, "gru_forward" + kind)(a, g, xa, W, p[n["b_hn"]])
        else:
            g, c = v[f"g{layer}{d}"][:T], v[f"c{layer}{d}"]
            c[0] = 0.0
            if gemm:
                getattr(gated_gemm, "lstm_forward_gemm" + kind)(
                    a, c, g, xa, tab, ids, WT, chunks, lens)
            else:
                getattr(lstm, "lstm_forward" + kind)(a, c, g, xa, W)
        if not gemm:  # and zero their states past the ends
            ragged.copy_within(a[1:], a[1:], lens)
            if s.cell == "lstm":
                ragged.copy_within(v[f"c{layer}{d}"][1:], v[f"c{layer}{d}"][1:], lens)
        return a

    # ------------------------------------------------------------------ backward
    def backward(self, grads: ParamSet, d_out: np.ndarray | None,
                 d_final_h: np.ndarray | None = None, d_final_c: np.ndarray | None = None,
                 table_sums: list | None = None) -> np.ndarray | None:
        """Gradients of the last forward: d_out (T, B, dirs*H) at the top layer's states (None:
        zero; values past a lane's end are ignored), d_final_h / d_final_c (L, dirs, B, H) at the
        final states (d_final_c: LSTM only). Writes the encoder's blocks of `grads` (overwrites)
        and returns d_inp (T, B, D), the gradient at the inputs (exactly zero past each lane's
        end), a view of a buffer the next call reuses. After a forward on tables with `emb`:
        returns d(loss)/d(emb) (V, D) instead; or, given table_sums (per direction (V, G*H)),
        adds each row's dz sum to them, leaves layer 0's W_ax blocks at zero and returns None,
        for one `table_finish` after several passes on the same tables (fewer products)."""
        s, v = self.spec, self._v
        if self._fold is not None and self._fold_emb is None:
            raise ValueError("no backward after a forward on folded tables without their emb")
        if d_final_c is not None and s.cell != "lstm":
            raise ValueError("d_final_c is the LSTM's cell state; this encoder has none")
        H = s.hidden
        above = d_out
        for layer in range(s.layers - 1, -1, -1):
            dx = v[f"din{layer}"]
            for d in range(s.dirs):
                if above is None:
                    da_top = None
                else:
                    da_top = above[:, :, d * H:(d + 1) * H] if s.bidirectional else above
                fh = None if d_final_h is None else d_final_h[layer, d]
                fc = None if d_final_c is None else d_final_c[layer, d]
                self._back(grads, layer, d, da_top, fh, fc, dx, table_sums)
            if self._masks is not None:
                dx *= self._masks[layer]
            above = dx
        if self._fold is not None:
            return None if table_sums is not None else v["demb"]
        return above

    def _back(self, grads, layer, d, da_top, fh, fc, dx, table_sums) -> None:
        """One direction of one layer: its blocks' gradients, and its share of dx (T, B, D_l):
        written by the forward direction, added (reversed back) by the reverse one."""
        s, v, p, T, B = self.spec, self._v, self.params, self._T, self._B
        n, H, GH = s.names(layer, d), s.hidden, GATES[s.cell] * s.hidden
        R, lens, rows = T * B, self._lens, np.arange(B)
        Tx = T + 1 if fc is not None else T  # one more step carries d_final_c in (see _inject)
        da = v["da"][:Tx]
        if da_top is None:
            da[:T] = 0.0
        elif d:
            ragged.reverse_within(da[:T], da_top, lens, False)
        else:
            ragged.copy_within(da[:T], da_top, lens)
        if fh is not None:
            da[lens - 1, rows] += fh
        if fc is not None:
            self._inject(layer, d, da, fc)
        a, W = v[f"a{layer}{d}"], p[n["W_aa"]]
        dz = v["dz"][:Tx]
        chunks = min(self.threads, B)
        kind = "" if chunks > 1 else "_serial"
        gemm = self.recurrence == "gemm"
        mod = {"rnn": cell, "gru": gru, "lstm": lstm}[s.cell] if not gemm else \
            (cell if s.cell == "rnn" else gated_gemm)
        fn = getattr(mod, f"{s.cell}_backward" + ("_gemm" if gemm else "") + kind)
        extra = (chunks,) if gemm else ()
        if s.cell == "rnn":
            fn(dz, v["dnext"], da, a, W, self.act, *extra)
            dhh = dz
        elif s.cell == "gru":
            dhh = v["dhh"]
            fn(dz, dhh, v["dnext"], da, a, v[f"g{layer}{d}"][:T], W, *extra)
            np.sum(dhh[:, :, 2 * H:], axis=(0, 1), out=grads[n["b_hn"]])
        else:
            fn(dz, v["dnext"], v["dcnext"], da, v[f"c{layer}{d}"], v[f"g{layer}{d}"][:Tx], W,
               *extra)
            dhh = dz
        dz, dhh = dz[:T], dhh[:T]
        self._matmul(grads[n["W_aa"]], dhh.reshape(R, GH), a[:T].reshape(R, H), trans_a=True)
        if layer == 0 and self._fold is not None:
            return self._back_table(grads, n, d, dz, table_sums)
        src = v[f"rev{layer}"] if d else self._x[layer]
        self._matmul(grads[n["W_ax"]], dz.reshape(R, GH), src.reshape(R, src.shape[2]),
                     trans_a=True)
        np.sum(dz, axis=(0, 1), out=grads[n["b_a"]])
        if d:
            drev = v[f"drev{layer}"]
            self._matmul(drev.reshape(R, drev.shape[2]), dz.reshape(R, GH), p[n["W_ax"]])
            ragged.reverse_within(dx, drev, lens, True)
        else:
            self._matmul(dx.reshape(R, dx.shape[2]), dz.reshape(R, GH), p[n["W_ax"]])

    def _inject(self, layer: int, d: int, da: np.ndarray, fc: np.ndarray) -> None:
        """Carry d_final_c (B, H) into the LSTM's backward pass with the unchanged kernels: the
        kernels start each lane with dc = 0 at the last row and reach row len_b - 1 with the
        dc of row len_b times f there. So row len_b (a padding row, or the extra row T) gets
        the gates i = 0, f = 1, g = 0, o = 1, tanh(c) = 0 and da = d_final_c: there
        dc = 0 + da * o * (1 - 0) = d_final_c, its input-term gradients are all exactly zero
        (each has a factor i, g, tanh(c) or f (1 - f)), and it hands dc * f = d_final_c on,
        exact in floating point. The rows past len_b still give exactly zero (dh = dc = 0)."""
        H, lens = self.spec.hidden, self._lens
        rows = np.arange(lens.shape[0])
        g = self._v[f"g{layer}{d}"]
        da[self._T] = 0.0
        gl = g[lens, rows]  # (B, 5H) copies, then written back
        gl[:, :] = 0.0
        gl[:, H:2 * H] = 1.0
        gl[:, 3 * H:4 * H] = 1.0
        g[lens, rows] = gl
        da[lens, rows] = fc

