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
import datetime
import json
import os
import shutil
import sys
import tempfile

# The pieces, one a concern (each module's docstring says more):
from speed_extras import bench_extras        # rnn-cli's own workloads: sample, score, start-up, ...
from speed_matrix import (CONFIGS, EXTRAS, OPT_IN, PEER_WARMUP_S, QUICK_CONFIGS,  # what is measured
                          QUICK_EXTRAS)
from speed_peers import Setup, bench_configs  # the training matrix, rnn-cli beside the peers
from speed_proc import HERE, gemm_rates, log, machine, peer_env, versions  # processes, the machine
from speed_report import write_md             # the tables and the files


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
        a.only = a.only or QUICK_CONFIGS + QUICK_EXTRAS
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
