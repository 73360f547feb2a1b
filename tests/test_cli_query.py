"""`rnn-cli score`, `predict` and `info` end to end, on small trained models: through `main()` in
this process (clihelp.run_cli), and in real subprocesses where the process matters (`| head`, a
terminal on stdin).

Every command runs with `--threads 1`: the models are tiny, and on a busy machine a thread pool
costs far more than it gives at these sizes.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import xml.dom.minidom
from pathlib import Path

import numpy as np
import pytest

from clihelp import run_cli
from rnn_cli import checkpoint

ROOT = Path(__file__).resolve().parent.parent
SHAKESPEARE = ROOT / "corpora" / "shakespeare.txt"
NAMES = ROOT / "corpora" / "names.txt"
ANSI = "\x1b["
ONE_THREAD = {"NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


def rnn(*args, input=None, home=None, check=True, stdin=None):
    """In this process (clihelp.run_cli), or in a subprocess when `stdin` is a real file."""
    if stdin is None:
        proc = run_cli(*args, "--threads", "1", input=input, home=home)
    else:
        env = dict(os.environ, **ONE_THREAD)
        env.pop("FORCE_COLOR", None)
        if home is not None:
            env["RNN_CLI_HOME"] = str(home)
        proc = subprocess.run([sys.executable, "-m", "rnn_cli", *map(str, args), "--threads",
                               "1"], stdin=stdin, capture_output=True, env=env, cwd=ROOT,
                              timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout: {proc.stdout[-2000:]!r}\n"
                             f"stderr: {proc.stderr.decode(errors='replace')[-3000:]}")
    return proc


def rows(proc) -> list[list[str]]:
    text = proc.stdout.decode()
    assert ANSI not in text
    return [line.split("\t") for line in text.splitlines()]


@pytest.fixture(scope="module")
def char_model(tmp_path_factory):
    """A char model of corpora/names.txt (lower-case names, one per line), 10% held out."""
    out = tmp_path_factory.mktemp("char") / "names.npz"
    rnn("train", NAMES, "-o", out, "--hidden", "16", "--steps", "40", "--eval-every", "10",
        "--batch-size", "8", "--seq-len", "16", "--seed", "3", "-q")
    return out


@pytest.fixture(scope="module")
def word_model(tmp_path_factory):
    """A word model that has seen the first 600 lines of Shakespeare a few times."""
    d = tmp_path_factory.mktemp("word")
    lines = SHAKESPEARE.read_text().splitlines()[:600]
    (d / "s600.txt").write_text("\n".join(lines) + "\n")
    out = d / "words.npz"
    rnn("train", d / "s600.txt", "--level", "word", "-o", out, "--hidden", "32", "--steps", "150",
        "--eval-every", "50", "--batch-size", "8", "--seq-len", "16", "--vocab-size", "300",
        "--seed", "1", "-q")
    return out, lines


def test_total_on_the_validation_text_equals_the_validation_loss(char_model, tmp_path):
    model = checkpoint.load(str(char_model))
    st, history = model.state, model.history
    # the saved parameters are the best ones; their loss is best_val (one of the recorded evals)
    assert st["best_val"] == np.nanmin(history[:, 2])
    text = NAMES.read_text()
    n_val = st["val_tokens"]
    assert n_val > 0 and st["train_tokens"] + n_val == len(text)
    (tmp_path / "val.txt").write_text(text[len(text) - n_val:])  # char ids = characters
    proc = rnn("score", "-m", char_model, "--total", "--json", tmp_path / "val.txt")
    s = json.loads(proc.stdout)
    assert s["tokens"] == n_val and s["oov"] == 0
    assert s["nats_per_token"] == pytest.approx(st["best_val"], rel=1e-6)
    assert s["perplexity"] == pytest.approx(math.exp(s["nats_per_token"]), rel=1e-12)
    assert s["bits_per_char"] == pytest.approx(s["nats_per_token"] / math.log(2), rel=1e-12)
    # the text summary says the same
    summary = dict(rows(rnn("score", "-m", char_model, "--total", tmp_path / "val.txt")))
    assert float(summary["nats_per_token"]) == pytest.approx(st["best_val"], abs=1e-6)
    assert summary["tokens"] == str(n_val) and summary["oov"] == "0"
    # `rnn-cli test` of a language model is the same stream's perplexity
    t = json.loads(rnn("test", "-m", char_model, tmp_path / "val.txt", "--json").stdout)
    assert t["kind"] == "lm" and {k: t[k] for k in s} == s
    plain = dict(rows(rnn("test", "-m", char_model, tmp_path / "val.txt")))
    assert float(plain["perplexity"]) == pytest.approx(s["perplexity"], abs=1e-4)


def test_score_rows_chain_rule_and_formats(char_model):
    proc = rnn("score", "-m", char_model, "-", input="emma\n\nolivia\n   \nnoah")
    r = rows(proc)
    assert [x[3] for x in r] == ["emma", "olivia", "noah"]  # blank lines skipped
    for logp, n, ppl, line in r:
        assert int(n) == len(line) + 1  # the characters and "\n"
        assert float(ppl) == pytest.approx(math.exp(-float(logp) / int(n)), rel=1e-3)
    assert proc.stderr == b""
    log10 = rows(rnn("score", "-m", char_model, "--log10", "-", input="emma\n"))
    assert float(log10[0][0]) == pytest.approx(float(r[0][0]) / math.log(10), abs=1e-4)
    # JSON: one object per line; the per-token log-probs sum to the line total
    proc = rnn("score", "-m", char_model, "--json", "--tokens", "-", input="emma\nolivia\n")
    objs = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [o["line"] for o in objs] == ["emma", "olivia"]
    for o in objs:
        assert [t["token"] for t in o["token_probs"]] == list(o["line"]) + ["\n"]
        assert sum(t["logprob"] for t in o["token_probs"]) == pytest.approx(o["logprob"],
                                                                            rel=1e-12)
        assert o["perplexity"] == pytest.approx(math.exp(-o["logprob"] / o["tokens"]))
    # --tokens as text: a row per token after its line, first column empty
    t = rows(rnn("score", "-m", char_model, "--tokens", "-", input="emma\n"))
    assert t[0][3] == "emma" and [x[1] for x in t[1:]] == ["e", "m", "m", "a", "\\n"]
    assert sum(float(x[3]) for x in t[1:]) == pytest.approx(float(t[0][0]), abs=1e-3)


def test_sort_orders_by_probability(char_model):
    names = "zqxv\nemma\nanna\nkjkj\n"
    r = rows(rnn("score", "-m", char_model, "--sort", "-", input=names))
    logps = [float(x[0]) for x in r]
    assert logps == sorted(logps, reverse=True) and sorted(x[3] for x in r) == \
        sorted(names.split())


def test_training_sentence_beats_its_words_shuffled(word_model):
    out, lines = word_model
    rng = random.Random(0)
    originals = [line for line in lines if len(line.split()) >= 5][:30]
    shuffled = []
    for line in originals:
        words = line.split()
        perm = words[:]
        while perm == words:
            rng.shuffle(perm)
        shuffled.append(" ".join(perm))
    a = rows(rnn("score", "-m", out, "-", input="\n".join(originals) + "\n"))
    b = rows(rnn("score", "-m", out, "-", input="\n".join(shuffled) + "\n"))
    wins = sum(float(x[0]) > float(y[0]) for x, y in zip(a, b))
    assert wins >= 20, f"only {wins}/30 training lines beat their shuffled words"
    mean = np.mean([float(x[0]) - float(y[0]) for x, y in zip(a, b)])
    assert mean > 0


def test_word_level_counts_eos_and_unknown_words(word_model):
    out, _ = word_model
    proc = rnn("score", "-m", out, "--json", "--tokens", "-",
               input="the king is here\nthe xylophone is here\n")
    a, b = (json.loads(line) for line in proc.stdout.decode().splitlines())
    assert a["tokens"] == 5 and a["token_probs"][-1]["token"] == "<EOS>" and a["oov"] == 0
    assert b["oov"] == 1 and b["token_probs"][1]["token"] == "<UNK>"
    assert b"1 token(s) in 1 of 2 line(s) were not in the vocabulary" in proc.stderr
    s = json.loads(rnn("score", "-m", out, "--total", "--json", "-",
                       input="the king is here\nthe xylophone is here\n").stdout)
    assert s["tokens"] == 10 and s["oov"] == 1 and "bits_per_char" not in s


def test_predict_matches_the_scorer(char_model, word_model):
    proc = rnn("predict", "-m", char_model, "emm", "-k", "100", "--json")
    d = json.loads(proc.stdout)
    probs = {t["token"]: t["prob"] for t in d["next"]}
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
    ps = [t["prob"] for t in d["next"]]
    assert ps == sorted(ps, reverse=True)
    scored = json.loads(rnn("score", "-m", char_model, "--json", "--tokens", "-",
                            input="emma\n").stdout)
    assert scored["token_probs"][3]["prob"] == pytest.approx(probs["a"], rel=1e-6)
    # text output: k rows, token then probability, sorted; "\n" shown as \n
    top = rows(rnn("predict", "-m", char_model, "emma", "-k", "3"))
    assert len(top) == 3 and [float(p) for _, p in top] == sorted((float(p) for _, p in top),
                                                                  reverse=True)
    every = rows(rnn("predict", "-m", char_model, "emma", "-k", "1000"))  # k > V: all of V
    assert len(every) == len(checkpoint.load(str(char_model)).vocab)
    assert all(len(r) == 2 for r in every) and "\\n" in [t for t, _ in every]
    # word level, context from stdin: <EOS> is shown as such
    out, _ = word_model
    w = json.loads(rnn("predict", "-m", out, "-", "-k", "5", "--json",
                       input="the king is here\n").stdout)
    assert w["context"] == "the king is here" and w["context_tokens"] == 4
    assert len(w["next"]) == 5 and all(t["token"] != "" for t in w["next"])


def test_head_exits_quietly(char_model, tmp_path):
    big = tmp_path / "many.txt"
    big.write_text(NAMES.read_text() * 3)  # ~15,000 lines
    cmd = (f"{sys.executable} -m rnn_cli score -m {char_model} --threads 1 {big} | head -1")
    env = dict(os.environ, **ONE_THREAD)
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, cwd=ROOT, env=env,
                          timeout=300)
    assert len(proc.stdout.decode().splitlines()) == 1
    assert proc.stderr == b""


def test_errors_are_one_clear_line(char_model, tmp_path):
    def err(proc, code, text):
        msg = proc.stderr.decode()
        assert proc.returncode == code, msg
        assert text in msg and "hint:" in msg and "Traceback" not in msg
        assert proc.stdout == b""

    err(rnn("score", "-m", char_model, "-", input="", check=False), 1, "nothing to score")
    err(rnn("score", "-m", char_model, "-", input="\n\n", check=False), 1, "nothing to score")
    err(rnn("score", "-m", char_model, "--total", "-", input="", check=False), 1,
        "nothing to score")
    err(rnn("score", "-m", char_model, "-", input="ROMEO!\n", check=False), 1,
        "line 1: every token is unknown to the model")
    err(rnn("score", "-m", char_model, "--level", "word", "-", input="emma\n", check=False), 1,
        "char-level model, but --level word")
    err(rnn("predict", "-m", char_model, "XYZ", check=False), 1, "every token of the context")
    err(rnn("score", "-m", char_model, tmp_path / "nope.txt", check=False), 1, "file not found")
    err(rnn("score", "-m", char_model, "--total", "--sort", "-", input="emma\n", check=False), 2,
        "--total")
    err(rnn("info", "--level", "word", home=tmp_path, check=False), 1,
        "rnn-cli train --level word")
    import pty

    master, slave = pty.openpty()  # a terminal on stdin: '-' refuses to wait for typing
    try:
        err(rnn("score", "-m", char_model, "-", stdin=slave, check=False), 1,
            "'-' expects piped input")
        err(rnn("predict", "-m", char_model, "-", stdin=slave, check=False), 1,
            "'-' expects piped input")
        err(rnn("score", "-m", char_model, stdin=slave, check=False), 2, "no input")
    finally:
        os.close(master)
        os.close(slave)


def test_info_text_json_and_svg(char_model, tmp_path):
    proc = rnn("info", "-m", char_model, "--plot", tmp_path / "curve.svg")
    text = proc.stdout.decode()
    assert ANSI not in text
    for key in ("model", "level", "network", "parameters", "vocabulary", "corpus", "training",
                "best val", "loss curve", "step", "◆"):
        assert key in text, key
    assert "names.txt" in text and "H = 16" in text
    assert b"wrote the loss curve" in proc.stderr
    svg = xml.dom.minidom.parse(str(tmp_path / "curve.svg"))
    assert len(svg.getElementsByTagName("polyline")) == 2  # train and val
    d = json.loads(rnn("info", "-m", char_model, "--json").stdout)
    model = checkpoint.load(str(char_model))
    assert d["format_version"] == checkpoint.FORMAT_VERSION and d["level"] == "char"
    assert d["parameters"] == len(model.params) and d["vocab_size"] == len(model.vocab)
    assert d["vocab_head"][:2] == ["\n", "a"] and d["corpus"]["sha256"]
    assert d["steps"] == 40 and d["tokens_seen"] == 40 * 8 * 16
    assert d["best_val_loss"] == model.state["best_val"]
    assert [h["step"] for h in d["history"]] == [10, 20, 30, 40]
    bad = rnn("info", "-m", char_model, "--plot", tmp_path / "curve.png", check=False)
    assert bad.returncode == 2 and b"SVG" in bad.stderr


def test_info_of_a_hand_built_model_without_history(tmp_path):
    from test_score import hand_model

    path = tmp_path / "hand.npz"
    checkpoint.save(hand_model(), str(path))
    text = rnn("info", "-m", path).stdout.decode()
    assert "none recorded" in text and "V = 2" in text
    d = json.loads(rnn("info", "-m", path, "--json").stdout)
    assert d["history"] == [] and d["best_val_loss"] is None and d["steps"] == 0
    (r,) = rows(rnn("score", "-m", path, "-", input="aa\n"))
    assert r[1] == "2" and r[3] == "aa"
