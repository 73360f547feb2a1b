"""bench/parity.py — equal-token quality against PyTorch with the same network (issue 11).

Trains rnn-cli and the torch peer of ../shared/bench/peers.py with the same architecture, batch,
sequence length, optimizer (Adam 2e-3), clip (global norm 5) and number of steps on the first 90 %
of tiny Shakespeare, scores both as ONE stream with the state carried on the last 10 % (the
protocol of `rnn-cli score --total`; the peer's `--eval-streams 1`), and writes bench/PARITY.md:
one row per arm, size, step count and seed, and the mean gap per arm (rnn-cli minus torch, in
nats/char; negative is better than torch).

    arms   rnn, gru, lstm     each with an H-wide embedding on both sides (--embed H / --emb H)
           rnn-onehot         the seed's one-hot input (W_ax column gather) vs torch's nn.RNN
                              with its H-wide embedding (there is no one-hot nn.RNN)
           lstm-2x-drop0.2    2 layers, dropout 0.2 (embedding output, between layers, output)

    python bench/parity.py                            # the issue's matrix (hours on 2 cores)
    python bench/parity.py --arms rnn lstm --hidden 128 --steps 600 --seeds 1
    python bench/parity.py --steps 20 --hidden 32 --arms rnn --seeds 1 --out /tmp/p.md  # smoke

Runs are independent: `--jobs 2` (default) runs ours and the peer side by side, one thread each,
so both see the same machine. Each finished run is appended to bench/results/parity.jsonl and a
rerun skips what is there (so a long matrix can be stopped and continued); --fresh starts over.
Equal steps make the losses independent of the machine's speed and load; seconds are reported
for information only.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from speed_proc import gemm_rates  # noqa: E402  (the machine-rate probe speed.py records)

# arm -> (ours: cell, embed?, layers, dropout), torch: same cell with its embedding
ARMS = {
    "rnn": ("rnn", True, 1, 0.0),
    "gru": ("gru", True, 1, 0.0),
    "lstm": ("lstm", True, 1, 0.0),
    "rnn-onehot": ("rnn", False, 1, 0.0),
    "lstm-2x-drop0.2": ("lstm", True, 2, 0.2),
}
TARGET = 0.01  # nats/char: every arm within +0.01 of torch, or better
B, T, LR, CLIP, VAL_FRAC = 32, 64, 2e-3, 5.0, 0.1


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    p.add_argument("--hidden", nargs="+", type=int, default=[128, 256])
    p.add_argument("--steps", nargs="+", type=int, default=[600, 3000])
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    p.add_argument("--two-layer-steps", type=int, default=600,
                   help="the 2-layer arm runs at H 256 and this many steps only")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (one thread each)")
    p.add_argument("--corpus", default=os.path.join("..", "shared", "corpora", "tinyshakespeare.txt"))
    p.add_argument("--peer", default=os.path.join("..", "shared", "bench", "peers.py"))
    p.add_argument("--peer-python", default=os.path.join(".venv-bench", "bin", "python"))
    p.add_argument("--python", default=sys.executable, help="interpreter that runs rnn_cli")
    p.add_argument("--results", default=os.path.join("bench", "results", "parity.jsonl"))
    p.add_argument("--out", default=os.path.join("bench", "PARITY.md"))
    p.add_argument("--sides", nargs="+", default=["ours", "torch"], choices=["ours", "torch"],
                   help="run only these sides now (the table pairs what --results holds)")
    p.add_argument("--fresh", action="store_true", help="ignore runs already in --results")
    p.add_argument("--report", action="store_true",
                   help="run nothing: write --out from what --results holds")
    return p.parse_args(argv)


def env_for_bench() -> dict:
    env = dict(os.environ)
    for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # ../shared/bench/README.md: unset both
        env.pop(k, None)
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               NUMBA_NUM_THREADS="1")
    return env


def split_corpus(corpus: str, folder: str) -> tuple[str, str]:
    """The peer's split: the first 90 % of the characters train, the last 10 % are held out."""
    with open(corpus, encoding="utf-8", errors="replace") as f:
        text = f.read()
    cut = int(len(text) * (1.0 - VAL_FRAC))
    paths = os.path.join(folder, "train90.txt"), os.path.join(folder, "held10.txt")
    for path, part in zip(paths, (text[:cut], text[cut:])):
        with open(path, "w", encoding="utf-8") as f:
            f.write(part)
    return paths


def commands(a, arm, H, steps, seed, train, held, model) -> dict[str, list[str]]:
    cell, embed, layers, dropout = ARMS[arm]
    ours = [a.python, "-m", "rnn_cli", "train", train, "--valid", held, "-o", model,
            "--level", "char", "--cell", cell, "--hidden", str(H), "--embed", str(H if embed else 0),
            "--layers", str(layers), "--dropout", str(dropout), "--batch-size", str(B),
            "--seq-len", str(T), "--optim", "adam", "--lr", str(LR), "--clip", str(CLIP),
            "--lr-schedule", "constant", "--steps", str(steps), "--eval-every", str(steps), "--seed", str(seed),
            "--threads", "1", "--json"]
    torch = [a.peer_python, a.peer, "--impl", "torch", "--cell", cell, "--hidden", str(H),
             "--emb", str(H), "--layers", str(layers), "--dropout", str(dropout),
             "--batch", str(B), "--seq", str(T), "--vocab-file", a.corpus,
             "--val-frac", str(VAL_FRAC), "--optim", "adam", "--lr", str(LR), "--clip", str(CLIP),
             "--steps", str(steps), "--eval-streams", "1", "--seed", str(seed), "--threads", "1"]
    return {"ours": ours, "torch": torch}


def run_one(cmd: list[str]) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env_for_bench(), capture_output=True, text=True)
    res = {}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            res = json.loads(line)
            break
    return {"rc": proc.returncode, "val_loss": res.get("val_loss"),
            "train_loss": res.get("train_loss"), "seconds": round(time.perf_counter() - t0, 1),
            "error": proc.stderr.strip().splitlines()[-1] if proc.returncode and proc.stderr else ""}


def matrix(a) -> list[tuple[str, int, int, int]]:
    runs = []
    for arm in a.arms:
        if arm == "lstm-2x-drop0.2":
            runs += [(arm, 256, a.two_layer_steps, s) for s in a.seeds]
            continue
        runs += [(arm, H, n, s) for n in a.steps for H in a.hidden for s in a.seeds]
    return runs


def key(arm, H, steps, seed, side) -> str:
    return f"{arm}/H{H}/{steps}/{seed}/{side}"


def relative(cmd: list[str], tmp: str) -> str:
    """The command as a reader reruns it from the project root (no machine-specific paths)."""
    out = []
    for w in cmd:
        w = w.replace(tmp + os.sep, "$DATA/")
        if os.path.isabs(w) and w.startswith(ROOT + os.sep):
            w = os.path.relpath(w, ROOT)
        elif w == sys.executable:
            w = "python"
        out.append(w if w.startswith("$DATA/") else shlex.quote(w))
    return " ".join(out)


def main(argv=None) -> int:
    a = parse_args(argv)
    os.chdir(ROOT)
    done = {}
    if os.path.exists(a.results) and not a.fresh:
        with open(a.results) as f:
            for line in f:
                r = json.loads(line)
                if r.get("rc") == 0 and r.get("val_loss") is not None:
                    done[r["key"]] = r
    os.makedirs(os.path.dirname(a.results) or ".", exist_ok=True)
    machine = {"gemm_gflops": gemm_rates(None)}
    with tempfile.TemporaryDirectory(prefix="rnn-cli-parity-") as tmp:
        train, held = split_corpus(a.corpus, tmp)
        jobs, wanted, by_cmd = [], [], {r["cmd"]: r for r in done.values()}
        for arm, H, steps, seed in matrix(a):
            model = os.path.join(tmp, f"{arm}-{H}-{steps}-{seed}.npz")
            for side, cmd in commands(a, arm, H, steps, seed, train, held, model).items():
                k = key(arm, H, steps, seed, side)
                meta = dict(arm=arm, H=H, steps=steps, seed=seed, side=side,
                            cmd=relative(cmd, tmp))
                wanted.append((k, meta))
                if k not in done and meta["cmd"] in by_cmd:  # the same run under another arm
                    done[k] = {**by_cmd[meta["cmd"]], "key": k, **meta}
                elif k not in done and side in a.sides and not a.report and all(j[2]["cmd"] != meta["cmd"]
                                                               for j in jobs):
                    jobs.append((k, cmd, meta))
        print(f"parity: {len(jobs)} runs to do, {len(done)} already in {a.results}",
              file=sys.stderr)
        with concurrent.futures.ThreadPoolExecutor(max(1, a.jobs)) as pool, \
                open(a.results, "a") as log:
            futures = {pool.submit(run_one, cmd): (k, meta) for k, cmd, meta in jobs}
            for fut in concurrent.futures.as_completed(futures):
                k, meta = futures[fut]
                r = {"key": k, **meta, **fut.result()}
                log.write(json.dumps(r) + "\n")
                log.flush()
                print(f"parity: {k}: val {r['val_loss']} ({r['seconds']} s){' ' + r['error'] if r['error'] else ''}",
                      file=sys.stderr)
                if r["rc"] == 0:
                    done[k] = r
        by_cmd = {r["cmd"]: r for r in done.values()}
        for k, meta in wanted:  # runs shared by two arms (the torch side of rnn and rnn-onehot)
            if k not in done and meta["cmd"] in by_cmd:
                done[k] = {**by_cmd[meta["cmd"]], "key": k, **meta}
    write_md(a, done, machine)
    print(f"parity: wrote {a.out}", file=sys.stderr)
    return 0


def write_md(a, done: dict, machine: dict) -> None:
    rows, gaps = [], {}
    for arm, H, steps, seed in matrix(a):
        o, t = (done.get(key(arm, H, steps, seed, s)) for s in ("ours", "torch"))
        if not (o and t):
            rows.append(f"| {arm} | {H} | {steps} | {seed} | {_f(t)} | {_f(o)} | – |")
            continue
        gap = o["val_loss"] - t["val_loss"]
        gaps.setdefault((arm, H, steps), []).append(gap)
        rows.append(f"| {arm} | {H} | {steps:,} | {seed} | {t['val_loss']:.4f} | "
                    f"{o['val_loss']:.4f} | {gap:+.4f} |")
    g = machine.get("gemm_gflops", {})
    lines = [
        "# Equal-token quality: rnn-cli vs PyTorch, same network (bench/parity.py)", "",
        f"Written by `python bench/parity.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"machine: 1024³ float32 GEMM {g.get('1')} GF/s on 1 thread, {g.get('2')} on 2 "
        "(the rate `bench/speed.py` records). Equal steps make the losses independent of the "
        "machine's speed and load.", "",
        f"Protocol: tiny Shakespeare (`{a.corpus}`), the first 90 % of its characters trained, the "
        "last 10 % scored as one stream with the state carried (`rnn-cli score --total`, the peer's "
        f"`--eval-streams 1`); B {B}, T {T}, Adam lr {LR:g}, global-norm clip {CLIP:g}, one thread "
        "each, ours and the peer side by side. Loss in nats/char; gap = rnn-cli − torch "
        f"(negative: rnn-cli better). Target: every arm ≤ +{TARGET:g}.", "",
        "## Mean gap per arm", "",
        "| arm | H | steps | seeds | mean gap | target met |", "|---|---:|---:|---:|---:|---|"]
    for (arm, H, steps), gs in gaps.items():
        m = sum(gs) / len(gs)
        lines.append(f"| {arm} | {H} | {steps:,} | {len(gs)} | {m:+.4f} | "
                     f"{'yes' if m <= TARGET else '**no**'} |")
    missing = sum(1 for r in rows if r.endswith("| – |"))
    if missing:
        lines += ["", f"{missing} of the matrix's {len(rows)} pairs are not in `{a.results}` yet "
                  "(– below): `make bench-parity` runs only what is missing."]
    lines += ["", "## Every run", "",
              "| arm | H | steps | seed | torch | rnn-cli | gap |", "|---|---:|---:|---:|---:|---:|---:|",
              *rows, "", "## Commands", "",
              "`$DATA/train90.txt` and `$DATA/held10.txt` are the split written by the script "
              "(a temporary folder); one example per side:", ""]
    for side in ("ours", "torch"):
        ex = next((r for r in done.values() if r["side"] == side), None)
        if ex:
            lines += ["```", ex["cmd"], "```"]
    with open(a.out, "w") as f:
        f.write("\n".join(lines) + "\n")


def _f(r) -> str:
    return f"{r['val_loss']:.4f}" if r else "–"


if __name__ == "__main__":
    sys.exit(main())
