#!/usr/bin/env python3
"""The PyTorch peer of rnn-cli's tagger (bench/tag.py runs it beside ours; torch, CPU).

The same network as `rnn_cli/tasks/tag/model.py`, written the usual PyTorch way:

    char ids -> nn.Embedding -> nn.LSTM (1 layer, bidirectional, packed) over the distinct
    words of the batch -> [final fwd ; final rev]            (Lample et al. 2016)
    [nn.Embedding(word) ; char vector] -> dropout -> nn.LSTM(layers, bidirectional, packed,
    dropout between layers) -> dropout -> nn.Linear -> softmax cross-entropy (mean per token)
    or --crf: a linear-chain CRF (forward algorithm; loss = sum over sentences / tokens)

The same sizes as rnn-cli's defaults (rnn_cli/tasks/tag/options.py), the same data handling
(lower-cased words for the word embedding; words seen once are <UNK>, characters seen once are
<UNK>), the same
batches (pools of 50 batches sorted by length, shuffled), Adam with the same learning rate,
cosine schedule over the time budget, gradient-norm clipping at 5, validation at each epoch's
end keeping the best parameters by the same metric, and the same decoding: Viterbi over the
allowed BIO transitions (with the CRF's learned ones with --crf), each token's best tag for a
tag set without a scheme. Trains for --minutes of wall time (validation included, as ours),
then tags the test file (batched, sorted by length; the median of --passes (3) timed passes) and writes `token gold pred` rows
to --pred for bench/tag.py to score with the same scorer as ours; prints one JSON line.

Threads: --threads sets torch's intra-op threads (and OMP/MKL before the import).
"""

import argparse
import json
import math
import os
import sys
import time
from collections import Counter


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", required=True)
    p.add_argument("--dev", required=True)
    p.add_argument("--test", required=True)
    p.add_argument("--pred", required=True, help="where to write token<TAB>gold<TAB>pred rows")
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--embed", type=int, default=100)
    p.add_argument("--char-embed", type=int, default=50)
    p.add_argument("--char-hidden", type=int, default=100)
    p.add_argument("--dropout", type=float, default=0.33)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lower", action=argparse.BooleanOptionalAction, default=True,
                   help="the word embedding of the lower-cased word (as ours by default)")
    p.add_argument("--crf", action="store_true")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--passes", type=int, default=3, help="tagging passes (the median)")
    p.add_argument("--tag-seconds", type=float, default=0.0,
                   help="keep making passes until this many seconds have gone")
    p.add_argument("--barrier", default=None,
                   help="a path prefix: start tagging when ours is ready too (tag_sync.py)")
    return p.parse_args(argv)


ARGS = parse_args()
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

torch.set_num_threads(ARGS.threads)
FORBIDDEN = -1e4


def read(path):
    sents, toks, tags = [], [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                if toks:
                    sents.append((toks, tags))
                toks, tags = [], []
                continue
            cols = line.split("\t")
            toks.append(cols[0])
            tags.append(cols[-1])
    if toks:
        sents.append((toks, tags))
    return sents


def scheme_mask(tags):
    """(K, K) trans, (K,) start masks of BIO (0 allowed, FORBIDDEN not); None for other sets."""
    if not all(t == "O" or t[:2] in ("B-", "I-") for t in tags):
        return None
    K = len(tags)
    trans, start = torch.zeros(K, K), torch.zeros(K)
    for j, t in enumerate(tags):
        if t.startswith("I-"):
            start[j] = FORBIDDEN
            for i, s in enumerate(tags):
                if s[2:] != t[2:] or s == "O":
                    trans[i, j] = FORBIDDEN
    return trans, start


class Tagger(nn.Module):
    def __init__(self, V, C, K, a, masks):
        super().__init__()
        self.a = a
        self.emb = nn.Embedding(V, a.embed)
        D = a.embed
        if a.char_hidden:
            self.cemb = nn.Embedding(C, a.char_embed)
            self.clstm = nn.LSTM(a.char_embed, a.char_hidden, bidirectional=True)
            D += 2 * a.char_hidden
        self.lstm = nn.LSTM(D, a.hidden, a.layers, bidirectional=True,
                            dropout=a.dropout if a.layers > 1 else 0.0)
        self.drop = nn.Dropout(a.dropout)
        self.out = nn.Linear(2 * a.hidden, K)
        self.masks = masks
        if a.crf:
            self.trans = nn.Parameter(torch.zeros(K, K))
            self.start = nn.Parameter(torch.zeros(K))
            self.end = nn.Parameter(torch.zeros(K))

    def scores(self, x, lens, cx, clens, slot):
        """x (T, B), cx (Tc, U), slot (T, B) -> (T, B, K)."""
        e = self.emb(x)
        if self.a.char_hidden:
            packed = pack_padded_sequence(self.cemb(cx), clens, enforce_sorted=False)
            _, (h, _) = self.clstm(packed)
            cv = torch.cat([h[0], h[1]], dim=1)  # (U, 2 Hc)
            e = torch.cat([e, cv[slot]], dim=2)
        packed = pack_padded_sequence(self.drop(e), lens, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, total_length=x.shape[0])
        return self.out(self.drop(out))

    def tables(self):
        K = self.out.out_features
        tr, st, en = torch.zeros(K, K), torch.zeros(K), torch.zeros(K)
        if self.masks is not None:
            tr, st = self.masks
        if self.a.crf:
            tr, st, en = tr + self.trans, st + self.start, en + self.end
        return tr, st, en

    def crf_nll(self, em, y, mask):
        """sum over sentences of log Z - score(gold); em (T, B, K), mask (T, B) bool."""
        tr, st, en = self.tables()
        T, B, K = em.shape
        alpha = st + em[0]  # (B, K)
        score = st[y[0]] + em[0].gather(1, y[0:1].T).squeeze(1)
        for t in range(1, T):
            m = mask[t]
            nxt = torch.logsumexp(alpha.unsqueeze(2) + tr, dim=1) + em[t]
            alpha = torch.where(m.unsqueeze(1), nxt, alpha)
            step = tr[y[t - 1], y[t]] + em[t].gather(1, y[t:t + 1].T).squeeze(1)
            score = score + step * m
        last = y.gather(0, (mask.sum(0) - 1).unsqueeze(0)).squeeze(0)
        logz = torch.logsumexp(alpha + en, dim=1)
        return (logz - score - en[last]).sum()

    def decode(self, em, lens):
        """Viterbi with the tables (masks; learned with --crf); argmax without any."""
        if self.masks is None and not self.a.crf:
            return em.argmax(2)
        tr, st, en = self.tables()
        T, B, K = em.shape
        mask = torch.arange(T).unsqueeze(1) < lens.unsqueeze(0)
        delta, bps = st + em[0], []
        for t in range(1, T):
            v, bp = (delta.unsqueeze(2) + tr).max(dim=1)
            delta = torch.where(mask[t].unsqueeze(1), v + em[t], delta)
            bps.append(bp)
        best = (delta + en).argmax(1)
        path = torch.zeros(T, B, dtype=torch.long)
        for b in range(B):
            L = int(lens[b])
            k = int(best[b])
            path[L - 1, b] = k
            for t in range(L - 1, 0, -1):
                k = int(bps[t - 1][b, k])
                path[t - 1, b] = k
        return path


def encode(sents, widx, cidx, tidx, lower):
    out = []
    for toks, tags in sents:
        w = [widx.get(t.lower() if lower else t, 0) for t in toks]
        y = [tidx.get(t, -1) for t in tags]
        out.append((toks, w, y))
    return out


def make_batch(items, cidx):
    B = len(items)
    lens = torch.tensor([len(w) for _, w, _ in items])
    T = int(lens.max())
    x = torch.zeros(T, B, dtype=torch.long)
    y = torch.full((T, B), -1, dtype=torch.long)
    words, slot = {}, torch.zeros(T, B, dtype=torch.long)
    for b, (toks, w, t) in enumerate(items):
        x[:len(w), b] = torch.tensor(w)
        y[:len(t), b] = torch.tensor(t)
        for i, tok in enumerate(toks):
            slot[i, b] = words.setdefault(tok, len(words))
    clens = torch.tensor([len(w) for w in words])
    cx = torch.zeros(int(clens.max()), len(words), dtype=torch.long)
    for u, tok in enumerate(words):
        cx[:len(tok), u] = torch.tensor([cidx.get(c, 0) for c in tok])
    return x, lens, cx, clens, slot, y


def batches(lengths, B, rng):
    order = rng.permutation(len(lengths))
    out = []
    for p in range(0, len(order), 50 * B):
        pool = sorted(order[p:p + 50 * B], key=lambda i: -lengths[i])
        out += [pool[i:i + B] for i in range(0, len(pool), B)]
    rng.shuffle(out)
    return out


def main():
    a = ARGS
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    train, dev, test = read(a.train), read(a.dev), read(a.test)
    wc = Counter(t.lower() if a.lower else t for s, _ in train for t in s)
    cc = Counter(c for s, _ in train for t in s for c in t)
    widx = {w: i + 1 for i, w in enumerate(sorted(w for w, n in wc.items() if n >= 2))}
    cidx = {c: i + 1 for i, c in enumerate(sorted(c for c, n in cc.items() if n >= 2))}
    tags = sorted({t for _, ts in train for t in ts})
    tidx = {t: i for i, t in enumerate(tags)}
    chunked = scheme_mask(tags) is not None
    model = Tagger(len(widx) + 1, len(cidx) + 1, len(tags), a, scheme_mask(tags))
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    tr_items, dev_items = encode(train, widx, cidx, tidx, a.lower), encode(dev, widx, cidx,
                                                                             tidx, a.lower)
    budget = a.minutes * 60.0
    t0 = time.perf_counter()
    step, tokens, step_time, best, best_state, epoch = 0, 0, 0.0, -1.0, None, 0
    lengths = [len(w) for _, w, _ in tr_items]
    done = False
    while not done:
        for bidx in batches(lengths, a.batch_size, rng):
            el = time.perf_counter() - t0
            if el >= budget:
                done = True
                break
            ts = time.perf_counter()
            for g in opt.param_groups:
                g["lr"] = a.lr * 0.5 * (1 + math.cos(math.pi * min(el / budget, 1.0)))
            model.train()
            x, lens, cx, clens, slot, y = make_batch([tr_items[i] for i in bidx], cidx)
            em = model.scores(x, lens, cx, clens, slot)
            n = int((y >= 0).sum())
            if a.crf:
                loss = model.crf_nll(em, y.clamp(min=0), y >= 0) / n
            else:
                loss = nn.functional.cross_entropy(em.reshape(-1, em.shape[2]), y.reshape(-1),
                                                   ignore_index=-1)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            step += 1
            tokens += n
            step_time += time.perf_counter() - ts
        else:
            epoch += 1
        value = evaluate(model, dev_items, tags, cidx, chunked)
        if value > best:
            best, best_state = value, {k: v.clone() for k, v in model.state_dict().items()}
    train_seconds = time.perf_counter() - t0
    model.load_state_dict(best_state)
    import tag_sync

    out = []

    def one_pass():  # each from the test file's tokens: as tag_ours.py
        ts = time.perf_counter()
        out.append(tag_all(model, encode(test, widx, cidx, tidx, a.lower), cidx))
        return time.perf_counter() - ts

    tag_sync.wait_for(a.barrier, "peer", "ours")
    runs = tag_sync.passes(one_pass, a.passes, a.tag_seconds)  # the median is reported
    preds = out[-1]
    tag_seconds = sorted(runs)[len(runs) // 2]
    with open(a.pred, "w", encoding="utf-8") as f:
        for (toks, gold), pred in zip(test, preds):
            for tok, g, p in zip(toks, gold, pred):
                f.write(f"{tok}\t{g}\t{tags[p]}\n")
            f.write("\n")
    print(json.dumps({"impl": "torch", "steps": step, "epochs": epoch, "train_tokens": tokens,
                      "train_seconds": round(train_seconds, 2),
                      "tokens_per_sec": round(tokens / step_time, 1),
                      "best_dev": best, "tag_seconds": round(tag_seconds, 3),
                      "sentences_per_sec": round(len(test) / tag_seconds, 1),
                      "tag_passes": [round(t, 3) for t in runs],
                      "threads": torch.get_num_threads(), "torch": torch.__version__}))


@torch.no_grad()
def tag_all(model, items, cidx, B=128):
    model.eval()
    order = sorted(range(len(items)), key=lambda i: -len(items[i][1]))
    preds = [None] * len(items)
    for p in range(0, len(order), B):
        idx = order[p:p + B]
        x, lens, cx, clens, slot, _ = make_batch([items[i] for i in idx], cidx)
        path = model.decode(model.scores(x, lens, cx, clens, slot), lens)
        for b, i in enumerate(idx):
            preds[i] = path[:int(lens[b]), b].tolist()
    return preds


def evaluate(model, items, tags, cidx, chunked):
    """Token accuracy, or entity F1 (exact BIO spans) for a chunk tag set."""
    preds = tag_all(model, items, cidx)
    if not chunked:
        ok = sum(p == g for (_, _, y), pr in zip(items, preds) for p, g in zip(pr, y))
        return ok / sum(len(y) for _, _, y in items)
    c = pg = gg = 0
    for (_, _, y), pr in zip(items, preds):
        gs = spans([tags[k] if k >= 0 else "O" for k in y])
        ps = spans([tags[k] for k in pr])
        c, pg, gg = c + len(gs & ps), pg + len(ps), gg + len(gs)
    p, r = c / max(pg, 1), c / max(gg, 1)
    return 2 * p * r / (p + r) if p + r else 0.0


def spans(seq):
    out, start, typ = set(), None, None
    for i, t in enumerate(seq + ["O"]):
        if start is not None and not (t.startswith("I-") and t[2:] == typ):
            out.add((typ, start, i))
            start = None
        if t.startswith("B-") or (t.startswith("I-") and start is None):
            start, typ = i, t[2:]
    return out


if __name__ == "__main__":
    sys.exit(main())
