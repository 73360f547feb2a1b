#!/usr/bin/env python3
"""rnn-cli next to the PyTorch and NumPy peers of ../shared/bench, measured in the same run.

    python bench/speed.py [--seconds 20] [--only NAME ...] [--quick] [--list]

For every training config of the speed issue it runs, interleaved, rnn-cli, then the torch peer,
then the numpy peer (2 threads, the same corpus, the same training seconds), and records tokens/s,
train and validation loss, peak RSS and wall time of each process. Then it measures rnn-cli's
sampling speed, `score` speed (when that command exists), warm start-up to the first sampled
character, `rnn-cli --help` time and peak training memory against the issue's bound, and writes
bench/RESULTS.md (a full run) plus raw JSON lines in bench/results/speed.jsonl.

Standard library only. Every command runs under `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`
(this machine sets both; they slow numpy's BLAS to AVX2 speed) -- for rnn-cli and the peers alike,
in the benchmark only. Nothing here changes the environment of tests or CI.
"""
import argparse
import codecs
import datetime
import json
import os
import platform
import resource  # noqa: F401  (documents that ru_maxrss comes from os.wait4's struct rusage)
import selectors
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import wordspeed  # bench/wordspeed.py: the class softmax and per-line scoring rows (issue 13)

# ----------------------------------------------------------------------------- templates
# Adjust these if rnn-cli's flags change. {rnn} is the rnn-cli executable; every path is quoted.
# --eval-every is huge so that validation runs once, at the end (excluded from tok/s anyway).
OURS_TRAIN = ("{rnn} train {data} -o {model} --level {level} --hidden {H} --batch-size {B} "
              "--seq-len {T} --threads {threads} --max-seconds {seconds} --eval-every 1000000 "
              "--val-frac {val_frac} --json --seed 1 --cell {cell} --dropout {dropout} --embed {E} "
              "{extra}")
OURS_TIE = "--tie-weights"
OURS_WORD_EXTRA = "--tokenizer space --vocab-size 10000 --softmax full"  # the peers' output layer
OURS_SAMPLE = "{rnn} sample -m {model} -n {n} --seed 1 --threads {threads}"
OURS_SCORE = "{rnn} score -m {model} --total --json --threads {threads} {file}"
OURS_BASELINE = ("{rnn} train {data} -o {model} --hidden 8 --batch-size 1 --seq-len 8 "
                 "--steps 1 --threads {threads} --val-frac 0.1 --seed 1 --cell rnn --dropout 0")
PEER_TRAIN = ("{python} {peers} --impl {impl} --cell {cell} --hidden {H} --batch {B} --seq {T} "
              "--vocab-file {data} --seconds {seconds} --threads {threads} --emb {E} {extra}")
PEER_CHAR_EXTRA = "--level char --val-frac 0.1"
PEER_WORD_EXTRA = "--level word --val-file {valid}"
# OMP_WAIT_POLICY=PASSIVE is rnn-cli's own default (kernels/_jit.py), spelled out for its commands.
# The peers run with their own defaults: torch's OpenMP threads spin between regions, which on a
# quiet machine is worth up to 2x its speed (LSTM H 256 --emb 256: 67.6k tok/s, 34.1k passive;
# 2026-12-02). Until then the peers ran passive too, which halved torch on a quiet machine and
# so inflated the ratios. On a shared machine spinning costs torch up to 10x instead (load average
# 7-10 on 2 cores: 200-2,000 tok/s instead of ~20k); --peers-passive gives them our policy there.
ENV_PREFIX = ["env", "-u", "OPENBLAS_CORETYPE", "-u", "OPENBLAS_L2_SIZE", "OMP_WAIT_POLICY=PASSIVE"]
PEER_ENV_PREFIX = ["env", "-u", "OPENBLAS_CORETYPE", "-u", "OPENBLAS_L2_SIZE"]

# The peers train --warmup (default 2 s, untimed) + --seconds; rnn-cli has no separate warm-up
# (its kernel compile is not training), so it gets the same total training wall time.
PEER_WARMUP_S = 2.0
THREADS = 2

# name, corpus, level, H, B, T, targets {peer: minimum ratio}, issue's reference figures[, arch]
# arch (issue 12): cell, embedding width E (0: one-hot; the torch peer always has an embedding,
# H wide unless E says otherwise), tied weights, which peers run (default torch and numpy)
TORCH_ONLY = ("torch",)


def _cells_rows():
    rows = [("H256-B32", "shakespeare", "char", 256, 32, 64, {"torch": 1.5}, "≥ 1.5× torch",
             {"peers": TORCH_ONLY})]
    for H in (128, 256, 512):
        k, txt = (2.0, "≥ 2× torch") if H == 128 else (1.5, "≥ 1.5× torch")
        for cell in ("rnn", "gru", "lstm"):
            rows.append((f"{cell}-E{H}-H{H}", "shakespeare", "char", H, 32, 64, {"torch": k}, txt,
                         {"cell": cell, "E": H, "peers": TORCH_ONLY}))
    rows.append(("ptb-gru-H256-tied", "ptb", "word", 256, 32, 35, {"torch": 1.5}, "≥ 1.5× torch",
                 {"cell": "gru", "E": 256, "tie": True, "peers": TORCH_ONLY}))
    return rows


CONFIGS = [
    ("H128-B32", "shakespeare", "char", 128, 32, 64, {"torch": 2.0, "numpy": 1.5},
     "≥ 2× torch and ≥ 1.5× numpy"),
    ("H128-B1", "shakespeare", "char", 128, 1, 64, {"numpy": 1.5}, "≥ 1.5× numpy"),
    ("H512-B32", "shakespeare", "char", 512, 32, 64, {"torch": 2.0},
     "≥ 2× torch (≈ 50 % of the FLOP limit)"),
    ("H512-B1", "shakespeare", "char", 512, 1, 64, {"numpy": 1.5}, "≥ 1.5× numpy"),
    ("ptb-H256-B32", "ptb", "word", 256, 32, 35, {"numpy": 1.8}, "≥ 1.8× numpy"),
] + _cells_rows()
EXTRAS = ["sample", "sample-modes", "score", "startup", "help", "memory", "softmax", "score-lines"]
# only with --only: one PTB epoch per softmax (~30 min here); equal steps sparse vs dense (~6 min)
OPT_IN = ["softmax-epoch", "sparse-steps"]
# sampling modes (issue 15): name, flags, divisor of --sample-n (a beam of K steps K hypotheses)
SAMPLE_MODES = [("draw", "", 1), ("--top-k 40", "--top-k 40", 1), ("--top-p 0.9", "--top-p 0.9", 1),
                ("--argmax", "--argmax", 1), ("--beam 1", "--beam 1", 1), ("--beam 4", "--beam 4", 4),
                ("--beam 16", "--beam 16", 16)]
QUICK_CONFIGS = ["H128-B32", "H512-B1"]
SAMPLE_TARGETS = {512: 50_000, 128: 300_000}   # chars/s, B=1, streaming to a pipe
SCORE_TARGET = 3.0         # score tok/s ÷ training tok/s of the same model
STARTUP_TARGET_S = 1.0     # warm start-up to the first sampled char
HELP_TARGET_S = 0.3        # `rnn-cli --help`

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def q(s):
    return shlex.quote(str(s))


# ----------------------------------------------------------------------------- processes
def run(argv, timeout, stream=False):
    """Run argv (no shell); returns rc, wall_s, maxrss_mb (this child, from os.wait4), stdout
    (decoded, unless stream), stderr tail; with stream=True stdout is a pipe read here: nchars,
    first_s (seconds to its first byte) and last_s (to its last byte)."""
    err = tempfile.TemporaryFile()
    out = None if stream else tempfile.TemporaryFile()
    t0 = time.perf_counter()
    deadline = t0 + timeout
    try:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=err,
                             stdout=subprocess.PIPE if stream else out)
    except OSError as e:
        return {"rc": None, "error": f"cannot start {argv[0]}: {e}", "wall_s": 0.0}
    rec = {}
    timed_out = False
    if stream:
        dec = codecs.getincrementaldecoder("utf-8")("replace")
        nchars, first, last = 0, None, None
        sel = selectors.DefaultSelector()
        sel.register(p.stdout, selectors.EVENT_READ)
        fd = p.stdout.fileno()
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                timed_out = True
                break
            if not sel.select(timeout=min(left, 1.0)):
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            now = time.perf_counter()
            if first is None:
                first = now - t0
            last = now - t0
            nchars += len(dec.decode(chunk))
        sel.close()
        p.stdout.close()
        rec.update(nchars=nchars, first_s=first, last_s=last)
    while not timed_out:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            timed_out = True
            break
        time.sleep(0.02)
    if timed_out:
        p.kill()
        pid, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)  # reaped here; keeps Popen from waiting again
    err.seek(0)
    rec.update(rc=p.returncode, wall_s=round(wall, 3), maxrss_mb=round(ru.ru_maxrss / 1024, 1),
               stderr_tail=err.read().decode("utf-8", "replace")[-1500:])
    err.close()
    if out is not None:
        out.seek(0)
        rec["stdout"] = out.read().decode("utf-8", "replace")
        out.close()
    if timed_out:
        rec["error"] = f"timed out after {timeout:.0f} s"
    elif rec["rc"] != 0:
        rec["error"] = f"exit status {rec['rc']}: " + rec["stderr_tail"].strip()[-400:]
    return rec


def last_json(stdout):
    for line in reversed((stdout or "").strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def peer_env(a):
    """The peers' environment prefix: their own thread policy unless --peers-passive."""
    return ENV_PREFIX if getattr(a, "peers_passive", False) else PEER_ENV_PREFIX


def cmdline(template, prefix=None, **kw):
    return (prefix or ENV_PREFIX) + shlex.split(" ".join(template.format(**kw).split()))


def show(argv):
    """The command as a reader reruns it from the project root: no paths of this machine (the
    project's own files relative to it, the shared folder as ../shared, temp files as $TMP)."""
    def rel(w):
        w = str(w)
        if not os.path.isabs(w):
            return w
        tmp = tempfile.gettempdir()
        if w.startswith(tmp + os.sep) and os.path.basename(os.path.dirname(w)).startswith("rnn-bench-"):
            return "$TMP/" + os.path.basename(w)
        shared = os.path.abspath(os.path.join(REPO, "..", "shared"))
        for root, shown in ((REPO, ""), (shared, "../shared/")):
            real = os.path.realpath(root)
            for r in {root, real}:
                if w.startswith(r + os.sep):
                    return shown + os.path.relpath(w, r)
        return w
    return " ".join(r if r.startswith("$TMP/") else q(r) for r in map(rel, argv))


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


def versions(s):
    v = {"python": platform.python_version()}
    r = subprocess.run([s.py, "-c", "import numpy, numba; print(numpy.__version__, numba.__version__)"],
                       capture_output=True, text=True)
    if r.returncode == 0:
        v["numpy"], v["numba"] = r.stdout.split()
    r = subprocess.run([s.rnn, "--version"], capture_output=True, text=True)
    v["rnn-cli"] = (r.stdout or r.stderr).strip() or "?"
    if s.peer_ok["torch"] or s.peer_ok["numpy"]:
        r = subprocess.run([s.peer_python, "-c", "import numpy; print(numpy.__version__)\n"
                            "try:\n import torch; print(torch.__version__)\nexcept ImportError:"
                            " print('-')"], capture_output=True, text=True)
        if r.returncode == 0:
            v["peer numpy"], v["torch"] = r.stdout.split()
    try:
        v["git"] = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                                  capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    return v


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"nproc": n, "cpu": model, "kernel": platform.release()}


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


# ----------------------------------------------------------------------------- limits
def arch(cfg):
    """The row's architecture: cell, E, tie, peers (the seed's one-hot RNN by default)."""
    out = {"cell": "rnn", "E": 0, "tie": False, "peers": ("torch", "numpy")}
    out.update(cfg[8] if len(cfg) > 8 else {})
    return out


def flops_per_token(H, V, G=1):
    """Recurrence and output layer, forward and backward (flops.md; G gate blocks per cell)."""
    return 6 * G * H * H + 6 * H * V


def peak_rate(limits, threads):
    """Best float32 1024^3 GEMM rate (numpy or torch) at `threads`, in FLOP/s (flops.md)."""
    if not limits:
        return None
    for ent in limits:
        if ent.get("threads") == threads:
            for g in ent.get("gemm", []):
                if g.get("label", "").replace(" ", "") == "gemm1024^3":
                    return 1e9 * max(g.get("np_float32_gflops") or 0, g.get("torch_float32_gflops") or 0)
    return None


def memory_bound(H, V, B, T, n_tokens):
    """Issue 5: 2 × (parameters + Adam state + one window of activations) + corpus ids, bytes."""
    P = V * H + H * H + H + V * H + V
    act = (T + 1) * B * H * 3 + T * B * V * 2
    return 2 * 4 * (P + 2 * P + act) + 4 * 3 * n_tokens, P


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


def median_run(argv, k, timeout, key="wall_s", **kw):
    rs = [run(argv, timeout, **kw) for _ in range(k)]
    bad = [r for r in rs if r.get("error")]
    if bad:
        return None, bad[0]["error"]
    return statistics.median(r[key] for r in rs if r.get(key) is not None), None


def ensure_model(s, a, tmp, H, rows, emit):
    """The H×B32×T64 model from the matrix if it ran, else a short fresh one."""
    for row in rows:
        c = row["config"]
        if c[2] == "char" and c[3] == H and c[4] == 32 and "runs" in row and \
                arch(c)["cell"] == "rnn" and not arch(c)["E"]:
            r = row["runs"].get("rnn-cli", {})
            if r.get("tokens_per_sec") and os.path.isfile(r.get("model", "")):
                return r["model"], r["tokens_per_sec"]
    cfg = (f"H{H}-B32-sampler", "shakespeare", "char", H, 32, 64)
    rec = train_ours(s, a, cfg, s.shakespeare, 0.01, tmp, a.model_seconds - PEER_WARMUP_S)
    emit(dict(kind="train-for-extras", config=cfg[0], **{k: v for k, v in rec.items() if k != "model"}))
    if rec.get("error") or not os.path.isfile(rec["model"]):
        return None, rec.get("error")
    return rec["model"], rec.get("tokens_per_sec")


def bench_sample_modes(a, s, models, emit):
    """Tokens/s of each sampling mode, measured like `sample` ((n-1) / (wall(n) - wall(1)),
    medians of 3) with n = --sample-n divided by the mode's divisor (beam K: n/K tokens)."""
    recs = []
    for H, (model, _) in models.items():
        for name, flags, div in SAMPLE_MODES:
            if model is None:
                recs.append({"H": H, "mode": name, "error": "no model"})
                continue
            n = max(a.sample_n // div, 200)
            tmpl = OURS_SAMPLE + " " + flags
            argv1 = cmdline(tmpl, rnn=q(s.rnn), model=q(model), n=1, threads=THREADS)
            argvn = cmdline(tmpl, rnn=q(s.rnn), model=q(model), n=n, threads=THREADS)
            run(argv1, a.timeout, stream=True)                       # warm the kernel cache
            w1, e1 = median_run(argv1, 3, a.timeout, stream=True)
            wn, en = median_run(argvn, 3, a.timeout, stream=True)
            rec = {"H": H, "mode": name, "n": n, "cmd": show(argvn)}
            if e1 or en:
                rec["error"] = e1 or en
            elif wn - w1 < 0.5:  # start-up noise on a loaded machine would swamp the difference
                rec["error"] = (f"n={n} ran {wn - w1:.2f} s longer than n=1: too short to "
                                "measure; raise --sample-n")
            else:
                rec.update(wall_n_s=wn, wall_1_s=w1,
                           tokens_per_sec=round((n - 1) / max(wn - w1, 1e-9)))
                log(f"== sample H={H} {name}: {rec['tokens_per_sec']:,} tokens/s "
                    f"(n={n}: {wn:.2f} s, n=1: {w1:.2f} s, medians of 3)")
            if rec.get("error"):
                log(f"== sample H={H} {name}: {rec['error']}")
            recs.append(rec)
            emit(dict(kind="sample-mode", **rec))
    return recs


def bench_extras(s, a, tmp, rows, emit):
    ex = {}
    need_model = any(selected(a, n) for n in ("sample", "sample-modes", "score", "startup"))
    models = {}
    if need_model and s.have["shakespeare"]:
        for H in (512, 128):
            models[H] = ensure_model(s, a, tmp, H, rows, emit)
    elif need_model:
        s.warn("no tiny Shakespeare: sample, score and start-up are skipped")

    if selected(a, "sample"):
        ex["sample"] = []
        for H, (model, _) in models.items():
            if model is None:
                ex["sample"].append({"H": H, "error": "no model: " + str(_)})
                continue
            argv1 = cmdline(OURS_SAMPLE, rnn=q(s.rnn), model=q(model), n=1, threads=THREADS)
            argvn = cmdline(OURS_SAMPLE, rnn=q(s.rnn), model=q(model), n=a.sample_n, threads=THREADS)
            run(argv1, a.timeout, stream=True)                       # warm the kernel cache
            w1, e1 = median_run(argv1, 3, a.timeout, stream=True)
            rns = [run(argvn, a.timeout, stream=True) for _ in range(3)]
            rec = {"H": H, "n": a.sample_n, "cmd": show(argvn), "target": SAMPLE_TARGETS[H]}
            bad = [r for r in rns if r.get("error")]
            if e1 or bad:
                rec["error"] = e1 or bad[0]["error"]
            else:
                rn = sorted(rns, key=lambda r: r["wall_s"])[1]          # the median run
                rec.update(wall_n_s=rn["wall_s"], wall_1_s=w1, chars=rn["nchars"],
                           chars_per_sec=round((a.sample_n - 1) / max(rn["wall_s"] - w1, 1e-9)),
                           stream_chars_per_sec=round((rn["nchars"] - 1) /
                                                      max(rn["last_s"] - rn["first_s"], 1e-9))
                           if rn.get("first_s") is not None and rn["nchars"] > 1 else None,
                           maxrss_mb=rn["maxrss_mb"])
                log(f"== sample H={H}: {rec['chars_per_sec']:,} chars/s "
                    f"(n={a.sample_n}: {rn['wall_s']:.2f} s, n=1: {w1:.2f} s, medians of 3)")
            ex["sample"].append(rec)
            emit(dict(kind="sample", **rec))

    if selected(a, "sample-modes"):
        ex["sample-modes"] = bench_sample_modes(a, s, models, emit)

    if selected(a, "score"):
        r = run([s.rnn, "score", "--help"], 60)
        if r.get("rc") != 0:
            ex["score"] = {"skipped": "`rnn-cli score` does not exist in this build"}
            log("== score: skipped (`rnn-cli score --help` does not exit 0)")
        elif not models:
            ex["score"] = {"skipped": "no model (tiny Shakespeare missing)"}
        else:
            ex["score"] = []
            big = os.path.join(tmp, "score-1MB.txt")
            small = os.path.join(tmp, "score-1KB.txt")
            with open(s.shakespeare, encoding="utf-8") as f:
                text = f.read()
            with open(big, "w", encoding="utf-8") as f:
                f.write(text[:1_000_000])
            with open(small, "w", encoding="utf-8") as f:
                f.write(text[:1_000])
            for H, (model, train_tps) in models.items():
                if model is None:
                    continue
                argvb = cmdline(OURS_SCORE, rnn=q(s.rnn), model=q(model), file=q(big), threads=THREADS)
                argvs = cmdline(OURS_SCORE, rnn=q(s.rnn), model=q(model), file=q(small), threads=THREADS)
                run(argvs, a.timeout)                                  # warm
                ws, es = median_run(argvs, 3, a.timeout)
                rb = run(argvb, a.timeout)
                rec = {"H": H, "cmd": show(argvb), "train_tokens_per_sec": train_tps,
                       "target_ratio": SCORE_TARGET}
                if es or rb.get("error"):
                    rec["error"] = es or rb["error"]
                else:
                    j = last_json(rb.get("stdout")) or {}
                    ntok = j.get("tokens") or 1_000_000
                    tps = (ntok - 1000) / max(rb["wall_s"] - ws, 1e-9)
                    rec.update(tokens=ntok, wall_s=rb["wall_s"], wall_small_s=ws,
                               tokens_per_sec=round(tps), stdout_head=rb["stdout"][:300],
                               ratio=round(tps / train_tps, 2) if train_tps else None)
                    log(f"== score H={H}: {tps:,.0f} tok/s, {fmt(rec['ratio'], 2)}× training")
                ex["score"].append(rec)
                emit(dict(kind="score", **rec))

    if selected(a, "startup"):
        ex["startup"] = []
        for H, (model, _) in models.items():
            if model is None:
                continue
            argv1 = cmdline(OURS_SAMPLE, rnn=q(s.rnn), model=q(model), n=1, threads=THREADS)
            run(argv1, a.timeout, stream=True)                         # the warm run
            rs = [run(argv1, a.timeout, stream=True) for _ in range(5)]
            bad = [r for r in rs if r.get("error") or r.get("first_s") is None]
            rec = {"H": H, "cmd": show(argv1), "target_s": STARTUP_TARGET_S}
            if bad:
                rec["error"] = bad[0].get("error") or "no output"
            else:
                rec.update(first_char_s=round(statistics.median(r["first_s"] for r in rs), 3),
                           exit_s=round(statistics.median(r["wall_s"] for r in rs), 3))
                log(f"== start-up H={H}: first char after {rec['first_char_s']:.3f} s (median of 5)")
            ex["startup"].append(rec)
            emit(dict(kind="startup", **rec))

    if selected(a, "help"):
        argv = ENV_PREFIX + [s.rnn, "--help"]
        run(argv, 60)
        rs = [run(argv, 60) for _ in range(5)]
        rec = {"cmd": show(argv), "target_s": HELP_TARGET_S}
        if any(r.get("error") for r in rs):
            rec["error"] = next(r["error"] for r in rs if r.get("error"))
        else:
            rec["median_s"] = round(statistics.median(r["wall_s"] for r in rs), 3)
            rec["all_s"] = [r["wall_s"] for r in rs]
            log(f"== rnn-cli --help: {rec['median_s']:.3f} s (median of 5)")
        ex["help"] = rec
        emit(dict(kind="help", **rec))

    if selected(a, "memory"):
        tiny = os.path.join(tmp, "tiny.txt")
        if s.have["shakespeare"]:
            with open(s.shakespeare, encoding="utf-8") as f:
                txt = f.read(20_000)
        else:
            txt = ("the quick brown fox jumps over the lazy dog\n" * 500)
        with open(tiny, "w", encoding="utf-8") as f:
            f.write(txt)
        argv = cmdline(OURS_BASELINE, rnn=q(s.rnn), data=q(tiny), model=q(os.path.join(tmp, "base.npz")),
                       threads=THREADS)
        run(argv, a.timeout)                                           # kernels cached
        r = run(argv, a.timeout)
        rec = {"cmd": show(argv), "baseline_rss_mb": r.get("maxrss_mb"), "error": r.get("error")}
        log(f"== baseline RSS of a 1-step rnn-cli train: {fmt(r.get('maxrss_mb'))} MB")
        ex["memory"] = rec
        emit(dict(kind="memory-baseline", **rec))

    me = sys.modules[__name__]  # wordspeed.py uses this module's helpers
    if selected(a, "softmax") and s.have["ptb"]:
        ex["softmax"] = wordspeed.bench_softmax(me, s, a, tmp, emit)
    if selected(a, "score-lines") and s.have["ptb"]:
        ex["score-lines"] = wordspeed.bench_score_lines(me, s, a, tmp, emit, ex.get("softmax"))
    if a.only and "softmax-epoch" in a.only and s.have["ptb"]:
        ex["softmax-epoch"] = wordspeed.bench_epoch(me, s, a, tmp, emit)
    if a.only and "sparse-steps" in a.only and s.have["ptb"]:
        ex["sparse-steps"] = wordspeed.bench_sparse_steps(me, s, a, tmp, emit)
    return ex


# ----------------------------------------------------------------------------- report
def fmt(x, nd=0):
    if x is None:
        return "–"
    if isinstance(x, str):
        return x
    return f"{x:,.{nd}f}"


def ratio(a, b):
    return a / b if a and b else None


def config_table(s, rows, ex):
    rpk = peak_rate(s.limits, THREADS)
    base = (ex.get("memory") or {}).get("baseline_rss_mb")
    L = ["| config | rnn-cli tok/s | torch tok/s | numpy tok/s | ratio vs torch | ratio vs numpy "
         "| target | met? | % of FLOP limit | val loss (ours / torch / numpy) | peak RSS MB (ours / torch / numpy) |",
         "|---|---:|---:|---:|---:|---:|---|---|---:|---|---|"]
    mem, rounds = [], []
    for row in rows:
        name, corpus, level, H, B, T, targets, target_txt = row["config"][:8]
        ar = arch(row["config"])
        emb = f" E{ar['E']}{' tied' if ar['tie'] else ''}" if ar["E"] else ""
        label = (f"char {ar['cell']} H{H}{emb} B{B} T{T}" if level == "char"
                 else f"word {ar['cell']} PTB H{H}{emb} B{B} T{T}")
        if "skipped" in row:
            L.append(f"| {label} | skipped: {row['skipped']} |" + " |" * 9)
            continue
        R = row["runs"]
        tps = {k: R[k].get("tokens_per_sec") for k in R}
        ours = tps.get("rnn-cli")
        rt, rn = ratio(ours, tps.get("torch")), ratio(ours, tps.get("numpy"))
        rr = {"torch": rt, "numpy": rn}
        checks = [(rr[p] is not None and rr[p] >= m, p, m) for p, m in targets.items()]
        if not ours or any(rr[p] is None for p in targets):
            met = "n/a (missing run)"
        else:
            met = "yes" if all(c[0] for c in checks) else "**no** (" + ", ".join(
                f"{rr[p]:.2f}× vs {p} < {m}×" for ok, p, m in checks if not ok) + ")"
        V = R.get("rnn-cli", {}).get("V")
        G = {"rnn": 1, "gru": 3, "lstm": 4}[ar["cell"]]
        lim = rpk / flops_per_token(H, V, G) if rpk and V else None
        pct = f"{100 * ours / lim:.1f}% of {lim:,.0f}" if ours and lim else "–"

        def cell(k, key, nd):
            r = R.get(k)
            if r is None:
                return "skipped"
            return fmt(r.get(key), nd) if r.get(key) is not None else "**failed**"
        L.append(f"| {label} | {cell('rnn-cli', 'tokens_per_sec', 0)} | {cell('torch', 'tokens_per_sec', 0)} | "
                 f"{cell('numpy', 'tokens_per_sec', 0)} | {fmt(rt, 2)}{'×' if rt else ''} | "
                 f"{fmt(rn, 2)}{'×' if rn else ''} | {target_txt} | {met} | {pct} | "
                 f"{cell('rnn-cli', 'val_loss', 3)} / {cell('torch', 'val_loss', 3)} / {cell('numpy', 'val_loss', 3)} | "
                 f"{cell('rnn-cli', 'maxrss_mb', 0)} / {cell('torch', 'maxrss_mb', 0)} / {cell('numpy', 'maxrss_mb', 0)} |")
        if len(R.get("rnn-cli", {}).get("rounds_tok_s") or []) > 1:
            rounds.append(f"- {label}: " + "; ".join(
                f"{k} " + " / ".join(fmt(v) for v in R[k]["rounds_tok_s"]) for k in R)
                + " (load " + " / ".join(f"{v:.1f}" for v in R["rnn-cli"]["rounds_load"]) + ")")
        o = R.get("rnn-cli", {})
        if o.get("maxrss_mb") and V and ar["cell"] == "rnn" and not ar["E"]:
            bound, P = memory_bound(H, V, o.get("B") or B, o.get("T") or T, row["n_tokens"])
            bmb = bound / 2 ** 20
            mem.append((label, P, bmb, o["maxrss_mb"], base))
    if rounds:
        L += ["", "tok/s of every round, in run order (each row above shows the median round; "
              "load = 1-minute load average before rnn-cli's run):", ""] + rounds
    return L, mem


def extras_table(ex, mem):
    L = ["| measurement | value | target | met? |", "|---|---:|---|---|"]
    for rec in ex.get("sample", []):
        tgt = rec["target"]
        if rec.get("error"):
            L.append(f"| sampling H{rec['H']} (chars/s) | **failed**: {rec['error'][:120]} | ≥ {tgt:,} | – |")
        else:
            v = rec["chars_per_sec"]
            L.append(f"| sampling H{rec['H']}, B=1, to a pipe (chars/s = (n−1) ÷ (wall(n={rec['n']:,}) − wall(n=1)), medians of 3) "
                     f"| {v:,} (in-stream {fmt(rec.get('stream_chars_per_sec'))}) | ≥ {tgt:,} | "
                     f"{'yes' if v >= tgt else '**no** (' + format(v / tgt, '.2f') + '× the target)'} |")
    for rec in ex.get("sample-modes", []):
        label = f"sampling H{rec['H']} `{rec['mode']}` (tokens/s, n = {rec.get('n', 0):,}, as above)"
        L.append(f"| {label} | **failed**: {rec['error'][:120]} | – | – |" if rec.get("error") else
                 f"| {label} | {rec['tokens_per_sec']:,} | – | – |")
    sc = ex.get("score")
    if isinstance(sc, dict):
        L.append(f"| `score` forward tok/s ÷ training tok/s | skipped: {sc['skipped']} | ≥ {SCORE_TARGET:g}× | – |")
    elif sc is not None:
        for rec in sc:
            if rec.get("error"):
                L.append(f"| `score` H{rec['H']} | **failed**: {rec['error'][:120]} | ≥ {SCORE_TARGET:g}× | – |")
            else:
                ok = rec["ratio"] is not None and rec["ratio"] >= SCORE_TARGET
                L.append(f"| `score` H{rec['H']} on 1 MB, `--total` (tok/s; ÷ training tok/s "
                         f"{fmt(rec['train_tokens_per_sec'])}) | {rec['tokens_per_sec']:,} ({fmt(rec['ratio'], 2)}×) "
                         f"| ≥ {SCORE_TARGET:g}× | {'yes' if ok else '**no**'} |")
    for rec in ex.get("startup", []):
        if rec.get("error"):
            L.append(f"| warm start-up to the first sampled char, H{rec['H']} | **failed**: {rec['error'][:120]} | < 1 s | – |")
        else:
            v = rec["first_char_s"]
            L.append(f"| warm start-up to the first sampled char, H{rec['H']} (median of 5; exit {rec['exit_s']:.3f} s) "
                     f"| {v:.3f} s | < {STARTUP_TARGET_S:g} s | {'yes' if v < STARTUP_TARGET_S else '**no**'} |")
    h = ex.get("help")
    if h:
        if h.get("error"):
            L.append(f"| `rnn-cli --help` | **failed**: {h['error'][:120]} | < 0.3 s | – |")
        else:
            v = h["median_s"]
            L.append(f"| `rnn-cli --help` (median of 5) | {v:.3f} s | < {HELP_TARGET_S:g} s | "
                     f"{'yes' if v < HELP_TARGET_S else '**no**'} |")
    m = ex.get("memory")
    if m:
        L.append(f"| idle baseline: peak RSS of a 1-step `rnn-cli train` (H=8, 20 kB text) | "
                 f"{fmt(m.get('baseline_rss_mb'))} MB | (subtracted below) | – |")
    L += wordspeed.rows(sys.modules[__name__], ex)
    for label, P, bmb, rss, base in mem:
        sub = rss - base if base else None
        ok = sub is not None and sub <= bmb
        L.append(f"| peak RSS of training, {label} (P = {P:,}) | {rss:,.0f} MB raw ({rss / bmb:.1f}× the bound); "
                 f"{fmt(sub)} MB above the idle baseline ({fmt(sub / bmb if sub is not None else None, 2)}× the bound) "
                 f"| ≤ bound {bmb:,.1f} MB | {'yes' if ok else ('**no**' if sub is not None else '–')} (baseline-subtracted) |")
    return L


def write_md(path, s, a, rows, ex, meta):
    L = ["# rnn-cli speed next to the PyTorch and NumPy peers\n",
         f"Generated by `bench/speed.py` ({'--quick, ' if a.quick else ''}{a.seconds:g} s timed per training run, "
         f"{THREADS} threads) on {meta['date']}. Raw JSON lines: `{os.path.relpath(a.jsonl, REPO)}` "
         f"(run id `{meta['run_id']}`).\n",
         "tok/s = B·T training tokens per optimizer step (forward + backward + clip + update) per second of "
         "step time, the peers' definition; kernel compile, evaluation and data loading excluded. Every "
         "implementation trains for the same wall time (the peers: 2 s untimed warm-up + the timed seconds; "
         f"rnn-cli: `--max-seconds` = both), then evaluates once. Ratios = rnn-cli tok/s ÷ peer tok/s, both "
         "measured in this run, one after the other (rnn-cli, torch, numpy per config; with --rounds, the "
         "median of interleaved rounds). % of FLOP limit = "
         "rnn-cli tok/s ÷ (best 1024³ float32 GEMM rate at 2 threads from `../shared/bench/results/limits.json` "
         "÷ (6H² + 6HV) FLOPs per token), as in `../shared/bench/flops.md`. Losses in nats per token "
         "(char: last 10 % of tiny Shakespeare; PTB: ptb.valid.txt). Train losses (the mean of the last 50 "
         "steps, for rnn-cli and the peers alike) are in the JSON lines. The limits.json GEMM rate is the "
         "reference machine's; this machine's own 1024³ float32 GEMM rate is printed under Machine, and the "
         "% of *this* machine's limit is that column times the ratio of the two rates.\n"]
    if rows:
        t, mem = config_table(s, rows, ex)
        L += ["## Training throughput\n"] + t + [""]
    else:
        mem = []
    xt = extras_table(ex, mem)
    if len(xt) > 2:
        L += ["## Sampling, scoring, start-up, memory\n"] + xt + [""]
        if mem:
            L.append("Memory bound (issue 5) = 2 × (parameters P + Adam state 2P + one window of activations "
                     "(T+1)·B·H·3 + T·B·V·2) × 4 bytes + corpus ids 4 bytes × 3 copies; P = 2VH + H² + H + V. "
                     "The idle baseline is the peak RSS of `rnn-cli train` for one step of an H=8 model on a "
                     f"20 kB text: {fmt((ex.get('memory') or {}).get('baseline_rss_mb'))} MB "
                     "(Python + numpy + numba + the cached kernels).\n")
    if s.notes:
        L += ["## Skipped / warnings\n"] + [f"- {n}" for n in s.notes] + [""]
    m, v = meta["machine"], meta["versions"]
    L += ["## Machine and versions\n",
          f"- date: {meta['date']}; load average (1 min) at start {meta['load_start']:.2f}, at end "
          f"{meta['load_end']:.2f} (other work on the machine lowers every figure; the peers ran beside "
          "rnn-cli, so the ratios are the robust numbers)",
          f"- machine: {m['nproc']} CPUs available, {m['cpu']}, Linux {m['kernel']}; 1024³ float32 GEMM "
          f"(numpy's OpenBLAS) {fmt((m.get('gemm_gflops') or {}).get('1'))} GF/s on 1 thread, "
          f"{fmt((m.get('gemm_gflops') or {}).get('2'))} GF/s on 2",
          "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
          f"- environment: rnn-cli's commands are prefixed with `{' '.join(ENV_PREFIX)}`, the "
          f"peers' with `{' '.join(meta.get('peer_env') or ENV_PREFIX)}`", ""]
    cmds = []
    for row in rows:
        for k, r in row.get("runs", {}).items():
            cmds.append(r["cmd"])
    for k in ("sample", "sample-modes", "score", "startup"):
        if isinstance(ex.get(k), list):
            cmds += [r["cmd"] for r in ex[k] if r.get("cmd")]
    for k in ("help", "memory"):
        if ex.get(k):
            cmds.append(ex[k]["cmd"])
    for o in (ex.get("softmax") or {}).values():
        cmds += o.get("cmds", [])[:1]
    cmds += [r["cmd"] for r in ex.get("score-lines") or [] if r.get("cmd")]
    cmds += [r["cmd"] for r in (ex.get("softmax-epoch") or {}).values() if r.get("cmd")]
    cmds += [r[k] for r in ex.get("sparse-steps") or [] for k in ("sparse_cmd", "dense_cmd")]
    if cmds:
        L += ["## Exact commands\n", "Temporary paths (`$TMP/`, a `rnn-bench-*` folder of the system temp dir) are deleted at the end; the "
              "PTB file for rnn-cli is ptb.train.txt + ptb.valid.txt with `--val-frac` = the valid share of "
              "tokens, so its validation set is exactly ptb.valid.txt.\n", "```"] + cmds + ["```", ""]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(L))
    log(f"speed.py: wrote {os.path.relpath(path, os.getcwd())}")


# ----------------------------------------------------------------------------- main
GEMM_PROBE = ("import numpy as np, time\n"
              "a = np.random.rand(1024, 1024).astype(np.float32); c = np.empty_like(a)\n"
              "np.matmul(a, a, out=c); best = 1e9\n"
              "for _ in range(5):\n"
              "    t = time.perf_counter(); np.matmul(a, a, out=c); best = min(best, time.perf_counter() - t)\n"
              "print(2 * 1024 ** 3 / best / 1e9)\n")


def gemm_rates(s) -> dict:
    """This machine's 1024³ float32 GEMM rate (numpy's OpenBLAS) at 1 and 2 threads, in GF/s."""
    out = {}
    for th in (1, 2):
        env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
        env.update(OPENBLAS_NUM_THREADS=str(th), OMP_NUM_THREADS=str(th))
        try:
            r = subprocess.run([sys.executable, "-c", GEMM_PROBE], env=env, capture_output=True,
                               text=True, timeout=120)
            out[str(th)] = round(float(r.stdout.strip()), 1)
        except (subprocess.SubprocessError, ValueError):
            out[str(th)] = None
    return out


def main(argv=None):
    names = [c[0] for c in CONFIGS] + EXTRAS + OPT_IN
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=None,
                    help="timed training seconds per run (default 20; 3 with --quick)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run each config's implementations this many times, interleaved, and "
                         "report the run with the median tok/s (default 1)")
    ap.add_argument("--only", nargs="+", metavar="NAME", choices=names,
                    help="run only these: " + ", ".join(names))
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke test: 3 s runs of {' and '.join(QUICK_CONFIGS)}, short extras; "
                         "writes bench/results/quick.md, never RESULTS.md")
    ap.add_argument("--list", action="store_true", help="print the config names and exit")
    ap.add_argument("--shared", default=None, help="the shared folder (default: ../shared of the repo)")
    ap.add_argument("--peer-python", default=None,
                    help="python with torch==2.13.0 and numpy (default: .venv-bench/bin/python)")
    ap.add_argument("--no-peers", action="store_true", help="rnn-cli only")
    ap.add_argument("--peers-passive", action="store_true",
                    help="run the peers with OMP_WAIT_POLICY=PASSIVE too (a shared machine: "
                         "spinning threads cost torch up to 10x there); default: their own policy")
    ap.add_argument("--sample-n", type=int, default=None, help="chars to sample (default 200000; 20000 --quick)")
    ap.add_argument("--model-seconds", type=float, default=None,
                    help="training seconds of a model made only for sample/score/start-up (default 5; 3 --quick)")
    ap.add_argument("--timeout", type=float, default=None, help="per command (default 3 × seconds + 300)")
    ap.add_argument("--out", default=None,
                    help="Markdown output (default bench/RESULTS.md for a full run, "
                         "bench/results/partial.md with --only, bench/results/quick.md with --quick)")
    ap.add_argument("--jsonl", default=None,
                    help="raw JSON lines, appended (default bench/results/speed.jsonl; speed-quick.jsonl with --quick)")
    a = ap.parse_args(argv)
    if a.list:
        print("\n".join(names))
        return 0
    if a.quick:
        a.only = a.only or QUICK_CONFIGS + EXTRAS
    a.seconds = a.seconds if a.seconds is not None else (3.0 if a.quick else 20.0)
    a.sample_n = a.sample_n or (20_000 if a.quick else 200_000)
    a.model_seconds = a.model_seconds or (3.0 if a.quick else 5.0)
    a.model_seconds = max(a.model_seconds, PEER_WARMUP_S + 1)
    a.timeout = a.timeout or 3 * a.seconds + 300
    res = os.path.join(HERE, "results")
    a.out = a.out or (os.path.join(res, "quick.md") if a.quick else
                      os.path.join(res, "partial.md") if a.only else os.path.join(HERE, "RESULTS.md"))
    a.jsonl = os.path.abspath(a.jsonl or os.path.join(res, "speed-quick.jsonl" if a.quick else "speed.jsonl"))

    s = Setup(a)
    if not os.access(s.rnn, os.X_OK):
        log(f"speed.py: rnn-cli not found at {s.rnn}: run `make venv` first")
        return 2
    now = datetime.datetime.now(datetime.timezone.utc)
    meta = {"date": now.strftime("%Y-%m-%d %H:%M UTC"), "run_id": now.strftime("%Y%m%dT%H%M%SZ"),
            "machine": machine(), "versions": versions(s), "load_start": os.getloadavg()[0],
            "peer_env": peer_env(a)}
    meta["machine"]["gemm_gflops"] = gemm_rates(s)
    os.makedirs(os.path.dirname(a.jsonl), exist_ok=True)

    def emit(rec):
        rec = {"run_id": meta["run_id"], "bench_seconds": a.seconds, **rec}
        rec.pop("stderr_tail", None)
        with open(a.jsonl, "a") as f:
            f.write(json.dumps(rec) + "\n")

    emit({"kind": "meta", "machine": meta["machine"], "versions": meta["versions"],
          "notes": s.notes, "argv": sys.argv[1:]})
    tmp = tempfile.mkdtemp(prefix="rnn-bench-")
    try:
        rows = bench_configs(s, a, tmp, emit)
        ex = bench_extras(s, a, tmp, rows, emit)
        meta["load_end"] = os.getloadavg()[0]
        write_md(a.out, s, a, rows, ex, meta)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
