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


@pytest.mark.parametrize("batch", [(), ("--batch-size", "1")])
def test_tag_answers_each_sentence_as_it_is_read(data, batch):
    """From a pipe, the sentences that have arrived: one written is answered while the input
    stays open, with the default batch size too."""
    proc = subprocess.Popen(cmd("tag", "-m", data / "m.npz", *batch),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
                            stderr=subprocess.PIPE, env=env(), cwd=ROOT)  # unbuffered: select
    try:
        for text, first_tag in (("\ufeffAda met Oslo", "B-PER"), ("then said", "O")):
            proc.stdin.write(f"{text}\n".encode())
            proc.stdin.flush()  # stdin stays open: the answer must come before the input ends
            rows = []
            for _ in range(len(text.split()) + 1):  # a row per token, then the blank line
                ready, _, _ = select.select([proc.stdout], [], [], 60)
                assert ready, "no answer to a sentence while its input stayed open"
                rows.append(proc.stdout.readline().decode())
            word = text.split()[0].removeprefix("\ufeff")  # a leading BOM is not a token
            assert rows[-1] == "\n" and rows[0] == f"{word}\t{first_tag}\n"
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    assert proc.returncode == 0 and proc.stdout.read() == b""


def test_a_terminal_on_stdin_is_never_waited_on(data):
    terminal_on_stdin_refused("nothing to tag: give FILE, or pipe sentences in", "tag", "-m", data / "m.npz")


@pytest.mark.parametrize("fmt", ["raw", "conll"])
def test_a_fast_pipe_gives_the_rows_of_the_file(data, tmp_path, fmt):
    """Sentences piped in faster than they are tagged come in blocks: the rows are those of
    the same input read from a file, in order."""
    words = ["Ada", "met", "Harry", "Potter", "in", "Oslo", "then", "said"]
    sents = [[words[(i * 3 + j) % len(words)] for j in range(1 + i % 9)] for i in range(3000)]
    text = ("".join(" ".join(s) + "\n" for s in sents) if fmt == "raw" else
            "".join("".join(f"{w}\n" for w in s) + "\n" for s in sents))
    (tmp_path / "in.txt").write_text(text)
    fmt_flag = ("--input-format", fmt) if fmt == "conll" else ()  # raw: sniffed (a peek)
    args = ("tag", "-m", data / "m.npz", "--probs", *fmt_flag, "--threads", "1")
    from_file = ok(run_cli(*args, tmp_path / "in.txt")).stdout
    piped = subprocess.run(["bash", "-c", f"cat {tmp_path / 'in.txt'} | "
                            + " ".join(map(str, cmd(*args)))],
                           capture_output=True, env=env(), cwd=ROOT, timeout=120)
    assert piped.returncode == 0 and piped.stdout == from_file
    assert from_file.count(b"\n\n") == len(sents)
