"""End to end on the shipped corpora: the real `rnn-cli` in subprocesses (training, `| head`,
`--help`), the rest through main() in this process (clihelp.run_cli)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clihelp import run_cli

ROOT = Path(__file__).resolve().parent.parent
SHAKESPEARE = ROOT / "corpora" / "shakespeare.txt"
NAMES = ROOT / "corpora" / "names.txt"
ANSI = "\x1b["


def rnn(*args, input=None, home=None, check=True, subprocess_=False):
    """`rnn-cli ARGS` through main() in this process (clihelp.run_cli), or with `subprocess_` as
    the real command (`python -m rnn_cli`)."""
    if subprocess_:
        env = dict(os.environ)
        env.pop("FORCE_COLOR", None)
        proc = subprocess.run([sys.executable, "-m", "rnn_cli", *map(str, args)], input=input,
                              capture_output=True, env=env, cwd=ROOT, timeout=300)
    else:
        proc = run_cli(*args, input=input, home=home)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout: {proc.stdout[-2000:]!r}\n"
                             f"stderr: {proc.stderr.decode(errors='replace')[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def char_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("m") / "shakespeare.npz"
    proc = rnn("train", SHAKESPEARE, "-o", out, "--hidden", "32", "--steps", "60",
               "--eval-every", "30", "--batch-size", "8", "--seq-len", "32", "--json", "--seed", "3",
               subprocess_=True)  # the real command once, start to end, default threads
    return out, proc


def test_train_writes_model_and_json_summary(char_model):
    out, proc = char_model
    assert out.exists()
    summary = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    assert summary["steps"] == 60 and summary["B"] == 8 and summary["T"] == 32
    assert summary["tokens_per_sec"] > 0 and summary["V"] >= 60
    assert 0 < summary["val_loss"] < 4.4  # below log(77): it learned something
    assert ANSI not in proc.stdout.decode() and ANSI not in proc.stderr.decode()


def test_sample_streams_only_text_to_stdout(char_model):
    out, _ = char_model
    proc = rnn("sample", "-m", out, "-n", "300", "--seed", "1")
    text = proc.stdout.decode()
    assert len(text) == 301 or text.endswith("\n")  # 300 chars (+ final newline if missing)
    assert ANSI not in text and "rnn-cli" not in text
    assert proc.stderr == b""


def test_same_seed_same_bytes_and_prime(char_model):
    out, _ = char_model
    a = rnn("sample", "-m", out, "-n", "200", "--seed", "7", "--prime", "ROMEO:").stdout
    b = rnn("sample", "-m", out, "-n", "200", "--seed", "7", "--prime", "ROMEO:").stdout
    c = rnn("sample", "-m", out, "-n", "200", "--seed", "8", "--prime", "ROMEO:").stdout
    assert a == b and a != c and a.startswith(b"ROMEO:")


def test_sample_into_head_exits_quietly(char_model):
    out, _ = char_model
    cmd = (f"{sys.executable} -m rnn_cli sample -m {out} -n 200000 --seed 3 | head -c 10")
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, cwd=ROOT, timeout=120)
    assert len(proc.stdout) == 10
    assert b"Traceback" not in proc.stderr and proc.stderr == b""


def test_lines_stops_after_n_newlines(char_model):
    out, _ = char_model
    text = rnn("sample", "-m", out, "--lines", "4", "--seed", "2").stdout.decode()
    assert text.count("\n") == 4 and text.endswith("\n")


def test_store_default_and_level(tmp_path):
    rnn("train", NAMES, "--hidden", "16", "--steps", "20", "--batch-size", "8", "--seq-len", "16",
        home=tmp_path)
    assert (tmp_path / "char.npz").exists()
    text = rnn("sample", "--level", "char", "--lines", "5", "--seed", "1", home=tmp_path).stdout
    assert text.decode().count("\n") == 5
    missing = rnn("sample", "--level", "word", home=tmp_path, check=False)
    assert missing.returncode == 1
    assert b"rnn-cli train --level word" in missing.stderr and b"Traceback" not in missing.stderr


def test_word_level_from_stdin(tmp_path):
    lines = SHAKESPEARE.read_text().splitlines()[:3000]
    out = tmp_path / "w.npz"
    rnn("train", "-", "--level", "word", "-o", out, "--hidden", "24", "--steps", "15",
        "--batch-size", "4", "--seq-len", "16", "--vocab-size", "500",
        input="\n".join(lines).encode())
    text = rnn("sample", "-m", out, "--lines", "3", "--seed", "4").stdout.decode()
    assert text.count("\n") == 3
    assert "<UNK>" not in text and " ," not in text


def test_errors_are_one_line_with_hint(tmp_path):
    proc = rnn("train", tmp_path / "nope.txt", "-o", tmp_path / "m.npz", check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "rnn-cli: error:" in err and "hint:" in err
    assert "Traceback" not in err and not (tmp_path / "m.npz").exists()
    bad = rnn("sample", "-m", tmp_path / "m.npz", "--temperature", "nan", check=False)
    assert bad.returncode == 2 and b"--temperature" in bad.stderr


def test_help_does_not_import_numba():
    code = "import sys; from rnn_cli.cli import main\n" \
           "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n" \
           "assert 'numba' not in sys.modules and 'numpy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=ROOT)


class _Stdin:
    def __init__(self, tty: bool):
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_input_source_reads_a_pipe_and_refuses_a_terminal(monkeypatch):
    """predict, tag and translate resolve FILE|- alike (flags.input_source)."""
    from rnn_cli.errors import CorpusError, ExitStatus, UsageError
    from rnn_cli.flags import input_source

    monkeypatch.setattr(sys, "stdin", _Stdin(tty=False))
    assert input_source(None, "nothing", "e.g.") == input_source("-", "nothing", "e.g.") == "-"
    assert input_source("in.txt", "nothing", "e.g.") == "in.txt"
    monkeypatch.setattr(sys, "stdin", _Stdin(tty=True))
    assert input_source("in.txt", "nothing", "e.g.") == "in.txt"
    with pytest.raises(UsageError, match="nothing") as e:
        input_source(None, "nothing", "e.g. this")
    assert e.value.hint == "e.g. this" and e.value.exit_code == ExitStatus.USAGE
    with pytest.raises(CorpusError, match="expects piped input"):
        input_source("-", "nothing", "e.g. this")
    monkeypatch.setattr(sys, "stdin", None)
    with pytest.raises(UsageError):
        input_source(None, "nothing", "e.g.")
