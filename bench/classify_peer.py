#!/usr/bin/env python3
"""The PyTorch peer of rnn-cli's classifier (bench/classify.py runs it beside `rnn-cli train`).

The same network as `rnn-cli train --task classify`, in torch's own modules:

    token ids -> nn.Embedding(V, E) -> dropout -> nn.LSTM / nn.GRU / nn.RNN(E, H, bidirectional)
              over packed sequences (no work past a sequence's end) -> pool over time (max, mean
              or each direction's last state) -> dropout -> nn.Linear(F, K) -> cross-entropy

trained with Adam, global gradient-norm clipping and a cosine learning rate over the run's
seconds, on the token ids rnn-cli's reader and vocabulary made (DATA.npz, written by
bench/classify.py: the same examples, the same tokens), batched as rnn-cli batches (each epoch
shuffled, pools of 50 batches sorted by length, the batch order shuffled). Validation after
every epoch; the parameters with the best validation accuracy are kept and measured on the test
set at the end. One JSON line on stdout.

    python classify_peer.py train DATA.npz --seconds 600 --out peer.pt [--cell lstm ...]
    python classify_peer.py predict DATA.npz peer.pt LINES.txt OUT.txt --batch 256

`predict` reads raw `__label__X text` (or plain) lines, drops a leading gold label, splits each
text on whitespace, looks the tokens up in the vocabulary of DATA.npz, runs the model on
batches of lines sorted by length, and writes `label<TAB>probability` per line in input order;
it prints the seconds from the first line read to the last line written. Threads: --threads
(torch.set_num_threads, and the BLAS variables set before torch is imported).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="mode", required=True)
    t = sub.add_parser("train")
    t.add_argument("data")
    t.add_argument("--out", required=True)
    t.add_argument("--seconds", type=float, default=600.0)
    t.add_argument("--epochs", type=float, default=0.0, help="stop after this many (0: time only)")
    t.add_argument("--eval-every", type=int, default=0,
                   help="validate every N steps too (0: at each epoch's end only)")
    pr = sub.add_parser("predict")
    pr.add_argument("data")
    pr.add_argument("model")
    pr.add_argument("lines")
    pr.add_argument("output")
    pr.add_argument("--batch", type=int, default=256)
    for q in (t, pr):
        q.add_argument("--cell", choices=("rnn", "gru", "lstm"), default="lstm")
        q.add_argument("--embed", type=int, default=128)
        q.add_argument("--hidden", type=int, default=128)
        q.add_argument("--layers", type=int, default=1)
        q.add_argument("--bidirectional", type=int, default=1)
        q.add_argument("--pool", choices=("last", "mean", "max"), default="max")
        q.add_argument("--dropout", type=float, default=0.3)
        q.add_argument("--threads", type=int, default=1)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--clip", type=float, default=5.0)
    t.add_argument("--seed", type=int, default=1234)
    return p.parse_args(argv)


args = parse()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

torch.set_num_threads(args.threads)


class Net(nn.Module):
    def __init__(self, V, K, a):
        super().__init__()
        self.emb = nn.Embedding(V, a.embed)
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[a.cell]
        self.rnn = rnn(a.embed, a.hidden, a.layers, dropout=a.dropout if a.layers > 1 else 0.0,
                       bidirectional=bool(a.bidirectional))
        self.drop = nn.Dropout(a.dropout)
        self.out = nn.Linear(a.hidden * (2 if a.bidirectional else 1), K)
        self.pool, self.cell, self.dirs = a.pool, a.cell, 2 if a.bidirectional else 1

    def forward(self, x, lengths):
        """x (T, B) int64 padded, lengths (B,) sorted longest first -> logits (B, K)."""
        e = self.drop(self.emb(x))
        packed = pack_padded_sequence(e, lengths, enforce_sorted=True)
        out, h = self.rnn(packed)
        if self.pool == "last":
            h = h[0] if self.cell == "lstm" else h
            u = torch.cat([h[-self.dirs + d] for d in range(self.dirs)], dim=1)
        else:
            fill = float("-inf") if self.pool == "max" else 0.0
            out, _ = pad_packed_sequence(out, padding_value=fill)
            u = out.max(0).values if self.pool == "max" else \
                out.sum(0) / lengths.to(out.dtype).unsqueeze(1)
        return self.out(self.drop(u))


def split(z, name):
    ids, off, y = z[f"{name}_ids"], z[f"{name}_offsets"], z[f"{name}_y"]
    return [ids[off[i]:off[i + 1]] for i in range(len(off) - 1)], y


def batch(seqs, idx):
    """(x (T, B) padded, lengths) of examples idx sorted longest first."""
    idx = sorted(idx, key=lambda i: -len(seqs[i]))
    lens = torch.tensor([len(seqs[i]) for i in idx])
    x = torch.zeros(int(lens[0]), len(idx), dtype=torch.long)
    for j, i in enumerate(idx):
        x[:len(seqs[i]), j] = torch.from_numpy(seqs[i].astype(np.int64))
    return x, lens, idx


def epoch_batches(lengths, B, rng, pool=50):
    """rnn-cli's batching: shuffle, pools of `pool` batches sorted by length, batches shuffled."""
    order = rng.permutation(len(lengths))
    out = []
    for s in range(0, len(order), B * pool):
        chunk = sorted(order[s:s + B * pool], key=lambda i: -lengths[i])
        out += [chunk[k:k + B] for k in range(0, len(chunk), B)]
    rng.shuffle(out)
    return out


def evaluate(net, seqs, y, B=256):
    net.eval()
    correct, loss, n = 0, 0.0, 0
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    with torch.no_grad():
        for s in range(0, len(order), B):
            x, lens, idx = batch(seqs, order[s:s + B])
            z = net(x, lens)
            gold = torch.from_numpy(y[idx].astype(np.int64))
            known = gold >= 0
            correct += int((z.argmax(1) == gold).sum())
            if known.any():
                loss += float(nn.functional.cross_entropy(z[known], gold[known], reduction="sum"))
            n += len(idx)
    net.train()
    return correct / n, loss / max(n, 1)


def validate(net, va, yva, step, epoch, history, best, best_state):
    """Measure the validation set; (best accuracy, its parameters) so far."""
    acc, vloss = evaluate(net, va, yva)
    history.append({"step": step, "epoch": epoch, "val_accuracy": acc, "val_loss": vloss})
    if acc > best:
        return acc, {k: v.clone() for k, v in net.state_dict().items()}
    return best, best_state


def train(a):
    z = np.load(a.data, allow_pickle=False)
    V, K = int(z["V"]), int(z["K"])
    tr, ytr = split(z, "train")
    va, yva = split(z, "valid")
    te, yte = split(z, "test")
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    net = Net(V, K, a)
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    lengths = np.array([len(s) for s in tr])
    best, best_state, step, examples, tokens, train_time = -1.0, None, 0, 0, 0, 0.0
    epoch, history = 0, []
    t0 = time.perf_counter()
    done = False
    while not done:
        for idx in epoch_batches(lengths, a.batch_size, rng):
            now = time.perf_counter()
            if now - t0 >= a.seconds or (a.epochs and epoch >= a.epochs):
                done = True
                break
            for g in opt.param_groups:
                g["lr"] = a.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (now - t0) / a.seconds)))
            x, lens, order = batch(tr, idx)
            s0 = time.perf_counter()
            loss = nn.functional.cross_entropy(net(x, lens),
                                               torch.from_numpy(ytr[order].astype(np.int64)))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), a.clip)
            opt.step()
            train_time += time.perf_counter() - s0
            step += 1
            examples += len(idx)
            tokens += int(lens.sum())
            if a.eval_every and step % a.eval_every == 0:
                best, best_state = validate(net, va, yva, step, epoch, history, best, best_state)
        else:
            epoch += 1
        best, best_state = validate(net, va, yva, step, epoch, history, best, best_state)
    net.load_state_dict(best_state)
    torch.save(best_state, a.out)
    test_acc, test_loss = evaluate(net, te, yte)
    print(json.dumps({"impl": "torch", "torch": torch.__version__, "threads": a.threads,
                      "steps": step, "epochs": step and examples / len(tr), "examples": examples,
                      "seconds": round(time.perf_counter() - t0, 3),
                      "train_seconds": round(train_time, 3),
                      "examples_per_sec": examples / train_time if train_time else 0.0,
                      "tokens_per_sec": tokens / train_time if train_time else 0.0,
                      "best_val_accuracy": best, "test_accuracy": test_acc,
                      "test_loss": test_loss, "evaluations": len(history),
                      "parameters": sum(p.numel() for p in net.parameters())}))


def predict(a):
    z = np.load(a.data, allow_pickle=False)
    V, K = int(z["V"]), int(z["K"])
    symbols = [str(s) for s in z["symbols"]]
    labels = [str(s) for s in z["labels"]]
    index = {s: i for i, s in enumerate(symbols)}
    unk = index["<UNK>"]
    char, lower = str(z["level"]) == "char", bool(z["lower"])
    net = Net(V, K, a)
    net.load_state_dict(torch.load(a.model))
    net.eval()
    t0 = time.perf_counter()
    with open(a.lines, encoding="utf-8") as f:
        texts = []
        for line in f:
            s = line.strip()
            if s.startswith("__label__"):
                s = s.split(None, 1)[1] if " " in s else ""
            s = s.lower() if lower else s
            toks = list(s) if char else s.split()
            texts.append(np.array([index.get(t, unk) for t in toks] or [unk], np.int64))
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    rows = [None] * len(texts)
    with torch.no_grad():
        for s in range(0, len(order), a.batch):
            x, lens, idx = batch(texts, order[s:s + a.batch])
            p = torch.softmax(net(x, lens), dim=1)
            best = p.max(1)
            for j, i in enumerate(idx):
                rows[i] = f"{labels[int(best.indices[j])]}\t{float(best.values[j]):.6f}\n"
    with open(a.output, "w", encoding="utf-8") as out:
        out.writelines(rows)
    print(json.dumps({"impl": "torch", "lines": len(texts),
                      "seconds": round(time.perf_counter() - t0, 3), "batch": a.batch,
                      "threads": a.threads}))


if __name__ == "__main__":
    (train if args.mode == "train" else predict)(args)
    sys.stdout.flush()
