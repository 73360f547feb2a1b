"""`rnn-cli sample` modes end to end: --top-p, --beam (whose ln P is what `score` gives the text),
-n 0 (endless until the pipe closes or Ctrl-C), --prime-file and the prime's ln P with -v."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import pytest

from test_cli import NAMES, ROOT, SHAKESPEARE, rnn

LOGP = re.compile(r"ln P = (-?[\d.]+) over (\d+) tokens")


@pytest.fixture(scope="module")
def names_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("m") / "names.npz"
    rnn("train", NAMES, "-o", out, "--cell", "rnn", "--hidden", "32", "--steps", "60",
        "--batch-size", "8", "--seq-len", "16", "--seed", "2", "-q")
    return out


@pytest.fixture(scope="module")
def word_gru(tmp_path_factory):
    lines = SHAKESPEARE.read_text().splitlines()[:2000]
    out = tmp_path_factory.mktemp("w") / "w.npz"
    rnn("train", "-", "--level", "word", "-o", out, "--cell", "gru", "--hidden", "16",
        "--steps", "150", "--batch-size", "8", "--seq-len", "16", "--vocab-size", "300", "-q",
        input="\n".join(lines).encode())
    return out


def _logps(stderr: bytes) -> list[float]:
    return [float(m.group(1)) for m in LOGP.finditer(stderr.decode())]


# ------------------------------------------------------------------------------------ --top-p


def test_top_p_is_seeded_and_one_changes_nothing(names_model):
    a = rnn("sample", "-m", names_model, "-n", "200", "--seed", "4", "--top-p", "0.6").stdout
    b = rnn("sample", "-m", names_model, "-n", "200", "--seed", "4", "--top-p", "0.6").stdout
    plain = rnn("sample", "-m", names_model, "-n", "200", "--seed", "4").stdout
    one = rnn("sample", "-m", names_model, "-n", "200", "--seed", "4", "--top-p", "1").stdout
    assert a == b and one == plain and a != plain
    tiny = rnn("sample", "-m", names_model, "-n", "100", "--seed", "4", "--top-p", "1e-9").stdout
    assert tiny == rnn("sample", "-m", names_model, "-n", "100", "--argmax").stdout


@pytest.mark.parametrize("flags,code,needle", [
    (["--top-p", "0"], 2, "--top-p"), (["--top-p", "1.5"], 2, "--top-p"),
    (["--argmax", "--top-p", "0.5"], 2, "--argmax"), (["--beam", "2", "--top-k", "3"], 2, "--beam"),
    (["--beam", "2", "-n", "0"], 2, "-n 0"), (["--length-norm", "1"], 2, "--beam"),
    (["--beam", "0"], 2, "--beam"), (["--prime", "a", "--prime-file", "x"], 2, "--prime"),
    (["--prime-file", "/nonexistent/p.txt"], 1, "not found"), (["-n", "-1"], 2, "--length"),
])
def test_bad_mode_combinations(names_model, flags, code, needle):
    proc = rnn("sample", "-m", names_model, *flags, check=False)
    err = proc.stderr.decode()
    assert proc.returncode == code and needle in err and proc.stdout == b""
    assert "Traceback" not in err
    if code == 1:
        assert "hint:" in err


# ------------------------------------------------------------------------------------ --beam


def test_beam_one_is_argmax(names_model):
    for length in (["--lines", "4"], ["-n", "120"]):
        beam = rnn("sample", "-m", names_model, *length, "--beam", "1", "--prime", "ma").stdout
        greedy = rnn("sample", "-m", names_model, *length, "--argmax", "--prime", "ma").stdout
        assert beam == greedy


def test_beam_logprob_is_what_score_gives(names_model):
    """-v reports ln P of each line; `score` of the first line and `score --total` of the whole
    output (state carried, as beam search continues) give the same numbers."""
    proc = rnn("sample", "-m", names_model, "--beam", "4", "--lines", "3", "-v")
    text, logps = proc.stdout.decode(), _logps(proc.stderr)
    assert text.count("\n") == 3 and len(logps) == 3
    total = json.loads(rnn("score", "-m", names_model, "--total", "--json", "-",
                           input=proc.stdout).stdout)
    assert total["logprob"] == pytest.approx(sum(logps), rel=1e-5, abs=1e-4)
    first = text.splitlines()[0]
    if first.strip():
        row = rnn("score", "-m", names_model, "-", input=(first + "\n").encode()).stdout.decode()
        assert float(row.split("\t")[0]) == pytest.approx(logps[0], rel=1e-5, abs=1e-4)
    # beam K is never less probable than greedy on the first line (from the same state)
    greedy = _logps(rnn("sample", "-m", names_model, "--beam", "1", "--lines", "1", "-v").stderr)
    assert logps[0] >= greedy[0] - 1e-6


def test_beam_is_deterministic_and_wider_beams_run(names_model):
    a = rnn("sample", "-m", names_model, "--beam", "16", "-n", "60", "--seed", "1").stdout
    b = rnn("sample", "-m", names_model, "--beam", "16", "-n", "60", "--seed", "9").stdout
    assert a == b and len(a.decode().rstrip("\n")) >= 50
    norm = rnn("sample", "-m", names_model, "--beam", "4", "--lines", "2", "--length-norm", "1")
    assert norm.stdout.decode().count("\n") == 2


@pytest.mark.parametrize("mode", [["--beam", "3", "--lines", "2"], ["--top-p", "0.8", "--lines",
                                                                     "2", "--seed", "1"]])
def test_word_level_gru_modes(word_gru, mode):
    text = rnn("sample", "-m", word_gru, *mode).stdout.decode()
    assert text.count("\n") == 2 and "<UNK>" not in text


def test_lstm_char_modes(tmp_path):
    out = tmp_path / "l.npz"
    rnn("train", NAMES, "-o", out, "--cell", "lstm", "--layers", "2", "--embed", "8",
        "--hidden", "16", "--steps", "10", "--batch-size", "4", "--seq-len", "16", "-q")
    for mode in (["--beam", "3", "-n", "40"], ["--top-p", "0.5", "-n", "40", "--seed", "3"]):
        text = rnn("sample", "-m", out, *mode).stdout.decode()
        assert len(text) == 40 + (text[39] != "\n")  # 40 characters (+ the closing newline)


# ------------------------------------------------------------------------------------ -n 0


def test_endless_stream_into_head_ends_quietly(names_model):
    cmd = f"{sys.executable} -m rnn_cli sample -m {names_model} -n 0 --seed 3 | head -c 10000"
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, cwd=ROOT, timeout=120)
    assert len(proc.stdout) == 10000 and proc.stderr == b""


def test_endless_stream_ctrl_c_exits_130_on_a_whole_character(tmp_path):
    corpus = tmp_path / "u.txt"
    corpus.write_text("".join(f"ça ☃ naïve {i} ünïcödé — €{i % 7}\n" for i in range(400)))
    model = tmp_path / "u.npz"
    rnn("train", corpus, "-o", model, "--hidden", "16", "--steps", "10", "--batch-size", "4",
        "--seq-len", "16", "-q")
    sink = tmp_path / "out.txt"
    with open(sink, "wb") as f:
        proc = subprocess.Popen([sys.executable, "-m", "rnn_cli", "sample", "-m", str(model),
                                 "-n", "0", "--seed", "1"], stdout=f, stderr=subprocess.PIPE,
                                cwd=ROOT)
        try:
            deadline = time.monotonic() + 60
            while sink.stat().st_size < 3000 and time.monotonic() < deadline:  # it is streaming
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        finally:  # a failed check leaves no endless sampler behind
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 130 and b"interrupted" in err and b"Traceback" not in err
    text = sink.read_bytes().decode("utf-8")  # raises if a character was cut
    assert len(text) > 100


# ------------------------------------------------------------------------------------ primes


def test_prime_file_equals_prime_and_stdin(names_model, tmp_path):
    prime = "emma\nol"
    f = tmp_path / "p.txt"
    f.write_text(prime)
    args = ("sample", "-m", names_model, "-n", "80", "--seed", "5")
    a = rnn(*args, "--prime", prime).stdout
    b = rnn(*args, "--prime-file", f).stdout
    c = rnn(*args, "--prime-file", "-", input=prime.encode()).stdout
    assert a == b == c and a.startswith(prime.encode())


def test_long_prime_file_and_its_logprob(names_model):
    """The whole names corpus as a prime: fed in one compiled pass; with -v its ln P equals what
    `score --total` gives the same text."""
    proc = rnn("sample", "-m", names_model, "--prime-file", NAMES, "-n", "20", "-v",
               "--allow-unk")
    assert proc.stdout.startswith(NAMES.read_bytes()[:1000])
    (logp,) = _logps(proc.stderr)
    total = json.loads(rnn("score", "-m", names_model, "--total", "--json", NAMES).stdout)
    assert logp == pytest.approx(total["logprob"], rel=1e-5)
