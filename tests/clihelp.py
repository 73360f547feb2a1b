"""Helpers shared by the CLI tests: run `rnn-cli` in a subprocess (`rnn`, `start`) or, where the
test is about what the command writes and returns rather than about the process (signals, pipes,
a terminal, the environment at start-up), in this process (`run_cli`), which costs no interpreter
start, numba import or kernel-cache load (about 1.3 CPU-seconds a subprocess)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import warnings
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


class _Bytes(io.BytesIO):
    """A byte buffer that stays readable when the command closes the stream around it (as
    `score -` closes stdin, or a text wrapper's finaliser does)."""

    def close(self):
        pass


def run_cli(*args, input=None, home=None, **extra_env) -> subprocess.CompletedProcess:
    """`rnn-cli ARGS` through `rnn_cli.cli.main` in this process, as `rnn` runs it in a subprocess:
    the same environment rules (NO_COLOR, RNN_CLI_HOME), stdin from `input` (else empty, never a
    terminal), stdout/stderr captured as bytes, argparse's exits turned into a return code.
    Everything main() changes in the process (os.environ, numba's thread count) is put back."""
    import numba

    from rnn_cli.cli import main

    # numba rereads NUMBA_* at each compile, and refuses a new thread count once its pool runs
    assert not any(k.startswith("NUMBA_") for k in extra_env), "use a subprocess for NUMBA_*"
    if isinstance(input, str):
        input = input.encode()
    saved_env, saved_io = dict(os.environ), (sys.stdin, sys.stdout, sys.stderr)
    threads = numba.get_num_threads()
    out, err = _Bytes(), _Bytes()
    streams = (io.TextIOWrapper(_Bytes(input or b""), encoding="utf-8"),
               io.TextIOWrapper(out, encoding="utf-8", write_through=True),
               io.TextIOWrapper(err, encoding="utf-8", errors="backslashreplace",
                                write_through=True))
    try:
        os.environ.clear()
        os.environ.update(env(home, **extra_env))
        sys.stdin, sys.stdout, sys.stderr = streams
        # Python warnings as a fresh interpreter shows them, onto the command's stderr (pytest
        # would otherwise collect them, and `assert stderr == b""` could not see one)
        with warnings.catch_warnings(record=True) as caught:
            warnings.resetwarnings()
            warnings.simplefilter("default")
            for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning,
                             ResourceWarning):  # Python's own defaults
                warnings.simplefilter("ignore", category)
            try:
                code = main([str(a) for a in args])
            except SystemExit as e:  # argparse: usage errors (2), --help (0)
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        for w in caught:
            streams[2].write(warnings.formatwarning(w.message, w.category, w.filename, w.lineno,
                                                    w.line))
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved_io
        os.environ.clear()
        os.environ.update(saved_env)
        numba.set_num_threads(threads)
        for s in streams[1:]:
            s.flush()
    return subprocess.CompletedProcess(["rnn-cli", *map(str, args)], code, out.getvalue(),
                                       err.getvalue())


def rnn_many(jobs: dict, workers: int = 4, **kw) -> dict:
    """{key: args} -> {key: CompletedProcess}, a few at a time (quick failing runs mostly wait on
    interpreter start-up, so running them side by side saves most of the wall time)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        futures = {key: pool.submit(rnn, *args, **kw) for key, args in jobs.items()}
        return {key: f.result() for key, f in futures.items()}


def run_cli_many(jobs: dict, **kw) -> dict:
    """{key: args} -> {key: CompletedProcess}, each through `run_cli`, one after the other."""
    return {key: run_cli(*args, **kw) for key, args in jobs.items()}


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


# The small models of the API and Dask tests: trained in this process, one thread, a few steps.
SMALL = ("--hidden", "16", "--batch-size", "8", "--seq-len", "16", "--threads", "1", "-q")


def train_small_char(out: Path, steps: int = 30) -> Path:
    """A char model of corpora/names.txt at `out`."""
    ok(run_cli("train", NAMES, "-o", out, "--steps", steps, "--seed", 3, *SMALL))
    return out


def train_small_word(folder: Path) -> Path:
    """A word model (V 300) of the first 600 lines of corpora/shakespeare.txt, in `folder`."""
    text = folder / "s600.txt"
    text.write_text("\n".join(SHAKESPEARE.read_text().splitlines()[:600]) + "\n")
    ok(run_cli("train", text, "--level", "word", "-o", folder / "w.npz", "--steps", 30,
               "--vocab-size", 300, "--seed", 1, *SMALL))
    return folder / "w.npz"
