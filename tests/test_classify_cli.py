"""The classifier from the command line: `train` (guessed or --task classify), `predict`, `test`,
`info`, the wrong-kind errors, every bad input of issue 26, resume and determinism. Everything
runs through main() in this process (clihelp.run_cli) on tiny models (H 6, E 6, one thread);
the process-level behaviour (Ctrl-C, `| head`, a row per line as it comes) is in
tests/test_classify_faults.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clihelp import NAMES, assert_clean_error, assert_usage_error, ok, run_cli
from rnn_cli.taskfile import load_task
from rnn_cli.tasks.classify.model import FORMAT

WORDS = "the a film movie was is very quite rather plot actor scene".split()
CUES = {"pos": "good", "neg": "bad", "mid": "meh"}
TINY = ("--hidden", "6", "--embed", "6", "--batch-size", "8", "--lr", "0.01", "--seed", "3",
        "--threads", "1")


def labelled(n: int = 240, seed: int = 0, fmt: str = "fasttext", labels=CUES) -> str:
    """Lines whose label is told by one cue word among filler words (learnable in a second)."""
    rng = np.random.default_rng(seed)
    names = list(labels)
    out = []
    for _ in range(n):
        lab = names[int(rng.integers(0, len(names)))]
        words = list(rng.choice(WORDS, int(rng.integers(2, 9))))
        words.insert(int(rng.integers(0, len(words) + 1)), labels[lab])
        text = " ".join(words)
        out.append(f"__label__{lab} {text}" if fmt == "fasttext" else f"{lab}\t{text}")
    return "\n".join(out) + "\n"


def latest(m) -> np.ndarray:
    """The parameters a resume continues from (the file's own are the best ones)."""
    return m.resume_flat if m.resume_flat is not None else m.params.flat


def rows(proc) -> list[list[str]]:
    return [line.split("\t") for line in proc.stdout.decode().splitlines()]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("clf")
    (d / "train.txt").write_text(labelled())
    (d / "dev.txt").write_text(labelled(60, seed=1))
    (d / "test.txt").write_text(labelled(60, seed=2))
    return d


@pytest.fixture(scope="module")
def model(data):
    """A classifier of the cue-word lines, guessed from the __label__ lines, with --valid."""
    r = ok(run_cli("train", data / "train.txt", "-o", data / "m.npz", "--valid",
                   data / "dev.txt", "--test", data / "test.txt", "--epochs", "5", "--json",
                   *TINY))
    summary = json.loads(r.stdout)
    return data / "m.npz", summary, r.stderr.decode()


# --------------------------------------------------------------------------- train
def test_train_guesses_the_task_and_reports_the_metrics(model, data):
    path, s, err = model
    assert "--task classify (guessed:" in err and "all start with __label__" in err
    assert "240 examples, 3 labels (mid, neg, pos); 240 train; validation:" in err
    assert "accuracy" in err and "macro-f1" in err  # each validation's line
    assert s["task"] == "classify" and s["reason"] == "epochs" and s["epochs"] == 5
    assert s["metric"] == "accuracy" and s["best"] == max(s["best"], s["val_accuracy"])
    assert s["val_accuracy"] >= 0.9 and s["test_accuracy"] >= 0.9 and s["test_n"] == 60
    assert s["test_metrics"]["confusion"] and s["labels"] == 3 and s["model"] == str(path)
    assert s["examples_per_sec"] > 0 and s["tokens_per_sec"] > s["examples_per_sec"]
    m = load_task(str(path), FORMAT)
    assert m.kind == "classify" and m.labels["label"] == ["mid", "neg", "pos"]
    assert m.config["level"] == "word" and m.config["hidden"] == 6 and m.config["bidirectional"]


def test_store_split_level_metric_and_refused_flags(data, tmp_path):
    names = tmp_path / "names.txt"
    with open(NAMES) as f:  # single words: the level falls back to char, and says so
        names.write_text("".join(f"__label__{'long' if len(n.strip()) > 5 else 'short'} {n}"
                                 for n in list(f)[:200]))
    r = ok(run_cli("train", names, "--steps", "3", "--metric", "macro-f1", "--json", *TINY,
                   home=tmp_path))
    err, s = r.stderr.decode(), json.loads(r.stdout)
    assert "--level char: 180 of the 180 training texts are single words" in err
    assert "180 train, 20 validation (a seeded random 10% held out" in err
    assert s["model"] == str(tmp_path / "classify.npz") and s["metric"] == "macro_f1"
    assert load_task(s["model"], FORMAT).config["level"] == "char"
    r = run_cli("train", data / "train.txt", "--seq-len", "8", "--softmax", "full", home=tmp_path)
    assert_clean_error(r, 2, "--seq-len, --softmax do not apply to --task classify")
    r = run_cli("train", NAMES, "--pool", "max", home=tmp_path)
    assert_clean_error(r, 2, "--pool does not apply to --task lm")
    r = run_cli("train", data / "train.txt", "--metric", "bleu", "--steps", "1", *TINY,
                home=tmp_path)
    assert_clean_error(r, 2, "--metric 'bleu' is not a classification metric")
    assert_usage_error(run_cli("train", data / "train.txt", "--pool", "min"), "--pool")


def test_max_len_patience_class_weight_and_the_tab_format(data, tmp_path):
    text = labelled(fmt="tab") + "pos\t" + "good " * 40 + "\n"
    (tmp_path / "tab.txt").write_text(text)
    r = ok(run_cli("train", "--task", "classify", tmp_path / "tab.txt", "-o", tmp_path / "t.npz",
                   "--max-len", "12", "--patience", "1", "--eval-every", "2", "--steps", "400",
                   "--class-weight", "balanced", "--no-bidirectional", "--pool", "last",
                   "--cell", "gru", "--json", *TINY))
    s, err = json.loads(r.stdout), r.stderr.decode()
    assert "--max-len 12 cut 1 of" in err and "(28 tokens; the longest had 40)" in err
    assert s["reason"] == "patience" and s["steps"] < 400
    m = load_task(str(tmp_path / "t.npz"), FORMAT)
    assert not m.config["bidirectional"] and m.config["pool"] == "last"
    assert m.config["max_len"] == 12 and m.train["class_weight"] == "balanced"


def test_resume_continues_exactly_and_the_seed_decides(data, tmp_path):
    args = ("train", data / "train.txt", "--dropout", "0.2", "--eval-every", "5",
            "--lr-schedule", "constant", *TINY)  # cosine: the schedule follows --steps
    ok(run_cli(*args, "-o", tmp_path / "a.npz", "--steps", "12", "-q"))
    ok(run_cli(*args, "-o", tmp_path / "b.npz", "--steps", "7", "-q"))
    r = ok(run_cli("train", data / "train.txt", "--resume", "-o", tmp_path / "b.npz", "--steps",
                   "12", "--threads", "1", "--json"))  # the task and the flags: the file's
    assert json.loads(r.stdout)["steps"] == 12
    a, b = (load_task(str(tmp_path / f"{n}.npz"), FORMAT) for n in "ab")
    assert np.array_equal(latest(a), latest(b)) and a.state["step"] == 12
    ok(run_cli(*args, "-o", tmp_path / "c.npz", "--steps", "12", "-q"))
    c = load_task(str(tmp_path / "c.npz"), FORMAT)
    assert np.array_equal(a.params.flat, c.params.flat)  # the same seed, the same model
    assert np.array_equal(latest(a), latest(c))
    r = run_cli("train", data / "train.txt", "--resume", "-o", tmp_path / "b.npz", "--hidden",
                "8", "--steps", "14")
    assert_clean_error(r, 2, "whose hidden is 6, not 8")
    r = run_cli("train", NAMES, "--task", "lm", "--resume", "-o", tmp_path / "b.npz")
    assert_clean_error(r, 2, "is a classifier, not a language model")


# --------------------------------------------------------------------------- bad input
def _train(tmp_path, text: bytes | str, *extra):
    path = tmp_path / "bad.txt"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return run_cli("train", "--task", "classify", path, "-o", tmp_path / "bad.npz", "--steps",
                   "2", *TINY, *extra)


def test_bad_lines_fail_with_their_numbers_or_are_skipped_and_counted(tmp_path):
    text = labelled(20) + "no label here\n__label__pos\n" + labelled(20, seed=5)
    assert_clean_error(_train(tmp_path, text), 1, "2 line(s) are not labelled text",
                       "line 21: no label", "line 22: no text after the label")
    assert not (tmp_path / "bad.npz").exists()
    r = ok(_train(tmp_path, text, "--bad-lines", "skip"))
    assert "skipped 2 bad line(s): line 21: no label" in r.stderr.decode()


@pytest.mark.parametrize("text,needles", [
    (b"", ("is empty",)),
    (b"\n  \n", ("only whitespace",)),
    (b"__label__a x\n\x00\x01\x02binary\n", ("NUL byte",)),
    (b"__label__a x\n__label__b \xff\xfe\n", ("not valid utf-8", "line 2")),
    (b"__label__x one\n__label__x two\n", ("every example has the label 'x'",
                                           "at least two labels")),
], ids=["empty", "blank", "binary", "undecodable", "single-class"])
def test_unusable_files_are_one_line_errors(tmp_path, text, needles):
    assert_clean_error(_train(tmp_path, text), 1, *needles)


def test_crlf_bom_odd_labels_and_a_ten_megabyte_line(tmp_path):
    odd = {"très bien": "good", "★/☆": "bad", "1.5": "meh", "a:b|c": "fine"}
    lines = labelled(200, fmt="tab", labels=odd).splitlines()
    lines.append("★/☆\t" + "bad " * 60)  # cut by --max-len, counted
    text = b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n"
    r = ok(_train(tmp_path, text, "--max-len", "50", "--val-frac", "0"))
    assert "--max-len 50 cut 1 of 201 train examples" in r.stderr.decode()
    m = load_task(str(tmp_path / "bad.npz"), FORMAT)
    assert set(m.labels["label"]) == set(odd)
    r = ok(run_cli("predict", "-m", tmp_path / "bad.npz", "-k", "4", "--threads", "1",
                   input="a film\r\n" + "bad " * 2_500_000 + "\n"))  # a 10 MB line
    got = rows(r)
    assert len(got) == 2 and {got[0][i] for i in (0, 2, 4, 6)} == set(odd)
    assert "1 line(s) were longer than the model's --max-len 50" in r.stderr.decode()


# --------------------------------------------------------------------------- predict
def test_predict_rows_formats_and_gold_labels(model, data):
    path = model[0]
    lines = "__label__neg the film was good\n\npos\tbad plot\nmeh scene\n"
    r = ok(run_cli("predict", "-m", path, "--threads", "1", input=lines))
    got = rows(r)
    assert [g[0] for g in got] == ["pos", "", "neg", "mid"] and len(got[0]) == 2
    assert 0.34 < float(got[0][1]) <= 1.0
    r = ok(run_cli("predict", "-m", path, "-k", "3", "--format", "fasttext", "--threads", "1",
                   input=lines))
    first = r.stdout.decode().splitlines()[0].split(" ")
    assert first[0] == "__label__pos" and len(first) == 6
    assert abs(sum(float(p) for p in first[1::2]) - 1) < 1e-5
    r = ok(run_cli("predict", "-m", path, "-k", "2", "--json", "--threads", "1", input=lines))
    objs = [json.loads(x) for x in r.stdout.decode().splitlines()]
    assert [o["line"] for o in objs] == [1, 2, 3, 4] and objs[1]["labels"] == []
    assert objs[0]["label"] == "pos" and objs[0]["prob"] == objs[0]["labels"][0]["prob"]
    r = ok(run_cli("predict", "-m", path, "--threshold", "0.999999", "--threads", "1",
                   input=lines))
    assert all(line == "" for line in r.stdout.decode().splitlines())
    file_rows = rows(ok(run_cli("predict", "-m", path, data / "dev.txt", "--threads", "1")))
    assert len(file_rows) == 60
    r = run_cli("predict", "-m", path, "--json", "--format", "tsv")
    assert_clean_error(r, 2, "--json and --format are two output formats")
    r = run_cli("predict", "-m", path, data / "missing.txt")
    assert_clean_error(r, 1, "file not found")


def mixed_lines(n: int = 300, seed: int = 5) -> str:
    """Lines of every kind `predict` meets: lengths 1 to 60 words, blank and space-only lines,
    gold labels (__label__X and X<TAB>), words the model never saw, a BOM, a CRLF."""
    rng = np.random.default_rng(seed)
    words = WORDS + list(CUES.values()) + ["zzz", "qqq"]
    out = ["\ufeff__label__pos the film was good\r"]
    for i in range(n):
        text = " ".join(rng.choice(words, int(rng.integers(1, 61))))
        out.append(("", "   ", f"neg\t{text}", f"__label__mid {text}", "?!", text)[i % 6])
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("level", ["word", "char"])
def test_blocks_give_the_rows_of_a_line_at_a_time(data, tmp_path, level):
    """Rows of lines classified in blocks (sorted by length, batched) are byte for byte those
    of one line at a time, in order, in every format; --max-len cuts some lines."""
    path = tmp_path / "m.npz"
    ok(run_cli("train", "--task", "classify", data / "train.txt", "-o", path, "--level", level,
               "--max-len", "25", "--epochs", "1", "-q", *TINY, "--hidden", "32"))
    text = mixed_lines()
    (tmp_path / "mixed.txt").write_text(text)
    for fmt in ((), ("-k", "3"), ("--format", "fasttext", "-k", "2"), ("--json",),
                ("--threshold", "0.4", "-k", "2")):
        one = ok(run_cli("predict", "-m", path, *fmt, "--batch-size", "1", input=text))
        for batch in ((), ("--batch-size", "7")):
            blocks = ok(run_cli("predict", "-m", path, tmp_path / "mixed.txt", *fmt, *batch))
            assert blocks.stdout == one.stdout and blocks.stderr == one.stderr, (fmt, batch)
    got = one.stdout.decode().splitlines()
    assert len(got) == text.count("\n") and got[1] == got[2] == ""
    assert "line(s) were longer than the model's --max-len 25" in one.stderr.decode()


def test_the_store_and_the_python_api_give_the_same_numbers(model, data, tmp_path):
    import rnn_cli

    path = model[0]
    (tmp_path / "classify.npz").write_bytes(path.read_bytes())
    r = ok(run_cli("predict", "--task", "classify", data / "dev.txt", "--threads", "1",
                   home=tmp_path))
    clf = rnn_cli.Classifier.load(path)
    api = [p.labels[0] for p in clf.predict(open(data / "dev.txt"))]
    assert [(lab, f"{p:.6f}") for lab, p in api] == [tuple(x) for x in rows(r)]
    r = ok(run_cli("test", "--task", "classify", data / "test.txt", "--json", "--threads", "1",
                   home=tmp_path))
    assert json.loads(r.stdout)["accuracy"] == clf.test(str(data / "test.txt"))["accuracy"]
    assert "Classifier" in rnn_cli.__all__ and "gru" in repr(clf)


# --------------------------------------------------------------------------- test and info
def test_test_reports_metrics_tables_and_unseen_labels(model, data, tmp_path):
    path = model[0]
    gold = tmp_path / "gold.txt"
    gold.write_text(labelled(30, seed=7) + "__label__wow good film\n__label__wow bad\n")
    r = ok(run_cli("test", "-m", path, gold, "--threads", "1"))
    out, err = r.stdout.decode(), r.stderr.decode()
    assert out.startswith("examples\t32\naccuracy\t") and "\x1b[" not in out
    assert "\n# per label\nlabel\tprecision\trecall\tf1\tsupport\n" in out
    assert "\nwow\t0.0000\t0.0000\t0.0000\t2\n" in out and "\n# confusion" in out
    assert "2 example(s) have a gold label the model never saw ('wow' (2))" in err
    d = json.loads(ok(run_cli("test", "-m", path, gold, "--json", "--threads", "1")).stdout)
    assert d["n"] == 32 and d["unseen"] == {"wow": 2} and d["accuracy"] <= 30 / 32
    assert sum(map(sum, d["confusion"])) == 30 and set(d["per_label"]) == {*CUES, "wow"}
    gold.write_text("__label__pos good\njunk\n")
    assert_clean_error(run_cli("test", "-m", path, gold), 1, "line 2: no label")
    r = ok(run_cli("test", "-m", path, gold, "--bad-lines", "skip", "--threads", "1"))
    assert r.stdout.startswith(b"examples\t1\n") and b"skipped 1 bad line" in r.stderr


def test_info_describes_a_classifier(model, tmp_path):
    path = model[0]
    out = ok(run_cli("info", "-m", path, "--plot", tmp_path / "c.svg")).stdout.decode()
    assert "classify (classification model)" in out and "K = 3: mid neg pos" in out
    assert "best val    accuracy" in out and "nats/example" in out
    assert (tmp_path / "c.svg").read_text().startswith("<svg")
    d = json.loads(ok(run_cli("info", "-m", path, "--json")).stdout)
    assert d["kind"] == "classify" and d["labels"] == {"label": ["mid", "neg", "pos"]}
    assert d["config"]["pool"] == "max" and d["steps"] > 0 and len(d["history"]) == 5
    assert d["vocabs"]["text"]["level"] == "word" and d["metric"] == "accuracy"


def test_every_verb_refuses_the_wrong_kind_in_one_line(model, tmp_path):
    path = model[0]
    for verb in (("sample",), ("score", "-")):
        r = run_cli(*verb, "-m", path, input="x\n")
        assert_clean_error(r, 1, f"{path} is a classification model; use `rnn-cli predict`")
    r = run_cli("predict", "-m", path, "--task", "lm", input="x\n")
    assert_clean_error(r, 1, "is a classification model")
    lm = tmp_path / "lm.npz"
    ok(run_cli("train", NAMES, "-o", lm, "--steps", "2", "--hidden", "8", "--batch-size", "4",
               "--seq-len", "8", "--threads", "1", "-q"))
    r = run_cli("predict", "-m", lm, "ab", "--threshold", "0.5")
    assert_clean_error(r, 2, "--threshold applies to classifiers")
    r = run_cli("test", "-m", lm, NAMES, "--bad-lines", "skip")
    assert_clean_error(r, 2, "--bad-lines applies to labelled files")
    r = run_cli("predict", "-m", path, "--task", "classify", "--level", "word", input="good\n")
    assert rows(ok(r))[0][0] == "pos"
