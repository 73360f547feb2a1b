"""One window of the network, forward and backward, with every buffer allocated once.

The sequential part (the recurrence through time) runs in the compiled kernels of `kernels.cell`;
the products that do not depend on the previous time step (upper layers' input terms, the output
layer and its gradients) are done once per window as large matrix products by numpy's BLAS, where
they run at the machine's GEMM speed. Shape letters as in `kernels/__init__.py`; R = T*B.

    forward:  xa = W_ax x + b_a (gather) -> a<t> = g(xa<t> + W_aa a<t-1>) -> logits = a W_ya^T + b_y
    backward: dlogits = (y_hat - y)/R -> dW_ya, db_y, da -> dz through time -> dW_aa, dW_ax, db_a

`backward` overwrites the gradient buffers (one window per optimizer step).

Gated cells (`kernels.gru`, `kernels.lstm`) plug into the same loop: their input terms for all G
gate blocks are one (T, B, G*H) array exactly like the RNN's, and their kernels store the gates for
backward. With `--embed E` layer 0 reads a row gather of W_emb through a BLAS product; with
dropout, the caller passes masks (drawn from the run's Generator by `draw_masks`, `dropout.py`)
to `forward`: inverted dropout on the embedding output, on the input of every upper layer and
before the output layer, and DropConnect on W_aa (`--weight-drop`). The LSTM's cell states ride
in the carried state below the hidden states (`state_rows`).
"""

from __future__ import annotations

import os

import numpy as np

from rnn_cli.kernels import _jit, blas, cell, class_softmax, embed, gated_gemm, gru, lstm, output
from rnn_cli.params import Params
from rnn_cli.tasks.lm.dropout import MaskDrawer, Masks
from rnn_cli.tasks.lm.windows import sequence_nll  # noqa: F401  (its home before; importers)

ACTIVATIONS = {"tanh": cell.TANH, "relu": cell.RELU}
RECURRENCES = ("gemm", "loops")


def pick_recurrence(batch: int, hidden: int) -> str:
    """gemm: one BLAS product per step and thread (faster from H ~ 32 up when numpy's OpenBLAS
    is there); loops: compiled dot products. RNN_CLI_RECURRENCE=gemm|loops overrides."""
    forced = os.environ.get("RNN_CLI_RECURRENCE")
    if forced in RECURRENCES:
        return forced
    if not blas.BACKEND.startswith("openblas") or hidden < 32:
        return "loops"
    # one stream: each step is a matrix-vector product, which BLAS's gemm does no faster than the
    # compiled dot products once H is large (H 512, B 1: 15k vs 12k tok/s measured here)
    return "loops" if batch == 1 and hidden >= 256 else "gemm"


class Network:
    """Buffers and passes for windows of up to `steps` x `batch` tokens."""

    def __init__(self, params: Params, batch: int, steps: int, parallel: bool = True,
                 recurrence: str | None = None, embed_table: bool | None = None,
                 frozen: bool = False):
        """frozen: the parameters will not change while this network runs (scoring a loaded
        model), so layer 0's input table is built at the first window only, not at every one."""
        cfg = params.cfg
        self.params, self.cfg, self.B, self.T = params, cfg, batch, steps
        L, H, V, GH = cfg.layers, cfg.hidden, cfg.vocab_size, cfg.gates * cfg.hidden
        dt = params.flat.dtype  # float32 in use; float64 for gradient checks
        R = steps * batch
        self.act = ACTIVATIONS[cfg.activation]
        self.a = [np.zeros((steps + 1, batch, H), dt) for _ in range(L)]  # (T+1, B, H)
        self.xa = np.zeros((steps, batch, GH), dt)  # (T, B, GH) input terms of one layer
        self.dz = np.zeros((steps, batch, GH), dt)  # (T, B, GH)
        self.da = np.zeros((steps, batch, H), dt)  # (T, B, H) gradient arriving at a layer
        self.dnext = np.zeros((batch, H), dt)  # (B, H)
        self.classes = cfg.softmax == "classes"
        # (R, V) logits, overwritten by dlogits in backward; the class softmax has none
        self.logits = np.zeros((0 if self.classes else R, V), dt)
        self.nll = np.zeros(R, np.float64)  # (R,) -log y_hat[y] per position
        self.lse = np.zeros(R, np.float64)  # (R,) log-sum-exp per row
        self.state = np.zeros((cfg.state_rows, batch, H), dt)  # carried between windows
        self.x_buf = np.zeros((steps, batch), np.int32)
        self.y_buf = np.zeros((steps, batch), np.int32)
        # (B,) steps of the window each lane runs in the BLAS recurrences (T: all); per-line
        # scoring lowers it for lanes whose line ends (`score.BatchScorer`)
        self.lane_steps = np.full(batch, steps, np.int32)
        self.threads = _jit.get_threads() if parallel else 1
        if self.classes:
            self._init_classes(params, R, dt)
        self.recurrence = recurrence or pick_recurrence(batch, H)
        gemm_path = self.recurrence == "gemm"
        chunks = min(self.threads, batch)
        self.chunks = chunks  # slices of the batch, one per thread (`cell._chunk`)
        # one slice of the batch: the serial build (a parallel region for one thread only adds
        # a wake-up of the pool, which costs whole scheduler slices on a busy machine)
        if chunks > 1:
            fwd, bwd = (cell.rnn_forward_gemm, cell.rnn_backward_gemm) if gemm_path else \
                (cell.rnn_forward, cell.rnn_backward)
        else:
            fwd, bwd = (cell.rnn_forward_gemm_serial, cell.rnn_backward_gemm_serial) if gemm_path \
                else (cell.rnn_forward_serial, cell.rnn_backward_serial)
        if gemm_path:
            self.WT = np.zeros((H, H), dt)  # (H, H) W_aa^T of the layer being run

            def _fwd(a, xa, tab, x, W):
                cell.transpose_into(self.WT, W)
                fwd(a, xa, tab, x, self.WT, self.act, chunks, self.lane_steps)
            self._fwd = _fwd
            self._bwd = lambda dz, dn, da, a, W: bwd(dz, dn, da, a, W, self.act, chunks)
        else:
            self._fwd = lambda a, xa, tab, x, W: fwd(a, xa, W, self.act)
            self._bwd = lambda dz, dn, da, a, W: bwd(dz, dn, da, a, W, self.act)
        self._init_cells(parallel, chunks)
        self._init_table(embed_table)
        self.frozen, self.table_builds = frozen, 0
        # --updates sparse: the V-indexed gradient blocks arrive zero (sparse.RowUpdates zeroes
        # the rows it updated), so backward adds into them without zeroing all V rows
        self.zeroed_rows = False
        self._T = 0

    def _init_classes(self, params: Params, R: int, dt) -> None:
        """Buffers of the class softmax (`kernels.class_softmax`)."""
        from rnn_cli.tasks.lm.classes import class_index, parallel_class_kernels

        if params.word_class is None:
            raise ValueError("a class-softmax model needs its word classes (params.word_class)")
        self.word_class = np.ascontiguousarray(params.word_class, np.int32)  # (V,)
        self.members, self.offsets = class_index(self.word_class)  # (V,), (C+1,)
        C = self.offsets.shape[0] - 1
        M = int(np.diff(self.offsets).max())
        self.zc = np.zeros((R, C), dt)  # (R, C) class logits -> P(class) -> dzc in backward
        self.lse_c = np.zeros(R, np.float64)  # (R,)
        self.pw = np.zeros((R, M), dt)  # (R, M) P(w | class of y) over the target's class
        self.rows = np.zeros(R, np.int32)  # (R,) rows grouped by their target's class
        self.starts = np.zeros(C + 1, np.int32)  # (C+1,)
        self.fill = np.zeros(C, np.int32)  # (C,)
        self.use_class_kernels(parallel_class_kernels(C, self.threads))

    def use_class_kernels(self, parallel: bool) -> None:
        """The class softmax's prange builds, or the serial ones."""
        kind = "" if parallel else "_serial"
        self._cfwd = getattr(class_softmax, "class_xent_forward" + kind)
        self._cbwd = getattr(class_softmax, "class_xent_backward" + kind)
        self._wbwd = getattr(class_softmax, "class_words_backward" + kind)

    def _matmul(self, C, A, B, trans_a=False, trans_b=False, beta=0.0) -> None:
        """C = op(A) op(B) + beta C with the rows of C split over the threads."""
        chunks = max(1, min(self.threads, C.shape[0] // 16))
        mm = cell.pgemm if chunks > 1 else cell.pgemm_serial
        mm(C, A, B, trans_a, trans_b, 1.0, beta, chunks)

    def _init_cells(self, parallel: bool, chunks: int) -> None:
        """Buffers of the gated cells, the embedding and dropout (none for the seed's RNN)."""
        cfg, T, B, dt = self.cfg, self.T, self.B, self.params.flat.dtype
        L, H, E = cfg.layers, cfg.hidden, cfg.embed
        kind = "" if parallel and chunks > 1 else "_serial"
        if cfg.cell != "rnn" and self.recurrence == "gemm":
            self._gated_gemm(cfg.cell, kind, chunks, dt)
        elif cfg.cell == "gru":  # the loop kernels read xa (filled by `table_forward`)
            gf = getattr(gru, "gru_forward" + kind)
            self._gfwd = lambda a, g, xa, tab, x, W, b_hn: gf(a, g, xa, W, b_hn)
            self._gbwd = getattr(gru, "gru_backward" + kind)
        elif cfg.cell == "lstm":
            lf = getattr(lstm, "lstm_forward" + kind)
            self._gfwd = lambda a, c, g, xa, tab, x, W: lf(a, c, g, xa, W)
            self._gbwd = getattr(lstm, "lstm_backward" + kind)
        if cfg.cell == "gru":
            self.gates = [np.zeros((T, B, 4 * H), dt) for _ in range(L)]  # (T, B, 4H) r z n hn
            self.dhh = np.zeros((T, B, 3 * H), dt)  # (T, B, 3H)
        elif cfg.cell == "lstm":
            self.gates = [np.zeros((T, B, 5 * H), dt) for _ in range(L)]  # (T, B, 5H) i f g o tc
            self.c = [np.zeros((T + 1, B, H), dt) for _ in range(L)]  # (T+1, B, H)
            self.dcnext = np.zeros((B, H), dt)  # (B, H)
        if E:
            self.emb = np.zeros((T, B, E), dt)  # (T, B, E) W_emb[x], dropped in place
            self.demb = np.zeros((T, B, E), dt)  # (T, B, E)
        # dropout sites: 0 the embedding output (E wide), l = 1..L-1 layer l's input, L the output's
        self.drop = [None] + [np.zeros((T, B, H), dt) for _ in range(L)] if cfg.dropout else None
        # (L, G*H, H) W_aa * mask of --weight-drop, what the window runs on
        self.W_drop = np.zeros((L, cfg.gates * H, H), dt) if cfg.weight_drop else ()
        self._masks: Masks | None = None
        self._wmask, self._drawer = None, None

    def _init_table(self, embed_table: bool | None) -> None:
        """Layer 0's input terms as rows of a (V, G*H) table (`kernels.embed`): W_ax^T for a
        one-hot input (a row gather, same sums as the column gather of W_ax), W_emb W_ax^T with
        --embed (V*E*G*H multiply-adds per window instead of T*B*E*G*H, three times: forward,
        dW_ax, dW_emb). Auto (None): when V <= T*B. Not in a training window with embedding
        dropout (each position's e<t> differs then); evaluation has none."""
        cfg = self.cfg
        V, GH, dt = cfg.vocab_size, cfg.gates * cfg.hidden, self.params.flat.dtype
        self.use_table = V <= self.T * self.B if embed_table is None else embed_table
        if self.use_table:
            # (V+1, GH) W_ax^T or W_emb W_ax^T, plus b_a, then a row b_a alone (for x < 0)
            self.table = np.zeros((V + 1, GH), dt)
            self.dtable = np.zeros((V, GH), dt)  # (V, GH) the gradient of W_ax^T / W_emb W_ax^T
        # layer 0's input terms come from `table` in the BLAS recurrences (`cell.input_row`);
        # this empty one tells them to read xa
        self.no_table = np.zeros((0, GH), dt)
        self._tabled = False  # whether the last forward window used it

    def _build_table(self) -> None:
        """M = W_ax^T (one-hot input) or W_emb W_ax^T (`--embed`), (V, G*H), + b_a; then b_a."""
        p, V = self.params, self.cfg.vocab_size
        M = self.table[:V]
        if self.cfg.embed:  # V*E*G*H multiply-adds: at V 10k, H 256, a GRU's 3.9 GFLOP
            self._matmul(M, p.W_emb, p.W_ax, trans_b=True)
        else:
            np.copyto(M, p.W_ax.T)
        M += p.b_a[0]
        self.table[V] = p.b_a[0]
        self.table_builds += 1

    def _gated_gemm(self, cell_name: str, kind: str, chunks: int, dt) -> None:
        """The BLAS-per-step GRU/LSTM kernels (`kernels.gated_gemm`) behind the loops' signatures;
        the forward pass reads a contiguous W_aa^T refreshed from the layer's weights."""
        H, G = self.cfg.hidden, self.cfg.gates
        self.WT_gates = np.zeros((H, G * H), dt)  # (H, G*H)
        fwd = getattr(gated_gemm, f"{cell_name}_forward_gemm" + kind)
        bwd = getattr(gated_gemm, f"{cell_name}_backward_gemm" + kind)

        def gfwd(*args):  # (a, [c,] gates, xa, tab, x, W_aa[, b_hn]): W_aa 6th or 7th
            args = list(args)
            w = 5 if cell_name == "gru" else 6
            cell.transpose_into(self.WT_gates, args[w])
            args[w] = self.WT_gates
            fwd(*args, chunks, self.lane_steps)
        self._gfwd = gfwd
        self._gbwd = lambda *args: bwd(*args, chunks)

    def draw_masks(self, rng: np.random.Generator, x: np.ndarray | None = None) -> Masks | None:
        """Masks of --dropout, --embed-dropout, --weight-drop for the next training window x
        (T, B), drawn from `rng` (`dropout.py`); None without any."""
        if self._drawer is None:
            self._drawer = MaskDrawer(self.cfg, self.T, self.B, self.params.flat.dtype)
        return self._drawer.draw(rng, x)

    def _W_aa(self, layer: int) -> np.ndarray:
        """Layer `layer`'s W_aa in this window (--weight-drop: W_aa * mask, filled by forward)."""
        return self.params.W_aa[layer] if self._wmask is None else self.W_drop[layer]

    def _cell_forward(self, layer: int, a: np.ndarray, xa: np.ndarray, tab: np.ndarray,
                      x: np.ndarray, T: int) -> None:
        """Layer `layer`'s recurrence over the window; its input terms in xa, or rows of `tab`
        picked by x (layer 0 with the folded table, the BLAS recurrences only)."""
        cfg, p, W = self.cfg, self.params, self._W_aa(layer)
        if cfg.cell == "rnn":
            self._fwd(a, xa, tab, x, W)
        elif cfg.cell == "gru":
            self._gfwd(a, self.gates[layer][:T], xa, tab, x, W, p.b_hn[layer])
        else:
            L = cfg.layers
            c = self.c[layer][:T + 1]
            c[0] = self.state[L + layer]
            self._gfwd(a, c, self.gates[layer][:T], xa, tab, x, W)
            self.state[L + layer] = c[T]

    def _cell_backward(self, grads: Params, layer: int, a, dz, da, T: int) -> np.ndarray:
        """dz (input-term gradient) from da; returns the gradient of the recurrent products."""
        cfg, W = self.cfg, self._W_aa(layer)
        if cfg.cell == "rnn":
            self._bwd(dz, self.dnext, da, a, W)
            return dz
        if cfg.cell == "gru":
            dhh = self.dhh[:T]
            self._gbwd(dz, dhh, self.dnext, da, a, self.gates[layer][:T], W)
            H = cfg.hidden
            np.sum(dhh[:, :, 2 * H:], axis=(0, 1), out=grads.b_hn[layer])
            return dhh
        self._gbwd(dz, self.dnext, self.dcnext, da, self.c[layer][:T + 1], self.gates[layer][:T],
                   W)
        return dz

    def _mask(self, site: int) -> np.ndarray | None:  # (T|1, B, W), None: not dropped
        return None if self._masks is None else self._masks[site]

    def _dropped(self, site: int, a: np.ndarray, T: int) -> np.ndarray:
        """a (T, B, W) times this window's mask at `site` (a itself without dropout)."""
        m = self._mask(site)
        if m is None:
            return a
        out = self.drop[site][:T] if site else a
        np.multiply(a, m[:T], out=out)
        return out

    def reset_state(self) -> None:
        self.state[...] = 0.0

    def forward(self, x: np.ndarray, y: np.ndarray | None = None, masks: list | None = None
                ) -> float:
        """Run a window x (T, B) int32 from the carried state; returns the summed nll (0 without y).

        masks: dropout masks from `draw_masks` (training only); None: no dropout (evaluation).

        The carried state moves on to the window's last hidden state. Per-position nll is left in
        `self.nll[:T*B]` (row t*B + b) and the logits in `self.logits`.
        """
        p, T = self.params, x.shape[0]
        R, H, GH = T * self.B, self.cfg.hidden, self.cfg.gates * self.cfg.hidden
        self._T = T
        xa = self.xa[:T]
        below = None
        self._masks, self._wmask = masks, getattr(masks, "weights", None)
        for W, w, m in zip(self.W_drop, p.W_aa, self._wmask or ()):
            np.multiply(w, m, out=W)
        for layer in range(self.cfg.layers):
            a = self.a[layer][:T + 1]
            a[0] = self.state[layer]
            tab = self.no_table
            if layer == 0 and self.use_table and self._mask(0) is None:
                self._tabled = True
                if not (self.frozen and self.table_builds):
                    self._build_table()
                if self.recurrence == "gemm":
                    tab = self.table  # read in the time loop: no (T, B, GH) copy
                else:
                    embed.table_forward(xa, self.table, x)
            elif layer == 0 and self.cfg.embed:
                self._tabled = False
                e = self.emb[:T]
                embed.embed_forward(e, p.W_emb, x)
                e = self._dropped(0, e, T)
                xa[...] = p.b_a[0]
                self._matmul(xa.reshape(R, GH), e.reshape(R, self.cfg.embed), p.W_ax,
                             trans_b=True, beta=1.0)
            elif layer == 0:
                self._tabled = False
                cell.gather_input_forward(xa, p.W_ax, p.b_a[0], x)
            else:
                inp = self._dropped(layer, below[1:], T)
                xa[...] = p.b_a[layer]
                self._matmul(xa.reshape(R, GH), inp.reshape(R, H), p.W_ax_up[layer - 1],
                             trans_b=True, beta=1.0)
            self._cell_forward(layer, a, xa, tab, x, T)
            self.state[layer] = a[T]
            below = a
        top = self._dropped(self.cfg.layers, below[1:], T)
        if self.classes:
            return self._class_forward(top.reshape(R, H), y, R)
        logits = self.logits[:R]
        logits[...] = p.b_y
        self._matmul(logits, top.reshape(R, H), p.W_ya, trans_b=True, beta=1.0)
        if y is None:
            return 0.0
        return output.softmax_xent_forward(self.nll[:R], self.lse[:R], logits, y.reshape(R))

    def _class_forward(self, top: np.ndarray, y: np.ndarray | None, R: int) -> float:
        """Class logits by BLAS, then the class softmax kernel (without y: class logits only)."""
        p, zc = self.params, self.zc[:R]
        zc[...] = p.b_c
        self._matmul(zc, top, p.W_yc, trans_b=True, beta=1.0)
        if y is None:
            return 0.0
        return self._cfwd(self.nll[:R], self.lse_c[:R], self.pw[:R], zc, top, p.W_ya, p.b_y,
                          self.members, self.offsets, self.word_class, y.reshape(R))

    def _class_backward(self, grads: Params, top: np.ndarray, y: np.ndarray, scale: float,
                        R: int) -> None:
        """Output-layer gradients of the class softmax; the gradient at `top` goes to self.da."""
        p, dzc, yr = self.params, self.zc[:R], y.reshape(R)
        self._cbwd(dzc, dzc, self.word_class, yr, scale)
        self._matmul(grads.W_yc, dzc, top, trans_a=True)
        np.sum(dzc, axis=0, out=grads.b_c)
        da = self.da[:self._T].reshape(R, self.cfg.hidden)
        self._matmul(da, dzc, p.W_yc)
        if not self.zeroed_rows:
            grads.W_ya[...] = 0.0  # (tied: W_emb's gradient; the embedding adds onto it later)
            grads.b_y[...] = 0.0
        class_softmax.group_rows(self.rows[:R], self.starts, self.fill, yr, self.word_class)
        self._wbwd(grads.W_ya, grads.b_y, da, self.pw[:R], top, p.W_ya, self.members,
                   self.offsets, self.word_class, yr, scale, self.rows[:R], self.starts)

    def backward(self, grads: Params, x: np.ndarray, y: np.ndarray, scale: float) -> None:
        """Gradients of `scale * sum(nll)` of the last forward window, written into `grads`."""
        p, T = self.params, self._T
        R, H, GH = T * self.B, self.cfg.hidden, self.cfg.gates * self.cfg.hidden
        L = self.cfg.layers
        top = (self.drop[L] if self._mask(L) is not None else self.a[-1][1:])[:T].reshape(R, H)
        da, dz = self.da[:T], self.dz[:T]
        if self.classes:
            self._class_backward(grads, top, y, scale, R)
        else:
            dlogits = self.logits[:R]
            output.softmax_xent_backward(dlogits, dlogits, self.lse[:R], y.reshape(R), scale)
            self._matmul(grads.W_ya, dlogits, top, trans_a=True)
            np.sum(dlogits, axis=0, out=grads.b_y)
            self._matmul(da.reshape(R, H), dlogits, p.W_ya)
        if self._mask(L) is not None:
            da *= self._mask(L)[:T]
        for layer in range(self.cfg.layers - 1, -1, -1):
            a = self.a[layer][:T + 1]
            dhh = self._cell_backward(grads, layer, a, dz, da, T)
            dz2 = dz.reshape(R, GH)
            self._matmul(grads.W_aa[layer], dhh.reshape(R, GH), a[:T].reshape(R, H), trans_a=True)
            if self._wmask is not None:
                grads.W_aa[layer] *= self._wmask[layer]  # d(W * m)/dW = m
            if layer == 0 and self._tabled:
                dM = self.dtable
                dM[...] = 0.0
                grads.b_a[0] = 0.0
                embed.table_backward(dM, grads.b_a[0], dz, x)
                if not self.cfg.embed:
                    np.copyto(grads.W_ax, dM.T)
                else:
                    self._matmul(grads.W_ax, dM, p.W_emb, trans_a=True)
                    # tied: adds onto the output layer's gradient, already in grads.W_emb
                    self._matmul(grads.W_emb, dM, p.W_ax,
                                 beta=1.0 if self.cfg.tie_weights else 0.0)
            elif layer == 0 and self.cfg.embed:
                E = self.cfg.embed
                e = self.emb[:T]  # dropped in place by forward
                self._matmul(grads.W_ax, dz2, e.reshape(R, E), trans_a=True)
                np.sum(dz2, axis=0, out=grads.b_a[0])
                de = self.demb[:T]
                self._matmul(de.reshape(R, E), dz2, p.W_ax)
                if self._mask(0) is not None:
                    de *= self._mask(0)[:T]
                if not (self.cfg.tie_weights or self.zeroed_rows):  # tied: adds onto W_ya's
                    grads.W_emb[...] = 0.0
                embed.embed_backward(grads.W_emb, de, x)
            elif layer == 0:
                if not self.zeroed_rows:
                    grads.W_ax[...] = 0.0
                grads.b_a[0] = 0.0
                cell.gather_input_backward(grads.W_ax, grads.b_a[0], dz, x)
            else:
                below = (self.drop[layer] if self._mask(layer) is not None
                         else self.a[layer - 1][1:])
                np.sum(dz2, axis=0, out=grads.b_a[layer])
                self._matmul(grads.W_ax_up[layer - 1], dz2, below[:T].reshape(R, H), trans_a=True)
                self._matmul(da.reshape(R, H), dz2, p.W_ax_up[layer - 1])
                if self._mask(layer) is not None:
                    da *= self._mask(layer)[:T]

