"""The tagger's commands as processes (the processes pass of tests/passes.py): Ctrl-C saves a
model that resumes where it stopped and exits 130, `tag | head` exits quietly, `tag` answers a
sentence as soon as it is read, and a terminal on stdin is never waited on. Set-up and
follow-up runs go through main() in this process (clihelp.run_cli)."""

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
from rnn_cli.tasks.tag.model import FORMAT
from test_tag_cli import TINY, tagged


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("tag-proc")
    (d / "train.tsv").write_text(tagged())
    ok(run_cli("train", d / "train.tsv", "-o", d / "m.npz", "--epochs", "8", "-q", *TINY))
    return d


def test_ctrl_c_saves_says_how_to_resume_and_resumes(data, tmp_path):
    out = tmp_path / "m.npz"
    proc = start("train", data / "train.tsv", "-o", out, *TINY, "--steps", "100000000",
                 "--eval-every", "20", "--patience", "0")
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


def test_tag_into_head_exits_quietly(data):
    (data / "many.txt").write_text("".join(f"Ada met Harry Potter {i}\n" for i in range(20000)))
    line = f"{' '.join(cmd('tag', '-m', data / 'm.npz', data / 'many.txt'))} | head -n 1"
    proc = subprocess.run(["bash", "-c", "set -o pipefail; " + line], capture_output=True,
                          env=env(), cwd=ROOT, timeout=120)
    assert proc.stdout.decode() == "Ada\tB-PER\n" and proc.stderr == b""
    assert proc.returncode == 1  # BrokenPipeError: no message, exit 1 (as `sample | head`)


def test_tag_answers_each_sentence_as_it_is_read(data):
    proc = subprocess.Popen(cmd("tag", "-m", data / "m.npz", "--batch-size", "1"),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
                            stderr=subprocess.PIPE, env=env(), cwd=ROOT)  # unbuffered: select
    try:
        for text, first_tag in (("Ada met Oslo", "B-PER"), ("then said", "O")):
            proc.stdin.write(f"{text}\n".encode())
            proc.stdin.flush()  # stdin stays open: the answer must come before the input ends
            rows = []
            for _ in range(len(text.split()) + 1):  # a row per token, then the blank line
                ready, _, _ = select.select([proc.stdout], [], [], 60)
                assert ready, "no answer to a sentence while its input stayed open"
                rows.append(proc.stdout.readline().decode())
            assert rows[-1] == "\n" and rows[0] == f"{text.split()[0]}\t{first_tag}\n"
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    assert proc.returncode == 0 and proc.stdout.read() == b""


def test_a_terminal_on_stdin_is_never_waited_on(data):
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(cmd("tag", "-m", data / "m.npz"), stdin=slave,
                              capture_output=True, env=env(), cwd=ROOT, timeout=60)
    finally:
        os.close(master)
        os.close(slave)
    assert_clean_error(proc, 2, "nothing to tag: give FILE, or pipe sentences in")
