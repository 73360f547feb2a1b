"""bench/wordlm.py — rnn-cli's word-level defaults against PyTorch's word_language_model recipe on
Penn Treebank, both at the same time, one thread each, with their validation curves (issue 30).

For each budget in --minutes (default 15 and 30), two processes start together:

    ours    rnn-cli train --level word --tokenizer space ptb.train.txt --valid ptb.valid.txt
            --test ptb.test.txt --max-seconds S --threads 1          (every other flag: default)
    recipe  ../shared/bench/wlm_anchor.py --minutes M --threads 1   (LSTM 2 x 200, SGD lr 20, ...)

Each arm's validation perplexity is read from its output as it comes (ours: the log line of every
validation, the anchor: its JSON line every --eval-every seconds) and stamped with the seconds
since the start, so the two curves share one clock. Test perplexity of each arm's best parameters
is what the targets compare: ours ÷ recipe <= 0.85 at 15 minutes, <= 0.80 at 30 minutes.

--char runs the char-level check instead: tiny Shakespeare (first 90 % trained, last 10 % scored
as one stream by `rnn-cli score --total`), --char-minutes each, `rnn-cli train` with no model
flags, this tree against --old (a checkout of the code before the change), at the same time.

Run under the bench lock with the OpenBLAS variables unset (the arms get them unset too):

    flock /work/bench.lock python bench/wordlm.py --minutes 15 30
    flock /work/bench.lock python bench/wordlm.py --char --old /tmp/main-before --char-minutes 10

Writes bench/WORDLM.md (a section per invocation is kept: --out) and the raw logs to --results.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGETS = {15.0: 0.85, 30.0: 0.80}  # test perplexity, ours / recipe, by budget (minutes)
MARKS = [("Kneser-Ney 5-gram (Mikolov & Zweig 2012)", 141.2),
         ("RNNLM (Mikolov & Zweig 2012)", 124.7),
         ("Zaremba et al. 2014, small LSTM (2 x 200, no dropout)", 114.5),
         ("Zaremba et al. 2014, medium LSTM (2 x 650, dropout 0.5)", 82.7)]
VAL_LINE = re.compile(r"step\s+(\d+)\s+epoch\s+([\d.]+)\s+train\s+(\S+)\s+val\s+([\d.]+)")
NO_OPENBLAS_HINTS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--minutes", type=float, nargs="+", default=[15.0, 30.0])
    p.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"),
                   help="the shared folder holding corpora/ and bench/")
    p.add_argument("--python", default=sys.executable, help="interpreter that runs rnn_cli")
    p.add_argument("--peer-python", default=os.path.join(ROOT, ".venv-bench", "bin", "python"))
    p.add_argument("--eval-every", type=float, default=180.0,
                   help="seconds of training between the recipe's validations")
    p.add_argument("--char", action="store_true", help="the char-level check instead")
    p.add_argument("--old", help="--char: root of the code before the change")
    p.add_argument("--char-minutes", type=float, default=10.0)
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "WORDLM.md"))
    p.add_argument("--results", default=os.path.join(ROOT, "bench", "results", "wordlm"))
    return p.parse_args(argv)


def _env(pythonpath: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in NO_OPENBLAS_HINTS}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return env


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


class Arm(threading.Thread):
    """One process; its stderr and stdout lines stamped with seconds since `t0`."""

    def __init__(self, name, cmd, log_path, t0, cwd=ROOT, env=None):
        super().__init__(daemon=True)
        self.name_, self.cmd, self.log_path, self.t0 = name, cmd, log_path, t0
        self.cwd, self.env = cwd, env or _env()
        self.lines: list[tuple[float, str]] = []
        self.rc = None

    def run(self):
        proc = subprocess.Popen(self.cmd, cwd=self.cwd, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        with open(self.log_path, "w") as log:
            log.write("$ " + " ".join(self.cmd) + "\n")
            for line in proc.stdout:
                t = time.perf_counter() - self.t0
                self.lines.append((t, line.rstrip("\n")))
                log.write(f"[{t:8.1f}] {line}")
                log.flush()
        self.rc = proc.wait()

    def last_json(self) -> dict:
        for _, line in reversed(self.lines):
            if line.startswith("{"):
                try:
                    return json.loads(line)
                except ValueError:
                    pass
        return {}


def ours_curve(arm: Arm) -> list[tuple[float, float]]:
    """(seconds, valid ppl) of each validation of rnn-cli (its log lines)."""
    out = []
    for t, line in arm.lines:
        m = VAL_LINE.search(line)
        if m:
            out.append((t, math.exp(float(m.group(4)))))
    return out


def recipe_curve(arm: Arm) -> list[tuple[float, float]]:
    out = []
    for t, line in arm.lines:
        if line.startswith("{"):
            rec = json.loads(line)
            if "val_ppl" in rec:
                out.append((t, rec["val_ppl"]))
    return out


def ptb(a, minutes: float) -> dict:
    folder = os.path.join(a.shared, "corpora", "ptb")
    files = [os.path.join(folder, f"ptb.{s}.txt") for s in ("train", "valid", "test")]
    secs = minutes * 60
    tmp = tempfile.mkdtemp(prefix="rnn-cli-wordlm-")
    ours_cmd = [a.python, "-m", "rnn_cli", "train", files[0], "--level", "word", "--tokenizer",
                "space", "--valid", files[1], "--test", files[2], "--max-seconds", f"{secs:g}",
                "--threads", "1", "--json", "-v", "-o", os.path.join(tmp, "ptb.npz")]
    recipe_cmd = [a.peer_python, os.path.join(a.shared, "bench", "wlm_anchor.py"), "--data",
                  folder, "--minutes", f"{minutes:g}", "--threads", "1", "--eval-every",
                  f"{a.eval_every:g}"]
    before, t0 = load(), time.perf_counter()
    env = _env(ROOT)
    env["RNN_CLI_HOME"] = tmp
    arms = [Arm("ours", ours_cmd, os.path.join(a.results, f"ptb{minutes:g}_ours.log"), t0,
                env=env),
            Arm("recipe", recipe_cmd, os.path.join(a.results, f"ptb{minutes:g}_recipe.log"), t0)]
    for arm in arms:
        arm.start()
    for arm in arms:
        arm.join()
    ours, recipe = arms[0].last_json(), arms[1].last_json()
    chosen = [line for _, line in arms[0].lines if "defaults" in line]
    return {"minutes": minutes, "load_before": before, "load_after": load(),
            "wall": time.perf_counter() - t0, "ours": ours, "recipe": recipe,
            "ours_curve": ours_curve(arms[0]), "recipe_curve": recipe_curve(arms[1]),
            "rc": [arm.rc for arm in arms], "chosen": chosen,
            "cmds": [" ".join(_shown(c, tmp, a.shared)) for c in (ours_cmd, recipe_cmd)]}


def _shown(cmd, tmp, shared):
    """The command as a reader reruns it: $TMP for the temporary folder, ../shared for the
    shared one, `python` and `.venv-bench/bin/python` for the interpreters."""
    out = []
    for i, w in enumerate(cmd):
        if i == 0:
            w = "python" if "bench" not in w else ".venv-bench/bin/python"
        elif w.startswith(tmp):
            w = "$TMP" + w[len(tmp):]
        elif w.startswith(os.path.abspath(shared)):
            w = "../shared" + w[len(os.path.abspath(shared)):]
        out.append(w)
    return out


def curve_rows(res: dict, every: float = 180.0) -> list[str]:
    """Valid ppl of each arm at each `every` seconds mark: the last validation by then."""
    end = max([t for t, _ in res["ours_curve"] + res["recipe_curve"]] or [0.0])
    rows, mark = [], every
    while mark < end + every:
        cells = []
        for key in ("ours_curve", "recipe_curve"):
            seen = [v for t, v in res[key] if t <= mark]
            cells.append(f"{seen[-1]:.1f}" if seen else "–")
        rows.append(f"| {mark / 60:.0f} | {cells[0]} | {cells[1]} |")
        mark += every
    return rows


def ptb_section(res: dict) -> list[str]:
    o, r, m = res["ours"], res["recipe"], res["minutes"]
    ratio = o.get("test_ppl", math.nan) / r.get("test_ppl", math.nan) if r.get("test_ppl") \
        else math.nan
    target = TARGETS.get(m)
    verdict = "" if target is None else \
        f" (target ≤ {target}: {'met' if ratio <= target else 'not met'})"
    lines = [f"### {m:g} minutes", "",
             f"Load average before: {res['load_before']}; after: {res['load_after']}; both arms "
             f"started together, {res['wall'] / 60:.1f} min wall in all. Exit codes "
             f"{res['rc'][0]} / {res['rc'][1]}.", "",
             "| arm | tokens trained | tokens/s | best valid ppl | test ppl |",
             "|---|---:|---:|---:|---:|",
             f"| rnn-cli word defaults | {o.get('tokens', 0) / 1e6:.1f} M | "
             f"{o.get('tokens_per_sec', 0):,.0f} | "
             f"{math.exp(o['best_val_loss']) if 'best_val_loss' in o else math.nan:.1f} | "
             f"**{o.get('test_ppl', math.nan):.1f}** |",
             f"| word_language_model recipe | {r.get('tokens', 0) / 1e6:.1f} M | "
             f"{r.get('tok_s', 0):,} | {r.get('best_val_ppl', math.nan):.1f} | "
             f"**{r.get('test_ppl', math.nan):.1f}** |", "",
             f"rnn-cli ÷ recipe, test perplexity: **{ratio:.3f}**{verdict}.", ""]
    if res["chosen"]:
        lines += ["What the defaults chose (`-v`):", "", "```"]
        lines += [c.split("] ")[-1] for c in res["chosen"]] + ["```", ""]
    lines += ["Validation perplexity by minute (the last validation by then; one clock):", "",
              "| minute | rnn-cli | recipe |", "|---:|---:|---:|"] + curve_rows(res) + [""]
    lines += ["Commands:", "", "```"] + res["cmds"] + ["```", ""]
    return lines


def char_check(a) -> dict:
    corpus = os.path.join(a.shared, "corpora", "tinyshakespeare.txt")
    with open(corpus, encoding="utf-8") as f:
        text = f.read()
    tmp = tempfile.mkdtemp(prefix="rnn-cli-wordlm-char-")
    cut = int(len(text) * 0.9)
    train, held = os.path.join(tmp, "train90.txt"), os.path.join(tmp, "held10.txt")
    for path, part in ((train, text[:cut]), (held, text[cut:])):
        with open(path, "w", encoding="utf-8") as f:
            f.write(part)
    secs = a.char_minutes * 60
    trees = {"new": ROOT, "old": os.path.abspath(a.old)}
    before, t0 = load(), time.perf_counter()
    arms = []
    for name, tree in trees.items():
        env = _env(tree)
        env["RNN_CLI_HOME"] = os.path.join(tmp, name)
        cmd = [a.python, "-m", "rnn_cli", "train", train, "-o", os.path.join(tmp, name + ".npz"),
               "--val-frac", "0", "--max-seconds", f"{secs:g}", "--threads", "1", "--json", "-v"]
        arms.append(Arm(name, cmd, os.path.join(a.results, f"char_{name}.log"), t0, tree, env))
    for arm in arms:
        arm.start()
    for arm in arms:
        arm.join()
    out = {"load_before": before, "load_after": load(), "minutes": a.char_minutes}
    for arm in arms:
        env = arm.env
        score = subprocess.run([a.python, "-m", "rnn_cli", "score", "-m",
                                os.path.join(tmp, arm.name_ + ".npz"), "--total", held,
                                "--json", "--threads", "1"], cwd=arm.cwd, env=env,
                               capture_output=True, text=True)
        res = json.loads(score.stdout.strip().splitlines()[-1]) if score.returncode == 0 else {}
        out[arm.name_] = {"train": arm.last_json(), "held": res.get("nats_per_token"),
                          "rc": arm.rc or score.returncode,
                          "chosen": [l for _, l in arm.lines if "defaults" in l]}
    return out


def char_section(res: dict) -> list[str]:
    n, o = res["new"], res["old"]
    diff = (n["held"] or math.nan) - (o["held"] or math.nan)
    return [f"## Character level: tiny Shakespeare, {res['minutes']:g} minutes, new defaults vs "
            "the old", "",
            f"Both at the same time, one thread each; load average before: "
            f"{res['load_before']}, after: {res['load_after']}.", "",
            "| arm | held-out nats/char | steps | tokens/s |", "|---|---:|---:|---:|",
            *[f"| {k} defaults | {r['held']:.4f} | {r['train'].get('steps')} | "
              f"{r['train'].get('tokens_per_sec', 0):,.0f} |" for k, r in (("new", n), ("old", o))],
            "", f"new − old: **{diff:+.4f}** nats/char (target ≤ 0: "
            f"{'met' if diff <= 0 else 'not met'}).", ""]


def main(argv=None) -> int:
    a = parse_args(argv)
    os.makedirs(a.results, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    head = [f"<!-- bench/wordlm.py, {stamp} -->", ""]
    if a.char:
        if not a.old:
            print("wordlm: --char needs --old (a checkout of the code before the change)",
                  file=sys.stderr)
            return 2
        res = char_check(a)
        section = head + char_section(res)
        rc = max(res["new"]["rc"] or 0, res["old"]["rc"] or 0)
    else:
        section = head + [f"## Penn Treebank, word level: written {stamp}", ""]
        rc = 0
        for m in a.minutes:
            res = ptb(a, m)
            with open(os.path.join(a.results, f"ptb{m:g}.json"), "w") as f:
                json.dump(res, f)
            section += ptb_section(res)
            rc = max(rc, *[c or 0 for c in res["rc"]])
        section += ["Published test perplexities on the same data (different budgets):", "",
                    "| model | test ppl |", "|---|---:|"]
        section += [f"| {name} | {ppl} |" for name, ppl in MARKS] + [""]
    with open(a.out, "a", encoding="utf-8") as f:
        f.write("\n".join(section) + "\n")
    print(f"wordlm: appended to {a.out}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
