"""The translator from the command line: `train` (guessed from source<TAB>target lines, --task
translate, --src/--tgt), `translate` (streamed in order, blank lines kept, greedy, --beam,
--n-best, --with-score, --json, --max-len, --attention-out), `test`, `info`, the wrong-kind
errors, and every bad input of issue 28. Everything runs through main() in this process
(clihelp.run_cli) on tiny models (H 16, one thread); the process-level behaviour (Ctrl-C,
`| head`, an answer per line as it comes) is in tests/test_translate_faults.py."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from clihelp import assert_clean_error, assert_usage_error, ok, run_cli
from rnn_cli.taskfile import load_task
from rnn_cli.tasks.translate.model import FORMAT

DIGITS = "zero one two three four five six seven eight nine".split()
TINY = ("--hidden", "16", "--embed", "16", "--proj", "16", "--dec-hidden", "32",
        "--attn-size", "16", "--dropout", "0", "--batch-size", "16", "--lr", "0.01", "--seed",
        "3", "--threads", "1")


def pairs(n: int = 300, seed: int = 0) -> str:
    """Digit words -> digits ("one two" -> "1 2"): learnt in a couple of seconds."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        d = rng.integers(0, 10, int(rng.integers(1, 4)))
        out.append(" ".join(DIGITS[i] for i in d) + "\t" + " ".join(str(i) for i in d))
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("tr")
    (d / "train.tsv").write_text(pairs())
    (d / "dev.tsv").write_text(pairs(60, seed=1))
    (d / "test.tsv").write_text(pairs(40, seed=2))
    return d


@pytest.fixture(scope="module")
def model(data):
    """A translator of the digit pairs, its task guessed from the TAB lines, with --valid."""
    r = ok(run_cli("train", data / "train.tsv", "-o", data / "m.npz", "--valid",
                   data / "dev.tsv", "--test", data / "test.tsv", "--epochs", "15", "--json",
                   *TINY))
    return data / "m.npz", r


def test_train_guesses_the_task_and_reports(model):
    path, r = model
    err = r.stderr.decode()
    assert "--task translate (guessed" in err and "one TAB" in err
    assert "300 sentence pairs" in err and "the best model by exact" in err
    summary = json.loads(r.stdout)
    assert summary["task"] == "translate" and summary["metric"] == "exact"
    assert summary["val_exact"] > 0.9 and summary["test_exact"] >= 0.85
    assert summary["test_bleu_signature"].startswith("nrefs:1")
    m = load_task(str(path), FORMAT)
    assert m.kind == "translate" and set(m.vocabs) == {"src", "tgt"}
    assert m.train["metric"] == "exact" and m.train["label_smoothing"] == 0.1


def test_translate_streams_lines_in_order_blank_lines_kept(model):
    path, _ = model
    r = ok(run_cli("translate", "-m", path, "--threads", "1",
                   input="one two three\n\nnine\r\nfour four\n"))
    assert r.stdout.decode().split("\n") == ["1 2 3", "", "9", "4 4", ""]
    assert r.stderr == b""


def test_beam_n_best_scores_and_json(model, data):
    path, _ = model
    (data / "in.txt").write_text("one two\n\nseven\n")
    r = ok(run_cli("translate", "-m", path, data / "in.txt", "--beam", "3", "--n-best", "2",
                   "--with-score", "--threads", "1"))
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 3 and lines[1] == ""
    first = lines[0].split("\t")
    assert first[0] == "1 2" and len(first) == 4 and float(first[1]) >= float(first[3])
    r = ok(run_cli("translate", "-m", path, data / "in.txt", "--json", "--threads", "1"))
    objs = [json.loads(line) for line in r.stdout.decode().splitlines()]
    assert [o["line"] for o in objs] == [1, 2, 3] and objs[1]["translations"] == []
    t = objs[0]["translations"][0]
    assert t["text"] == "1 2" and t["finished"] and t["score"] == t["logprob"] < 0
    r = ok(run_cli("translate", "-m", path, "--max-len", "2", "--threads", "1",
                   input="one two three\n"))
    assert r.stdout.decode() == "1 2\n"  # two tokens and no room for <EOS>: cut, and said so
    assert "1 translation(s) reached the output length limit" in r.stderr.decode()


def test_attention_out_svg_and_tsv(model, tmp_path):
    path, _ = model
    ok(run_cli("translate", "-m", path, "--attention-out", tmp_path / "a.svg", "--threads",
               "1", input="\none two\nthree\n"))
    svg = (tmp_path / "a.svg").read_text()
    assert svg.startswith("<svg") and ">one<" in svg and ">two<" in svg
    ok(run_cli("translate", "-m", path, "--attention-out", tmp_path / "a.tsv", "--threads",
               "1", input="one two\n"))
    rows = [line.split("\t") for line in (tmp_path / "a.tsv").read_text().splitlines()]
    assert rows[0] == ["output\\source", "one", "two", "<EOS>"] and rows[1][0] == "1"
    assert all(abs(sum(map(float, row[1:])) - 1) < 1e-3 for row in rows[1:])
    err = assert_clean_error(run_cli("translate", "-m", path, "--attention-out",
                                     tmp_path / "no" / "a.svg", "--threads", "1",
                                     input="one\n"), 2, "cannot write --attention-out")
    assert err


def test_test_and_info(model, data):
    path, _ = model
    r = ok(run_cli("test", "-m", path, data / "test.tsv", "--threads", "1"))
    rows = dict(line.split("\t") for line in r.stdout.decode().splitlines())
    assert rows["pairs"] == "40" and float(rows["exact"]) >= 0.85 and float(rows["chrf"]) > 80
    assert rows["bleu signature"].startswith("nrefs:1|case:mixed")
    got = json.loads(ok(run_cli("test", "-m", path, data / "test.tsv", "--json",
                                "--threads", "1")).stdout)
    assert got["kind"] == "translate" and got["n"] == 40 and got["ppl"] > 1
    info = ok(run_cli("info", "-m", path)).stdout.decode()
    assert "translate" in info and "vocab src" in info and "vocab tgt" in info
    assert "best val    exact" in info


def test_test_without_sacrebleu_says_how_to_install_it(model, data, monkeypatch):
    path, _ = model
    monkeypatch.setitem(sys.modules, "sacrebleu", None)  # import sacrebleu -> ImportError
    assert_clean_error(run_cli("test", "-m", path, data / "test.tsv", "--threads", "1"), 1,
                       "BLEU and chrF need sacrebleu", "pip install 'rnn-cli[mt]'")


def test_parallel_files_and_their_mismatch(data, tmp_path):
    (tmp_path / "s.txt").write_text("".join(f"{DIGITS[i % 10]}\n" for i in range(60)))
    (tmp_path / "t.txt").write_text("".join(f"{i % 10}\n" for i in range(60)))
    r = ok(run_cli("train", "--src", tmp_path / "s.txt", "--tgt", tmp_path / "t.txt", "-o",
                   tmp_path / "p.npz", "--steps", "2", *TINY))
    assert "60 sentence pairs" in r.stderr.decode()
    (tmp_path / "t.txt").write_text("1\n2\n")
    assert_clean_error(run_cli("train", "--src", tmp_path / "s.txt", "--tgt", tmp_path / "t.txt",
                               "-o", tmp_path / "q.npz", "--steps", "2", *TINY), 1,
                       "has 60 lines but --tgt", "not line-aligned")
    assert_clean_error(run_cli("train", "--src", tmp_path / "s.txt", "-o", tmp_path / "q.npz",
                               "--steps", "2", *TINY), 2, "--src and --tgt go together")
    assert_clean_error(run_cli("train", "-o", tmp_path / "q.npz"), 2, "no training data")


@pytest.mark.parametrize("line,what", [("no tab here", "no TAB"), ("a\tb\tc", "more than one TAB"),
                                       ("\t1 2", "empty source"), ("one two\t ", "empty target")])
def test_bad_lines_fail_or_are_skipped(data, tmp_path, line, what):
    path = tmp_path / "bad.tsv"
    path.write_text(pairs(40) + line + "\n" + pairs(5, seed=9) + line + "\n")
    assert_clean_error(run_cli("train", path, "--task", "translate", "-o", tmp_path / "b.npz",
                               "--steps", "1", *TINY), 1, "2 lines are not a usable sentence pair",
                       f"2 with {what} (lines 41, 47)", "--bad-lines skip")
    r = ok(run_cli("train", path, "--task", "translate", "-o", tmp_path / "b.npz", "--steps", "1",
                   "--bad-lines", "skip", *TINY))
    assert f"2 lines skipped: {what} (first: line 41)" in r.stderr.decode()


def test_a_10000_token_source(data, tmp_path):
    """Training: the pair is left out and counted; translating: the source is cut, counted."""
    path = tmp_path / "long.tsv"
    path.write_text(pairs(60) + " ".join(["one"] * 10000) + "\t1\n")
    r = ok(run_cli("train", path, "-o", tmp_path / "l.npz", "--steps", "2", "--val-frac", "0",
                   *TINY))
    assert "--max-len 100: 1 train pair(s) with a longer side left out (the longest: 10,001 " \
           "tokens)" in r.stderr.decode()
    r = ok(run_cli("translate", "-m", tmp_path / "l.npz", "--max-len", "3", "--threads", "1",
                   input="one\n" + " ".join(["two"] * 10000) + "\n"))
    assert r.stdout.decode().count("\n") == 2
    assert "1 line(s) were longer than the model's --max-len 100 tokens" in r.stderr.decode()


def test_crlf_and_bom_mix_trains_as_plain_lines(tmp_path):
    text = pairs(80).replace("\n", "\r\n")
    (tmp_path / "crlf.tsv").write_bytes(("\ufeff" + text + "\ufeff" + pairs(20, seed=4))
                                        .encode("utf-8"))
    r = ok(run_cli("train", tmp_path / "crlf.tsv", "-o", tmp_path / "c.npz", "--steps", "2",
                   "--val-frac", "0", *TINY))
    assert "100 sentence pairs" in r.stderr.decode()
    m = load_task(str(tmp_path / "c.npz"), FORMAT)
    assert "\r" not in m.vocabs["tgt"].symbols and "\ufeff" not in "".join(m.vocabs["src"].symbols)


def test_translate_refuses_binary_input_and_bad_bytes(model, tmp_path):
    path, _ = model
    assert_clean_error(run_cli("translate", "-m", path, "--threads", "1",
                               input=b"one\n\x00\x01\x02\n"), 1, "line 2 holds a NUL byte")
    assert_clean_error(run_cli("translate", "-m", path, "--threads", "1",
                               input=b"one\n\xff\xfe two\n"), 1, "not valid utf-8")


def test_wrong_kinds_and_usage(model, tmp_path):
    path, _ = model
    assert_clean_error(run_cli("sample", "-m", path), 1, "is a translation model",
                       "rnn-cli translate")
    assert_clean_error(run_cli("predict", "-m", path, input="one\n"), 1,
                       "is a translation model")
    (tmp_path / "lm.txt").write_text("hello world\n" * 200)
    ok(run_cli("train", tmp_path / "lm.txt", "-o", tmp_path / "lm.npz", "--steps", "1",
               "--hidden", "8", "--batch-size", "4", "--seq-len", "8", "--threads", "1"))
    assert_clean_error(run_cli("translate", "-m", tmp_path / "lm.npz", input="x\n"), 1,
                       "is a language model")
    assert_usage_error(run_cli("translate", "-m", path, "--beam", "2", "--n-best", "3",
                               input="one\n"), "--n-best 3")
    assert_usage_error(run_cli("translate", "-m", path, "--json", "--with-score",
                               input="one\n"), "--with-score")
    assert_usage_error(run_cli("train", model[0].parent / "train.tsv", "--pool", "max",
                               "-o", tmp_path / "x.npz"), "--pool")


def test_resume_continues_from_the_file(model, data, tmp_path):
    out = tmp_path / "r.npz"
    common = ("-o", out, "--lr-schedule", "constant", *TINY)
    ok(run_cli("train", data / "train.tsv", "--steps", "3", *common))
    ok(run_cli("train", data / "train.tsv", "--resume", "--steps", "5", *common))
    assert load_task(str(out), FORMAT).state["step"] == 5
    assert_clean_error(run_cli("train", data / "train.tsv", "--resume", "--steps", "6",
                               "--hidden", "8", "-o", out), 2, "whose hidden is 16")
