"""A loaded tagger's forward pass with its word encoder's first input product memoized: the
layer-0 input terms of a token, W_ax [emb(word); chars(word)] + b_a for each direction, depend
on the token's string alone (no dropout when tagging), so each distinct string is computed once
(its character encoder run included) and its rows are kept in a `TypeCache`; a batch then
reads them through the encoder's folded tables (`Encoder.forward(None, ..., ids=, tables=)`),
the same terms the plain path multiplies out for every token. Text follows Zipf's law: most
tokens of a stream are strings seen before. Never prints.
"""

from __future__ import annotations

import numpy as np

CACHE_BYTES = 32 << 20  # the rows of this many bytes are kept at most (the first strings seen)


class TypeCache:
    """Rows (dirs, G*H) of layer 0's input terms per token string, up to CACHE_BYTES; strings
    past that are computed each time (the first ones, usually the most frequent, stay)."""

    def __init__(self, dirs: int, GH: int, dtype):
        self.index: dict[str, int] = {}
        self.cap = max(1, CACHE_BYTES // (dirs * GH * np.dtype(dtype).itemsize))
        # all of it at once: empty pages cost nothing until written (no copies as it fills)
        self.rows = np.empty((self.cap, dirs, GH), dtype)

    def __len__(self) -> int:
        return len(self.index)

    def add(self, names: list[str], rows: np.ndarray) -> None:
        """Keep rows (n, dirs, G*H) of `names` while there is room."""
        room = self.cap - len(self.index)
        n = min(room, len(names))
        if n <= 0:
            return
        start = len(self.index)
        self.rows[start:start + n] = rows[:n]
        for i, name in enumerate(names[:n]):
            self.index[name] = start + i


def cached_scores(net, b) -> np.ndarray:
    """`TaggerNet.scores` of batch b (no dropout) with layer 0's input terms from net.cache."""
    cache, p, enc, cfg = net.cache, net.params, net.enc, net.cfg
    s = net.spec
    U = len(b.names)
    idx = np.fromiter((cache.index.get(n, -1) for n in b.names), np.int64, U)
    tables = [net.mem.view(f"fold{d}", (U + 1, cache.rows.shape[2])) for d in range(s.dirs)]
    miss = np.flatnonzero(idx < 0)
    if miss.size:
        E = cfg.embed
        X = np.empty((miss.size, s.input_size), p.flat.dtype)  # [emb(word); chars(word)]
        X[:, :E] = p["emb"][b.uw[miss]]
        if net.cencs:
            X[:, E:] = net.char_vectors(np.ascontiguousarray(b.cx[:, miss]), b.clens[miss])
        rows = np.empty((miss.size, s.dirs, cache.rows.shape[2]), p.flat.dtype)
        for d in range(s.dirs):
            n = s.names(0, d)
            rows[:, d] = p[n["b_a"]]
            rows[:, d] += X @ p[n["W_ax"]].T
            tables[d][miss] = rows[:, d]
        cache.add([b.names[i] for i in miss.tolist()], rows)
    hit = np.flatnonzero(idx >= 0)
    for d in range(s.dirs):
        if hit.size:
            tables[d][hit] = cache.rows[idx[hit], d]
        tables[d][U] = p[s.names(0, d)["b_a"]]  # the row of ids < 0 (padding)
    out = enc.forward(None, b.lens, ids=b.slot, tables=tables)
    return net.output(out)
