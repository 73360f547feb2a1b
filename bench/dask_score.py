"""Per-line scoring on Dask (issue 14): lines/s of one process vs `--dask local:1` and `local:2`.

    .venv/bin/python bench/dask_score.py            # about 5 minutes on 2 cores; writes
                                                    # bench/results/dask.md

A word model (ptb.train.txt, V 10k, the default softmax, H --hidden) is trained for
--train-seconds; the input is ptb.test.txt --repeat times. Each arm is measured twice, the arms
interleaved (A B C A B C), and the better round is reported:

- steady state: lines/s and tokens/s of the scoring alone, the model already loaded (one
  process: `rnn_cli.Model.score_lines`; Dask: `dask_score.Session.score_lines` on a cluster
  started before the clock and warmed by one small pass, which ships the model and loads the
  kernels on the workers). Every arm's rows are checked equal, bit for bit, to the one-process
  rows.
- end to end: the wall time of the whole `rnn-cli score` command (start-up, model load, cluster
  start for --dask, scoring, writing), and the command's peak RSS (the client's, for --dask).
- workers' peak RSS, from each worker process (`Client.run`).

The machine may be shared: the load average before and after is written next to the figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Peak RSS from /proc/self/status VmHWM, not getrusage: Linux carries ru_maxrss over fork and
# exec, so a command started from this (large) process would report this process's peak.
RSS_WRAPPER = ("import sys\nfrom rnn_cli.cli import main\nrc = main(sys.argv[1:])\n"
               "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
               "sys.stderr.write('MAXRSS_KB %s\\n' % hwm[0].split()[1])\nsys.exit(rc)\n")


def _peak_rss_kb() -> int:
    with open("/proc/self/status") as f:
        return int(next(x for x in f if x.startswith("VmHWM")).split()[1])


def run_cli(args: list[str], out: Path) -> tuple[float, int]:
    """(wall seconds, peak RSS in MiB) of one `rnn-cli` command, stdout to `out`."""
    t = time.perf_counter()
    with open(out, "wb") as f:
        p = subprocess.run([sys.executable, "-c", RSS_WRAPPER, *args], stdout=f,
                           stderr=subprocess.PIPE, cwd=ROOT)
    wall = time.perf_counter() - t
    err = p.stderr.decode()
    if p.returncode != 0:
        raise SystemExit(f"rnn-cli {' '.join(args)} failed ({p.returncode}):\n{err[-2000:]}")
    rss = [int(x.split()[1]) for x in err.splitlines() if x.startswith("MAXRSS_KB")]
    return wall, rss[-1] // 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--train-seconds", type=float, default=45)
    ap.add_argument("--repeat", type=int, default=3, help="copies of ptb.test.txt")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "dask.md"))
    a = ap.parse_args()
    ptb = Path(a.shared) / "corpora" / "ptb"
    if not (ptb / "ptb.test.txt").exists():
        raise SystemExit(f"no {ptb}/ptb.test.txt: pass --shared DIR")
    import numpy as np

    from rnn_cli.tasks.lm import api, dask_score

    cores = len(os.sched_getaffinity(0))
    load0 = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="rnn-dask-bench-"))
    model = tmp / "ptb.npz"
    subprocess.run([sys.executable, "-m", "rnn_cli", "train", str(ptb / "ptb.train.txt"),
                    "--level", "word", "--tokenizer", "space", "--vocab-size", "10000",
                    "--hidden", str(a.hidden), "--max-seconds", str(a.train_seconds),
                    "-o", str(model), "-q"], check=True, cwd=ROOT)
    text = (ptb / "ptb.test.txt").read_text() * a.repeat
    data = tmp / "in.txt"
    data.write_text(text)
    lines = text.splitlines(keepends=True)

    lm = api.Model.load(model, threads=cores)
    ref = list(lm.score_lines(lines))
    n_lines, n_tokens = len(ref), sum(r.tokens for r in ref)

    def same(rows) -> None:  # the columns of `score`, exactly
        assert len(rows) == len(ref)
        for x, y in zip(rows, ref):
            assert (x.lineno, x.tokens, x.logprob) == (y.lineno, y.tokens, y.logprob), x.lineno

    arms = [("one process, 1 thread", 1, None), ("one process, 2 threads", cores, None),
            ("--dask local:1 (1 worker, 2 threads)", None, 1),
            ("--dask local:2 (2 workers, 1 thread each)", None, 2)]
    best: dict[str, dict] = {}
    for rnd in range(a.rounds):
        for name, threads, workers in arms:
            rec = {}
            if workers is None:
                one = api.Model.load(model, threads=threads)
                list(one.score_lines(lines[:2000]))  # warm: kernels loaded
                t = time.perf_counter()
                rows = list(one.score_lines(lines))
                rec["steady"] = time.perf_counter() - t
                rec["workers_rss"] = []
                cli = ["score", "-m", str(model), str(data), "--threads", str(threads)]
            else:
                t = time.perf_counter()
                s = dask_score.Session.open(f"local:{workers}")
                rec["start"] = time.perf_counter() - t
                try:
                    list(s.score_lines(lm, iter(lines[:4000]), 256))  # ship, load, warm
                    t, cpu = time.perf_counter(), time.process_time()
                    rows = list(s.score_lines(lm, iter(lines), 256))  # lean rows, as the CLI
                    rec["steady"] = time.perf_counter() - t
                    rec["client_cpu"] = time.process_time() - cpu
                    rec["workers_rss"] = sorted(
                        v // 1024 for v in s.client.run(_peak_rss_kb).values())
                finally:
                    s.close()
                cli = ["score", "-m", str(model), str(data), "--dask", f"local:{workers}"]
            same(rows)
            rec["wall"], rec["rss"] = run_cli(cli, tmp / "out.txt")
            rec["cmd"] = "rnn-cli " + " ".join(cli).replace(str(tmp), "$TMP")
            print(f"round {rnd + 1}: {name}: {n_lines / rec['steady']:,.0f} lines/s, "
                  f"end to end {rec['wall']:.1f} s", file=sys.stderr)
            if name not in best or rec["steady"] < best[name]["steady"]:
                best[name] = rec
    load1 = os.getloadavg()
    base = best[arms[1][0]]["steady"]
    rows_md = []

    def ceiling(r) -> str:
        return f"{n_lines / r['client_cpu']:,.0f}" if r.get("client_cpu") else "–"

    for name, _, _ in arms:
        r = best[name]
        rows_md.append(f"| {name} | {n_lines / r['steady']:,.0f} | {n_tokens / r['steady']:,.0f} "
                       f"| {base / r['steady']:.2f} | {ceiling(r)} | {r['wall']:.1f} | {r['rss']} | "
                       f"{', '.join(map(str, r['workers_rss'])) or '–'} |")
    cfg = lm.file.cfg
    md = f"""# Per-line scoring on Dask: one process vs `--dask local:N`

Written by `bench/dask_score.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.
Machine: {cores} cores (shared with other work: load average {load0[0]:.2f} / {load0[1]:.2f} /
{load0[2]:.2f} before, {load1[0]:.2f} / {load1[1]:.2f} / {load1[2]:.2f} after; the figures move
with it, the ratios less). Model ({model.stat().st_size / 2**20:.0f} MB file): word level, ptb.train.txt for {a.train_seconds:g} s,
{cfg.cell} H {cfg.hidden}, V {cfg.vocab_size}, softmax {cfg.softmax}. Input: ptb.test.txt x
{a.repeat} = {n_lines:,} lines, {n_tokens:,} tokens (with <EOS>); `--batch-size` 256 (the
default). Best of {a.rounds} interleaved rounds. Every arm's rows equal the one-process rows bit
for bit (checked).

| arm | lines/s | tokens/s | ÷ one process, {cores} threads | client ceiling (lines/s) | end to end (s) | peak RSS of the command (MiB) | workers' peak RSS (MiB) |
|---|---:|---:|---:|---:|---:|---:|---:|
{chr(10).join(rows_md)}

- lines/s, tokens/s: the scoring alone, model loaded, cluster started and warmed.
- client ceiling: lines / the client's CPU seconds during the scoring (reading, chunking,
  sending, receiving and unpacking rows): the most lines/s one client can feed a cluster,
  however many workers it has.
- end to end: the whole `rnn-cli score` command, as a user runs it (for --dask: starting the
  local cluster, about {np.mean([best[n].get('start', 0) for n, _, w in arms if w]):.1f} s here,
  and shipping the model).
- peak RSS of the command: for --dask the client only (it holds the model once, for validation
  and the vocabulary, and the chunks in flight).

Commands (end to end): {'; '.join(f'`{best[n]["cmd"]}`' for n, _, _ in arms)}.
"""
    Path(a.out).write_text(md)
    print(md)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
