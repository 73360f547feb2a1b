"""The translator's commands as processes (the processes pass of tests/passes.py): Ctrl-C saves a
model that resumes where it stopped and exits 130, `translate | head` exits quietly, `translate
--batch-size 1` answers a line as soon as it is read, and a terminal on stdin is never waited
on. Set-up and follow-up runs go through main() in this process (clihelp.run_cli)."""

from __future__ import annotations

import select
import subprocess

import pytest

from clihelp import ROOT, cmd, env, ok, run_cli
from rnn_cli.tasks.translate.model import FORMAT
from test_translate_cli import TINY, pairs
from taskprocs import ctrl_c_saves_and_resumes, into_head, terminal_on_stdin_refused


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("tr-proc")
    (d / "train.tsv").write_text(pairs())
    ok(run_cli("train", d / "train.tsv", "-o", d / "m.npz", "--epochs", "15", "-q", *TINY))
    return d


def test_ctrl_c_saves_says_how_to_resume_and_resumes(data, tmp_path):
    ctrl_c_saves_and_resumes(data / "train.tsv", tmp_path / "m.npz", FORMAT, *TINY)


def test_translate_into_head_exits_quietly(data):
    (data / "many.txt").write_text("one two\n" * 20000)
    proc = into_head('translate', '-m', data / 'm.npz', data / 'many.txt')
    assert proc.stdout == b"1 2\n" and proc.stderr == b""
    assert proc.returncode == 1  # BrokenPipeError: no message, exit 1 (as `sample | head`)


@pytest.mark.parametrize("batch", [(), ("--batch-size", "1")])
def test_translate_answers_each_line_as_it_is_read(data, batch):
    """From a pipe, the lines that have arrived: one written is answered while the input stays
    open, with the default batch size too."""
    proc = subprocess.Popen(cmd("translate", "-m", data / "m.npz", *batch),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env(), cwd=ROOT)
    try:
        for text, want in (("\ufeffone two", "1 2"), ("", ""), ("nine", "9")):
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
    terminal_on_stdin_refused("nothing to translate: give FILE, or pipe lines in", "translate", "-m", data / "m.npz")


def test_a_fast_pipe_gives_the_lines_of_the_file(data, tmp_path):
    """Lines piped in faster than they are translated come in blocks: the output is that of
    the same lines read from a file, in order, blank lines kept."""
    numbers = ["one", "two", "three", "four", "nine"]
    text = "".join("\n" if i % 11 == 0 else
                   " ".join(numbers[(i + j) % 5] for j in range(1 + i % 4)) + "\n"
                   for i in range(3000))
    (tmp_path / "in.txt").write_text(text)
    args = ("translate", "-m", data / "m.npz", "--with-score", "--threads", "1")
    from_file = ok(run_cli(*args, tmp_path / "in.txt")).stdout
    piped = subprocess.run(["bash", "-c", f"cat {tmp_path / 'in.txt'} | "
                            + " ".join(map(str, cmd(*args)))],
                           capture_output=True, env=env(), cwd=ROOT, timeout=120)
    assert piped.returncode == 0 and piped.stdout == from_file
    assert from_file.count(b"\n") == text.count("\n")
