"""A loaded tagger's forward pass with its word encoder's first input product memoized: the
layer-0 input terms of a token, W_ax [emb(word); chars(word)] + b_a for each direction, depend
on the token's string alone (no dropout when tagging), so each distinct string is computed once
(its character encoder run included) and its rows are kept in a `TypeCache`; the recurrences
then read them as folded tables (`Encoder.forward(None, ..., ids=, tables=)`), the same terms
the plain path multiplies out for every token. Text follows Zipf's law: most tokens of a stream
are strings seen before. Never prints.

    tag_block(net, sentences, words, chars, probs)   what `Tagger` runs on a block of sentences:
        the block's new strings computed together (one character-encoder run per group of word
        lengths, over the character table char_emb W_ax^T + b_a folded once per model, final
        states only), then batches by length read the cache's rows through token ids alone
    cached_scores(net, batch)                        `TaggerNet.scores` of a `data.Batch` (the
        test path, which needs the gold tags of a batch as well)
"""

from __future__ import annotations

import numpy as np

from rnn_cli.batching import eval_batches
from rnn_cli.kernels import ragged
from rnn_cli.tasks.tag.data import char_groups, word_key

CACHE_BYTES = 32 << 20  # the rows of this many bytes are kept at most (the first strings seen)
CHAR_LANES = 128  # words per character-encoder run at most (bounds its buffers)
BATCH, BATCH_TOKENS = 32, 4096  # sentences, padded tokens of a word-encoder run at most
# (measured on UD EWT, 1 thread: batches of 32 tagged 13 % faster than 128, whose buffers
# outgrow the core's L2 cache; character runs of 128 words 3 % faster than 512)


class TypeCache:
    """Rows of layer 0's input terms per token string, up to CACHE_BYTES: `tabs[d]` (cap+1, G*H)
    per direction d, the last row the padding row (b_a, written by `tag_block`); strings past
    the cap are computed each time (the first ones, usually the most frequent, stay)."""

    def __init__(self, dirs: int, GH: int, dtype):
        self.index: dict[str, int] = {}
        self.cap = max(1, CACHE_BYTES // (dirs * GH * np.dtype(dtype).itemsize))
        # all of it at once: empty pages cost nothing until written (no copies as it fills)
        self.tabs = [np.zeros((self.cap + 1, GH), dtype) for _ in range(dirs)]

    def __len__(self) -> int:
        return len(self.index)

    def add(self, names: list[str], rows: np.ndarray) -> None:
        """Keep rows (n, dirs, G*H) of `names` while there is room."""
        room = self.cap - len(self.index)
        n = min(room, len(names))
        if n <= 0:
            return
        start = len(self.index)
        for d, tab in enumerate(self.tabs):
            tab[start:start + n] = rows[:n, d]
        for i, name in enumerate(names[:n]):
            self.index[name] = start + i


def prepare(net) -> None:
    """Once per loaded model (its parameters never change): the character encoder's folded
    input tables `net.ctables` (C+1, 4 Hc) per direction, char_emb W_ax^T + b_a, each
    encoder's W_aa^T (`Encoder.frozen_wt`), the word encoder's layer-0 W_ax and b_a stacked."""
    if getattr(net, "ctables", None) is not None:
        return
    p = net.params
    for enc in [net.enc] + net.cencs:
        s = enc.spec
        enc.frozen_wt = {(layer, d): np.ascontiguousarray(p[s.names(layer, d)["W_aa"]].T)
                         for layer in range(s.layers) for d in range(s.dirs)}
    net.ctables = net.cencs[0].fold_tables(p["char_emb"]) if net.cencs else []
    s = net.spec  # layer 0's W_ax and b_a of both directions, stacked: one product (type_rows)
    net.w_ax = np.concatenate([p[s.names(0, d)["W_ax"]] for d in range(s.dirs)])
    net.b_a = np.concatenate([p[s.names(0, d)["b_a"]] for d in range(s.dirs)])


def char_vectors(net, names: list[str], chars) -> np.ndarray:
    """(n, 2 Hc) the character encoder's final states, forward | reverse, of `names` (the same
    values as `TaggerNet.char_vectors`), run over the folded character tables."""
    n, Hc = len(names), net.cfg.char_hidden
    lens = np.fromiter(map(len, names), np.int32, n)
    flat = chars.encode("".join(names))[0].astype(np.int32, copy=False)
    starts = np.zeros(n, np.int64)
    np.cumsum(lens[:-1], out=starts[1:])
    order = np.argsort(-lens, kind="stable")
    slens = lens[order]
    out = np.empty((n, 2 * Hc), net.params.flat.dtype)
    tables = net.ctables
    for g, (a0, z0) in enumerate(char_groups(slens)):
        for a in range(a0, z0, CHAR_LANES):
            z = min(z0, a + CHAR_LANES)
            sel, cl = order[a:z], slens[a:z]
            cx = np.empty((int(cl[0]), z - a), np.int32)
            ragged.fill_lanes(cx, flat, starts, sel, cl)
            enc = net.cencs[g]
            enc.forward(None, cl, ids=cx, tables=tables, states=False)
            out[sel, :Hc], out[sel, Hc:] = enc.final_h[0, 0], enc.final_h[0, 1]
    return out


def type_rows(net, names: list[str], words, chars) -> np.ndarray:
    """(n, dirs, G*H) layer 0's input terms W_ax [emb(word); chars(word)] + b_a of `names`."""
    p, s, E = net.params, net.spec, net.cfg.embed
    lookup, unk, lower = words.index, words.unk_id, words.lower
    X = np.empty((len(names), s.input_size), p.flat.dtype)
    X[:, :E] = p["emb"][np.array([lookup.get(word_key(t, lower), unk) for t in names],
                                 np.int64)]
    if net.cencs:
        X[:, E:] = char_vectors(net, names, chars)
    rows = X @ net.w_ax.T  # (n, dirs*G*H): both directions' products at once
    rows += net.b_a
    return rows.reshape(len(names), s.dirs, -1)


def _block_tables(net, tokens: list[str], words, chars):
    """(tables per direction, (n,) int32 each token's row in them) for the tokens of a block:
    the cache's own tables, the block's new strings added first; when the cache is full, a
    block-local copy of the rows of the block's strings."""
    cache, s, p = net.cache, net.spec, net.params
    get = cache.index.get
    rows = [get(t, -1) for t in tokens]
    new = list(dict.fromkeys(t for t, r in zip(tokens, rows) if r < 0))
    computed = type_rows(net, new, words, chars) if new else None
    if new:
        cache.add(new, computed)
        rows = [get(t, -1) for t in tokens]
    tabs = cache.tabs
    if new and new[-1] not in cache.index:  # full: rows of this block alone
        local = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
        names, fresh = list(local), {t: i for i, t in enumerate(new)}
        tabs = [np.empty((len(names) + 1, tab.shape[1]), tab.dtype) for tab in cache.tabs]
        for i, t in enumerate(names):
            for d, tab in enumerate(tabs):
                tab[i] = computed[fresh[t], d] if t in fresh else cache.tabs[d][cache.index[t]]
        rows = [local[t] for t in tokens]
    for d, tab in enumerate(tabs):
        tab[-1] = p[s.names(0, d)["b_a"]]  # the row of ids < 0 (padding, never read)
    return tabs, np.array(rows, np.int32)


def tag_block(net, sentences, words, chars, probs: bool = False, batch: int = BATCH,
              tokens: int = BATCH_TOKENS):
    """([tag ids (L,) int32 per sentence], [the probability of each chosen tag] or None) of a
    block of sentences (`reader.Sentence`; an empty one gives an empty result), batched by
    length (as `evaluate.run_all`, in smaller batches)."""
    N = len(sentences)
    lengths = np.fromiter((len(s.tokens) for s in sentences), np.int64, N)
    offsets = np.zeros(N + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    paths: list = [np.zeros(0, np.int32)] * N
    chosen: list | None = [np.zeros(0)] * N if probs else None
    if not offsets[-1]:
        return paths, chosen
    prepare(net)
    tabs, rows = _block_tables(net, [t for s in sentences for t in s.tokens], words, chars)
    full = np.flatnonzero(lengths > 0)
    for sub in eval_batches(lengths[full], batch, tokens):
        idx = full[sub]
        lens = lengths[idx].astype(np.int32)
        ids = np.empty((int(lens.max()), idx.shape[0]), np.int32)
        ragged.fill_lanes(ids, rows, offsets, idx, lens)
        em = net.output(net.enc.forward(None, lens, ids=ids, tables=tabs))
        path = net.decode(em, lens)
        P = net.tag_probs(em, lens) if probs else None
        for j, i in enumerate(idx.tolist()):
            L = int(lens[j])
            paths[i] = path[:L, j].copy()
            if P is not None:
                chosen[i] = P[np.arange(L), j, paths[i]]
    return paths, chosen


def cached_scores(net, b) -> np.ndarray:
    """`TaggerNet.scores` of batch b (no dropout) with layer 0's input terms from net.cache."""
    cache, p, enc, cfg = net.cache, net.params, net.enc, net.cfg
    s = net.spec
    U = len(b.names)
    idx = np.fromiter((cache.index.get(n, -1) for n in b.names), np.int64, U)
    tables = [net.mem.view(f"fold{d}", (U + 1, cache.tabs[0].shape[1])) for d in range(s.dirs)]
    miss = np.flatnonzero(idx < 0)
    if miss.size:
        E = cfg.embed
        X = np.empty((miss.size, s.input_size), p.flat.dtype)  # [emb(word); chars(word)]
        X[:, :E] = p["emb"][b.uw[miss]]
        if net.cencs:
            X[:, E:] = net.char_vectors(np.ascontiguousarray(b.cx[:, miss]), b.clens[miss])
        rows = np.empty((miss.size, s.dirs, cache.tabs[0].shape[1]), p.flat.dtype)
        for d in range(s.dirs):
            n = s.names(0, d)
            rows[:, d] = p[n["b_a"]]
            rows[:, d] += X @ p[n["W_ax"]].T
            tables[d][miss] = rows[:, d]
        cache.add([b.names[i] for i in miss.tolist()], rows)
    hit = np.flatnonzero(idx >= 0)
    for d in range(s.dirs):
        if hit.size:
            tables[d][hit] = cache.tabs[d][idx[hit]]
        tables[d][U] = p[s.names(0, d)["b_a"]]  # the row of ids < 0 (padding)
    out = enc.forward(None, b.lens, ids=b.slot, tables=tables)
    return net.output(out)
