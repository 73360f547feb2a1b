"""The classifier's commands as processes (the processes pass of tests/passes.py): Ctrl-C saves
a model that resumes where it stopped and exits 130, `predict | head` exits quietly, `predict`
answers a line as soon as it is read, and a terminal on stdin is never waited on. Set-up and
follow-up runs go through main() in this process (clihelp.run_cli)."""

from __future__ import annotations

import select
import subprocess

import pytest

from clihelp import ROOT, cmd, env, ok, run_cli
from rnn_cli.tasks.classify.model import FORMAT
from test_classify_cli import TINY, labelled
from taskprocs import ctrl_c_saves_and_resumes, into_head, terminal_on_stdin_refused


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("clf-proc")
    (d / "train.txt").write_text(labelled())
    ok(run_cli("train", d / "train.txt", "-o", d / "m.npz", "--epochs", "3", "-q", *TINY))
    return d


def test_ctrl_c_saves_says_how_to_resume_and_resumes(data, tmp_path):
    ctrl_c_saves_and_resumes(data / "train.txt", tmp_path / "m.npz", FORMAT, *TINY)


def test_predict_into_head_exits_quietly(data):
    lines = "".join(f"a good film number {i}\n" for i in range(20000))
    (data / "many.txt").write_text(lines)
    proc = into_head('predict', '-m', data / 'm.npz', data / 'many.txt')
    assert proc.stdout.decode().split("\t")[0] == "pos"
    assert proc.stdout.count(b"\n") == 1 and proc.stderr == b""
    assert proc.returncode == 1  # BrokenPipeError: no message, exit 1 (as `sample | head`)


@pytest.mark.parametrize("batch", [(), ("--batch-size", "1")])
def test_predict_answers_each_line_as_it_is_read(data, batch):
    """Blocks of the lines at hand: a line written to the pipe is answered while the input
    stays open, with the default batch size too."""
    proc = subprocess.Popen(cmd("predict", "-m", data / "m.npz", *batch),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env(), cwd=ROOT)
    try:
        for text, label in (("a bad plot", "neg"), ("good", "pos"), ("meh actor", "mid")):
            proc.stdin.write(f"{text}\n".encode())
            proc.stdin.flush()  # stdin stays open: the answer must come before the input ends
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            assert ready, "no answer to a line while its input stayed open"
            assert proc.stdout.readline().decode().split("\t")[0] == label
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    assert proc.returncode == 0 and proc.stdout.read() == b""


def test_a_fast_pipe_gives_the_rows_of_the_file(data, tmp_path):
    """Lines piped in faster than they are classified come in blocks: the rows are those of
    the same lines read from a file, in order."""
    text = "".join(f"{'__label__pos ' if i % 5 == 0 else ''}the film {'good ' * (i % 13)}bad"
                   f"{'' if i % 7 else chr(10)}\n" for i in range(5000))
    (tmp_path / "in.txt").write_text(text)
    from_file = ok(run_cli("predict", "-m", data / "m.npz", tmp_path / "in.txt", "--threads",
                           "1")).stdout
    piped = subprocess.run(["bash", "-c", f"cat {tmp_path / 'in.txt'} | "
                            + " ".join(map(str, cmd("predict", "-m", data / "m.npz")))],
                           capture_output=True, env=env(), cwd=ROOT, timeout=120)
    assert piped.returncode == 0 and piped.stdout == from_file
    assert from_file.count(b"\n") == text.count("\n")


def test_a_terminal_on_stdin_is_never_waited_on(data):
    terminal_on_stdin_refused("nothing to classify: give FILE, or pipe lines in", "predict", "-m", data / "m.npz")
