"""What a model file is: one plain dict (for `rnn-cli info` and `info --json`). Never prints.

Everything comes from the validated `checkpoint.Model` plus two small arrays of the file itself
(format version, writing rnn-cli version), which `Model` does not keep.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from rnn_cli.checkpoint import Model
from rnn_cli.config import use_sparse

VOCAB_HEAD = 20  # symbols listed by `info`


def show_symbol(sym: str) -> str:
    """A symbol made visible on one line: newline -> \\n, tab -> \\t, space -> ␣, other
    control characters escaped; words, <UNK> and <EOS> as they are."""
    if len(sym) != 1:
        return sym  # words, <UNK>, <EOS>
    special = {"\n": "\\n", "\t": "\\t", "\r": "\\r", " ": "␣", "\\": "\\\\"}
    if sym in special:
        return special[sym]
    if not sym.isprintable():
        return sym.encode("unicode_escape").decode("ascii")
    return sym


def _num(x):
    """JSON-safe number: nan/inf become None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _file_meta(path: str) -> tuple[int | None, str | None]:
    try:
        with np.load(path, allow_pickle=False) as z:
            version = int(z["format_version"])
            meta = json.loads(str(z["meta"][()]))
        return version, meta.get("rnn_cli_version")
    except Exception:  # load() has validated the file; this is best effort
        return None, None


def describe(model: Model, path: str) -> dict:
    """Everything `info` shows, as JSON-able values (None where unknown or not a number)."""
    cfg, vocab, st, tc = model.cfg, model.vocab, model.state, model.train_cfg
    version, written_by = _file_meta(path)
    train_tokens = st.get("train_tokens")
    tokens = int(st.get("tokens", 0))
    best = _num(st.get("best_val"))
    h = np.asarray(model.history, np.float64).reshape(-1, 4)
    return {
        "path": os.path.abspath(path),
        "file_bytes": os.path.getsize(path),
        "format_version": version,
        "rnn_cli_version": written_by,
        "level": cfg.level,
        "cell": cfg.cell,
        "activation": cfg.activation,
        "hidden": cfg.hidden,
        "layers": cfg.layers,
        "softmax": cfg.softmax,
        "classes": cfg.classes,
        "regularisers": {"dropout": cfg.dropout, "dropout_mask": cfg.dropout_mask,
                         "embed_dropout": cfg.embed_dropout, "weight_drop": cfg.weight_drop},
        "parameters": len(model.params),
        "vocab_size": len(vocab),
        "tokenizer": vocab.tokenizer,
        "lower": vocab.lower,
        "vocab_head": list(vocab.symbols[:VOCAB_HEAD]),
        "corpus": st.get("corpus"),
        "train_tokens": train_tokens,
        "val_tokens": st.get("val_tokens"),
        "unknown_tokens": st.get("unknown_tokens"),
        "steps": int(st.get("step", 0)),
        "tokens_seen": tokens,
        "epochs": tokens / train_tokens if train_tokens else None,
        "train_seconds": _num(st.get("seconds")),
        "best_val_loss": best,
        "best_val_perplexity": math.exp(best) if best is not None else None,
        "best_val_bits_per_char": best / math.log(2) if best is not None and
        cfg.level == "char" else None,
        "resumable": "batches" in st,
        "train_config": {k: v for k, v in vars(tc).items() if k != "extra"},
        "sparse_updates": use_sparse(tc.updates, model.cfg),  # what --updates came to
        "history": [{"step": int(r[0]), "train_loss": _num(r[1]), "val_loss": _num(r[2]),
                     "seconds": _num(r[3])} for r in h],
    }


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def summary_rows(d: dict) -> list[tuple[str, str]]:
    """(key, value) lines of the human `info` table."""
    def f(x, fmt=".4f"):
        return "-" if x is None else format(x, fmt)

    ver = f"format {d['format_version']}" + (f", written by rnn-cli {d['rnn_cli_version']}"
                                              if d["rnn_cli_version"] else "")
    rows = [("model", f"{d['path']} ({_size(d['file_bytes'])}, {ver})"),
            ("level", f"{d['level']} (tokenizer {d['tokenizer']}"
                      f"{', lower-cased' if d['lower'] else ''})"),
            ("network", f"{d['cell']} cell, {d['activation']}, H = {d['hidden']}, "
                        f"L = {d['layers']}" + (f", class softmax (C = {d['classes']})"
                                                if d["softmax"] == "classes" else "")),
            ("parameters", f"{d['parameters']:,}"),
            ("vocabulary", f"V = {d['vocab_size']:,}: " + " ".join(
                show_symbol(s) for s in d["vocab_head"]) + (" …" if d["vocab_size"] >
                                                             len(d["vocab_head"]) else ""))]
    c = d["corpus"]
    if c:
        rows.append(("corpus", f"{c.get('name')}, {c.get('bytes', 0):,} bytes, "
                               f"sha256 {c.get('sha256')}"))
    if d["train_tokens"] is not None:
        rows.append(("data", f"{d['train_tokens']:,} train + {d['val_tokens'] or 0:,} validation "
                             f"tokens, {d['unknown_tokens'] or 0:,} mapped to <UNK>"))
    tc = d["train_config"]
    ep = f" ({d['epochs']:.2f} epochs)" if d["epochs"] is not None else ""
    rows.append(("training", f"{d['steps']:,} steps, {d['tokens_seen']:,} tokens{ep}, "
                             f"{f(d['train_seconds'], '.1f')} s; {tc['optim']} lr {tc['lr']:g}"
                             f"{' (sparse rows)' if d['sparse_updates'] else ''}, "
                             f"B {tc['batch_size']} x T {tc['seq_len']}"
                             + (", resumable" if d["resumable"] else "")))
    best = d["best_val_loss"]
    if best is None:
        rows.append(("best val", "- (no validation recorded)"))
    else:
        bpc = d["best_val_bits_per_char"]
        rows.append(("best val", f"{best:.4f} nats/token, perplexity "
                                 f"{d['best_val_perplexity']:.3f}"
                                 + (f", {bpc:.4f} bits/char" if bpc is not None else "")))
    r = d["regularisers"]
    parts = [f"{r['dropout']:g}, {r['dropout_mask']} masks" if r["dropout"] else "",
             f"embedding rows {r['embed_dropout']:g}" if r["embed_dropout"] else "",
             f"weight drop {r['weight_drop']:g}" if r["weight_drop"] else ""]
    if any(parts):  # (training only: nothing is dropped when the model is used)
        rows.insert(3, ("dropout", "; ".join(p for p in parts if p)))
    return rows
