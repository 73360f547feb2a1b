#!/usr/bin/env python3
"""`make bench-gpu`: the CUDA path on a real GPU, end to end in under 5 minutes, into bench/GPU.md.

    python bench/gpu.py [--seconds 30] [--extra cuda|cuda12|cuda13] [--no-install] [--no-tests]
    python bench/gpu.py --dry-run      # every step on numba's CUDA simulator, no timings

1. installs the `cuda` extra into this Python (`pip install -e '.[cuda]'`; a failure is recorded
   and the run goes on when numba-cuda is importable anyway, e.g. on a machine without network);
2. runs `make test-gpu` (the simulator tests of tests/test_cuda.py, on the GPU), then times
   rnn-cli's tiled matmul on the step and window shapes of H 1024, B 64 against cuBLAS (through
   CuPy or torch when one is installed; neither is a dependency: the column says so otherwise);
3. trains rnn / gru / lstm at H 512 and H 1024, B 64, T 64, one-hot char input, on
   corpora/shakespeare.txt for --seconds each on the GPU and on the CPU, and writes bench/GPU.md:
   training tokens/s of both, the GPU's speed-up, the GPU's name.

Time budget: the GPU runs and the CPU runs go side by side (the GPU process needs one core to
launch kernels; the CPU runs get the other cores minus one), so 6 configurations x 30 s take about
3 minutes, not 6; the GPU configurations run in ONE process so numba-cuda compiles each kernel
once. Validation (on the CPU in both cases) is kept short by --val-frac 0.001 and is not part of
tokens/s. Standard library only (the training is rnn-cli's own CLI).

--dry-run: the same steps under NUMBA_ENABLE_CUDASIM=1 (`make test-cudasim` for step 2; one step
of each configuration at H 8 and 12, B 2, T 4 for step 3) and the report written to --out (default a
temporary file), marked as a dry run: it checks that the script works, it measures nothing.
"""
from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpora" / "shakespeare.txt"
CELLS = ("rnn", "gru", "lstm")
HIDDENS = (512, 1024)
BATCH, SEQ = 64, 64


def train_args(cell: str, H: int, B: int, T: int, device: str, out: str, seconds: float | None,
               threads: int | None) -> list[str]:
    stop = ["--max-seconds", f"{seconds:g}"] if seconds else ["--steps", "1"]
    return (["train", str(CORPUS), "-o", out, "--cell", cell, "--hidden", str(H), "--batch-size",
             str(B), "--seq-len", str(T), "--dropout", "0", "--embed", "0", "--val-frac", "0.001",
             "--eval-every", "1000000", "--seed", "1", "--json", "-q", "--device", device]
            + stop + (["--threads", str(threads)] if threads else []))


def worker(jobs: list[list[str]]) -> None:
    """The GPU side: every configuration in this one process (kernels compile once); one JSON
    line per job on stdout (the CLI's --json summary, or the error)."""
    from rnn_cli.cli import main

    for argv in jobs:
        buf = io.StringIO()
        t0 = time.perf_counter()
        with redirect_stdout(buf):
            rc = main(argv)
        line = buf.getvalue().strip().splitlines()
        res = json.loads(line[-1]) if rc == 0 and line else {"error": f"exit {rc}"}
        res["process_s"] = round(time.perf_counter() - t0, 1)
        print(json.dumps(res), flush=True)


MATMULS = [  # (M, K, N) of C = A @ B^T: a step's recurrent product at B 64 (rnn, gru, lstm at
    # H 1024), and a window's products at B 64 x T 64 (an upper layer's input terms, the output)
    (64, 1024, 1024), (64, 1024, 3072), (64, 1024, 4096), (4096, 1024, 3072), (4096, 1024, 65)]


def matmul_worker(dry: bool) -> None:
    """rnn-cli's tiled matmul against cuBLAS (through CuPy or torch, when either is installed) on
    the shapes of MATMULS; one JSON line per shape. Dry run: one tiny shape, tiny launches."""
    import numpy as np
    from numba import cuda

    from rnn_cli.cuda import kernels as ck

    shapes, reps = ([(5, 3, 6)], 1) if dry else (MATMULS, 20)
    if dry:
        ck.TILE, ck.REG = 2, 2
    lib = None
    try:
        import cupy as lib_mod  # noqa: F401
        lib = "cupy"
    except ImportError:
        try:
            import torch
            lib = "torch" if torch.cuda.is_available() else None
        except ImportError:
            pass
    rng = np.random.default_rng(0)
    for M, K, N in shapes:
        a = rng.standard_normal((M, K)).astype(np.float32)
        b = rng.standard_normal((N, K)).astype(np.float32)
        A, B, C = cuda.to_device(a), cuda.to_device(b), cuda.device_array((M, N), np.float32)
        ck.matmul(C, A, B, trans_b=True)
        cuda.synchronize()
        err = float(np.abs(C.copy_to_host() - a @ b.T).max() / max(1.0, np.abs(a @ b.T).max()))
        t0 = time.perf_counter()
        for _ in range(reps):
            ck.matmul(C, A, B, trans_b=True)
        cuda.synchronize()
        ours = 2.0 * M * N * K * reps / (time.perf_counter() - t0) / 1e9
        theirs = None
        if lib == "cupy":
            import cupy
            x, y = cupy.asarray(a), cupy.asarray(b)
            x @ y.T
            cupy.cuda.runtime.deviceSynchronize()
            t0 = time.perf_counter()
            for _ in range(reps):
                x @ y.T
            cupy.cuda.runtime.deviceSynchronize()
            theirs = 2.0 * M * N * K * reps / (time.perf_counter() - t0) / 1e9
        elif lib == "torch":
            import torch
            torch.backends.cuda.matmul.allow_tf32 = False  # float32 products, as ours
            x, y = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
            x @ y.T
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(reps):
                x @ y.T
            torch.cuda.synchronize()
            theirs = 2.0 * M * N * K * reps / (time.perf_counter() - t0) / 1e9
        print(json.dumps({"shape": [M, K, N], "ours_gflops": ours, "cublas_gflops": theirs,
                          "via": lib, "max_rel_err": err}), flush=True)


def run(cmd: list[str], env=None, timeout=None) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        return p.returncode, (p.stdout + p.stderr), time.perf_counter() - t0
    except subprocess.TimeoutExpired as e:
        return 124, f"timed out after {timeout} s: {e}", time.perf_counter() - t0


def tail(text: str, n: int = 3) -> str:
    lines = [s for s in text.strip().splitlines() if s.strip()]
    return " / ".join(lines[-n:])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="training seconds per run")
    ap.add_argument("--extra", default="cuda", help="the extra to install (cuda, cuda12, cuda13)")
    ap.add_argument("--no-install", action="store_true", help="skip the pip install step")
    ap.add_argument("--no-tests", action="store_true", help="skip the make test-gpu step")
    ap.add_argument("--dry-run", action="store_true",
                    help="everything on the simulator, no timings")
    ap.add_argument("--out", help="the report (default bench/GPU.md; dry run: a temporary file)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--matmul-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    if args.matmul_worker:
        matmul_worker(args.dry_run)
        return 0
    t_start = time.perf_counter()
    env = dict(os.environ)
    if args.dry_run:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    out = args.out or (os.path.join(tempfile.mkdtemp(), "GPU.dry-run.md") if args.dry_run
                       else str(ROOT / "bench" / "GPU.md"))
    steps: list[tuple[str, str]] = []  # (step, outcome) for the report

    def note(step: str, outcome: str) -> None:
        steps.append((step, outcome))
        print(f"bench-gpu: {step}: {outcome}", file=sys.stderr, flush=True)

    if not args.no_install:
        rc, text, secs = run([sys.executable, "-m", "pip", "install", "-q", "--timeout", "10",
                              "--retries", "1", "--disable-pip-version-check", "-e",
                              f".[{args.extra}]"], env, timeout=240)
        note(f"pip install -e '.[{args.extra}]'", f"ok ({secs:.0f} s)" if rc == 0 else
             f"failed, exit {rc} ({secs:.0f} s): {tail(text, 2)}")
    rc, text, _ = run([sys.executable, "-c", "from rnn_cli.cuda import backend; "
                       "print(backend.probe()[0]); print(backend.describe())"], env)
    lines = text.strip().splitlines()
    if rc != 0 or not lines or lines[0] != "True":
        note("CUDA device", f"none usable ({tail(text, 1)}); stopping")
        return 1
    device_name = lines[1]
    note("CUDA device", device_name)
    if not args.no_tests:
        target = "test-cudasim" if args.dry_run else "test-gpu"
        rc, text, secs = run(["make", "--no-print-directory", target, f"PY={sys.executable}"],
                             env)
        summary = [s for s in text.splitlines() if " passed" in s or " failed" in s
                   or "error" in s.lower()]
        note(f"make {target}", f"{'passed' if rc == 0 else f'FAILED (exit {rc})'} in {secs:.0f} s: "
             f"{(summary or [tail(text, 1)])[-1].strip('= ')}")
    rc, text, secs = run([sys.executable, __file__, "--matmul-worker"]
                         + (["--dry-run"] if args.dry_run else []), env, timeout=120)
    matmuls = [json.loads(s) for s in text.splitlines() if s.startswith("{")]
    note("matmul vs cuBLAS", f"{len(matmuls)} shapes in {secs:.0f} s" if rc == 0 else
         f"failed, exit {rc}: {tail(text, 2)}")
    seconds = None if args.dry_run else args.seconds
    B, T = (2, 4) if args.dry_run else (BATCH, SEQ)
    hiddens = (8, 12) if args.dry_run else HIDDENS
    configs = [(cell, H) for H in hiddens for cell in CELLS]
    cores = os.cpu_count() or 2
    cpu_threads = max(1, cores - 2)
    tmp = tempfile.mkdtemp(prefix="bench-gpu-")
    gpu_jobs = [train_args(c, H, B, T, "cuda", f"{tmp}/g-{c}-{H}.npz", seconds, 1)
                for c, H in configs]
    results: dict[tuple[str, int], dict] = {k: {} for k in configs}

    def gpu_side():
        rc, text, _ = run([sys.executable, __file__, "--worker", json.dumps(gpu_jobs)], env)
        rows = [json.loads(s) for s in text.splitlines() if s.startswith("{")]
        for k, r in zip(configs, rows):
            results[k]["gpu"] = r
        if len(rows) < len(configs):
            note("GPU runs", f"only {len(rows)} of {len(configs)} finished: {tail(text, 2)}")

    t_train = time.perf_counter()
    th = threading.Thread(target=gpu_side)
    th.start()
    for c, H in configs:  # the CPU runs, one after the other, beside the GPU process
        argv = train_args(c, H, B, T, "cpu", f"{tmp}/c-{c}-{H}.npz", seconds, cpu_threads)
        rc, text, secs = run([sys.executable, "-m", "rnn_cli", *argv], env)
        rows = [s for s in text.splitlines() if s.startswith("{")]
        results[(c, H)]["cpu"] = (json.loads(rows[-1]) if rc == 0 and rows else
                                  {"error": f"exit {rc}: {tail(text, 1)}"})
    th.join()
    note("training runs", f"{len(configs)} configurations x 2 devices in "
         f"{time.perf_counter() - t_train:.0f} s")
    write_report(out, device_name, steps, results, configs, args, cpu_threads, B, T,
                 time.perf_counter() - t_start, matmuls)
    print(f"bench-gpu: wrote {out} ({time.perf_counter() - t_start:.0f} s end to end)",
          file=sys.stderr)
    return 0


def _rate(r: dict | None) -> float | None:
    return None if not r or "error" in r else r.get("tokens_per_sec")


def write_report(out, device_name, steps, results, configs, args, cpu_threads, B, T, total_s,
                 matmuls):
    dry = args.dry_run
    lines = ["# rnn-cli on a GPU (`make bench-gpu`)", ""]
    if dry:
        lines += ["**DRY RUN on numba's CUDA simulator: the figures below are not timings.** "
                  "It checks that every step of the benchmark runs.", ""]
    lines += [f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
              f"- GPU: {device_name}",
              f"- CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
              f"(the CPU runs use --threads {cpu_threads}, beside the GPU process)",
              f"- training: corpora/shakespeare.txt, char level, one-hot input, B {B}, T {T}, "
              f"{'one step' if dry else f'{args.seconds:g} s'} per run, --dropout 0, adam",
              f"- end to end: {total_s:.0f} s", "", "| step | outcome |", "|---|---|"]
    lines += [f"| {s} | {o.replace('|', '/')} |" for s, o in steps]
    lines += ["", "| cell | H | GPU tok/s | CPU tok/s | GPU speed-up | GPU train loss | "
              "CPU train loss |", "|---|---:|---:|---:|---:|---:|---:|"]
    for c, H in configs:
        g, cpu = results[(c, H)].get("gpu"), results[(c, H)].get("cpu")
        rg, rc = _rate(g), _rate(cpu)

        def loss(r):
            return f"{r['train_loss']:.3f}" if r and r.get("train_loss") is not None else "-"
        lines.append(f"| {c} | {H} | {f'{rg:,.0f}' if rg else (g or {}).get('error', '-')} | "
                     f"{f'{rc:,.0f}' if rc else (cpu or {}).get('error', '-')} | "
                     f"{f'{rg / rc:.1f}x' if rg and rc else '-'} | {loss(g)} | {loss(cpu)} |")
    lines += ["", "| matmul C = A B^T, M x K x N | rnn-cli tiled GFLOP/s | cuBLAS GFLOP/s | "
              "ratio | max rel. error |", "|---|---:|---:|---:|---:|"]
    for m in matmuls:
        cb = m["cublas_gflops"]
        lines.append(f"| {' x '.join(map(str, m['shape']))} | {m['ours_gflops']:,.0f} | "
                     + (f"{cb:,.0f} (via {m['via']}) | {m['ours_gflops'] / cb:.2f} | " if cb
                        else "- (neither CuPy nor torch installed) | - | ")
                     + f"{m['max_rel_err']:.1e} |")
    lines += ["", "Tokens/s are rnn-cli's own training figure (tokens of the timed steps over "
              "their wall time; compilation and the final validation excluded)."]
    Path(out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
