"""bench/quality.py — rnn-cli's defaults against PyTorch in the same minutes, side by side (issue 11).

One invocation trains, one after the other on this machine:

    shakespeare  (a) `rnn-cli train` with no model or training flags, (b) the torch peer's LSTM H 512
                 and (c) its GRU H 256 (../shared/bench/peers.py, Adam 2e-3, B 32, T 64), each for
                 --minutes, all on the first 90 % of tiny Shakespeare, all scored as ONE stream
                 with the state carried on the last 10 % (`rnn-cli score --total`; the peer's
                 `--eval-streams 1`). Target: ours at least 0.05 nats/char better than the better
                 torch arm.
    ptb          rnn-cli's word defaults (--valid ptb.valid, --test ptb.test) against PyTorch's
                 word_language_model recipe (../shared/bench/wlm_anchor.py), --ptb-minutes each.
                 Target: test perplexity <= 0.95 x torch's.
    names        corpora/names.txt (bundled): --names-seconds of training, 20 sampled names, the
                 share not in the training list (>= 80 %).

    python bench/quality.py                          # the issue's budgets: 3 x 10 + 2 x 30 min
    python bench/quality.py --tasks shakespeare --minutes 0.2 --out /tmp/q.md   # smoke test
    python bench/quality.py --tasks shakespeare --ours "" --ours "--dropout 0.2"  # two of ours

Our run gets `--val-frac 0`, so it trains on exactly the text the peers train on and keeps its
last parameters, as they do (a default run would also hold out 10 % of its input for validation
and keep the best parameters by that). Both sides run with OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE
unset and the same --threads. Run from the project root; raw outputs go to --results.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from speed_proc import gemm_rates  # noqa: E402  (the machine-rate probe speed.py records)

PEER_ARMS = {"torch LSTM H512": ["--cell", "lstm", "--hidden", "512"],
             "torch GRU H256": ["--cell", "gru", "--hidden", "256"]}
SHAKESPEARE_MARGIN = 0.05  # nats/char better than the better torch arm
PTB_RATIO = 0.95  # test perplexity at most this times torch's


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0, help="budget of each Shakespeare run")
    p.add_argument("--ptb-minutes", type=float, default=30.0, help="budget of each PTB run")
    p.add_argument("--names-seconds", type=float, default=8.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tasks", default="shakespeare,ptb,names", help="comma-separated subset")
    p.add_argument("--shared", default=os.path.join("..", "shared"),
                   help="the shared folder holding corpora/ and bench/")
    p.add_argument("--peer-python", default=os.path.join(".venv-bench", "bin", "python"))
    p.add_argument("--python", default=sys.executable, help="interpreter that runs rnn_cli")
    p.add_argument("--ours", action="append", metavar="FLAGS",
                   help="extra rnn-cli train flags of one Shakespeare arm; repeat for several "
                        "arms (default: one arm, no flags: the defaults)")
    p.add_argument("--concurrent", action="store_true",
                   help="start every arm of a task at the same time (give each --threads 1 on "
                        "2 cores): on a machine other work also loads, the arms then share the "
                        "same load, where runs one after the other would not")
    p.add_argument("--ptb-ours", default="", help="extra rnn-cli train flags on PTB (default: none)")
    p.add_argument("--out", default=os.path.join("bench", "QUALITY.md"))
    p.add_argument("--results", default=os.path.join("bench", "results", "quality"))
    return p.parse_args(argv)


def run(cmd, log_path, timeout) -> tuple[int, dict, float]:
    """Run cmd from the project root (OPENBLAS_CORETYPE/L2_SIZE unset); (rc, last JSON, s)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        log.write("$ " + shlex.join(cmd) + "\n")
        log.flush()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log,
                              text=True, timeout=timeout)
    res = {}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            res = json.loads(line)
            break
    return proc.returncode, res, time.perf_counter() - t0


def shown(cmd, tmp) -> str:
    """The command as a reader reruns it from the project root: no paths of this machine."""
    out = []
    for w in cmd:
        if w.startswith(tmp + os.sep):
            out.append("$DATA/" + os.path.relpath(w, tmp))
            continue
        if os.path.isabs(w) and w.startswith(ROOT + os.sep):
            w = os.path.relpath(w, ROOT)
        out.append(shlex.quote(w))
    return " ".join(out)


def ours_cmd(a, *args) -> list[str]:
    return [a.python, "-m", "rnn_cli", *args]


def run_arms(a, arms):
    """Call each arm (a function returning its row), one after the other or all at once."""
    if not a.concurrent:
        return [arm() for arm in arms]
    with concurrent.futures.ThreadPoolExecutor(len(arms)) as pool:
        return list(pool.map(lambda arm: arm(), arms))


def shakespeare(a, tmp, rows, notes):
    corpus = os.path.join(a.shared, "corpora", "tinyshakespeare.txt")
    if not os.path.exists(corpus):
        notes.append(f"tiny Shakespeare skipped: {corpus} is missing")
        return
    with open(corpus, encoding="utf-8") as f:
        text = f.read()
    cut = int(len(text) * 0.9)  # the peer's split: characters, first 90 % / last 10 %
    train, held = os.path.join(tmp, "train90.txt"), os.path.join(tmp, "held10.txt")
    for path, part in ((train, text[:cut]), (held, text[cut:])):
        with open(path, "w", encoding="utf-8") as f:
            f.write(part)
    secs = a.minutes * 60

    def ours(i, flags):
        log = "shakespeare_ours" + (f"{i + 1}" if i else "")
        model = os.path.join(tmp, f"shakespeare{i}.npz")
        cmd = ours_cmd(a, "train", train, "-o", model, "--val-frac", "0", "--max-seconds",
                       f"{secs:g}", "--threads", str(a.threads), "--json", *shlex.split(flags))
        rc, res, _ = run(cmd, os.path.join(a.results, log + ".log"), secs * 3 + 900)
        scmd = ours_cmd(a, "score", "-m", model, "--total", held, "--json", "--threads",
                        str(a.threads))
        rc2, score, _ = run(scmd, os.path.join(a.results, log + "_score.log"), 1800)
        return dict(task="shakespeare", arm="rnn-cli " + (flags or "defaults"), ours=True,
                    rc=rc or rc2,
                    loss=score.get("nats_per_token", score.get("loss")), res=res,
                    cmd=shown(cmd, tmp) + "\n" + shown(scmd, tmp))

    def peer(arm, flags):
        cmd = [a.peer_python, os.path.join(a.shared, "bench", "peers.py"), "--impl", "torch",
               *flags, "--batch", "32", "--seq", "64", "--vocab-file", corpus, "--val-frac", "0.1",
               "--seconds", f"{secs:g}", "--eval-streams", "1", "--threads", str(a.threads)]
        name = arm.replace(" ", "_").lower()
        rc, res, _ = run(cmd, os.path.join(a.results, f"shakespeare_{name}.log"), secs * 3 + 900)
        return dict(task="shakespeare", arm=arm, rc=rc, loss=res.get("val_loss"), res=res,
                    cmd=shown(cmd, tmp))

    rows += run_arms(a, [lambda i=i, flags=flags: ours(i, flags)
                         for i, flags in enumerate(a.ours or [""])]
                     + [lambda arm=arm, flags=flags: peer(arm, flags)
                        for arm, flags in PEER_ARMS.items()])


def ptb(a, tmp, rows, notes):
    folder = os.path.join(a.shared, "corpora", "ptb")
    files = [os.path.join(folder, f"ptb.{s}.txt") for s in ("train", "valid", "test")]
    if not all(os.path.exists(f) for f in files):
        notes.append(f"PTB skipped: {folder}/ptb.{{train,valid,test}}.txt are missing")
        return
    secs = a.ptb_minutes * 60

    def ours():
        cmd = ours_cmd(a, "train", files[0], "-o", os.path.join(tmp, "ptb.npz"), "--level",
                       "word", "--tokenizer", "space", "--vocab-size", "10000", "--valid",
                       files[1], "--test", files[2], "--max-seconds", f"{secs:g}", "--threads",
                       str(a.threads), "--json", *shlex.split(a.ptb_ours))
        rc, res, _ = run(cmd, os.path.join(a.results, "ptb_ours.log"), secs * 3 + 900)
        arm = "rnn-cli word " + ("defaults" if not a.ptb_ours else "defaults + " + a.ptb_ours)
        return dict(task="ptb", arm=arm, rc=rc, ppl=res.get("test_ppl"), res=res,
                    cmd=shown(cmd, tmp))

    def wlm():
        cmd = [a.peer_python, os.path.join(a.shared, "bench", "wlm_anchor.py"), "--data", folder,
               "--minutes", f"{a.ptb_minutes:g}", "--threads", str(a.threads)]
        rc, res, _ = run(cmd, os.path.join(a.results, "ptb_wlm.log"), secs * 3 + 900)
        return dict(task="ptb", arm="torch word_language_model recipe", rc=rc,
                    ppl=res.get("test_ppl"), res=res, cmd=shown(cmd, tmp))

    rows += run_arms(a, [ours, wlm])


def names(a, tmp, rows, notes):
    corpus = os.path.join("corpora", "names.txt")
    model = os.path.join(tmp, "names.npz")
    cmd = ours_cmd(a, "train", corpus, "-o", model, "--max-seconds", f"{a.names_seconds:g}",
                   "--threads", str(a.threads), "--json")
    rc, res, _ = run(cmd, os.path.join(a.results, "names.log"), 600)
    scmd = ours_cmd(a, "sample", "-m", model, "--lines", "20", "--seed", "1")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    out = subprocess.run(scmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    with open(os.path.join(ROOT, corpus), encoding="utf-8") as f:
        known = {line.strip().lower() for line in f if line.strip()}
    drawn = [line.strip() for line in out.stdout.splitlines() if line.strip()][:20]
    novel = [n for n in drawn if n.lower() not in known]
    rows.append(dict(task="names", arm="rnn-cli defaults", rc=rc or out.returncode,
                     novel=100.0 * len(novel) / 20, res=res, samples=", ".join(drawn),
                     cmd=shown(cmd, tmp) + "\n" + shown(scmd, tmp)))


def _speed(res) -> str:
    tok_s = res.get("tokens_per_sec", res.get("tok_s"))
    steps = res.get("steps", res.get("tokens"))
    return f"{tok_s:,.0f} tok/s" + (f", {res['steps']:,} steps" if "steps" in res else "") \
        if tok_s else "–" if steps is None else ""


def write_report(a, rows, notes, started, machine):
    g = machine.get("gemm_gflops", {})
    lines = ["# Quality in the same minutes: rnn-cli's defaults vs PyTorch (bench/quality.py)", "",
             f"Written by `python bench/quality.py` on "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} ({a.threads} thread{'s' if a.threads != 1 else ''} per run; "
             f"tasks {a.tasks}; Shakespeare {a.minutes:g} min, PTB {a.ptb_minutes:g} min per run; "
             f"{(time.time() - started) / 60:.0f} min in all). Machine: 1024³ float32 GEMM "
             f"{g.get('1')} GF/s on 1 thread, {g.get('2')} on 2 (the rate `bench/speed.py` "
             "records). Every figure below was measured in this one invocation, "
             + ("the arms of each task at the same time (`--concurrent`), so they shared "
                "whatever else loaded the machine" if a.concurrent else "one run after the other")
             + f"; compare them with each other, not with another machine's. Load average at "
             f"the start: {machine.get('load', '?')}; at the end: "
             f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}.", ""]
    lines += [f"- {n}" for n in notes] + ([""] if notes else [])
    sh = [r for r in rows if r["task"] == "shakespeare"]
    if sh:
        lines += ["## Tiny Shakespeare: held-out nats/char (last 10 %, one stream)", "",
                  "| arm | held-out | speed |", "|---|---:|---|"]
        lines += [f"| {r['arm']} | {_loss(r.get('loss'))} | {_speed(r['res'])} |" for r in sh]
        peers = [r["loss"] for r in sh if not r.get("ours") and r.get("loss") is not None]
        for r in sh:
            if r.get("ours") and r.get("loss") is not None and peers:
                gap = r["loss"] - min(peers)
                lines += ["", f"{r['arm']} − best torch arm: **{gap:+.3f}** nats/char (target ≤ "
                          f"−{SHAKESPEARE_MARGIN:g}: {'met' if gap <= -SHAKESPEARE_MARGIN else 'not met'})."]
        lines.append("")
    pt = [r for r in rows if r["task"] == "ptb"]
    if pt:
        lines += ["## Penn Treebank: test perplexity", "", "| arm | test ppl | speed |",
                  "|---|---:|---|"]
        lines += [f"| {r['arm']} | {_loss(r.get('ppl'))} | {_speed(r['res'])} |" for r in pt]
        if len(pt) == 2 and all(r.get("ppl") for r in pt):
            ratio = pt[0]["ppl"] / pt[1]["ppl"]
            lines += ["", f"rnn-cli ÷ torch: **{ratio:.3f}** (target ≤ {PTB_RATIO}: "
                      f"{'met' if ratio <= PTB_RATIO else 'not met'})."]
        lines.append("")
    for r in rows:
        if r["task"] == "names":
            lines += ["## Names", "", f"{r['novel']:.0f} % of 20 sampled names are not in the "
                      f"training list (target ≥ 80 %): {r['samples']}", ""]
    lines += ["## Commands", "", "`$DATA/` is the temporary folder holding the 90 / 10 split.", ""]
    for r in rows:
        lines += [f"{r['task']} / {r['arm']} (exit {r['rc']}):", "", "```", r["cmd"], "```", ""]
    with open(a.out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def _loss(v) -> str:
    return "–" if v is None else f"{v:.3f}" if v < 20 else f"{v:.2f}"


def main(argv=None) -> int:
    a = parse_args(argv)
    os.chdir(ROOT)
    os.makedirs(a.results, exist_ok=True)
    machine = {"gemm_gflops": gemm_rates(None),
               "load": " ".join(f"{x:.1f}" for x in os.getloadavg())}
    rows, notes, started = [], [], time.time()
    tasks = [t for t in a.tasks.split(",") if t]
    with tempfile.TemporaryDirectory(prefix="rnn-cli-quality-") as tmp:
        for task in tasks:
            {"shakespeare": shakespeare, "ptb": ptb, "names": names}[task](a, tmp, rows, notes)
            write_report(a, rows, notes, started, machine)  # after each task: partial results
    for n in notes:
        print("quality: " + n, file=sys.stderr)
    print(f"quality: wrote {a.out}", file=sys.stderr)
    return 0 if all(r["rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
