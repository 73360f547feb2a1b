"""The suite's four passes, run by `make test` (and so by CI): side by side on a multi-core machine.

    compiled   every test not marked slow, with the compiled kernels, except:
    processes  the tests that mostly wait on processes they start (signals, Dask workers)
    jit-off    the tiny kernel tests again with NUMBA_DISABLE_JIT=1 (plain Python)
    cuda-sim   the CUDA kernels under NUMBA_ENABLE_CUDASIM=1 (no GPU needed)

The compiled pass spends most of a fresh clone's time compiling kernels, one core at a time. So
with two or more CPUs the other passes run one after another beside it (jit-off, cuda-sim, then
processes, by which time the kernels they load are in numba's cache). Their output is held back
and shown, in order, when the compiled pass ends. `--serial` (or one CPU) runs the passes one
after another with their output as it comes. Exit status: the first failing pass's (pytest's 5,
no tests collected, counts as a failure like any other).

    python tests/passes.py [--serial] [PASS ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

KERNEL_TESTS = ["tests/test_kernels.py", "tests/test_network.py", "tests/test_sampling_kernels.py",
                "tests/test_beam_kernels.py", "tests/test_train.py", "tests/test_cells.py",
                "tests/test_class_softmax.py", "tests/test_sparse.py", "tests/test_encoder.py",
                "tests/test_task_kernels.py", "tests/test_crf.py", "tests/test_token_softmax.py",
                "tests/test_attention.py", "tests/test_decoder.py", "tests/test_decode.py"]
# tests that mostly wait on processes they start (signals, Dask workers): their own pass, run
# last beside the compiled one, when that has filled numba's cache with the kernels they load
PROCESS_TESTS = ["tests/test_faults.py", "tests/test_dask.py", "tests/test_classify_faults.py",
                 "tests/test_tag_faults.py", "tests/test_translate_faults.py"]
PASSES = {
    "compiled": ({}, ["-m", "not slow", *(f"--ignore={t}" for t in PROCESS_TESTS)]),
    "jit-off": ({"NUMBA_DISABLE_JIT": "1"}, ["-m", "not slow", *KERNEL_TESTS]),
    "cuda-sim": ({"NUMBA_ENABLE_CUDASIM": "1"}, ["-m", "cuda", "tests/test_cuda.py"]),
    "processes": ({}, ["-m", "not slow", *PROCESS_TESTS]),
}


def command(name: str) -> tuple[list[str], dict]:
    env, args = PASSES[name]
    return [sys.executable, "-m", "pytest", "-q", *args], {**os.environ, **env}


def run_pass(name: str, out=None) -> tuple[int, float]:
    """Run one pass (its output to `out`, a file, or to ours); (exit status, seconds)."""
    cmd, env = command(name)
    t0 = time.monotonic()
    rc = subprocess.call(cmd, env=env, stdout=out, stderr=subprocess.STDOUT if out else None)
    return rc, time.monotonic() - t0


def cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("passes", nargs="*", metavar="PASS",
                   help=f"which passes ({', '.join(PASSES)}; default: all, in that order)")
    p.add_argument("--serial", action="store_true", help="one pass after another")
    a = p.parse_args(argv)
    names = a.passes or list(PASSES)
    if any(n not in PASSES for n in names):
        p.error(f"unknown pass in {names}; choose from {', '.join(PASSES)}")
    results: dict[str, tuple[int, float]] = {}
    if a.serial or cpus() < 2 or len(names) < 2:
        for name in names:
            print(f"== {name} pass", flush=True)
            results[name] = run_pass(name)
    else:
        first, rest = names[0], names[1:]
        logs = {n: tempfile.TemporaryFile("w+") for n in rest}

        def side():
            for n in rest:
                results[n] = run_pass(n, logs[n])
        worker = threading.Thread(target=side)
        worker.start()
        print(f"== {first} pass (the {' and '.join(rest)} pass{'es' if len(rest) > 1 else ''} "
              "run beside it; their output follows)", flush=True)
        results[first] = run_pass(first)
        worker.join()
        for n in rest:
            logs[n].seek(0)
            print(f"== {n} pass", flush=True)
            sys.stdout.write(logs[n].read())
            logs[n].close()
    print("== " + ", ".join(f"{n}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in {s:.0f} s"
                            for n, (rc, s) in results.items()), flush=True)
    return next((rc for rc, _ in results.values() if rc != 0), 0)


if __name__ == "__main__":
    sys.exit(main())
