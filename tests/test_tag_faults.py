"""The tagger's commands as processes (the processes pass of tests/passes.py): Ctrl-C saves a
model that resumes where it stopped and exits 130, `tag | head` exits quietly, `tag` answers a
sentence as soon as it is read, and a terminal on stdin is never waited on. Set-up and
follow-up runs go through main() in this process (clihelp.run_cli)."""

from __future__ import annotations

import select
import subprocess

import pytest

from clihelp import ROOT, cmd, env, ok, run_cli
from rnn_cli.tasks.tag.model import FORMAT
from test_tag_cli import TINY, tagged
from taskprocs import ctrl_c_saves_and_resumes, into_head, terminal_on_stdin_refused


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("tag-proc")
    (d / "train.tsv").write_text(tagged())
    ok(run_cli("train", d / "train.tsv", "-o", d / "m.npz", "--epochs", "8", "-q", *TINY))
    return d


def test_ctrl_c_saves_says_how_to_resume_and_resumes(data, tmp_path):
    ctrl_c_saves_and_resumes(data / "train.tsv", tmp_path / "m.npz", FORMAT, *TINY,
                             "--patience", "0")


def test_tag_into_head_exits_quietly(data):
    (data / "many.txt").write_text("".join(f"Ada met Harry Potter {i}\n" for i in range(20000)))
    proc = into_head('tag', '-m', data / 'm.npz', data / 'many.txt')
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
    terminal_on_stdin_refused("nothing to tag: give FILE, or pipe sentences in", "tag", "-m", data / "m.npz")
