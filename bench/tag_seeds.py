#!/usr/bin/env python3
"""bench/tag_seeds.py — WNUT-17 entity F1 of ours and the PyTorch peer over several seeds.

WNUT-17's test set has 1,079 entities, and one 5-minute run of a from-scratch tagger moves its F1
by a point or two with the seed alone; bench/tag.py runs one seed per row. This runs the pair of
bench/tag.py's "WNUT-17" row (or its --crf row) once per seed, both arms at the same time, 1
thread each, under the bench lock, and writes the per-seed F1 and their mean and spread:

    python bench/tag_seeds.py --peer-python .venv-bench/bin/python --seeds 1 2 3 \
        --out bench/results/tag_seeds.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tag  # noqa: E402  (bench/tag.py: the pair runner, the corpora, the lock)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--crf", action="store_true", help="the --crf row instead of the default")
    p.add_argument("--shared", default=os.path.join(tag.ROOT, "..", "shared"))
    p.add_argument("--peer-python", default=tag.PEER_PY)
    p.add_argument("--out", default=os.path.join(tag.ROOT, "bench", "results", "tag_seeds.md"))
    p.add_argument("--from", dest="sources", nargs="+", metavar="JSON",
                   help="write the table from these earlier runs' JSON (each --out's .json) "
                        "instead of running: their seeds, in order")
    a = p.parse_args(argv)
    tag.PEER_PY = a.peer_python
    label = "WNUT-17 --crf" if a.crf else "WNUT-17"
    rows = []
    if a.sources:
        for path in a.sources:
            with open(path, encoding="utf-8") as f:
                rows += json.load(f)
        seeds = list(dict.fromkeys(r["seed"] for r in rows))
        gits = ", ".join(dict.fromkeys(r.get("git", "?") for r in rows))
        when = (f"Rows of {', '.join(os.path.basename(p) for p in a.sources)} (git {gits}; "
                f"each run's date is in its own table), put together "
                f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    else:
        git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tag.ROOT,
                             capture_output=True, text=True).stdout.strip()
        c = tag.corpus(a.shared, "ner-wnut17")
        seeds = a.seeds
        with tempfile.TemporaryDirectory() as tmp:
            for s in seeds:
                ours = {"seed": s, **({"crf": True} if a.crf else {})}
                peer = ["--seed", str(s), *(["--crf"] if a.crf else [])]
                for r in tag.pair(f"{label} seed {s}", c, tmp, a.minutes, ours, peer):
                    r.update(seed=s, git=git, date=time.strftime("%Y-%m-%d %H:%M UTC",
                                                                 time.gmtime()))
                    rows.append(r)
        when = f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, git {git}"
    out = [f"# WNUT-17 test entity F1 over seeds ({label}; bench/tag_seeds.py)", "",
           f"{when}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
           f"shared with other work. Each seed: both arms trained at the same time for "
           f"{a.minutes:g} minutes, 1 thread each (bench/tag.py's pair), the best parameters "
           "by dev F1, scored by the same conlleval scorer.", "",
           "| seed | rnn-cli F1 % | torch F1 % | difference (points) | rnn-cli epochs | torch "
           "epochs | load |", "|---:|---:|---:|---:|---:|---:|---|"]
    f1 = {"rnn-cli": [], "torch": []}
    for s in seeds:
        o, t = [next(r for r in rows if r["seed"] == s and r["arm"] == arm)
                for arm in ("rnn-cli", "torch")]
        f1["rnn-cli"].append(100 * o["test_f1"])
        f1["torch"].append(100 * t["test_f1"])
        out.append(f"| {s} | {100 * o['test_f1']:.2f} | {100 * t['test_f1']:.2f} | "
                   f"{100 * (o['test_f1'] - t['test_f1']):+.2f} | {o['epochs']} | "
                   f"{t['epochs']} | {o['load'][0]} → {o['load'][1]} |")
    sd = (lambda v: statistics.stdev(v) if len(v) > 1 else 0.0)
    mo, mt = statistics.mean(f1["rnn-cli"]), statistics.mean(f1["torch"])
    out.append(f"| mean ± sd | {mo:.2f} ± {sd(f1['rnn-cli']):.2f} | "
               f"{mt:.2f} ± {sd(f1['torch']):.2f} | {mo - mt:+.2f} | | | |")
    diff = [o - t for o, t in zip(f1["rnn-cli"], f1["torch"])]
    se = sd(diff) / len(diff) ** 0.5
    out += ["", f"Paired over the {len(diff)} seeds (each seed's arms trained side by side): the "
            f"difference rnn-cli - torch is {statistics.mean(diff):+.2f} ± {se:.2f} points "
            f"(mean ± standard error); rnn-cli is ahead in {sum(d > 0 for d in diff)} of "
            f"{len(diff)} seeds."]
    with open(a.out, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    with open(os.path.splitext(a.out)[0] + ".json", "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=1)
    tag.log("wrote", a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
