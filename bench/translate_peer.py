#!/usr/bin/env python3
"""The PyTorch peer of rnn-cli's translator, for bench/translate.py: the same network, the same
data (the token ids rnn-cli's reader made, read from an .npz), the same training rules, in
idiomatic PyTorch (CPU), written the way a careful PyTorch user writes it:

    source ids -> nn.Embedding -> dropout -> nn.GRU(bidirectional) over packed sequences
    s0 = tanh(Linear([h_fwd(last); h_bwd(first)]))                    (the bridge)
    keys = Linear(enc states), once per batch            (Bahdanau's W_k h_j; the bentrevett
                                                          notebook recomputes it every step)
    per step: alpha = softmax(v . tanh(keys + W_q s<t-1>)) over the real source positions,
              ctx = sum alpha h, s<t> = nn.GRUCell([e<t>; ctx], s<t-1>)
    after the loop, once for all steps: o = dropout(tanh(Linear([s; ctx; e]))),
              logits = o W_emb^T + b (tied) , nn.CrossEntropyLoss(label_smoothing, ignore pad)
Adam, global-norm clipping, cosine learning rate over the run's seconds, batches by target
length (the same plan rnn-cli's trainer uses: shuffled pools sorted by length).

Decoding: greedy over a batch of sources at once (finished lanes masked); beam search one
source at a time with its K hypotheses as the batch (the usual PyTorch beam search), GNMT length
penalty. Prints one JSON line: training tokens/s, steps, the test outputs (ids), decoding times.

    python translate_peer.py --data ids.npz --seconds 600 --threads 1 --out peer.json
"""
import argparse
import json
import math
import os
import sys
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help=".npz of ids written by bench/translate.py")
    p.add_argument("--out", required=True, help="JSON result file")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seconds", type=float, default=60.0, help="training wall seconds")
    p.add_argument("--steps", type=int, default=0, help="stop after this many steps (0: none)")
    p.add_argument("--embed", type=int, default=256)
    p.add_argument("--hidden", type=int, default=256, help="encoder units per direction")
    p.add_argument("--dec-hidden", type=int, default=512)
    p.add_argument("--attn-size", type=int, default=512)
    p.add_argument("--proj", type=int, default=256)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--length-penalty", type=float, default=1.0)
    p.add_argument("--decode-limit", type=int, default=0, help="decode this many test sources")
    p.add_argument("--decode-batch", type=int, default=128, help="sources a greedy batch")
    p.add_argument("--warmup", type=int, default=0,
                   help="decode this many test sources untimed first (greedy and beam)")
    return p.parse_args(argv)


def main(argv=None):
    a = parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(a.threads)
    import numpy as np
    import torch
    import torch.nn as nn

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    z = np.load(a.data)

    def seqs(name):
        flat, off = z[name + "_ids"], z[name + "_off"]
        return [flat[off[i]:off[i + 1]].astype(np.int64) for i in range(len(off) - 1)]

    train_src, train_tgt = seqs("train_src"), seqs("train_tgt")
    test_src = seqs("test_src")
    if a.decode_limit:
        test_src = test_src[:a.decode_limit]
    Vs, Vt, eos = int(z["V_src"]), int(z["V_tgt"]), int(z["eos_tgt"])
    pad = Vt  # an extra row nobody reads: ignore_index

    class Net(nn.Module):
        def __init__(s):
            super().__init__()
            E, H, Hd, A, P = a.embed, a.hidden, a.dec_hidden, a.attn_size, a.proj
            D = 2 * H
            s.src_emb = nn.Embedding(Vs, E)
            s.rnn = nn.GRU(E, H, bidirectional=True)
            s.bridge = nn.Linear(D, Hd)
            s.W_k = nn.Linear(D, A)
            s.W_q = nn.Linear(Hd, A, bias=False)
            s.v = nn.Linear(A, 1, bias=False)
            s.tgt_emb = nn.Embedding(Vt + 1, E, padding_idx=pad)
            s.cell = nn.GRUCell(E + D, Hd)
            s.proj = nn.Linear(Hd + D + E, P)
            s.out_b = nn.Parameter(torch.zeros(Vt))
            s.drop = nn.Dropout(a.dropout)

        def encode(s, src, src_len):
            e = s.drop(s.src_emb(src))
            packed = nn.utils.rnn.pack_padded_sequence(e, src_len, enforce_sorted=False)
            out, h = s.rnn(packed)
            out, _ = nn.utils.rnn.pad_packed_sequence(out, total_length=src.shape[0])
            s0 = torch.tanh(s.bridge(torch.cat([h[0], h[1]], dim=1)))
            mask = torch.arange(src.shape[0])[:, None] >= src_len[None, :]  # (S, B) padding
            return out, s.W_k(out), mask, s0

        def attend(s, keys, enc, mask, state):
            energy = s.v(torch.tanh(keys + s.W_q(state)[None])).squeeze(2)  # (S, B)
            alpha = torch.softmax(energy.masked_fill(mask, -1e30), dim=0)
            return alpha, (alpha[:, :, None] * enc).sum(0)

        def logits(s, feats):
            o = s.drop(torch.tanh(s.proj(feats)))
            return o @ s.tgt_emb.weight[:Vt].T + s.out_b

        def forward(s, src, src_len, y_in):
            enc, keys, mask, state = s.encode(src, src_len)
            embs = s.drop(s.tgt_emb(y_in))
            feats = []
            for t in range(y_in.shape[0]):
                _, ctx = s.attend(keys, enc, mask, state)
                state = s.cell(torch.cat([embs[t], ctx], 1), state)
                feats.append(torch.cat([state, ctx, embs[t]], 1))
            return s.logits(torch.stack(feats))

        def step(s, y_prev, state, keys, enc, mask):
            e = s.tgt_emb(y_prev)
            alpha, ctx = s.attend(keys, enc, mask, state)
            state = s.cell(torch.cat([e, ctx], 1), state)
            return torch.log_softmax(s.logits(torch.cat([state, ctx, e], 1)), -1), state

    net = Net()
    with torch.no_grad():  # as rnn-cli: the tied embedding and the output bias as nn.Linear(P, V)
        k = 1.0 / math.sqrt(a.proj)
        net.tgt_emb.weight.uniform_(-k, k)
        net.tgt_emb.weight[pad].zero_()
        net.out_b.uniform_(-k, k)
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    loss_fn = nn.CrossEntropyLoss(ignore_index=pad, label_smoothing=a.label_smoothing)

    lengths = np.array([t.shape[0] for t in train_tgt])
    rng = np.random.default_rng(a.seed)

    def epoch_plan():
        order = rng.permutation(len(lengths))
        pool = 50 * a.batch_size
        batches = []
        for i in range(0, len(order), pool):
            part = order[i:i + pool]
            part = part[np.argsort(-lengths[part], kind="stable")]
            batches += [part[j:j + a.batch_size] for j in range(0, len(part), a.batch_size)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def pad_batch(rows):
        out = np.zeros((max(r.shape[0] for r in rows), len(rows)), np.int64)
        for j, r in enumerate(rows):
            out[:r.shape[0], j] = r
        return torch.from_numpy(out)

    def y_out_batch(rows):
        n = max(r.shape[0] for r in rows)
        out = np.full((n, len(rows)), pad, np.int64)
        for j, r in enumerate(rows):
            out[:r.shape[0], j] = r
        return torch.from_numpy(out)

    net.train()
    plan, steps, tokens, t_train, losses = [], 0, 0, 0.0, []
    t_start = time.perf_counter()
    while True:
        elapsed = time.perf_counter() - t_start
        if elapsed >= a.seconds or (a.steps and steps >= a.steps):
            break
        for g in opt.param_groups:
            g["lr"] = a.lr * 0.5 * (1 + math.cos(math.pi * min(elapsed / a.seconds, 1.0)))
        if not plan:
            plan = epoch_plan()
        idx = plan.pop()
        src_rows = [train_src[i] for i in idx]
        tgt_rows = [train_tgt[i] for i in idx]
        t0 = time.perf_counter()
        src = pad_batch(src_rows)
        src_len = torch.tensor([r.shape[0] for r in src_rows])
        y_out = y_out_batch(tgt_rows)
        y_in = torch.cat([torch.full((1, len(idx)), eos), y_out[:-1]])
        opt.zero_grad(set_to_none=True)
        logits = net(src, src_len, y_in)
        loss = loss_fn(logits.reshape(-1, Vt), y_out.reshape(-1))
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), a.clip)
        opt.step()
        t_train += time.perf_counter() - t0
        steps += 1
        tokens += int(sum(r.shape[0] for r in tgt_rows))
        losses.append(loss.item())

    net.eval()
    result = {"impl": "torch", "torch": torch.__version__, "threads": a.threads, "steps": steps,
              "train_tokens": tokens, "train_seconds": t_train,
              "tokens_per_sec": tokens / max(t_train, 1e-9),
              "train_loss_last": float(np.mean(losses[-50:])) if losses else None}
    with torch.no_grad():
        if a.warmup:
            greedy(net, test_src[:a.warmup], eos, pad, torch, np, a.decode_batch)
            [beam(net, s, eos, a.beam, a.length_penalty, torch) for s in test_src[:a.warmup]]
        t0 = time.perf_counter()
        result["greedy"] = greedy(net, test_src, eos, pad, torch, np, a.decode_batch)
        result["greedy_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        result["beam"] = [beam(net, s, eos, a.beam, a.length_penalty, torch) for s in test_src]
        result["beam_seconds"] = time.perf_counter() - t0
    result["sentences"] = len(test_src)
    with open(a.out, "w") as f:
        json.dump(result, f)
    print(json.dumps({k: v for k, v in result.items() if k not in ("greedy", "beam")}))


def greedy(net, sources, eos, pad, torch, np, batch=64):
    """Greedy outputs (id lists without <EOS>) of sources, batched by length, input order."""
    order = sorted(range(len(sources)), key=lambda i: -sources[i].shape[0])
    out = [None] * len(sources)
    for b0 in range(0, len(order), batch):
        idx = order[b0:b0 + batch]
        rows = [sources[i] for i in idx]
        S = max(r.shape[0] for r in rows)
        src = torch.zeros((S, len(rows)), dtype=torch.long)
        for j, r in enumerate(rows):
            src[:r.shape[0], j] = torch.from_numpy(r)
        src_len = torch.tensor([r.shape[0] for r in rows])
        enc, keys, mask, state = net.encode(src, src_len)
        y = torch.full((len(rows),), eos, dtype=torch.long)
        done = torch.zeros(len(rows), dtype=torch.bool)
        toks = []
        for _ in range(2 * S + 10):
            logp, state = net.step(y, state, keys, enc, mask)
            y = logp.argmax(1)
            toks.append(y.masked_fill(done, eos))
            done |= y == eos
            if bool(done.all()):
                break
        toks = torch.stack(toks).T.tolist()
        for j, i in enumerate(idx):
            seq = toks[j]
            out[i] = seq[:seq.index(eos)] if eos in seq else seq
    return out


def beam(net, source, eos, K, alpha, torch):
    """The best hypothesis (ids without <EOS>) of one source: beam search with its K
    hypotheses as the batch, GNMT length penalty ((5 + n) / 6) ** alpha."""
    src = torch.from_numpy(source)[:, None]
    enc, keys, mask, state = net.encode(src, torch.tensor([source.shape[0]]))
    hyps = [([], 0.0)]
    states = state
    finished = []
    limit = 2 * source.shape[0] + 10
    for t in range(limit):
        n = len(hyps)
        y = torch.tensor([h[0][-1] if h[0] else eos for h in hyps])
        logp, new_states = net.step(y, states, keys.expand(-1, n, -1), enc.expand(-1, n, -1),
                                    mask.expand(-1, n))
        scores = torch.tensor([h[1] for h in hyps])[:, None] + logp
        top = torch.topk(scores.reshape(-1), min(K, scores.numel()))
        V = logp.shape[1]
        keep, parents = [], []
        for sc, flat in zip(top.values.tolist(), top.indices.tolist()):
            p, tok = divmod(flat, V)
            if tok == eos or t == limit - 1:
                n_out = t + 1
                finished.append((sc / ((5 + n_out) / 6) ** alpha, hyps[p][0] + ([] if tok == eos
                                                                                 else [tok])))
            else:
                keep.append((hyps[p][0] + [tok], sc))
                parents.append(p)
        if finished and keep:
            best = max(f[0] for f in finished)
            if max(k[1] for k in keep) / ((5 + limit) / 6) ** alpha <= best:
                break
        if not keep:
            break
        hyps, states = keep, new_states[torch.tensor(parents)]
    return max(finished)[1] if finished else hyps[0][0]


if __name__ == "__main__":
    sys.exit(main())
