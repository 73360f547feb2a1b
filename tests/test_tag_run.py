"""Training a tagger and using it (rnn_cli/tasks/tag/run.py, tagger.py, task.py): a tiny model
learns a toy NER task through the example trainer and `rnn_cli.train`, keeps the best, resumes
bit for bit, repairs and counts invalid gold, reports unseen tags; the loaded Tagger streams,
gives probabilities and spans, keeps gold columns, and scores gold files as conlleval does."""

from __future__ import annotations

import numpy as np
import pytest

import rnn_cli
from rnn_cli import checkpoint
from rnn_cli.errors import ModelFileError, UsageError
from rnn_cli.tasks.tag.run import TagRun
from rnn_cli.tasks.tag.tagger import Tagger

FILLER = "the a saw met in at with and then said today was big".split()
PER = [["Harry", "Potter"], ["Ada"], ["Teddy", "Roosevelt"], ["Hermione", "Granger"]]
LOC = [["Paris"], ["New", "York"], ["Oslo"]]
TINY = dict(hidden=8, embed=8, char_embed=4, char_hidden=4, batch_size=8, seed=3, lr=0.02,
            dropout=0.0, min_count=1, patience=0)


def write_corpus(path, n=120, seed=0, bad_gold=False) -> str:
    """Sentences of filler words with one or two names; BIO tags."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n):
        toks = [str(w) for w in rng.choice(FILLER, int(rng.integers(2, 6)))]
        tags = ["O"] * len(toks)
        for typ, names in (("PER", PER), ("LOC", LOC))[:1 + s % 2]:
            name = names[int(rng.integers(len(names)))]
            at = int(rng.integers(0, len(toks) + 1))
            toks[at:at] = name
            tags[at:at] = [f"B-{typ}"] + [f"I-{typ}"] * (len(name) - 1)
        if bad_gold and s % 10 == 0:
            tags = [t.replace("B-", "I-") for t in tags]  # I-PER after O: invalid BIO
        rows += [f"{t}\t{g}" for t, g in zip(toks, tags)] + [""]
    path.write_text("\n".join(rows) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tag")
    train = write_corpus(tmp / "train.tsv")
    run = TagRun.start(train, epochs=8, crf=True, **TINY)
    summary = run.run()
    path = str(tmp / "ner.npz")
    run.save(path)
    return run, summary, path, tmp


def test_learns_keeps_the_best_and_round_trips(trained):
    run, summary, path, _ = trained
    assert summary["metric"] == "f1" and summary["best"] >= 0.9, summary
    assert summary["scheme"] == "BIO" and summary["tags"] == 5
    assert summary["train_sentences"] == 108 and summary["valid_sentences"] == 12
    tagger = Tagger.load(path)
    assert tagger.tags == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"] and tagger.cfg.crf
    out = tagger.tag_tokens([["then", "Ada", "met", "Teddy", "Roosevelt", "in", "Oslo"]])
    assert out[0].tags == ["O", "B-PER", "O", "B-PER", "I-PER", "O", "B-LOC"]
    with pytest.raises(ModelFileError, match="is a tagging model; use `rnn-cli tag`"):
        checkpoint.load(path)


def test_tag_streams_raw_and_column_input(trained):
    _, _, path, _ = trained
    tagger = Tagger.load(path)
    out = list(tagger.tag(["\ufeffHarry Potter was in Paris\n", "\n", "Ada  said\r\n"],
                          probs=True))
    assert [len(t.tokens) for t in out] == [5, 0, 2] and out[1].tags == []
    assert [t.line for t in out] == [1, 2, 3] and out[2].tokens == ["Ada", "said"]
    assert all(0 < p <= 1 for p in out[0].probs)
    spans = out[0].spans()
    assert [(s["type"], s["start"], s["end"], s["text"]) for s in spans] == \
        [("PER", 0, 2, "Harry Potter"), ("LOC", 4, 5, "Paris")]
    assert all(0 < s["confidence"] <= 1 for s in spans)
    col = list(tagger.tag(["Ada\tB-PER\n", "met\tO\n", "\n", "Oslo\tB-LOC\n"], fmt="conll"))
    assert [t.gold for t in col] == [["B-PER", "O"], ["B-LOC"]]
    tokens_only = list(tagger.tag(["Ada\n", "met\n"], fmt="conll"))
    assert tokens_only[0].gold is None and len(tokens_only[0].tags) == 2

    def lines():
        yield "Ada met Harry Potter"
        raise AssertionError("read past the first sentence before answering it")
    assert next(iter(tagger.tag(lines(), batch_size=1))).tags[1] == "O"


def test_a_long_sentence_is_tagged_whole(trained):
    _, _, path, _ = trained
    long = ["then"] * 4999 + ["Ada"]
    out = Tagger.load(path).tag_tokens([long, ["Oslo"]])
    assert len(out[0].tags) == 5000 and out[0].tags[-1] == "B-PER" and out[1].tags == ["B-LOC"]


def test_test_scores_as_conlleval_with_unseen_tags_and_invalid_gold(trained, tmp_path):
    _, _, path, _ = trained
    gold = tmp_path / "gold.tsv"
    gold.write_text("Ada\tB-PER\nmet\tO\nTeddy\tI-PER\nRoosevelt\tI-PER\n\n"
                    "Oslo\tB-CITY\nsaid\tO\n\n")
    m = Tagger.load(path).test(str(gold))
    assert m["sentences"] == 2 and m["tokens"] == 6 and m["unseen_tags"] == {"B-CITY": 1}
    assert m["invalid_sentences"]["gold"] == 1 and m["invalid_sentences"]["predicted"] == 0
    # conlleval reads the invalid I-PER I-PER as one PER chunk: found
    assert m["entities"]["gold"] == 3 and m["entities"]["correct"] == 2
    assert m["per_type"]["CITY"]["recall"] == 0.0  # Teddy: predicted B-PER, gold I-PER
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["loss"] == m["loss"] and m["warnings"] == []


def test_invalid_gold_is_repaired_and_counted(tmp_path):
    train = write_corpus(tmp_path / "bad.tsv", n=40, bad_gold=True)
    valid = tmp_path / "valid.tsv"
    valid.write_text("Ada\tB-PER\nmet\tO\n\nOslo\tB-CITY\n\n")
    run = TagRun.start(train, valid=str(valid), steps=2, crf=True, **TINY)
    notes = []
    run.run(lambda kind, info: notes.append(info["message"]) if kind == "warning" else None)
    assert any("4 training sentence(s) break the BIO rules (the first at line 1)" in n
               for n in notes), notes
    assert any("1 valid token(s) have a tag the model never saw in training (B-CITY)" in n
               for n in notes), notes
    assert np.isfinite(run.fit.history).all()


def test_resume_continues_bit_for_bit(tmp_path):
    train = write_corpus(tmp_path / "t.tsv", n=40)
    opts = dict(TINY, steps=12, eval_every=4, dropout=0.2)
    whole = TagRun.start(train, **opts)
    whole.run()
    part = TagRun.start(train, **opts)
    part.run(should_stop=lambda: part.fit.step >= 7)
    path = str(tmp_path / "part.npz")
    part.save(path)
    again = TagRun.resume(path, train, steps=12)
    again.run()
    assert again.fit.step == 12 and np.array_equal(again.net.params.flat, whole.net.params.flat)
    with pytest.raises(UsageError, match="whose hidden is 8"):
        TagRun.resume(path, train, hidden=9)


def test_options_and_refusals(tmp_path):
    train = write_corpus(tmp_path / "t.tsv", n=20)
    with pytest.raises(UsageError, match="unknown option"):
        TagRun.start(train, steps=1, seq_len=5)
    with pytest.raises(UsageError, match="--metric f1"):
        pos = tmp_path / "pos.tsv"
        pos.write_text("a\tDET\ncat\tNOUN\n\nruns\tVERB\n\n")
        TagRun.start(str(pos), steps=1, metric="f1", val_frac=0.0)
    one = tmp_path / "one.tsv"
    one.write_text("a\tO\nb\tO\n\n")
    with pytest.raises(UsageError, match="a tagger needs at least two tags"):
        TagRun.start(str(one), steps=1)
    run = TagRun.start(train, steps=1, max_len=3, val_frac=0.0, **TINY)
    assert any("--max-len 3 cut" in m for _, m in run.notices)
    assert int(run.data["train"].lengths.max()) == 3


def test_rnn_cli_train_task_tag(tmp_path):
    train = write_corpus(tmp_path / "t.tsv", n=30)
    out = str(tmp_path / "m.npz")
    events = []
    summary = rnn_cli.train(train, out=out, steps=3, threads=1, on_event=lambda k, i:
                            events.append((k, i.get("message", ""))), **TINY)
    kinds = [k for k, _ in events]
    assert summary["model"] == out and summary["steps"] == 3
    assert any(k == "notice" and "--task tag (guessed" in m for k, m in events)
    assert kinds.index("compiled") < kinds.index("start") < kinds.index("step")
    assert rnn_cli.train(train, task="tag", out=out, resume=True, steps=5,
                         **{k: v for k, v in TINY.items() if k == "seed"})["steps"] == 5
    with pytest.raises(UsageError, match="--seq-len does not apply to --task tag"):
        rnn_cli.train(train, task="tag", out=out, steps=1, seq_len=4)
