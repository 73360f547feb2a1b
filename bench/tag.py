#!/usr/bin/env python3
"""bench/tag.py — the tagger (issue 27) beside a PyTorch peer of the same network; writes
bench/TAG.md (and the raw rows to bench/results/tag.json).

    ud        UD English EWT UPOS (../shared/corpora/ud-ewt-pos): ours and the peer
              (bench/tag_peer.py) trained at the same time for --ud-minutes, 1 thread each;
              test accuracy, training tokens/s, tagging sentences/s
    ud-goal   UD EWT with our defaults alone (no training flags), 2 threads, capped at
              --goal-minutes (20): test accuracy against the goal 94.5 % (UDPipe 1: 94.4)
    wnut      WNUT-17 (ner-wnut17): three pairs of --wnut-minutes each, 1 thread each: the
              default network (softmax, constrained decoding), --crf, and no character encoder
              (--char-hidden 0): test entity F1 beside the shared task's winner (41.86) and
              flair (49.59), both with pretrained resources; ours is from scratch
    speed     tagging speed alone: UD EWT, both arms trained at the same time for
              --speed-minutes (2); then both start tagging the test file together (a barrier,
              bench/tag_sync.py) and each makes passes for --tag-seconds (15; at least
              --tag-passes): the median pass; written as its own section of --out
              ("## Tagging speed"), the other sections kept, the rows to
              bench/results/tag_speed.json

Every pair runs under `flock /work/bench.lock` (fcntl, the same lock), both arms started
together with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset. Both arms count validation inside
their minutes, validate at each epoch's end and keep the best parameters by the dev metric
(accuracy for UPOS, entity F1 for WNUT); the peer's test predictions are scored by our conlleval
scorer (`rnn_cli.tasks.tag.metrics`), which tests/test_tag_metrics.py checks against seqeval.

    make bench-tag                                         # all: ~10 + 20 + 3 x 5 minutes
    python bench/tag.py --peer-python P --runs wnut --wnut-minutes 0.5 --out /tmp/t.md  # smoke
    python bench/tag.py --peer-python P --runs speed                  # ~3 minutes
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from rnn_cli.tasks.tag.metrics import TagScorer  # noqa: E402
from rnn_cli.tasks.tag.tagset import detect_scheme  # noqa: E402

LOCK = "/work/bench.lock"
PEER_PY = os.path.join(ROOT, ".venv-bench", "bin", "python")  # --peer-python
GOAL_UD, UDPIPE1 = 0.945, 0.944
WNUT_WINNER, FLAIR = 0.4186, 0.4959


def env() -> dict:
    e = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    e["PYTHONPATH"] = ROOT
    return e


@contextlib.contextmanager
def bench_lock():
    with open(LOCK, "a") as f:
        t0 = time.time()
        fcntl.flock(f, fcntl.LOCK_EX)
        log(f"lock held (waited {time.time() - t0:.0f} s)")
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def last_json(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no JSON line in:\n{text[-2000:]}")


def corpus(shared: str, name: str) -> dict:
    d = os.path.join(shared, "corpora", name)
    return {k: os.path.join(d, f"{k}.tsv") for k in ("train", "dev", "test")}


TAG_PASSES = 3  # tagging passes of each arm (the median is reported); --tag-passes
SYNC: list[str] = []  # --runs speed: the arms start tagging together, for the same seconds


def ours_cmd(c, tmp, tag, seconds, threads, opts):
    return [sys.executable, os.path.join(ROOT, "bench", "tag_ours.py"), "--train", c["train"],
            "--dev", c["dev"], "--test", c["test"], "--out", os.path.join(tmp, tag + ".npz"),
            "--seconds", str(seconds), "--threads", str(threads), "--opts", json.dumps(opts),
            "--passes", str(TAG_PASSES), *SYNC]


def peer_cmd(c, tmp, tag, minutes, args):
    return [PEER_PY, os.path.join(ROOT, "bench", "tag_peer.py"), "--train", c["train"], "--dev",
            c["dev"], "--test", c["test"], "--pred", os.path.join(tmp, tag + ".pred"),
            "--minutes", str(minutes), "--threads", "1", "--passes", str(TAG_PASSES), *SYNC,
            *args]


def run_together(cmds: dict) -> dict:
    """Start every command at once (under the lock), wait for all; {name: JSON result}."""
    procs = {}
    with bench_lock():
        load0 = os.getloadavg()[0]
        for name, cmd in cmds.items():
            log("start", name, " ".join(cmd[1:3]))
            procs[name] = subprocess.Popen(cmd, env=env(), cwd=ROOT, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True)
        outs = {name: p.communicate() for name, p in procs.items()}
        load1 = os.getloadavg()[0]
    res = {}
    for name, (out, err) in outs.items():
        if procs[name].returncode:
            raise RuntimeError(f"{name} failed ({procs[name].returncode}):\n{err[-3000:]}")
        res[name] = last_json(out)
        res[name]["load"] = [round(load0, 1), round(load1, 1)]
    return res


def score_pred(path: str) -> dict:
    """Our scorer on the peer's token<TAB>gold<TAB>pred rows."""
    gold, pred, g, p = [], [], [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if len(cols) < 3:
                if g:
                    gold.append(g)
                    pred.append(p)
                g, p = [], []
                continue
            g.append(cols[1])
            p.append(cols[2])
    if g:
        gold.append(g)
        pred.append(p)
    scheme = detect_scheme({t for s in gold for t in s}, gold)
    scorer = TagScorer(scheme)
    for a, b in zip(gold, pred):
        scorer.add(a, b)
    s = scorer.summary()
    out = {"test_accuracy": s["accuracy"]}
    if "entities" in s:
        out.update(test_f1=s["entities"]["f1"], test_precision=s["entities"]["precision"],
                   test_recall=s["entities"]["recall"])
    return out


def pair(label, c, tmp, minutes, ours_opts, peer_args) -> list[dict]:
    tag = label.replace(" ", "_").replace("/", "_")
    res = run_together({"ours": ours_cmd(c, tmp, tag, minutes * 60, 1, ours_opts),
                        "peer": peer_cmd(c, tmp, tag, minutes, peer_args)})
    res["peer"].update(score_pred(os.path.join(tmp, tag + ".pred")))
    rows = []
    for arm in ("ours", "peer"):
        r = res[arm]
        r.update(row=label, arm="rnn-cli" if arm == "ours" else "torch", minutes=minutes,
                 options=ours_opts if arm == "ours" else " ".join(peer_args))
        rows.append(r)
        log(label, arm, {k: r.get(k) for k in ("test_accuracy", "test_f1", "tokens_per_sec",
                                                "sentences_per_sec", "epochs")})
    return rows


def main(argv=None) -> int:
    global PEER_PY, TAG_PASSES
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", nargs="+", default=["ud", "ud-goal", "wnut"],
                   choices=["ud", "ud-goal", "wnut", "speed"])
    p.add_argument("--speed-minutes", type=float, default=2.0)
    p.add_argument("--tag-seconds", type=float, default=15.0,
                   help="--runs speed: each arm keeps tagging for this many seconds, both "
                        "starting together (at least --tag-passes passes)")
    p.add_argument("--tag-passes", type=int, default=None,
                   help="tagging passes of each arm, the median reported (default: 3; 5 for "
                        "--runs speed)")
    p.add_argument("--ud-minutes", type=float, default=10.0)
    p.add_argument("--goal-minutes", type=float, default=20.0)
    p.add_argument("--wnut-minutes", type=float, default=5.0)
    p.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "TAG.md"))
    p.add_argument("--results", default=os.path.join(ROOT, "bench", "results", "tag.json"))
    p.add_argument("--peer-python", default=PEER_PY,
                   help="the python with torch 2.13 (default: .venv-bench/bin/python, as "
                        "`make bench-venv` makes it)")
    p.add_argument("--report-only", action="store_true",
                   help="write --out again from --results (no runs)")
    p.add_argument("--merge", action="store_true",
                   help="keep the rows of --results that these --runs do not measure again")
    a = p.parse_args(argv)
    if a.report_only:
        with open(a.results) as f:
            saved = json.load(f)
        with open(a.out, "w") as f:
            f.write(report(saved["rows"], saved["meta"], a))
        return 0
    PEER_PY = a.peer_python
    if a.runs == ["speed"]:
        TAG_PASSES = a.tag_passes or 5
        return speed(a)
    if "speed" in a.runs:
        p.error("--runs speed runs alone")
    TAG_PASSES = a.tag_passes or 3
    shared = a.shared if os.path.isdir(os.path.join(a.shared, "corpora")) else "/work/shared"
    ud, wnut = corpus(shared, "ud-ewt-pos"), corpus(shared, "ner-wnut17")
    rows = []
    t_start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        if "ud" in a.runs:
            rows += pair("UD EWT UPOS", ud, tmp, a.ud_minutes, {}, [])
        if "ud-goal" in a.runs:
            res = run_together({"ours": ours_cmd(ud, tmp, "goal", 0, 2,
                                                 {"max_seconds": a.goal_minutes * 60})})["ours"]
            res.update(row="UD EWT UPOS, defaults, 2 threads", arm="rnn-cli",
                       minutes=round(res["train_seconds"] / 60, 1), options="(defaults)")
            rows.append(res)
            log("goal", res["test_accuracy"], res["train_seconds"])
        if "wnut" in a.runs:
            for label, ours, peer in (("WNUT-17", {}, []),
                                      ("WNUT-17 --crf", {"crf": True}, ["--crf"]),
                                      ("WNUT-17 --char-hidden 0", {"char_hidden": 0},
                                       ["--char-hidden", "0"])):
                rows += pair(label, wnut, tmp, a.wnut_minutes, ours, peer)
    meta = machine()
    meta["wall_minutes"] = round((time.time() - t_start) / 60, 1)
    if a.merge and os.path.exists(a.results):
        with open(a.results) as f:
            old = json.load(f)
        again = {r["row"] for r in rows}
        rows = [r for r in old["rows"] if r["row"] not in again] + rows
        meta["merged"] = old["meta"]
    os.makedirs(os.path.dirname(a.results), exist_ok=True)
    with open(a.results, "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    with open(a.out, "w") as f:
        f.write(report(rows, meta, a))
    log("wrote", a.out)
    return 0


SPEED_HEAD = "## Tagging speed (bench/tag.py --runs speed)"


def speed(a) -> int:
    """Tagging sentences/s of both arms on UD EWT after --speed-minutes of training each (at
    the same time), written as the SPEED_HEAD section of --out (the rest of the file kept)."""
    shared = a.shared if os.path.isdir(os.path.join(a.shared, "corpora")) else "/work/shared"
    ud = corpus(shared, "ud-ewt-pos")
    with tempfile.TemporaryDirectory() as tmp:
        SYNC[:] = ["--barrier", os.path.join(tmp, "ready"), "--tag-seconds", str(a.tag_seconds)]
        rows = pair("UD EWT UPOS", ud, tmp, a.speed_minutes, {}, [])
    meta = machine()
    path = os.path.join(os.path.dirname(a.results), "tag_speed.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    o, t = rows
    section = [SPEED_HEAD, "",
               f"{meta['date']}, git {meta['git']}, {meta['cpu']} ({meta['cores']} cores, shared; "
               f"load average {o['load'][0]} at the start, {o['load'][1]} at the end). Both arms "
               f"trained at the same time for {a.speed_minutes} minutes, 1 thread each, then "
               f"both start tagging the UD EWT test file together and keep at it for "
               f"{a.tag_seconds:g} s (the median pass; ours: raw text "
               "through `rnn_cli.Tagger`, a fresh one each pass, its per-string cache empty; "
               "the peer: batches of 128 sorted by length).", "",
               "| arm | tag sentences/s | passes | pass seconds: median (min – max) | "
               "test accuracy % | train tokens/s |",
               "|---|---:|---:|---|---:|---:|"]
    for r in rows:
        ps = sorted(r["tag_passes"])
        section.append(f"| {r['arm']} | {r['sentences_per_sec']:,.0f} | {len(ps)} | "
                       f"{r['tag_seconds']:.3f} ({ps[0]:.3f} – {ps[-1]:.3f}) | "
                       f"{pct(r['test_accuracy'])} | {r['tokens_per_sec']:,.0f} |")
    section += ["", f"Tagging sentences/s, rnn-cli / torch: "
                    f"{o['sentences_per_sec'] / t['sentences_per_sec']:.2f}x.", ""]
    text = open(a.out).read() if os.path.exists(a.out) else ""
    if SPEED_HEAD in text:  # the section of an earlier speed run goes
        head, rest = text.split(SPEED_HEAD, 1)
        nxt = rest.find("\n## ")
        text = head + (rest[nxt + 1:] if nxt >= 0 else "")
    with open(a.out, "w") as f:
        f.write(text.rstrip("\n") + "\n\n" + "\n".join(section))
    log("wrote", a.out, f"{o['sentences_per_sec'] / t['sentences_per_sec']:.2f}x")
    return 0


def machine() -> dict:
    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    git = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    torch_v = subprocess.run([PEER_PY, "-c", "import torch; print(torch.__version__)"],
                             capture_output=True, text=True).stdout.strip()
    import numba
    import numpy
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
            "numpy": numpy.__version__, "numba": numba.__version__, "torch": torch_v, "git": git,
            "date": time.strftime("%Y-%m-%d %H:%M")}


def pct(x) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


def report(rows: list[dict], meta: dict, a) -> str:
    earlier = meta.get("merged")
    out = ["# The tagger beside PyTorch (bench/tag.py)", "",
           f"{meta['date']}, git {meta['git']}, {meta['cpu']} ({meta['cores']} cores, shared "
           f"with other work: the load averages at the start and end of each run are in the "
           f"table), Python {meta['python']}, numpy {meta['numpy']}, numba {meta['numba']}, "
           f"torch {meta['torch']}. Written by `make bench-tag` (bench/tag.py; "
           f"{meta['wall_minutes']} minutes)"
           + (f"; the rows it did not run again are from {earlier['date']} (git "
              f"{earlier['git']})" if earlier else "") + ".", "",
           "Both arms: the same network, rnn-cli's defaults (word embeddings 100 of the "
           "lower-cased word, <UNK> for words seen once + a character BiLSTM 100 + 100 over "
           "character embeddings 50 -> BiLSTM 128 + 128 -> softmax or CRF), the same data "
           "handling, batches of 16, Adam 2e-3, cosine schedule over the minutes, clipping 5, "
           "dropout "
           "0.33, validation at each epoch's end keeping the best by the dev metric, the same "
           "decoding (Viterbi over the allowed BIO transitions), trained at the same time, 1 "
           "thread each. Test scores by the same conlleval scorer. From scratch: no pretrained "
           "vectors.", "",
           "| run | arm | minutes | epochs | test accuracy % | test entity F1 % (P / R) | "
           "train tokens/s | tag sentences/s | load |",
           "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        f1 = "–" if r.get("test_f1") is None else \
            f"{pct(r['test_f1'])} ({pct(r['test_precision'])} / {pct(r['test_recall'])})"
        out.append(f"| {r['row']} | {r['arm']} | {r['minutes']} | {r.get('epochs', '?')} | "
                   f"{pct(r['test_accuracy'])} | {f1} | {r['tokens_per_sec']:,.0f} | "
                   f"{r['sentences_per_sec']:,.0f} | {r['load'][0]} → {r['load'][1]} |")
    out += ["", "Ratios (rnn-cli / torch, the same run):", "",
            "| run | accuracy or F1 (points) | train tokens/s | tag sentences/s |",
            "|---|---:|---:|---:|"]
    by = {}
    for r in rows:
        by.setdefault(r["row"], {})[r["arm"]] = r
    for name, arms in by.items():
        if len(arms) < 2:
            continue
        o, t = arms["rnn-cli"], arms["torch"]
        key = "test_f1" if o.get("test_f1") is not None else "test_accuracy"
        out.append(f"| {name} | {100 * (o[key] - t[key]):+.2f} | "
                   f"{o['tokens_per_sec'] / t['tokens_per_sec']:.2f}x | "
                   f"{o['sentences_per_sec'] / t['sentences_per_sec']:.2f}x |")
    goal = [r for r in rows if r["row"].startswith("UD EWT UPOS, defaults")]
    if goal:
        g = goal[0]
        out += ["", f"UD EWT UPOS goal: {pct(g['test_accuracy'])} % test accuracy with the "
                    f"defaults in {g['minutes']} minutes on 2 threads (goal {pct(GOAL_UD)} %, "
                    f"UDPipe 1 {pct(UDPIPE1)} %)."]
    w = by.get("WNUT-17", {}).get("rnn-cli")
    if w:
        out += ["", f"WNUT-17: the shared task's winner {pct(WNUT_WINNER)} and flair "
                    f"{pct(FLAIR)} (both with pretrained vectors or language models); ours from "
                    f"scratch {pct(w['test_f1'])}, {100 * (WNUT_WINNER - w['test_f1']):.1f} "
                    f"points below the winner."]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
