"""The translator's commands as processes (the processes pass of tests/passes.py): Ctrl-C saves a
model that resumes where it stopped and exits 130, `translate | head` exits quietly, `translate
--batch-size 1` answers a line as soon as it is read, and a terminal on stdin is never waited
on. Set-up and follow-up runs go through main() in this process (clihelp.run_cli)."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import time

import numpy as np
import pytest

from clihelp import ROOT, assert_clean_error, cmd, env, ok, run_cli, start, stray_temps
from rnn_cli.taskfile import load_task
from rnn_cli.tasks.translate.model import FORMAT
from test_translate_cli import TINY, pairs


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("tr-proc")
    (d / "train.tsv").write_text(pairs())
    ok(run_cli("train", d / "train.tsv", "-o", d / "m.npz", "--epochs", "15", "-q", *TINY))
    return d


def test_ctrl_c_saves_says_how_to_resume_and_resumes(data, tmp_path):
    out = tmp_path / "m.npz"
    proc = start("train", data / "train.tsv", "-o", out, *TINY, "--steps", "100000000",
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
    model = load_task(str(out), FORMAT)
    step = model.state["step"]
    assert step == int(m.group(1)) >= 20 and np.isfinite(model.params.flat).all()
    assert stray_temps(tmp_path) == []
    ok(run_cli("train", data / "train.tsv", "--resume", "-o", out, "--steps", step + 3, "-q",
               "--threads", "1"))
    assert load_task(str(out), FORMAT).state["step"] == step + 3


def test_translate_into_head_exits_quietly(data):
    (data / "many.txt").write_text("one two\n" * 20000)
    line = f"{' '.join(cmd('translate', '-m', data / 'm.npz', data / 'many.txt'))} | head -n 1"
    proc = subprocess.run(["bash", "-c", "set -o pipefail; " + line], capture_output=True,
                          env=env(), cwd=ROOT, timeout=120)
    assert proc.stdout == b"1 2\n" and proc.stderr == b""
    assert proc.returncode == 1  # BrokenPipeError: no message, exit 1 (as `sample | head`)


def test_translate_answers_each_line_as_it_is_read(data):
    proc = subprocess.Popen(cmd("translate", "-m", data / "m.npz", "--batch-size", "1"),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env(), cwd=ROOT)
    try:
        for text, want in (("one two", "1 2"), ("", ""), ("nine", "9")):
            proc.stdin.write(f"{text}\n".encode())
            proc.stdin.flush()  # stdin stays open: the answer must come before the input ends
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            assert ready, "no answer to a line while its input stayed open"
            assert proc.stdout.readline().decode() == want + "\n"
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    assert proc.returncode == 0 and proc.stdout.read() == b""


def test_a_terminal_on_stdin_is_never_waited_on(data):
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(cmd("translate", "-m", data / "m.npz"), stdin=slave,
                              capture_output=True, env=env(), cwd=ROOT, timeout=60)
    finally:
        os.close(master)
        os.close(slave)
    assert_clean_error(proc, 2, "nothing to translate: give FILE, or pipe lines in")
