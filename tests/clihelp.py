"""Helpers shared by the fault, bad-input and model-file tests: run the real CLI in a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAMES = ROOT / "corpora" / "names.txt"
SHAKESPEARE = ROOT / "corpora" / "shakespeare.txt"
# A model that trains in milliseconds. One thread: on a loaded machine numba's thread pool waits
# for busy cores and runs ~100x slower (the parallel kernels are exercised in the resume test).
TINY = ("--hidden", "8", "--batch-size", "4", "--seq-len", "8", "--threads", "1")


def env(home=None, **extra) -> dict:
    e = dict(os.environ)
    e.pop("FORCE_COLOR", None)
    e["NO_COLOR"] = "1"
    if home is not None:
        e["RNN_CLI_HOME"] = str(home)
    e.update({k: str(v) for k, v in extra.items()})
    return e


def cmd(*args) -> list[str]:
    return [sys.executable, "-m", "rnn_cli", *map(str, args)]


def rnn(*args, input=None, home=None, timeout=300, **kw) -> subprocess.CompletedProcess:
    """Run `rnn-cli ARGS` to completion; stdout/stderr as bytes."""
    return subprocess.run(cmd(*args), input=input, capture_output=True, env=env(home), cwd=ROOT,
                          timeout=timeout, **kw)


def rnn_many(jobs: dict, workers: int = 4, **kw) -> dict:
    """{key: args} -> {key: CompletedProcess}, a few at a time (quick failing runs mostly wait on
    interpreter start-up, so running them side by side saves most of the wall time)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        futures = {key: pool.submit(rnn, *args, **kw) for key, args in jobs.items()}
        return {key: f.result() for key, f in futures.items()}


def start(*args, home=None, **kw) -> subprocess.Popen:
    return subprocess.Popen(cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env(home), cwd=ROOT, **kw)


def ok(proc) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, (proc.returncode, proc.stderr.decode(errors="replace")[-3000:])
    return proc


def assert_clean_error(proc, code: int = 1, *needles: str) -> str:
    """Exit `code`, `rnn-cli: error: ...` then `  hint: ...` on stderr, no traceback, stdout empty.
    Returns stderr."""
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == code, (proc.returncode, err)
    assert "Traceback" not in err and not re.search(r"^\w+(Error|Exception):", err, re.M), err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [i for i, line in enumerate(lines) if line.startswith("rnn-cli: error: ")]
    assert len(errors) == 1, err
    assert lines[errors[0] + 1].startswith("  hint: "), err
    assert proc.stdout == b"", proc.stdout
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def assert_usage_error(proc, flag: str) -> str:
    """Exit 2 naming `flag`, no traceback (argparse's or our one-line format)."""
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 2, (proc.returncode, err)
    assert "Traceback" not in err, err
    assert flag in err, (flag, err)
    assert "error:" in err
    return err


def stray_temps(folder) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.startswith(".rnn-cli-"))
