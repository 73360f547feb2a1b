"""The training matrix of `bench/speed.py`: rnn-cli beside the peers of ../shared/bench
(PyTorch `nn.RNN`/GRU/LSTM and a hand-written NumPy RNN), interleaved config by config, on the
same corpus for the same training seconds. `Setup` finds what the run needs (corpora, the peers'
python, the FLOP limits) and says what is missing; `bench_configs` runs the rounds.

Standard library only.
"""
import json
import os
import shutil
import subprocess

from speed_matrix import (CONFIGS, OURS_TIE, OURS_TRAIN, OURS_WORD_EXTRA, PEER_CHAR_EXTRA,
                          PEER_TRAIN, PEER_WARMUP_S, PEER_WORD_EXTRA, THREADS, arch)
from speed_proc import REPO, cmdline, fmt, last_json, log, peer_env, q, run, show

# ----------------------------------------------------------------------------- set-up
class Setup:
    def __init__(self, a):
        self.shared = os.path.abspath(a.shared or os.path.join(REPO, "..", "shared"))
        self.rnn = os.path.join(REPO, ".venv", "bin", "rnn-cli")
        self.py = os.path.join(REPO, ".venv", "bin", "python")
        self.notes = []
        if not os.access(self.rnn, os.X_OK):
            self.rnn = shutil.which("rnn-cli") or self.rnn
        self.shakespeare = os.path.join(self.shared, "corpora", "tinyshakespeare.txt")
        self.ptb_train = os.path.join(self.shared, "corpora", "ptb", "ptb.train.txt")
        self.ptb_valid = os.path.join(self.shared, "corpora", "ptb", "ptb.valid.txt")
        self.ptb_test = os.path.join(self.shared, "corpora", "ptb", "ptb.test.txt")
        self.peers = os.path.join(self.shared, "bench", "peers.py")
        self.limits_path = os.path.join(self.shared, "bench", "results", "limits.json")
        self.have = {"shakespeare": os.path.isfile(self.shakespeare),
                     "ptb": os.path.isfile(self.ptb_train) and os.path.isfile(self.ptb_valid)}
        if not os.path.isdir(self.shared):
            self.warn(f"../shared not found at {self.shared}: no corpora, no peers, no limits; "
                      "every row that needs them is skipped (give --shared DIR)")
        else:
            if not self.have["shakespeare"]:
                self.warn(f"missing {self.shakespeare}: the tiny-Shakespeare rows are skipped")
            if not self.have["ptb"]:
                self.warn(f"missing {self.ptb_train} or {self.ptb_valid}: the PTB row is skipped")
        self.peer_ok = {"torch": False, "numpy": False}
        self.peer_python = a.peer_python or os.path.join(REPO, ".venv-bench", "bin", "python")
        if a.no_peers:
            self.warn("--no-peers: rnn-cli only")
        elif not os.path.isfile(self.peers):
            self.warn(f"missing {self.peers}: the torch and numpy peer rows are skipped")
        elif not os.access(self.peer_python, os.X_OK):
            self.warn(f"no peer python at {self.peer_python}: the peer rows are skipped "
                      "(create it: python3 -m venv .venv-bench && .venv-bench/bin/pip install "
                      "torch==2.13.0 numpy, or give --peer-python)")
        else:
            for mod in ("torch", "numpy"):
                r = subprocess.run([self.peer_python, "-c", f"import {mod}"], capture_output=True)
                self.peer_ok[mod] = r.returncode == 0
                if r.returncode != 0:
                    self.warn(f"{mod} is not importable by {self.peer_python}: the {mod} peer rows "
                              f"are skipped (.venv-bench/bin/pip install torch==2.13.0 numpy)")
        self.limits = None
        if os.path.isfile(self.limits_path):
            try:
                with open(self.limits_path) as f:
                    self.limits = json.load(f)
            except (OSError, ValueError) as e:
                self.warn(f"cannot read {self.limits_path}: {e}; no % of the FLOP limit")
        else:
            self.warn(f"missing {self.limits_path}: no % of the FLOP limit")

    def warn(self, msg):
        self.notes.append(msg)
        log("speed.py: " + msg)


# ----------------------------------------------------------------------------- data
def word_tokens(path):
    """Tokens as rnn-cli (--tokenizer space) and the peers count them: words + <eos> per line."""
    n = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            w = line.split()
            if w:
                n += len(w) + 1
    return n


def prepare_ptb(s, tmp):
    """rnn-cli has no --val-file: train on ptb.train + ptb.valid with --val-frac = the valid
    share of tokens, so that its validation ids are exactly ptb.valid.txt (as for the peers)."""
    path = os.path.join(tmp, "ptb.train+valid.txt")
    with open(path, "w", encoding="utf-8") as out:
        for src in (s.ptb_train, s.ptb_valid):
            with open(src, encoding="utf-8") as f:
                text = f.read()
            out.write(text if text.endswith("\n") else text + "\n")
    n_tr, n_va = word_tokens(s.ptb_train), word_tokens(s.ptb_valid)
    return path, n_va / (n_tr + n_va), n_tr + n_va, n_va


# ----------------------------------------------------------------------------- the benchmark
def train_ours(s, a, cfg, data, val_frac, tmp, seconds):
    name, corpus, level, H, B, T = cfg[:6]
    model = os.path.join(tmp, f"ours-{name}.npz")
    ar = arch(cfg)
    extra = (OURS_WORD_EXTRA if level == "word" else "") + (" " + OURS_TIE if ar["tie"] else "")
    argv = cmdline(OURS_TRAIN, rnn=q(s.rnn), data=q(data), model=q(model), level=level, H=H, B=B,
                   T=T, threads=THREADS, seconds=f"{seconds + PEER_WARMUP_S:g}",
                   val_frac=f"{val_frac:.9g}", cell=ar["cell"], dropout=0, E=ar["E"],
                   extra=extra)
    r = run(argv, a.timeout)
    j = last_json(r.get("stdout"))
    rec = {"impl": "rnn-cli", "cmd": show(argv), "model": model}
    rec.update({k: r.get(k) for k in ("rc", "wall_s", "maxrss_mb", "error")})
    if j:
        rec.update({k: j.get(k) for k in ("tokens_per_sec", "train_loss", "val_loss", "steps",
                                           "seconds", "V", "H", "B", "T", "threads")})
    elif not r.get("error"):
        rec["error"] = "no JSON line on stdout: " + r.get("stderr_tail", "")[-300:]
    return rec


def train_peer(s, a, impl, cfg, seconds):
    name, corpus, level, H, B, T = cfg[:6]
    data = s.shakespeare if corpus == "shakespeare" else s.ptb_train
    extra = PEER_CHAR_EXTRA if level == "char" else PEER_WORD_EXTRA.format(valid=q(s.ptb_valid))
    ar = arch(cfg)
    argv = cmdline(PEER_TRAIN, peer_env(a), python=q(s.peer_python), peers=q(s.peers),
                   impl=impl, H=H, B=B, T=T,
                   data=q(data), seconds=f"{seconds:g}", threads=THREADS, extra=extra,
                   cell=ar["cell"], E=ar["E"] or H)
    r = run(argv, a.timeout)
    j = last_json(r.get("stdout"))
    rec = {"impl": impl, "cmd": show(argv)}
    rec.update({k: r.get(k) for k in ("rc", "wall_s", "maxrss_mb", "error")})
    if j:
        rec.update({k: j.get(k) for k in ("tokens_per_sec", "train_loss", "val_loss", "steps",
                                           "timed_s", "V", "H", "B", "T", "threads")})
    elif not r.get("error"):
        rec["error"] = "no JSON line on stdout: " + r.get("stderr_tail", "")[-300:]
    return rec


def bench_configs(s, a, tmp, emit):
    rows = []
    ptb = None
    for cfg in CONFIGS:
        name, corpus, level, H, B, T, targets, target_txt = cfg[:8]
        if not selected(a, name):
            continue
        if not s.have[corpus]:
            rows.append({"config": cfg, "skipped": f"corpus {corpus} missing"})
            continue
        if corpus == "ptb":
            if ptb is None:
                ptb = prepare_ptb(s, tmp)
            data, val_frac, n_tokens, n_val = ptb
        else:
            data, val_frac = s.shakespeare, 0.1
            n_tokens = os.path.getsize(data)      # ASCII: one byte per char
        row = {"config": cfg, "n_tokens": n_tokens, "runs": {}}
        log(f"== {name}: {level} H={H} B={B} T={T}, {a.seconds:g} s per run, {a.rounds} round(s)")
        recs = {}
        for rnd in range(a.rounds):  # rnn-cli, torch, numpy, then again: interleaved rounds
            for impl in ("rnn-cli", "torch", "numpy"):
                if impl != "rnn-cli" and (not s.peer_ok[impl] or impl not in arch(cfg)["peers"]):
                    continue
                load = os.getloadavg()[0]
                if impl == "rnn-cli":
                    rec = train_ours(s, a, cfg, data, val_frac, tmp, a.seconds)
                else:
                    rec = train_peer(s, a, impl, cfg, a.seconds)
                rec["loadavg_1m_before"] = round(load, 2)
                rec["round"] = rnd
                recs.setdefault(impl, []).append(rec)
                emit(dict(kind="train", config=name, level=level, **{k: v for k, v in rec.items()
                                                                      if k != "model"}))
                log(f"   {impl:8} " + (f"{rec['tokens_per_sec']:>12,.0f} tok/s  val {fmt(rec.get('val_loss'), 3)}"
                                        f"  RSS {fmt(rec.get('maxrss_mb'))} MB  wall {rec['wall_s']:.1f} s"
                                        f"  load {load:.1f}"
                                        if rec.get("tokens_per_sec") else f"FAILED: {rec.get('error')}"))
        for impl, rs in recs.items():  # the run with the median tok/s stands for the config
            ok = sorted((r for r in rs if r.get("tokens_per_sec")), key=lambda r: r["tokens_per_sec"])
            row["runs"][impl] = ok[(len(ok) - 1) // 2] if ok else rs[0]
            row["runs"][impl]["rounds_tok_s"] = [r.get("tokens_per_sec") for r in rs]
            row["runs"][impl]["rounds_load"] = [r["loadavg_1m_before"] for r in rs]
        rows.append(row)
    return rows


def selected(a, name):
    return not a.only or name in a.only
