"""The Python API (`rnn_cli.Model`): the numbers of the commands, the project's exceptions, no
printing, and a cheap `import rnn_cli`."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings

import numpy as np
import pytest

import rnn_cli
from clihelp import NAMES, ROOT, run_cli, train_small_char, train_small_word
from rnn_cli.errors import CorpusError, ModelFileError, RnnCliError, UsageError


def rnn(*args, input=None):
    proc = run_cli(*map(str, args), "--threads", "1", input=input)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return proc


@pytest.fixture(scope="module")
def char_path(tmp_path_factory):
    return train_small_char(tmp_path_factory.mktemp("api") / "c.npz")


@pytest.fixture(scope="module")
def word_path(tmp_path_factory):
    return train_small_word(tmp_path_factory.mktemp("api"))


@pytest.fixture(scope="module")
def lm(char_path):
    return rnn_cli.Model.load(char_path, threads=1)


def test_import_is_cheap_and_exports_the_api():
    code = ("import sys, rnn_cli; assert 'numpy' not in sys.modules, 'numpy'; "
            "m = rnn_cli.Model; assert 'numba' not in sys.modules, 'numba'; "
            "assert 'distributed' not in sys.modules; print(m.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "rnn_cli.tasks.lm.api", out.stderr
    assert rnn_cli.LineScore.__name__ == "LineScore" and rnn_cli.CorpusError is CorpusError
    with pytest.raises(AttributeError):
        rnn_cli.nothing_here  # noqa: B018


def test_score_lines_are_the_rows_of_score(lm, char_path):
    names = NAMES.read_text().splitlines()[:300]
    text = "\n".join(names[:10]) + "\n\n" + "\n".join(names[10:]) + "\n"
    rows = list(lm.score_lines(text.splitlines()))
    cli = [json.loads(x) for x in rnn("score", "-m", char_path, "--json", "-",
                                      input=text).stdout.splitlines()]
    assert len(rows) == len(cli) == 300  # the blank line skipped
    for r, c in zip(rows, cli):
        assert (r.line, r.tokens, r.unknown) == (c["line"], c["tokens"], c["oov"])
        assert r.logprob == c["logprob"] and r.perplexity == c["perplexity"]  # exactly
        assert r.log10prob == pytest.approx(r.logprob / math.log(10), rel=1e-15)
    assert rows[10].lineno == 12  # line numbers count the blank line
    one = list(lm.score_lines(names[:40], batch_size=1))
    for a, b in zip(one, rows):  # one line at a time: the same numbers up to float32 rounding
        assert a.logprob == pytest.approx(b.logprob, rel=1e-5)


def test_score_total_is_score_total(lm, char_path):
    text = "".join(f"{n}\n" for n in NAMES.read_text().splitlines()[:500])
    s = lm.score_total(text)
    c = json.loads(rnn("score", "-m", char_path, "--total", "--json", "-", input=text).stdout)
    assert (s.lines, s.tokens, s.oov) == (c["lines"], c["tokens"], c["oov"]) == (500, len(text), 0)
    assert s.logprob == c["logprob"] and s.nats_per_token == c["nats_per_token"]
    assert s.bits_per_char == c["bits_per_char"] and s.perplexity == c["perplexity"]
    assert lm.score_total(text.splitlines(keepends=True)) == s  # lines or one string


def test_predict_and_sample_are_the_commands(lm, char_path):
    p = lm.predict("emm", k=4)
    c = json.loads(rnn("predict", "-m", char_path, "emm", "-k", "4", "--json").stdout)
    assert [(x.token, x.prob) for x in p.candidates] == [(x["token"], x["prob"])
                                                        for x in c["next"]]
    assert (p.context_tokens, p.oov) == (3, 0)
    probs, n, unknown = lm.next_probs("emm")
    assert probs.shape == (lm.vocab_size,)
    assert probs.sum() == pytest.approx(1, abs=1e-6)  # from float32 logits
    text = lm.sample(60, temperature=0.7, seed=5).text()
    cli = rnn("sample", "-m", char_path, "-n", "60", "--temperature", "0.7", "--seed", "5")
    assert cli.stdout.decode() == text + ("" if text.endswith("\n") else "\n")
    assert lm.sample(60, temperature=0.7, seed=5).text() == text  # the same seed, same text
    primed = lm.sample(lines=2, prime="an", seed=3, prime_logprob=True)
    assert primed.text().count("\n") == 2 and primed.prime_tokens == 2
    assert primed.prime_logprob == pytest.approx(lm.score_total("an").logprob, rel=1e-5)
    assert list(lm.sample(20, beam=3, seed=1)) == list(lm.sample(20, beam=3, seed=2))


def test_word_model_and_bytes(word_path):
    a = rnn_cli.Model.load(word_path)
    b = rnn_cli.Model.from_bytes(word_path.read_bytes(), name="w.npz")
    assert a.level == b.level == "word" and a.symbols == b.symbols
    lines = ["the king is dead", "ROMEO: what say you ?"]
    ra, rb = list(a.score_lines(lines)), list(b.score_lines(lines))
    assert [r.logprob for r in ra] == [r.logprob for r in rb]
    assert ra[0].tokens == 5  # four words and <EOS>
    assert "word" in repr(a)


def test_errors_are_the_projects_exceptions(lm, tmp_path, char_path):
    with pytest.raises(ModelFileError, match="no model file"):
        rnn_cli.Model.load(tmp_path / "missing.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a model")
    with pytest.raises(ModelFileError) as e:
        rnn_cli.Model.load(tmp_path / "bad.npz")
    assert e.value.hint
    with pytest.raises(ModelFileError):
        rnn_cli.Model.from_bytes(b"PK\x03\x04junk")
    with pytest.raises(ModelFileError, match="level"):
        rnn_cli.Model.load(char_path, level="word")
    got = []
    with pytest.raises(CorpusError, match="line 3: every token is unknown"):
        for r in lm.score_lines(["emma", "noah", "ЖЖЖ", "olivia"], batch_size=1):
            got.append(r.line)
    assert got == ["emma", "noah"]  # the rows before the error came first
    with pytest.raises(CorpusError, match="nothing to score"):
        list(lm.score_lines(["", "  "]))
    with pytest.raises(CorpusError):
        lm.predict("ЖЖ")
    with pytest.raises(UsageError):
        lm.predict("emma", k=0)
    with pytest.raises(RnnCliError, match="--device cuda"):
        rnn_cli.Model(lm.file, "cuda", requested="cuda").sample(10, top_p=0.5)


def test_notices_go_to_warn_not_stdout(lm, capsys):
    seen = []
    m = rnn_cli.Model(lm.file, "cuda", requested="auto", warn=seen.append)
    m.sample(5, beam=2).text()  # the CUDA sampler does not beam: the CPU, with a notice
    assert seen == ["--device auto: --beam runs on the CPU"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rnn_cli.Model(lm.file, "cuda", requested="auto").sample(5, top_p=0.9, seed=1).text()
    assert [type(w.message) for w in caught] == [rnn_cli.RnnCliWarning]
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    assert np.isfinite(lm.score_total("emma\n").logprob)
