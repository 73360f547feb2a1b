"""The optional input embedding (`--embed E`): a row gather of W_emb and its scatter-add gradient,
and the folded form used when the vocabulary is small (the input-term table).

    e<t> = W_emb[x<t>]   (x < 0: the zero vector, the seed's x<1> = 0)

Without `--embed`, layer 0 reads the one-hot input directly (a column gather of W_ax, see
`cell.gather_input_forward`); with it, layer 0's input terms are W_ax e<t> + b_a. Computed as
written, that is a (T*B x E) @ (E x G*H) product per window, and two more of the same size on the
way back. When V is small (char level) every input term is one of only V rows, so the network
folds the product into a table built once per window (`network.Network`):

    M = W_emb W_ax^T   (V, G*H);   xa<t> = M[x<t>] + b_a                (`table_forward`)
    dM[v] = sum of dz<t> over the positions with x<t> = v                (`table_backward`)
    dW_ax = dM^T W_emb,  dW_emb = dM W_ax                                (two V-sized products)

the same sums in another order: V*E*G*H multiply-adds per product instead of T*B*E*G*H. The
forward table holds b_a folded in, Mb = [M + b_a; b_a] (V+1, G*H), its last row for x < 0; the
BLAS recurrences read its rows directly (`cell.input_row`), the loop ones through `table_forward`.

Layouts: W_emb (V, E), e / de (T, B, E), x (T, B) int32, M / dM (V, G*H), xa / dz (T, B, G*H).
"""

from __future__ import annotations

from rnn_cli.kernels._jit import njit, njit_parallel, prange


def _embed_forward(e, W_emb, x):
    """e<t> = W_emb[x<t>] (zeros for x < 0). e (T,B,E) out, W_emb (V,E), x (T,B) int32."""
    T = x.shape[0]
    B = x.shape[1]
    E = W_emb.shape[1]
    for t in prange(T):
        for b in range(B):
            k = x[t, b]
            out = e[t, b]
            if k < 0:
                for i in range(E):
                    out[i] = 0.0
            else:
                row = W_emb[k]
                for i in range(E):
                    out[i] = row[i]


def _embed_backward(dW_emb, de, x):
    """dW_emb[x<t>] += de<t> (accumulated; serial, since two positions may share a token).

    dW_emb (V,E) accumulated, de (T,B,E), x (T,B) int32.
    """
    T = x.shape[0]
    B = x.shape[1]
    E = dW_emb.shape[1]
    for t in range(T):
        for b in range(B):
            k = x[t, b]
            if k >= 0:
                d = de[t, b]
                row = dW_emb[k]
                for i in range(E):
                    row[i] += d[i]


embed_forward = njit_parallel(_embed_forward)
embed_backward = njit(_embed_backward)


@njit
def table_forward(xa, Mb, x):
    """xa<t> = Mb[x<t>] = M[x<t>] + b_a (Mb[V] = b_a for x < 0): layer 0's input terms.

    xa (T,B,GH) out, Mb (V+1,GH) the table with b_a folded in, x (T,B) int32. Serial: a copy of
    T*B rows, cheaper than waking the thread pool on a busy machine.
    """
    T = x.shape[0]
    B = x.shape[1]
    GH = Mb.shape[1]
    V = Mb.shape[0] - 1
    for t in range(T):
        for b in range(B):
            k = x[t, b]
            out = xa[t, b]
            row = Mb[k if k >= 0 else V]
            for i in range(GH):
                out[i] = row[i]


@njit
def table_backward(dM, db_a, dz, x):
    """dM[x<t>] += dz<t>; db_a += dz<t> (accumulated; serial, as two positions may share a token).

    dM (V,GH) accumulated, db_a (GH,) accumulated, dz (T,B,GH), x (T,B) int32.
    """
    T = x.shape[0]
    B = x.shape[1]
    GH = db_a.shape[0]
    for t in range(T):
        for b in range(B):
            k = x[t, b]
            d = dz[t, b]
            for i in range(GH):
                db_a[i] += d[i]
            if k >= 0:
                row = dM[k]
                for i in range(GH):
                    row[i] += d[i]
