"""The translator's engine end to end (rnn_cli/tasks/translate: run, task, translator): training
through the example trainer on a toy task it learns in seconds, the validation metric chosen,
model files that load back (and refuse the wrong kind), an exact resume, translating (greedy,
beam, n-best, blank lines, cut sources), and test metrics. Tiny sizes."""

from __future__ import annotations

import numpy as np
import pytest

from rnn_cli import checkpoint
from rnn_cli.errors import CorpusError, ModelFileError, UsageError
from rnn_cli.tasks.translate import run as run_mod
from rnn_cli.tasks.translate.run import TranslateRun, pick_metric
from rnn_cli.tasks.translate.translator import Translator

DIGITS = "zero one two three four five six seven eight nine".split()
TINY = dict(hidden=16, embed=16, proj=16, dec_hidden=32, attn_size=16, dropout=0.0,
            batch_size=16, lr=0.01, seed=3)


def toy(tmp_path, n=300, seed=0, name="train.tsv") -> str:
    """Digit words -> digits ("one two" -> "1 2"), one to one: learnt in seconds."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        d = rng.integers(0, 10, int(rng.integers(1, 4)))
        lines.append(" ".join(DIGITS[i] for i in d) + "\t" + " ".join(str(i) for i in d))
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("toy")
    train, valid = toy(tmp), toy(tmp, 60, seed=1, name="valid.tsv")
    run = TranslateRun.start(train, valid=valid, epochs=12, metric="exact", **TINY)
    events = []
    summary = run.run(lambda kind, info: events.append((kind, info)))
    path = str(tmp / "toy.npz")
    run.save(path)
    return run, summary, events, path, tmp


def test_learns_the_toy_task_and_keeps_the_best(trained):
    run, summary, events, path, _ = trained
    evals = [i for k, i in events if k == "eval"]
    assert evals[-1]["metrics"]["exact"] > 0.9, evals[-1]["metrics"]
    assert summary["best"] == max(e["value"] for e in evals)
    assert summary["metric"] == "exact" and summary["train_pairs"] == 300


def test_model_file_loads_and_translates(trained):
    run, summary, _, path, tmp = trained
    tr = Translator.load(path)
    assert tr.config == run.net.cfg
    got = tr.translate_batch(["one two three", "", "nine"], beam=3, n_best=2)
    assert got[0][0].text == "1 2 3" and got[2][0].text == "9"
    assert got[1] == got[1][:1] and got[1][0].text == ""  # a blank line: one empty answer
    assert got[0][0].score >= got[0][1].score
    t = got[0][0]
    assert t.attention.shape == (len(t.tokens) + 1, len(t.source_tokens))
    assert np.allclose(t.attention.sum(axis=1), 1.0, atol=1e-5)
    assert t.source_tokens[-1] == "<EOS>"
    greedy = tr.translate_one("one two three")
    assert greedy.text == "1 2 3" and greedy.logprob == pytest.approx(t.logprob, abs=1e-4)
    streamed = [a[0].text for a in tr.translate(iter(["one", "two two", ""]), read_ahead=2)]
    assert streamed == ["1", "2 2", ""]


def test_a_block_is_decoded_in_batches_sorted_by_length_and_answered_in_order(trained):
    """translate_batch sorts a block's sources by length into `batch`-sized decoding batches
    (translate reads 8 batches ahead): the answers come back in input order, as each line's own."""
    _, _, _, path, _ = trained
    tr = Translator.load(path)
    lines = ["one two three", "", "nine", "four four", "five six seven", "two", "three one"]
    alone = [tr.translate_one(line).text if line else "" for line in lines]
    for batch in (1, 2, 3, 128):
        assert [a[0].text for a in tr.translate_batch(lines, batch=batch)] == alone, batch
    assert [a[0].text for a in tr.translate(iter(lines))] == alone
    with pytest.raises(UsageError, match="--batch-size"):
        tr.translate_batch(lines, batch=0)
    assert alone[0] == "1 2 3" and alone[4] == "5 6 7"


def test_test_metrics(trained):
    _, _, _, path, tmp = trained
    found = Translator.load(path).test(toy(tmp, 40, seed=5, name="test.tsv"))
    assert found["n"] == 40 and found["exact"] > 0.8
    assert found["chrf"] > 80 and found["bleu_signature"].startswith("nrefs:1|case:mixed")
    assert "bleu" in found  # (0 or so here: the outputs are shorter than BLEU's 4-grams)
    assert found["ppl"] == pytest.approx(np.exp(found["loss"]))


def test_a_long_source_is_cut_and_counted(trained):
    _, _, _, path, _ = trained
    tr = Translator.load(path)
    tr.net.cfg = tr.net.cfg.__class__(**{**tr.net.cfg.__dict__, "max_len": 5})
    out = tr.translate_batch(["one " * 10000])
    assert tr.cut_sources == 1 and len(out[0][0].source_tokens) == 5


def test_wrong_kind_and_bad_options(trained, tmp_path):
    _, _, _, path, tmp = trained
    with pytest.raises(ModelFileError, match="translation model; use `rnn-cli translate`"):
        checkpoint.load(path)
    tr = Translator.load(path)
    with pytest.raises(UsageError, match="--n-best 3 needs a beam"):
        tr.translate_batch(["one"], beam=2, n_best=3)
    with pytest.raises(UsageError, match="--src and --tgt go together"):
        TranslateRun.start(None, src=toy(tmp_path), epochs=1, **TINY)
    with pytest.raises(UsageError, match="--metric must be one of"):
        TranslateRun.start(toy(tmp_path), epochs=1, metric="f1", **TINY)


def test_metric_auto():
    assert pick_metric("auto", ["1999-03-03", "2001-01-01"]) == ("exact", None)
    assert pick_metric("auto", ["a man is walking down the street ."] * 3)[0] == "bleu"
    assert pick_metric("loss", ["x"]) == ("loss", None)


def test_resume_continues_exactly(tmp_path):
    """Two runs of 6 steps == one run of 12 (parameters bit for bit, dropout masks included)."""
    train = toy(tmp_path, 80)
    kw = dict(TINY, batch_size=8, metric="loss", val_frac=0.1, lr_schedule="constant", dropout=0.2)
    whole = TranslateRun.start(train, steps=12, **kw)
    whole.run()
    half = TranslateRun.start(train, steps=6, **kw)
    half.run()
    half.save(str(tmp_path / "half.npz"))
    rest = TranslateRun.resume(str(tmp_path / "half.npz"), train, steps=12)
    rest.run()
    assert np.array_equal(rest.net.params.flat, whole.net.params.flat)
    with pytest.raises(UsageError, match="whose hidden is 16"):
        TranslateRun.resume(str(tmp_path / "half.npz"), train, steps=12, hidden=9)


def test_parallel_files_and_their_errors(tmp_path):
    src, tgt = tmp_path / "s.txt", tmp_path / "t.txt"
    src.write_text("one\ntwo\nthree\n" * 10)
    tgt.write_text("1\n2\n3\n" * 10)
    run = TranslateRun.start(None, src=str(src), tgt=str(tgt), steps=2, **TINY)
    assert len(run.data["train"].src) == 27 and len(run.data["valid"].src) == 3
    tgt.write_text("1\n2\n")
    with pytest.raises(CorpusError, match="not line-aligned"):
        TranslateRun.start(None, src=str(src), tgt=str(tgt), steps=2, **TINY)


def test_pairs_over_max_len_are_left_out_and_counted(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text("one two\t2 1\n" * 20 + ("one " * 10000) + "\t1\n")
    run = TranslateRun.start(str(path), steps=1, max_len=50, val_frac=0.0, **TINY)
    assert len(run.data["train"].src) == 20
    assert any("1 train pair(s) with a longer side left out (the longest: 10,001 tokens)" in n
               for n in run.notices)
    assert run_mod.VAL_MAX >= 1000


def test_attention_heatmap_svg_and_tsv(trained, tmp_path):
    from rnn_cli.tasks.translate import heatmap

    _, _, _, path, _ = trained
    t = Translator.load(path).translate_one("one two")
    svg, tsv = tmp_path / "a.svg", tmp_path / "a.tsv"
    heatmap.write(str(svg), t.source_tokens, t.tokens, t.attention, "one two")
    heatmap.write(str(tsv), t.source_tokens, t.tokens, t.attention)
    text = svg.read_text()
    assert text.startswith("<svg") and text.count("<rect") == 1 + t.attention.size
    rows = [line.split("\t") for line in tsv.read_text().splitlines()]
    assert rows[0] == ["output\\source", "one", "two", "<EOS>"]
    assert [r[0] for r in rows[1:]] == ["1", "2", "<EOS>"]
    assert np.allclose([[float(x) for x in r[1:]] for r in rows[1:]], t.attention, atol=1e-4)
    with pytest.raises(ValueError, match="does not fit"):
        heatmap.to_tsv(["a"], ["b"], np.ones((3, 3)))
