"""The optional input embedding (`--embed E`): a row gather of W_emb and its scatter-add gradient.

    e<t> = W_emb[x<t>]   (x < 0: the zero vector, the seed's x<1> = 0)

Without `--embed`, layer 0 reads the one-hot input directly (a column gather of W_ax, see
`cell.gather_input_forward`); with it, layer 0's input terms are W_ax e<t> + b_a, a BLAS product.

Layouts: W_emb (V, E), e / de (T, B, E), x (T, B) int32.
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
