#!/usr/bin/env python3
"""`make bench-gpu`: rnn-cli's CUDA path beside PyTorch's cuDNN cells on the same GPU, into
bench/GPU.md, in under 5 minutes.

    python bench/gpu.py [--seconds 5] [--no-tests] [--no-torch] [--arms fp32,tf32] [--out FILE]
    python bench/gpu.py --dry-run   # every step on numba's CUDA simulator (torch on the CPU)

1. installs the `cuda` extra into this Python when numba-cuda is missing (`pip install -e
   '.[cuda]'`; a failure is recorded, and the run stops only if no GPU is usable);
2. runs the CUDA tests on the GPU (`pytest -m cuda tests/test_cuda.py`), among them the check
   that the device trainer's losses equal the CPU trainer's at equal steps;
3. trains rnn / gru / lstm at H 512 and 1024, B 64, T 64, one-hot char input, Adam, on
   corpora/shakespeare.txt: rnn-cli's own `train --device cuda` for --seconds per run (all in one
   process, so each kernel compiles once), once per arm: `fp32` (the default: float32 products)
   and `tf32` (RNN_CLI_CUDA_TF32=1); and, when torch sees a GPU, PyTorch's nn.RNN / nn.GRU /
   nn.LSTM (cuDNN) on the same windows: one-hot inputs (F.one_hot -> the cell's input weights:
   the same function as rnn-cli's column gather), the same H, an nn.Linear output layer, the mean
   cross-entropy, clip_grad_norm_(5), torch.optim.Adam(lr 2e-3), the hidden state carried from
   window to window (detached), the loss read back every step (`.item()`, as rnn-cli reads its
   loss). Twice: torch's defaults (cuDNN may use TF32 tensor cores: torch.backends.cudnn.allow_tf32
   is True by default) and with TF32 off. torch's cells carry a second bias vector (b_hh) that
   rnn-cli's do not (H or G*H floats more): the same function, not the same parameter count;
4. the cost of TF32 in loss: at H 512, the device trainer in fp32 and in tf32 and the CPU trainer
   from the same initial parameters on the same windows, per-step losses compared;
5. writes the report: tokens/s of each arm, the ratios, the losses, what each run used (cuBLAS or
   the tiled kernel, CUDA graph or not).

Tokens/s: rnn-cli's is its own training figure (tokens of the timed steps over their wall time,
the first steps' compilation and graph capture included, validation excluded); torch's counts
the steps after 10 untimed warm-up steps. --baseline DIR also times another rnn-cli tree (e.g.
the pre-issue-31 code) with the same jobs (NumPy >= 2.5 gets the row_stack alias there too).

--dry-run: the same steps under NUMBA_ENABLE_CUDASIM=1 on tiny shapes (one step each), torch on
the CPU (--torch-python), the report to a temporary file marked as a dry run: it checks that
the script works, it measures nothing.
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
import time
from contextlib import redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpora" / "shakespeare.txt"
CELLS = ("rnn", "gru", "lstm")
HIDDENS = (512, 1024)
BATCH, SEQ = 64, 64
ARM_ENV = {  # rnn-cli's arms: the tuning switches of rnn_cli/cuda/backend.py
    "fp32": {},
    "tf32": {"RNN_CLI_CUDA_TF32": "1"},
    "nograph": {"RNN_CLI_CUDA_GRAPH": "0"},  # cuBLAS, launch by launch
    "numba": {"RNN_CLI_CUDA_GEMM": "numba", "RNN_CLI_CUDA_GRAPH": "0"},  # no cuBLAS, no graph
    "numba-graph": {"RNN_CLI_CUDA_GEMM": "numba"},
}
TORCH_MODES = ("default", "fp32")  # cuDNN with torch's TF32 default, and with TF32 off


def train_args(cell: str, H: int, B: int, T: int, out: str, seconds: float | None) -> list[str]:
    stop = ["--max-seconds", f"{seconds:g}"] if seconds else ["--steps", "1"]
    return (["train", str(CORPUS), "-o", out, "--cell", cell, "--hidden", str(H), "--batch-size",
             str(B), "--seq-len", str(T), "--dropout", "0", "--embed", "0", "--val-frac", "0.001",
             "--eval-every", "1000000", "--seed", "1", "--json", "-q", "--device", "cuda",
             "--threads", "1"] + stop)


def tiny_launches() -> None:
    """Under the simulator (--dry-run), tests/test_cuda.py's launch sizes: every simulated thread
    is a Python thread."""
    from rnn_cli.cuda import backend

    if backend.simulator_enabled():
        from rnn_cli.cuda import blas, kernels, sampling

        kernels.THREADS, kernels.COLS, kernels.LANES, kernels.PARTIALS = 16, 4, 2, 2
        blas.TILE, blas.REG, sampling.THREADS = 4, 2, 4


def worker(jobs: list) -> None:
    """rnn-cli's side: every (arm, argv) in this one process (kernels compile once); one JSON
    line per job on stdout (the CLI's --json summary, or the error)."""
    from rnn_cli.cli import main

    tiny_launches()

    for arm, argv in jobs:
        for k in ("RNN_CLI_CUDA_TF32", "RNN_CLI_CUDA_GRAPH", "RNN_CLI_CUDA_GEMM"):
            os.environ.pop(k, None)
        os.environ.update(ARM_ENV.get(arm, {}))
        buf = io.StringIO()
        t0 = time.perf_counter()
        try:
            if "--max-seconds" in argv:  # untimed: 3 steps of the same run first, so that
                # cuBLAS's lazily loaded kernels for these shapes are in (torch's arm likewise
                # times only after 10 warm-up steps); the timed run still captures its own graph
                i = argv.index("--max-seconds")
                with redirect_stdout(io.StringIO()):
                    main(argv[:i] + ["--steps", "3"] + argv[i + 2:])
            with redirect_stdout(buf):
                rc = main(argv)
        except Exception as e:  # one failing job must not end the others
            rc, buf = 1, io.StringIO(f"{type(e).__name__}: {e}")
        lines = buf.getvalue().strip().splitlines()
        try:
            res = json.loads(lines[-1]) if rc == 0 and lines else {"error": f"exit {rc}"}
        except ValueError:
            res = {"error": lines[-1][:300] if lines else f"exit {rc}"}
        res.update(arm=arm, process_s=round(time.perf_counter() - t0, 1))
        print(json.dumps(res), flush=True)


def torch_worker(spec: dict) -> None:
    """PyTorch's side (run by --torch-python): the cuDNN cells on one-hot inputs, one JSON line
    per (mode, cell, H). Needs only torch and numpy."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    ids = torch.from_numpy(np.load(spec["ids"]).astype(np.int64))
    V, B, T, seconds = spec["V"], spec["B"], spec["T"], spec["seconds"]
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    L = (ids.shape[0] - 1) // B  # B contiguous streams, as rnn-cli's Batches
    streams = ids[:B * L + 1]
    x_all = streams[:B * L].view(B, L).t().contiguous().to(dev)  # (L, B)
    y_all = streams[1:B * L + 1].view(B, L).t().contiguous().to(dev)
    for mode, cell, H in spec["jobs"]:
        torch.backends.cudnn.allow_tf32 = mode == "default"
        torch.backends.cuda.matmul.allow_tf32 = False  # torch's default for plain products
        torch.manual_seed(1)
        rnn = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell](V, H)
        out = torch.nn.Linear(H, V)
        model = torch.nn.ModuleList([rnn, out]).to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        h = None
        pos, steps, t_timed, losses = 0, 0, None, []
        while True:
            if pos + T > L:
                pos, h = 0, None
            x, y = x_all[pos:pos + T], y_all[pos:pos + T]
            pos += T
            o, h = rnn(F.one_hot(x, V).float(), h)
            h = tuple(s.detach() for s in h) if isinstance(h, tuple) else h.detach()
            loss = F.cross_entropy(out(o).view(-1, V), y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            losses.append(loss.item())
            steps += 1
            if steps == 10:
                t_timed, timed0 = time.perf_counter(), steps
            elif t_timed is not None and (not seconds or time.perf_counter() - t_timed >= seconds):
                break
        dt = time.perf_counter() - t_timed
        print(json.dumps({"mode": mode, "cell": cell, "H": H, "steps": steps,
                          "tokens_per_sec": (steps - timed0) * B * T / dt,
                          "train_loss": float(np.mean(losses[-50:])),
                          "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu",
                          "torch": torch.__version__,
                          "cudnn": torch.backends.cudnn.version()}), flush=True)


def losses_worker(spec: dict) -> None:
    """The CPU trainer and the device trainer per arm, from the same parameters on the same
    windows: one JSON line per (cell, arm) with the per-step losses."""
    import numpy as np

    from rnn_cli import checkpoint
    from rnn_cli.config import ModelConfig, TrainConfig
    from rnn_cli.cuda.train import CudaTrainer
    from rnn_cli.params import Params
    from rnn_cli.tasks.lm.train import Trainer
    from rnn_cli.vocab import build_vocab

    from rnn_cli.cuda import backend

    tiny_launches()
    backend.resolve("cuda")  # as the CLI does first (it also quiets numba's occupancy warnings)
    text = CORPUS.read_text()[:spec["chars"]]
    vocab = build_vocab(text, "char")
    ids, _ = vocab.encode(text)
    for cell in spec["cells"]:
        for arm in ["cpu"] + spec["arms"]:
            for k in ("RNN_CLI_CUDA_TF32", "RNN_CLI_CUDA_GRAPH", "RNN_CLI_CUDA_GEMM"):
                os.environ.pop(k, None)
            os.environ.update(ARM_ENV.get(arm, {}))
            cfg = ModelConfig(cell=cell, hidden=spec["H"], vocab_size=len(vocab), embed=0,
                              dropout=0.0).validate()
            tcfg = TrainConfig(batch_size=spec["B"], seq_len=spec["T"])
            model = checkpoint.Model(cfg, vocab, Params(cfg).init(np.random.default_rng(1)),
                                     tcfg)
            cls = Trainer if arm == "cpu" else CudaTrainer
            t0 = time.perf_counter()
            try:
                tr = cls(model, tcfg, ids, ids[:0], np.random.default_rng(0))
                losses = [tr.train_step() for _ in range(spec["steps"])]
                res = {"losses": losses}
                if arm != "cpu":
                    res["path"] = tr.path()
            except Exception as e:
                res = {"error": f"{type(e).__name__}: {e}"[:300]}
            res.update(cell=cell, arm=arm, seconds=round(time.perf_counter() - t0, 1))
            print(json.dumps(res), flush=True)


def run(cmd: list[str], env=None, timeout=None, cwd=ROOT) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        return p.returncode, (p.stdout + p.stderr), time.perf_counter() - t0
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) \
            else (e.stdout or "")
        return 124, out + f"\ntimed out after {timeout} s", time.perf_counter() - t0
    except OSError as e:  # no such program
        return 127, str(e), time.perf_counter() - t0


def tail(text: str, n: int = 3) -> str:
    lines = [s for s in text.strip().splitlines() if s.strip()]
    return " / ".join(lines[-n:])


def json_lines(text: str) -> list[dict]:
    out = []
    for s in text.splitlines():
        if s.startswith("{"):
            try:
                out.append(json.loads(s))
            except ValueError:
                pass
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="timed seconds per training run")
    ap.add_argument("--arms", default="fp32,tf32",
                    help=f"rnn-cli's arms, comma-separated, of {', '.join(ARM_ENV)}")
    ap.add_argument("--cells", default=",".join(CELLS))
    ap.add_argument("--hiddens", default=",".join(map(str, HIDDENS)))
    ap.add_argument("--extra", default="cuda", help="the extra to install when numba-cuda is "
                    "missing (cuda, cuda12, cuda13)")
    ap.add_argument("--no-tests", action="store_true", help="skip the CUDA tests")
    ap.add_argument("--no-torch", action="store_true", help="skip PyTorch's arm")
    ap.add_argument("--loss-steps", type=int, default=20, help="steps of the loss comparison "
                    "(0: skip it)")
    ap.add_argument("--torch-python", default=sys.executable,
                    help="the Python that has torch (default: this one)")
    ap.add_argument("--baseline", help="another rnn-cli tree to time with the same jobs")
    ap.add_argument("--dry-run", action="store_true",
                    help="everything on the simulator, no timings")
    ap.add_argument("--out", help="the report (default bench/GPU.md; dry run: a temporary file)")
    ap.add_argument("--log", help="append every step's full output to this file")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--torch-worker", help=argparse.SUPPRESS)
    ap.add_argument("--losses-worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    if args.torch_worker:
        torch_worker(json.loads(args.torch_worker))
        return 0
    if args.losses_worker:
        losses_worker(json.loads(args.losses_worker))
        return 0
    return bench(args)


def bench(args) -> int:
    t_start = time.perf_counter()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    if args.dry_run:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    out = args.out or (os.path.join(tempfile.mkdtemp(), "GPU.dry-run.md") if args.dry_run
                       else str(ROOT / "bench" / "GPU.md"))
    steps: list[tuple[str, str]] = []  # (step, outcome) for the report
    log = open(args.log, "a") if args.log else None

    def note(step: str, outcome: str, text: str = "") -> None:
        steps.append((step, outcome))
        print(f"bench-gpu: {step}: {outcome}", file=sys.stderr, flush=True)
        if log:
            log.write(f"==== {step}: {outcome}\n{text}\n")
            log.flush()

    import importlib.util
    if importlib.util.find_spec("numba_cuda") is None:
        rc, text, secs = run([sys.executable, "-m", "pip", "install", "-q", "--timeout", "10",
                              "--retries", "1", "--disable-pip-version-check", "-e",
                              f".[{args.extra}]"], env, timeout=240)
        note(f"pip install -e '.[{args.extra}]'", f"ok ({secs:.0f} s)" if rc == 0 else
             f"failed, exit {rc} ({secs:.0f} s): {tail(text, 2)}", text)
    rc, text, _ = run([sys.executable, "-c", "from rnn_cli.cuda import backend, blas; "
                       "print(backend.probe()[0]); print(backend.describe()); "
                       "g = blas.make_gemm(); print(g.kind)"], env)
    lines = text.strip().splitlines()
    if rc != 0 or len(lines) < 3 or lines[0] != "True":
        note("CUDA device", f"none usable ({tail(text, 1)}); stopping", text)
        return 1
    device_name, gemm_kind = lines[1], lines[2]
    note("CUDA device", f"{device_name}; products: {gemm_kind}")
    versions = environment(env, args)
    note("versions", versions)
    B, T = (2, 4) if args.dry_run else (BATCH, SEQ)
    cells = args.cells.split(",")
    hiddens = (8, 12) if args.dry_run else tuple(int(h) for h in args.hiddens.split(","))
    configs = [(c, H) for H in hiddens for c in cells]
    arms = [a for a in args.arms.split(",") if a]
    seconds = None if args.dry_run else args.seconds
    tmp = tempfile.mkdtemp(prefix="bench-gpu-")

    # rnn-cli, every arm and configuration in one process
    jobs = [(arm, train_args(c, H, B, T, f"{tmp}/{arm}-{c}-{H}.npz", seconds))
            for arm in arms for c, H in configs]
    rc, text, secs = run([sys.executable, __file__, "--worker", json.dumps(jobs)], env)
    ours: dict = {}
    rows = json_lines(text)
    for (arm, argv), r in zip(jobs, rows):
        ours[(arm, argv[argv.index("--cell") + 1], int(argv[argv.index("--hidden") + 1]))] = r
    note("rnn-cli runs", f"{len(rows)} of {len(jobs)} in {secs:.0f} s"
         + ("" if len(rows) == len(jobs) else f": {tail(text, 2)}"), text)

    if args.baseline:
        args.baseline = str(Path(args.baseline).resolve())
        base_env = dict(env, PYTHONPATH=os.pathsep.join(  # its rnn_cli first
            [str(Path(args.baseline).resolve())] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        shim = ("import numpy as np, runpy, sys\n"
                "if not hasattr(np, 'row_stack'): np.row_stack = np.vstack\n"
                "sys.argv = sys.argv[1:]\n"
                "runpy.run_path(sys.argv[0], run_name='__main__')\n")
        bjobs = [train_args(c, H, B, T, f"{tmp}/base-{c}-{H}.npz", seconds)
                 for c, H in configs]
        rc, text, secs = run([sys.executable, "-c", shim, str(Path(args.baseline) / "bench" /
                              "gpu.py"), "--worker", json.dumps(bjobs)], base_env,
                             cwd=Path(args.baseline).resolve())  # `python -c`: its cwd first
        rows = json_lines(text)
        for (c, H), r in zip(configs, rows):
            ours[("baseline", c, H)] = r
        note("baseline runs", f"{len(rows)} of {len(bjobs)} in {secs:.0f} s"
             + ("" if len(rows) == len(bjobs) else f": {tail(text, 2)}"), text)
        arms = ["baseline"] + arms

    theirs = {}
    if not args.no_torch:
        import numpy as np

        from rnn_cli.vocab import build_vocab

        text_all = CORPUS.read_text()
        vocab = build_vocab(text_all, "char")
        ids, _ = vocab.encode(text_all)
        np.save(f"{tmp}/ids.npy", ids)
        spec = {"ids": f"{tmp}/ids.npy", "V": len(vocab), "B": B, "T": T,
                "seconds": 0 if args.dry_run else args.seconds,
                "jobs": [(m, c, H) for m in TORCH_MODES for c, H in configs]}
        rc, text, secs = run([args.torch_python, __file__, "--torch-worker", json.dumps(spec)],
                             env)
        for r in json_lines(text):
            theirs[(r["mode"], r["cell"], r["H"])] = r
        note("torch runs", f"{len(theirs)} of {len(spec['jobs'])} in {secs:.0f} s"
             + ("" if len(theirs) == len(spec["jobs"]) else f": {tail(text, 2)}"), text)

    losses = []
    if args.loss_steps:
        spec = {"cells": cells, "arms": [a for a in arms if a in ("fp32", "tf32")] or ["fp32"],
                "H": 8 if args.dry_run else 512, "B": B, "T": T, "chars": 400_000,
                "steps": 2 if args.dry_run else args.loss_steps}
        rc, text, secs = run([sys.executable, __file__, "--losses-worker", json.dumps(spec)], env,
                             timeout=300)
        losses = json_lines(text)
        note("losses at equal steps", f"{len(losses)} runs in {secs:.0f} s"
             + ("" if rc == 0 else f", exit {rc}: {tail(text, 2)}"), text)

    if not args.no_tests:
        rc, text, secs = run([sys.executable, "-m", "pytest", "-q", "-m", "cuda",
                              "tests/test_cuda.py", "-p", "no:cacheprovider"], env, timeout=600)
        summary = [s for s in text.splitlines() if " passed" in s or " failed" in s
                   or " error" in s]
        note("CUDA tests (pytest -m cuda tests/test_cuda.py)",
             f"{'passed' if rc == 0 else f'FAILED (exit {rc})'} in {secs:.0f} s: "
             f"{(summary or [tail(text, 1)])[-1].strip('= ')}", text)

    write_report(out, device_name, versions, steps, configs, arms, ours, theirs, losses, args,
                 B, T, time.perf_counter() - t_start)
    print(f"bench-gpu: wrote {out} ({time.perf_counter() - t_start:.0f} s end to end)",
          file=sys.stderr)
    print(Path(out).read_text())
    return 0


def environment(env, args) -> str:
    code = ("import sys, numpy, numba, importlib.metadata as m\n"
            "v = lambda n: (m.version(n) if n else '')\n"
            "out = [f'Python {sys.version.split()[0]}', f'NumPy {numpy.__version__}',\n"
            "       f'numba {numba.__version__}']\n"
            "for n in ('numba-cuda', 'cuda-bindings', 'nvidia-cublas', 'nvidia-cublas-cu12'):\n"
            "    try: out.append(f'{n} {v(n)}')\n"
            "    except Exception: pass\n"
            "print(', '.join(out))\n")
    rc, text, _ = run([sys.executable, "-c", code], env)
    parts = [text.strip().splitlines()[-1] if rc == 0 and text.strip() else "?"]
    rc, text, _ = run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                       "--format=csv,noheader"], env)
    if rc == 0:
        parts.append(f"nvidia-smi: {text.strip().splitlines()[0]}")
    return "; ".join(parts)


def _rate(r: dict | None) -> float | None:
    return None if not r or "error" in r else r.get("tokens_per_sec")


def _fmt_rate(r: dict | None) -> str:
    v = _rate(r)
    return f"{v:,.0f}" if v else ((r or {}).get("error", "-")[:60].replace("|", "/"))


def _ratio(a, b) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def write_report(out, device_name, versions, steps, configs, arms, ours, theirs, losses, args,
                 B, T, total_s):
    dry = args.dry_run
    lines = ["# rnn-cli on a GPU beside PyTorch cuDNN (`make bench-gpu`)", ""]
    if dry:
        lines += ["**DRY RUN on numba's CUDA simulator: the figures below are not timings.** "
                  "It checks that every step of the benchmark runs.", ""]
    lines += [f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
              f"- GPU: {device_name}", f"- software: {versions}",
              f"- CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              f"- training: corpora/shakespeare.txt, char level (V from the corpus), one-hot "
              f"input, B {B}, T {T}, {'one step' if dry else f'{args.seconds:g} s'} per run, "
              "--dropout 0, Adam (lr 2e-3), clipping at norm 5, state carried between windows",
              f"- end to end: {total_s:.0f} s", "", "| step | outcome |", "|---|---|"]
    lines += [f"| {s} | {o.replace('|', '/')} |" for s, o in steps]
    torch_cols = [m for m in TORCH_MODES if any(k[0] == m for k in theirs)]
    head = ([f"rnn-cli {a} tok/s" for a in arms]
            + [f"torch cuDNN {'(TF32 default)' if m == 'default' else 'fp32'} tok/s"
               for m in torch_cols])
    ratios = []
    if "fp32" in arms and "fp32" in torch_cols:
        ratios.append(("fp32", "fp32", "fp32 / torch fp32"))
    if "fp32" in arms and "default" in torch_cols:
        ratios.append(("fp32", "default", "fp32 / torch default"))
    if "tf32" in arms and "default" in torch_cols:
        ratios.append(("tf32", "default", "tf32 / torch default"))
    lines += ["", "| cell | H | " + " | ".join(head + [r[2] for r in ratios]) + " | path |",
              "|---|---:|" + "---:|" * (len(head) + len(ratios)) + "---|"]
    for c, H in configs:
        row = [_fmt_rate(ours.get((a, c, H))) for a in arms]
        row += [_fmt_rate(theirs.get((m, c, H))) for m in torch_cols]
        row += [_ratio(_rate(ours.get((a, c, H))), _rate(theirs.get((m, c, H))))
                for a, m, _ in ratios]
        paths = []
        for a in arms:
            p = (ours.get((a, c, H)) or {}).get("cuda")
            if p:
                paths.append(f"{a}: {p['gemm']}{' tf32' if p['tf32'] else ''}"
                             + (f", graph of {p['graph_nodes']} nodes" if p["graph"] else
                                ", no graph") + (" (capture failed)" if "graph_error" in p
                                                 else ""))
        lines.append(f"| {c} | {H} | " + " | ".join(row) + f" | {'; '.join(paths)} |")
    if losses:
        lines += ["", "Losses at equal steps (H {}, B {}, T {}; the same initial parameters and "
                  "windows; nats/token):".format(8 if dry else 512, B, T), "",
                  "| cell | arm | step 1 | last step | max abs diff vs CPU | mean abs diff vs CPU "
                  "| path |", "|---|---|---:|---:|---:|---:|---|"]
        cpu = {r["cell"]: r.get("losses") for r in losses if r["arm"] == "cpu"}
        for r in losses:
            ls = r.get("losses")
            if not ls:
                lines.append(f"| {r['cell']} | {r['arm']} | {r.get('error', '-')[:80]} | | | | |")
                continue
            base = cpu.get(r["cell"])
            diffs = [abs(a - b) for a, b in zip(ls, base)] if base and r["arm"] != "cpu" else []
            p = r.get("path") or {}
            path = (f"{p.get('gemm')}{' tf32' if p.get('tf32') else ''}, "
                    f"{'graph' if p.get('graph') else 'no graph'}") if p else "CPU"
            lines.append(f"| {r['cell']} | {r['arm']} | {ls[0]:.6f} | {ls[-1]:.6f} | "
                         + (f"{max(diffs):.2e} | {sum(diffs) / len(diffs):.2e}" if diffs
                            else "- | -") + f" | {path} |")
    lines += ["", "Ratios above 1 mean rnn-cli trains faster. rnn-cli's fp32 arm is its default "
              "(float32 products, losses equal to the CPU path's to float32 rounding); its tf32 "
              "arm (RNN_CLI_CUDA_TF32=1) rounds the products' inputs to TF32 on the tensor "
              "cores, as torch's cuDNN cells do by default."]
    Path(out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
