"""bench/quality.py — held-out quality of rnn-cli against the anchors of ../shared/bench (issue 7).

Runs `rnn-cli train` for a wall-clock budget on each task and writes `bench/QUALITY.md`: the final
and best held-out figures next to the anchors (quoted from ../shared/bench/README.md and read from
../shared/bench/results/ when present), time-to-target from the model file's validation history,
and the exact commands. Raw outputs go to bench/results/quality/ (model files, JSON, logs).

    tasks  shakespeare  ../shared/corpora/tinyshakespeare.txt, last 10 % held out, --cell rnn and
                        the best cell, --minutes each (the issue: 10)
           ptb          ../shared/corpora/ptb, word level: train ptb.train, --valid ptb.valid,
                        --test ptb.test, --ptb-minutes each (the issue: 30), best cell and rnn
           names        corpora/names.txt (bundled), --names-seconds of training (< 10), 20 sampled
                        names, % not in the training list

    python bench/quality.py                      # the issue's budgets: ~2 x 10 + 2 x 30 min + names
    python bench/quality.py --minutes 0.2 --ptb-minutes 0.2 --names-seconds 3   # smoke test

Run from the project root. Time budgets are the trainer's --max-seconds (validation passes run
inside the budget). Missing ../shared/corpora is reported in the table and on stderr, not fatal.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Anchors, quoted from ../shared/bench/README.md ("Reference figures", 2 threads) and the issue.
ANCHORS = {
    "shakespeare": "torch nn.RNN H512 B32 T64 Adam 2e-3, 10 min: best 1.585, final 1.619; "
                   "torch nn.LSTM H512: best 1.504 (at 5 min), final 1.531 nats/char",
    "ptb": "PyTorch word_language_model recipe, 30 min here: valid 100.33, test 95.87; "
           "Kneser-Ney 5-gram 141.2; Mikolov RNNLM 124.7; Zaremba LSTM small 114.5",
    "names": "(no anchor) target: 20 sampled names, >= 80 % not in the training list, < 10 s",
}
TARGETS = {("shakespeare", "best"): 1.45, ("shakespeare", "rnn"): 1.55,
           ("ptb", "best"): 95.0, ("ptb", "rnn"): 141.0}
# Settings per task and arm (override with --config TASK:ARM="FLAGS"). Shakespeare "best" is
# `rnn-cli train`'s own defaults (for 1M characters: GRU, H 256, dropout 0.1), what users get;
# "rnn" is the seed's cell at the anchor's size with a little dropout (torch's RNN H512 overfits).
# PTB "best" is word_language_model's recipe plus weight tying.
CONFIGS = {
    ("shakespeare", "rnn"): ["--cell", "rnn", "--hidden", "512", "--dropout", "0.1"],
    ("shakespeare", "best"): [],
    ("ptb", "rnn"): ["--cell", "rnn", "--hidden", "256", "--embed", "256", "--tie-weights",
                     "--dropout", "0.2", "--optim", "adam", "--lr", "2e-3", "--clip", "5",
                     "--seq-len", "35", "--batch-size", "20", "--lr-decay", "4"],
    ("ptb", "best"): ["--cell", "lstm", "--layers", "2", "--hidden", "200", "--tie-weights",
                      "--dropout", "0.2", "--optim", "sgd", "--lr", "20", "--clip", "0.25",
                      "--seq-len", "35", "--batch-size", "20", "--lr-decay", "4"],
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0, help="training budget per Shakespeare run")
    p.add_argument("--ptb-minutes", type=float, default=30.0, help="training budget per PTB run")
    p.add_argument("--names-seconds", type=float, default=8.0, help="training budget for names")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tasks", default="shakespeare,ptb,names", help="comma-separated subset")
    p.add_argument("--arms", default="best,rnn", help="comma-separated subset of best,rnn")
    p.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"),
                   help="the shared folder holding corpora/ and bench/")
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "QUALITY.md"))
    p.add_argument("--results", default=os.path.join(ROOT, "bench", "results", "quality"))
    p.add_argument("--python", default=sys.executable, help="interpreter that runs rnn_cli")
    p.add_argument("--config", action="append", default=[], metavar='TASK:ARM="FLAGS"',
                   help="replace the train flags of one run, e.g. "
                        "--config 'shakespeare:best=--cell gru --hidden 384'")
    return p.parse_args(argv)


def rnn_cli(args, *cli_args) -> list[str]:
    return [args.python, "-m", "rnn_cli", *cli_args]


def run(cmd, log_path, timeout) -> tuple[int, str, float]:
    """Run cmd from the project root with the thread variables set; (rc, stdout, seconds)."""
    env = dict(os.environ)
    for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # ../shared/bench/README.md: unset them
        env.pop(k, None)
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        log.write("$ " + shlex.join(cmd) + "\n")
        log.flush()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log,
                              text=True, timeout=timeout)
    return proc.returncode, proc.stdout, time.perf_counter() - t0


def last_json(stdout: str) -> dict:
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {}


def history(model_path: str) -> np.ndarray:
    """(N, 4) step, train loss, val loss, seconds from the model file (empty if unreadable)."""
    try:
        with np.load(model_path, allow_pickle=False) as z:
            return np.asarray(z["history"], np.float64).reshape(-1, 4)
    except (OSError, KeyError, ValueError):
        return np.zeros((0, 4))


def time_to(hist: np.ndarray, target: float, ppl: bool) -> str:
    for _, _, val, secs in hist:
        v = math.exp(val) if ppl else val
        if math.isfinite(v) and v < target:
            return f"{secs / 60:.1f} min"
    return "not reached"


def train_task(args, task, arm, corpus, extra, seconds, eval_every) -> dict:
    name = f"{task}_{arm}"
    model = os.path.join(args.results, name + ".npz")
    cmd = rnn_cli(args, "train", corpus, "-o", model, "--max-seconds", f"{seconds:g}",
                  "--threads", str(args.threads), "--eval-every", str(eval_every), "--json",
                  *extra)
    rc, out, wall = run(cmd, os.path.join(args.results, name + ".log"), seconds * 3 + 600)
    res = last_json(out)
    res.update(rc=rc, wall=wall, cmd=shlex.join(cmd), hist=history(model), model=model)
    return res


def shakespeare(args, shared, rows, notes):
    corpus = os.path.join(shared, "corpora", "tinyshakespeare.txt")
    if not os.path.exists(corpus):
        notes.append(f"**tiny Shakespeare skipped: {corpus} is missing** (the shared corpora "
                     "folder is needed; see ../shared/corpora/PROVENANCE.md)")
        return
    for arm in args.arms:
        extra = CONFIGS[("shakespeare", arm)] + ["--val-frac", "0.1"]
        r = train_task(args, "shakespeare", arm, corpus, extra, args.minutes * 60,
                       eval_every=250)
        target = TARGETS[("shakespeare", arm)]
        rows.append(_row("tiny Shakespeare, held-out nats/char", arm, r,
                         r.get("val_loss"), r.get("best_val_loss"), target,
                         time_to(r["hist"], target, False), f"{args.minutes:g} min"))


def ptb(args, shared, rows, notes):
    folder = os.path.join(shared, "corpora", "ptb")
    files = [os.path.join(folder, f"ptb.{s}.txt") for s in ("train", "valid", "test")]
    if not all(os.path.exists(f) for f in files):
        notes.append(f"**PTB skipped: {folder}/ptb.{{train,valid,test}}.txt are missing**")
        return
    for arm in args.arms:
        extra = CONFIGS[("ptb", arm)] + ["--level", "word", "--tokenizer", "space",
                                         "--vocab-size", "10000", "--valid", files[1],
                                         "--test", files[2]]
        r = train_task(args, "ptb", arm, files[0], extra, args.ptb_minutes * 60,
                       eval_every=1300)  # ~ one epoch of PTB at B 20, T 35 (WLM: per epoch)
        target = TARGETS[("ptb", arm)]
        val = r.get("val_loss")
        rows.append(_row("PTB word level, test perplexity", arm, r, r.get("test_ppl"),
                         math.exp(r["best_val_loss"]) if r.get("best_val_loss") else None,
                         target, time_to(r["hist"], target, True), f"{args.ptb_minutes:g} min",
                         best_label="best valid ppl",
                         final_note=f"valid ppl {math.exp(val):.2f}" if val else ""))


def names(args, rows, notes):
    corpus = os.path.join(ROOT, "corpora", "names.txt")
    if not os.path.exists(corpus):
        notes.append(f"**names skipped: {corpus} is missing**")
        return
    model = os.path.join(args.results, "names.npz")
    cmd = rnn_cli(args, "train", corpus, "-o", model, "--max-seconds", f"{args.names_seconds:g}",
                  "--threads", str(args.threads), "--json")
    rc, out, wall = run(cmd, os.path.join(args.results, "names.log"), 600)
    res = last_json(out)
    scmd = rnn_cli(args, "sample", "-m", model, "--lines", "20", "--seed", "1")
    rc2, text, _ = run(scmd, os.path.join(args.results, "names_sample.log"), 600)
    with open(corpus, encoding="utf-8") as f:
        known = {line.strip().lower() for line in f if line.strip()}
    drawn = [line.strip() for line in text.splitlines() if line.strip()][:20]
    novel = [n for n in drawn if n.lower() not in known]
    pct = 100.0 * len(novel) / 20  # a missing or empty line counts as a failure
    res.update(rc=rc or rc2, cmd=shlex.join(cmd) + "\n" + shlex.join(scmd))
    rows.append({"task": "names, % of 20 samples not in the training list", "arm": "default",
                 "final": f"{pct:.0f} % ({len(novel)}/20 novel, {len(drawn)} non-empty)",
                 "best": f"val {res.get('val_loss') or float('nan'):.3f} nats/char, "
                         f"{res.get('seconds', float('nan')):.1f} s",
                 "target": ">= 80 %, < 10 s", "met": "yes" if pct >= 80 and
                 res.get("seconds", 99) < 10 else "no", "ttt": "-",
                 "budget": f"{args.names_seconds:g} s", "speed": _speed(res),
                 "cmd": res["cmd"], "rc": res["rc"], "samples": ", ".join(drawn)})


def _speed(r) -> str:
    return f"{r.get('tokens_per_sec', 0):,.0f} tok/s, {r.get('steps', 0)} steps"


def _row(task, arm, r, final, best, target, ttt, budget, best_label="best", final_note=""):
    fmt = (lambda v: "-" if v is None else f"{v:.3f}" if v < 20 else f"{v:.2f}")
    met = "yes" if final is not None and min(final, best or final) <= target else "no"
    label = " ".join(CONFIGS_LABEL(task, arm)) or "defaults"
    return {"task": task, "arm": f"{arm} ({label})",
            "final": fmt(final) + (f" ({final_note})" if final_note else ""),
            "best": f"{best_label} {fmt(best)}", "target": f"<= {target}", "met": met,
            "ttt": ttt, "budget": budget, "speed": _speed(r), "cmd": r["cmd"], "rc": r["rc"]}


def CONFIGS_LABEL(task, arm):
    key = ("ptb" if task.startswith("PTB") else "shakespeare", arm)
    return CONFIGS[key][:6]


def write_report(args, rows, notes, started):
    lines = ["# QUALITY — rnn-cli on held-out data (issue 7)", "",
             f"Generated by `bench/quality.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
             f" ({args.threads} threads, budgets: Shakespeare {args.minutes:g} min, "
             f"PTB {args.ptb_minutes:g} min, names {args.names_seconds:g} s; "
             f"total {(time.time() - started) / 60:.1f} min). Raw outputs: "
             f"`{os.path.relpath(args.results, ROOT)}/`.", ""]
    lines += [f"- {n}" for n in notes] + ([""] if notes else [])
    lines += ["## Anchors (quoted from ../shared/bench/README.md and results/)", ""]
    lines += [f"- {k}: {v}" for k, v in ANCHORS.items()] + [""]
    lines += ["## Results", "",
              "| task | arm | final | best | target | met | time to target | budget | speed |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['arm']} | {r['final']} | {r['best']} | {r['target']} | "
                     f"{r['met']} | {r['ttt']} | {r['budget']} | {r['speed']} |")
    lines += ["", "Final = the figure of the saved (best-by-validation) model at the end: held-out "
              "nats/char for Shakespeare (the tail 10 %), test perplexity for PTB (best validation "
              "parameters, scored as one stream with the state carried, like `rnn-cli score`). Time to target: first validation pass under the target, from the model "
              "file's history (wall time of the run, evaluation included).", "",
              "## Commands", ""]
    for r in rows:
        lines += [f"{r['task']} / {r['arm']} (exit {r['rc']}):", "", "```", r["cmd"], "```", ""]
        if "samples" in r:
            lines += [f"samples: {r['samples']}", ""]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def main(argv=None) -> int:
    args = parse_args(argv)
    args.arms = [a for a in args.arms.split(",") if a]
    for item in args.config:
        key, _, flags = item.partition("=")
        task, _, arm = key.partition(":")
        if (task, arm) not in CONFIGS:
            sys.exit(f"quality: unknown --config key {key!r} (use one of "
                     f"{', '.join(t + ':' + a for t, a in CONFIGS)})")
        CONFIGS[(task, arm)] = shlex.split(flags)
    tasks = [t for t in args.tasks.split(",") if t]
    os.makedirs(args.results, exist_ok=True)
    shared = os.path.abspath(args.shared)
    rows, notes, started = [], [], time.time()
    if not os.path.isdir(os.path.join(shared, "corpora")):
        notes.append(f"**{os.path.join(shared, 'corpora')} is missing: the tiny Shakespeare and "
                     "PTB tasks cannot run** (pass --shared DIR holding corpora/)")
    if "shakespeare" in tasks:
        shakespeare(args, shared, rows, notes)
    if "ptb" in tasks:
        ptb(args, shared, rows, notes)
    if "names" in tasks:
        names(args, rows, notes)
    write_report(args, rows, notes, started)
    for n in notes:
        print("quality: " + n.replace("**", ""), file=sys.stderr)
    print(f"quality: wrote {os.path.relpath(args.out, ROOT)}", file=sys.stderr)
    return 0 if all(r["rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
