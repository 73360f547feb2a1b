"""The process checks every task's commands share (tests/test_<task>_faults.py): Ctrl-C during
training saves a model that resumes, `VERB | head` exits quietly, and a terminal on stdin is
never waited on. Each takes the task's own command lines and expectations."""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import time

import numpy as np

from clihelp import ROOT, assert_clean_error, cmd, env, ok, run_cli, start, stray_temps
from rnn_cli.taskfile import load_task


def ctrl_c_saves_and_resumes(train_file, out, fmt: str, *flags) -> None:
    """Train on `train_file` until the model file appears, interrupt: exit 130 with one line
    naming the file and how to resume; the file loads, finite, at the step it names, no temp
    files left; `--resume` then continues it for 3 more steps."""
    proc = start("train", train_file, "-o", out, *flags, "--steps", "100000000",
                 "--eval-every", "20")
    t0 = time.monotonic()
    while not out.exists():
        assert proc.poll() is None, proc.communicate()[1].decode()
        assert time.monotonic() - t0 < 120, "the model file never appeared"
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    err = err.decode()
    assert proc.returncode == 130 and "Traceback" not in err, err
    m = re.search(r"rnn-cli: error: interrupted at step (\d+); the model is saved in (\S+)", err)
    assert m and m.group(2) == str(out) and f"--resume -o {out}" in err, err
    model = load_task(str(out), fmt)
    step = model.state["step"]
    assert step == int(m.group(1)) >= 20 and np.isfinite(model.params.flat).all()
    assert stray_temps(out.parent) == []
    ok(run_cli("train", train_file, "--resume", "-o", out, "--steps", step + 3, "-q",
               "--threads", "1"))
    assert load_task(str(out), fmt).state["step"] == step + 3


def into_head(*args) -> subprocess.CompletedProcess:
    """`rnn-cli ARGS | head -n 1` under pipefail (the caller checks the one line, no stderr,
    and exit 1: the BrokenPipeError's status, with no message, as `sample | head`)."""
    line = f"{' '.join(cmd(*args))} | head -n 1"
    return subprocess.run(["bash", "-c", "set -o pipefail; " + line], capture_output=True,
                          env=env(), cwd=ROOT, timeout=120)


def terminal_on_stdin_refused(message: str, *args) -> None:
    """`rnn-cli ARGS` with a terminal on stdin and no FILE: a usage error (exit 2), no wait."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(cmd(*args), stdin=slave, capture_output=True, env=env(),
                              cwd=ROOT, timeout=60)
    finally:
        os.close(master)
        os.close(slave)
    assert_clean_error(proc, 2, message)
