"""The tagger from the command line: `train` (guessed or --task tag), `tag`, `test`, `info`, the
wrong-kind errors, every bad input of issue 27, resume. Everything runs through main() in this
process (clihelp.run_cli) on tiny models (H 8, one thread); the process-level behaviour (Ctrl-C,
`| head`, a sentence answered while its input stays open) is in tests/test_tag_faults.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clihelp import NAMES, assert_clean_error, assert_usage_error, ok, run_cli
from rnn_cli.taskfile import load_task
from rnn_cli.tasks.tag.model import FORMAT

FILLER = "the a saw met in at with and then said today was big".split()
PER = [["Harry", "Potter"], ["Ada"], ["Teddy", "Roosevelt"], ["Hermione", "Granger"]]
LOC = [["Paris"], ["New", "York"], ["Oslo"]]
TINY = ("--hidden", "8", "--embed", "8", "--char-hidden", "4", "--char-embed", "4",
        "--batch-size", "8", "--lr", "0.02", "--seed", "3", "--dropout", "0", "--min-count",
        "1", "--threads", "1")


def tagged(n: int = 120, seed: int = 0) -> str:
    """token<TAB>tag lines: filler words around a name or two (BIO), a blank line after each."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n):
        toks, tags = [], []
        for typ, names in (("PER", PER), ("LOC", LOC))[:1 + s % 2]:
            filler = [str(w) for w in rng.choice(FILLER, int(rng.integers(0, 3)))]
            name = names[int(rng.integers(len(names)))]
            toks += filler + name
            tags += ["O"] * len(filler) + [f"B-{typ}"] + [f"I-{typ}"] * (len(name) - 1)
        end = [str(w) for w in rng.choice(FILLER, int(rng.integers(1, 3)))]
        rows += [f"{t}\t{g}" for t, g in zip(toks + end, tags + ["O"] * len(end))] + [""]
    return "\n".join(rows) + "\n"


def blocks(proc) -> list[list[list[str]]]:
    """stdout's sentences: a list of rows (TAB-split) per blank-line-ended block."""
    out, cur = [], []
    for line in proc.stdout.decode().split("\n")[:-1]:
        if line:
            cur.append(line.split("\t"))
        else:
            out.append(cur)
            cur = []
    assert cur == [], "the output ends with a blank line"
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("tag")
    (d / "train.tsv").write_text(tagged())
    (d / "dev.tsv").write_text(tagged(30, seed=1))
    (d / "test.tsv").write_text(tagged(30, seed=2))
    return d


@pytest.fixture(scope="module")
def model(data):
    """A CRF tagger of the toy names, the task guessed from the columns, with --valid/--test."""
    r = ok(run_cli("train", data / "train.tsv", "-o", data / "m.npz", "--valid",
                   data / "dev.tsv", "--test", data / "test.tsv", "--epochs", "8", "--crf",
                   "--json", *TINY))
    return data / "m.npz", json.loads(r.stdout), r.stderr.decode()


# --------------------------------------------------------------------------- train
def test_train_guesses_the_task_and_reports_the_metrics(model):
    path, s, err = model
    assert "--task tag (guessed:" in err and "token<TAB>tag columns" in err
    assert "sentences: 120 train; validation:" in err and "5 tags (O, B-LOC, I-LOC" in err
    assert "f1" in err and "accuracy" in err  # each validation's line
    assert s["task"] == "tag" and s["reason"] in ("epochs", "patience") and s["metric"] == "f1"
    assert s["val_f1"] >= 0.9 and s["test_f1"] >= 0.9 and s["test_accuracy"] >= 0.9
    assert s["scheme"] == "BIO" and s["tags"] == 5 and s["model"] == str(path)
    assert s["test_metrics"]["per_type"]["PER"]["gold"] == 30
    m = load_task(str(path), FORMAT)
    assert m.kind == "tag" and m.config["crf"] and m.config["char_hidden"] == 4
    assert m.labels["tag"] == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def test_store_defaults_and_refused_flags(data, tmp_path):
    pos = tmp_path / "pos.tsv"
    pos.write_text("The\tDET\ncat\tNOUN\nsat\tVERB\n\nA\tDET\ndog\tNOUN\nran\tVERB\n\n" * 20)
    r = ok(run_cli("train", pos, "--steps", "2", "--json", *TINY, home=tmp_path))
    s = json.loads(r.stdout)
    assert s["model"] == str(tmp_path / "tag.npz") and s["metric"] == "accuracy"
    assert s["scheme"] == "none" and "36 train, 4 validation (a seeded random 10%" in \
        r.stderr.decode()
    r = run_cli("train", data / "train.tsv", "--seq-len", "8", "--pool", "max", home=tmp_path)
    assert_clean_error(r, 2, "--pool, --seq-len do not apply to --task tag")
    r = run_cli("train", pos, "--metric", "f1", "--steps", "1", *TINY, home=tmp_path)
    assert_clean_error(r, 2, "--metric f1: a tagger with no entity scheme measures loss, accuracy")
    r = run_cli("train", NAMES, "--crf", home=tmp_path)
    assert_clean_error(r, 2, "--crf does not apply to --task lm")
    assert_usage_error(run_cli("train", pos, "--field", "lemma"), "--field")


def test_conllu_columns_and_resume(tmp_path):
    conllu = tmp_path / "ud.conllu"
    sent = ("# text = I don't\n1\tI\tI\tPRON\tPRP\t_\t2\tnsubj\t_\t_\n2-3\tdon't\t_\t_\t_\t_\t_\t_"
            "\t_\t_\n2\tdo\tdo\tAUX\tVBP\t_\t0\troot\t_\t_\n3\tn't\tnot\tPART\tRB\t_\t2\tadvmod"
            "\t_\t_\n3.1\tgo\tgo\tVERB\tVB\t_\t_\t_\t2:conj\t_\n\n")
    conllu.write_text(sent * 30)
    r = ok(run_cli("train", conllu, "-o", tmp_path / "u.npz", "--field", "xpos", "--steps",
                   "3", "--json", "--lr-schedule", "constant", *TINY))
    err = r.stderr.decode()
    assert "CoNLL-U" in err and "30 empty nodes (CoNLL-U IDs like 8.1) skipped" in err
    m = load_task(str(tmp_path / "u.npz"), FORMAT)
    assert m.labels["tag"] == ["PRP", "RB", "VBP"] and m.train["field"] == "xpos"
    r = ok(run_cli("tag", "-m", tmp_path / "u.npz", conllu, "--gold", "--threads", "1"))
    assert blocks(r)[0] == [["I", "PRP", blocks(r)[0][0][2]], ["do", "VBP", blocks(r)[0][1][2]],
                            ["n't", "RB", blocks(r)[0][2][2]]]
    d = json.loads(ok(run_cli("test", "-m", tmp_path / "u.npz", conllu, "--json")).stdout)
    assert d["tokens"] == 90 and d["unseen_tags"] == {}  # xpos, as in training
    ok(run_cli("train", conllu, "--resume", "-o", tmp_path / "u.npz", "--steps", "5", "-q",
               "--threads", "1"))
    assert load_task(str(tmp_path / "u.npz"), FORMAT).state["step"] == 5
    cols = tmp_path / "three.tsv"
    cols.write_text("Ada\tNNP\tB-PER\nmet\tVBD\tO\n\nOslo\tNNP\tB-LOC\n\n" * 10)
    ok(run_cli("train", cols, "-o", tmp_path / "c.npz", "--column", "2", "--steps", "1",
               *TINY))
    assert load_task(str(tmp_path / "c.npz"), FORMAT).labels["tag"] == ["NNP", "VBD"]


# --------------------------------------------------------------------------- tag
def test_tag_rows_probs_gold_and_spans(model, data):
    path = model[0]
    text = "Harry Potter met Ada in Oslo\n\nthen Teddy Roosevelt said\n"
    got = blocks(ok(run_cli("tag", "-m", path, "--threads", "1", input=text)))
    assert [[t for t, _ in b] for b in got] == [
        ["Harry", "Potter", "met", "Ada", "in", "Oslo"], [], ["then", "Teddy", "Roosevelt",
                                                               "said"]]
    assert [t for _, t in got[0]] == ["B-PER", "I-PER", "O", "B-PER", "O", "B-LOC"]
    probs = blocks(ok(run_cli("tag", "-m", path, "--probs", "--threads", "1", input=text)))
    assert all(len(row) == 3 and 0 < float(row[2]) <= 1 for b in probs for row in b)
    gold = blocks(ok(run_cli("tag", "-m", path, data / "test.tsv", "--gold", "--threads", "1")))
    assert len(gold) == 30 and all(len(row) == 3 for b in gold for row in b)
    assert sum(row[1] == row[2] for b in gold for row in b) / sum(map(len, gold)) > 0.9
    r = ok(run_cli("tag", "-m", path, "--spans", "--threads", "1", input=text))
    objs = [json.loads(x) for x in r.stdout.decode().splitlines()]
    assert [o["line"] for o in objs] == [1, 2, 3] and objs[1] == {"line": 2, "tokens": [],
                                                                   "spans": []}
    assert [(s["type"], s["text"]) for s in objs[0]["spans"]] == [
        ("PER", "Harry Potter"), ("PER", "Ada"), ("LOC", "Oslo")]
    assert all(0 < s["confidence"] <= 1 for s in objs[0]["spans"])
    words = blocks(ok(run_cli("tag", "-m", path, "--tokenizer", "words", "--threads", "1",
                              input="Ada, in Oslo.\n")))
    assert [t for t, _ in words[0]] == ["Ada", ",", "in", "Oslo", "."]
    only_tokens = blocks(ok(run_cli("tag", "-m", path, "--input-format", "conll", "--threads",
                                    "1", input="Ada\nmet\n\nOslo\n")))
    assert [[t for t, _ in b] for b in only_tokens] == [["Ada", "met"], ["Oslo"]]


def test_tag_refusals(model, data):
    path = model[0]
    assert_clean_error(run_cli("tag", "-m", path, "--gold", input="Ada met Oslo\n"), 2,
                       "--gold keeps the gold tags of a column file; the input is raw text")
    assert_clean_error(run_cli("tag", "-m", path, data / "test.tsv", "--tokenizer", "words"),
                       2, "--tokenizer splits raw text; the input is conll")
    assert_clean_error(run_cli("tag", "-m", path, "--input-format", "conll", "--gold",
                               input="Ada\nmet\n\n"), 2, "--gold: <stdin>, line 1: no gold")
    assert_clean_error(run_cli("tag", "-m", path, data / "missing.txt"), 1, "file not found")
    assert_usage_error(run_cli("tag", "-m", path, "--input-format", "xml"), "--input-format")


def test_python_api_and_the_store_give_the_same_tags(model, data, tmp_path):
    import rnn_cli

    path = model[0]
    (tmp_path / "tag.npz").write_bytes(path.read_bytes())
    r = ok(run_cli("tag", data / "test.tsv", "--probs", "--threads", "1", home=tmp_path))
    tagger = rnn_cli.Tagger.load(path)
    api = [[[t, g, f"{p:.6f}"] for t, g, p in zip(s.tokens, s.tags, s.probs)]
           for s in tagger.tag(open(data / "test.tsv"), fmt="conll", probs=True)]
    assert blocks(r) == api
    d = json.loads(ok(run_cli("test", "--task", "tag", data / "test.tsv", "--json",
                              "--threads", "1", home=tmp_path)).stdout)
    assert d["entities"]["f1"] == tagger.test(str(data / "test.tsv"))["entities"]["f1"]
    assert "Tagger" in rnn_cli.__all__ and "crf" in repr(tagger)


# --------------------------------------------------------------------------- test and info
def test_test_reports_unseen_tags_and_invalid_gold(model, tmp_path):
    path = model[0]
    gold = tmp_path / "gold.tsv"
    gold.write_text("Ada\tB-PER\nmet\tO\nTeddy\tI-PER\nRoosevelt\tI-PER\n\nOslo\tB-CITY\n"
                    "said\tO\n\n")
    r = ok(run_cli("test", "-m", path, gold, "--threads", "1"))
    out, err = r.stdout.decode(), r.stderr.decode()
    assert out.startswith("sentences\t2\ntokens\t6\naccuracy\t") and "\x1b[" not in out
    assert "\n# per entity type\ntype\tprecision\trecall\tf1\tgold\tpredicted\tcorrect\n" in out
    assert "\nCITY\t0.0000\t0.0000\t0.0000\t1\t0\t0\n" in out
    assert "1 gold token(s) have a tag the model never saw ('B-CITY' (1))" in err
    assert "1 gold sentence(s) break the BIO rules" in err
    d = json.loads(ok(run_cli("test", "-m", path, gold, "--json", "--threads", "1")).stdout)
    assert d["invalid_sentences"] == {"gold": 1, "predicted": 0} and d["entities"]["gold"] == 3
    assert d["loss"] is not None and d["loss"] < 100  # the invalid gold repaired for the loss
    assert_clean_error(run_cli("test", "-m", path, gold, "--bad-lines", "skip"), 2,
                       "--bad-lines skip")


def test_info_describes_a_tagger(model):
    path = model[0]
    out = ok(run_cli("info", "-m", path)).stdout.decode()
    assert "tag (tagging model)" in out and "K = 5: O B-LOC I-LOC B-PER I-PER" in out
    assert "best val    f1" in out and "nats/token" in out
    d = json.loads(ok(run_cli("info", "-m", path, "--json")).stdout)
    assert d["kind"] == "tag" and d["config"]["crf"] and d["vocabs"]["char"]["level"] == "char"


def test_every_verb_refuses_the_wrong_kind_in_one_line(model):
    path = model[0]
    for verb in (("sample",), ("score", "-"), ("predict",)):
        r = run_cli(*verb, "-m", path, input="x\n")
        assert_clean_error(r, 1, f"{path} is a tagging model; use `rnn-cli tag`")
    r = run_cli("tag", "-m", NAMES.parent / "missing.npz", input="x\n")
    assert r.returncode == 1


# --------------------------------------------------------------------------- bad input
def _train(tmp_path, text: bytes | str, *extra):
    path = tmp_path / "bad.tsv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return run_cli("train", "--task", "tag", path, "-o", tmp_path / "bad.npz", "--steps", "2",
                   *TINY, *extra)


@pytest.mark.parametrize("text,needles", [
    ("Ada\tB-PER\nmet\tO\tx\n\n", ("line 2: 3 columns where the lines above have 2",)),
    ("Ada\tB-PER\nmet\n\n", ("line 2: the token 'met' has no tag",)),
    ("Ada\tB PER\nmet\tO\n\n", ("line 1: the token 'Ada' has a tag that contains a space",)),
    ("Ada\tO\nmet\tO\n\n", ("every token has the tag 'O'", "at least two tags")),
    (b"", ("is empty",)),
    (b"Ada\tB-PER\n\xff\xfe\tO\n", ("not valid utf-8", "line 2")),
], ids=["ragged", "no-tag", "tag-with-space", "one-tag", "empty", "undecodable"])
def test_unusable_files_are_one_line_errors(tmp_path, text, needles):
    assert_clean_error(_train(tmp_path, text), 1 if "two tags" not in needles[-1] else 2,
                       *needles)


def test_long_and_empty_sentences_are_counted_and_tagged_whole(model, tmp_path):
    text = tagged(20) + "\n\n\n" + "".join(f"w{i % 7}\tO\n" for i in range(4999)) + \
        "Ada\tB-PER\n\n"
    r = ok(_train(tmp_path, text, "--val-frac", "0"))
    err = r.stderr.decode()
    assert "1 sentence of more than 1,000 tokens (the first, 5,000 tokens, at line" in err
    assert "3 empty sentences skipped (the first at line" in err
    r = ok(run_cli("tag", "-m", model[0], "--threads", "1",
                   input="the " * 4999 + "Ada\n\n\nOslo\n"))
    got = blocks(r)
    assert [len(b) for b in got] == [5000, 0, 0, 1] and got[0][-1] == ["Ada", "B-PER"]
