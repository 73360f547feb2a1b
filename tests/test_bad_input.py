"""Bad corpora (exit 1, one error line and a hint, nothing written or overwritten) and bad flags
(exit 2 naming the flag): through main() in this process (clihelp.run_cli), and the real `rnn-cli`
in subprocesses where the process matters (unreadable files, --threads above the core count,
which also sizes BLAS before numpy loads)."""

from __future__ import annotations

import ctypes
import os
import subprocess

import numpy as np
import pytest

from rnn_cli import checkpoint

from clihelp import (NAMES, ROOT, TINY, assert_clean_error, assert_usage_error, cmd, env, ok,
                     rnn, run_cli, run_cli_many)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A valid model; every failing `train -o` below must leave it byte-identical."""
    out = tmp_path_factory.mktemp("bad") / "keep.npz"
    ok(run_cli("train", NAMES, "-o", out, *TINY, "--steps", "2", "-q"))
    return out


def train_fails(model, corpus, *needles, extra=(), code=1, input=None):
    before = model.read_bytes()
    proc = run_cli("train", corpus, "-o", model, *TINY, "--steps", "2", *extra, input=input)
    err = assert_clean_error(proc, code, *needles)
    assert model.read_bytes() == before, "a failed run touched the existing model"
    assert not [n for n in os.listdir(model.parent) if n.startswith(".rnn-cli-")]
    return err


# ----------------------------------------------------------------- bad corpora
def test_missing_path_and_directory(model, tmp_path):
    train_fails(model, tmp_path / "missing.txt", "corpus file not found")
    train_fails(model, tmp_path, "is a directory")
    train_fails(model, tmp_path / "missing.txt", "corpus file not found",
                extra=("--resume",))  # with --resume too: the model is read, never written


def _drop_file_read_override():
    """As root, permissions do not stop reads: drop CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH
    from the bounding set before exec (PR_CAPBSET_DROP), so the child is refused like a user."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl")


def test_unreadable_corpus(model, tmp_path):
    corpus = tmp_path / "secret.txt"
    corpus.write_text("some text that nobody may read\n" * 20)
    corpus.chmod(0)
    before = model.read_bytes()
    try:
        proc = subprocess.run(cmd("train", corpus, "-o", model), capture_output=True,
                              env=env(), cwd=ROOT, timeout=120,
                              preexec_fn=_drop_file_read_override if os.geteuid() == 0 else None)
    except subprocess.SubprocessError as e:  # pragma: no cover - no prctl here
        pytest.skip(f"cannot drop root's read override: {e}")
    assert_clean_error(proc, 1, "permission denied", "chmod")
    assert model.read_bytes() == before


CORPORA = {  # id: (content, what the error says)
    "empty": (b"", "is empty"),
    "whitespace": (b"  \n\t\r\n   \n", "only whitespace"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "NUL byte at offset 8"),
    "nul": (b"plain text\x00more text\n" * 5, "NUL byte at offset 10"),
    "one-symbol": (b"a" * 40, "single distinct symbol"),
    "too-short": (b"abcdef", "at least 9 tokens"),
}


@pytest.fixture(scope="module")
def corpus_runs(model, tmp_path_factory):
    """`train` on each bad corpus, run side by side; the model at -o must survive them all."""
    folder = tmp_path_factory.mktemp("corpora")
    before = model.read_bytes()
    jobs = {}
    for name, (content, _) in CORPORA.items():
        (folder / name).write_bytes(content)
        jobs[name] = ("train", folder / name, "-o", model, *TINY, "--steps", "2")
    runs = run_cli_many(jobs)
    assert model.read_bytes() == before, "a failed run touched the existing model"
    return runs


@pytest.mark.parametrize("name", list(CORPORA))
def test_unusable_corpus(corpus_runs, model, name):
    assert_clean_error(corpus_runs[name], 1, CORPORA[name][1])
    assert not [n for n in os.listdir(model.parent) if n.startswith(".rnn-cli-")]


def test_empty_stdin(model):
    train_fails(model, "-", "<stdin> is empty", input=b"")


def test_invalid_utf8_reports_offset_and_the_way_out(model, tmp_path):
    corpus = tmp_path / "latin1.txt"
    corpus.write_bytes("naïve café, déjà vu\n".encode("latin-1") * 20)
    err = train_fails(model, corpus, "not valid utf-8", "byte 0xef at offset 2 (line 1)")
    assert "--encoding" in err and "--errors replace" in err
    out = tmp_path / "m.npz"
    ok(run_cli("train", corpus, "-o", out, *TINY, "--steps", "1", "--encoding", "latin-1", "-q"))
    assert "é" in checkpoint.load(str(out)).vocab.symbols
    ok(run_cli("train", corpus, "-o", out, *TINY, "--steps", "1", "--errors", "replace", "-q"))
    assert "\ufffd" in checkpoint.load(str(out)).vocab.symbols


def test_word_level_without_word_tokens(model, tmp_path):
    corpus = tmp_path / "specials.txt"
    corpus.write_text("<unk> <eos>\n<UNK>\n\n<eos> <unk> <unk>\n" * 10)
    train_fails(model, corpus, "only <unk>/<eos> tokens", "--level char",
                extra=("--level", "word"))


def test_output_path_that_cannot_be_written_is_refused_before_training(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    runs = run_cli_many({"dir": ("train", NAMES, "-o", tmp_path),
                         "under-file": ("train", NAMES, "-o", tmp_path / "file" / "m.npz")})
    assert_clean_error(runs["dir"], 1, "it is a directory")
    assert_clean_error(runs["under-file"], 1, "is not a writable folder")


def test_vocab_size_one_is_a_usage_error(model):
    """--vocab-size < 2 is wrong for every corpus, so it is a flag error (exit 2), named."""
    err = train_fails(model, NAMES, "--vocab-size must be at least 2", extra=("--vocab-size", "1"),
                      code=2)
    assert "(got 1)" in err


def test_short_corpus_shrinks_batch_with_a_warning(tmp_path):
    """Shorter than one window: B and T shrink (the warning says to what) while >= 4 fit.
    --threads above the core count warns and clamps in the same run."""
    corpus = tmp_path / "short.txt"
    corpus.write_text("the cat sat on a mat.\n" * 2)  # 44 chars: 40 train, 4 validation
    out = tmp_path / "s.npz"
    proc = ok(rnn("train", corpus, "-o", out, "--hidden", "8", "--steps", "3", "--threads", "999"))
    err = proc.stderr.decode()
    assert "warning: the text is short: using --batch-size 1 --seq-len 9 (asked 32 x 64)" in err
    assert f"--threads 999 is more than the {len(os.sched_getaffinity(0))} cores" in err
    assert checkpoint.load(str(out)).train_cfg.seq_len == 9


def _single_line(path, n_bytes: int):
    rng = np.random.default_rng(0)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz     .,", np.uint8)
    path.write_bytes(letters[rng.integers(0, letters.size, n_bytes)].tobytes())


def test_single_long_line(tmp_path):
    corpus, out = tmp_path / "line.txt", tmp_path / "line.npz"
    _single_line(corpus, 2_000_000)
    ok(run_cli("train", corpus, "-o", out, *TINY, "--steps", "3", "--val-frac", "0.001", "-q"))
    assert checkpoint.load(str(out)).state["train_tokens"] > 1_990_000


@pytest.mark.slow
def test_50mb_single_line(tmp_path):
    corpus, out = tmp_path / "line.txt", tmp_path / "line.npz"
    _single_line(corpus, 50_000_000)
    proc = subprocess.run(["/usr/bin/time", "-f", "maxrss_kb=%M", *cmd(
        "train", corpus, "-o", out, *TINY, "--steps", "3", "--val-frac", "0.001", "-q")],
        capture_output=True, env=env(), cwd=ROOT, timeout=300)
    ok(proc)
    rss_kb = int(proc.stderr.decode().rsplit("maxrss_kb=", 1)[1])
    assert rss_kb < 2_000_000, rss_kb  # ~15 bytes per character of text at most


# ----------------------------------------------------------------- bad flags
TRAIN_FLAGS = [
    ("--hidden", "0"), ("--hidden", "-3"), ("--hidden", "abc"), ("--layers", "0"),
    ("--batch-size", "0"), ("--seq-len", "-1"), ("--steps", "0"), ("--eval-every", "0"),
    ("--vocab-size", "0"), ("--min-count", "-1"), ("--sample-every", "-1"),
    ("--lr", "nan"), ("--lr", "inf"), ("--lr", "-1e-3"), ("--lr", "0"), ("--lr", "1e9"),
    ("--clip", "-1"), ("--clip", "nan"), ("--epochs", "inf"), ("--epochs", "-1"),
    ("--max-seconds", "-5"), ("--val-frac", "-0.1"), ("--val-frac", "0.6"), ("--val-frac", "nan"),
    ("--level", "byte"), ("--cell", "transformer"), ("--activation", "gelu"), ("--optim", "lion"),
    ("--tokenizer", "bpe"), ("--threads", "0"), ("--seed", "-1"), ("--device", "tpu"),
]
SAMPLE_FLAGS = [
    ("--temperature", "0"), ("--temperature", "-1"), ("--temperature", "nan"),
    ("--temperature", "inf"), ("--top-k", "0"), ("--top-k", "-2"), ("--length", "-1"),
    ("--top-p", "0"), ("--top-p", "1.01"), ("--top-p", "nan"), ("--beam", "0"),
    ("--length-norm", "-1"), ("--lines", "0"), ("--level", "byte"), ("--seed", "-7"), ("--threads", "-1"),
]


@pytest.fixture(scope="module")
def flag_runs(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("flags") / "never.npz"
    jobs = {("train", f, v): ("train", NAMES, "-o", out, f, v) for f, v in TRAIN_FLAGS}
    jobs.update({("sample", f, v): ("sample", "-m", model, f, v) for f, v in SAMPLE_FLAGS})
    runs = run_cli_many(jobs)
    assert not out.exists()
    return runs


@pytest.mark.parametrize("flag, value", TRAIN_FLAGS, ids=[f"{f}={v}" for f, v in TRAIN_FLAGS])
def test_bad_train_flag(flag_runs, flag, value):
    assert_usage_error(flag_runs["train", flag, value], flag)


@pytest.mark.parametrize("flag, value", SAMPLE_FLAGS, ids=[f"{f}={v}" for f, v in SAMPLE_FLAGS])
def test_bad_sample_flag(flag_runs, flag, value):
    proc = flag_runs["sample", flag, value]
    assert_usage_error(proc, flag)
    assert proc.stdout == b""


def test_conflicting_sample_options(model):
    for extra in (("--temperature", "0.5"), ("--top-k", "3"), ("--top-p", "0.5")):
        err = assert_clean_error(run_cli("sample", "-m", model, "--argmax", *extra), 2,
                                 "--argmax")
        assert extra[0] in err


def test_threads_above_core_count_warns_and_clamps_in_sample(model):
    proc = ok(rnn("sample", "-m", model, "-n", "5", "--threads", "4096", "--seed", "1"))
    assert b"--threads 4096 is more than the" in proc.stderr and b"cores here; using" in proc.stderr
    assert len(proc.stdout.decode()) >= 5
