"""The classifier's reader (tasks/classify/reader.py) on every kind of bad input, and its metrics
(tasks/classify/metrics.py) against hand-computed scikit-learn definitions."""

from __future__ import annotations

import time

import numpy as np
import pytest

from rnn_cli.errors import CorpusError
from rnn_cli.tasks.classify import reader
from rnn_cli.tasks.classify.metrics import classification_metrics


def write(tmp_path, data: bytes | str, name="d.txt") -> str:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(path)


def test_both_formats_mixed_and_several_labels():
    lines = ["__label__pos a fine film", "neg\tdull ,  slow", "", "__label__a __label__b  x y",
             "  __label__4   spaced out  ", "__label__x text with __label__y inside",
             "very good\tlabel with a space", "ünï★\tunicode label"]
    exs, rep = reader.read_lines(lines, "t")
    assert [(e.lineno, e.labels, e.text) for e in exs] == [
        (1, ("pos",), "a fine film"), (2, ("neg",), "dull ,  slow"), (4, ("a", "b"), "x y"),
        (5, ("4",), "spaced out"), (6, ("x",), "text with __label__y inside"),
        (7, ("very good",), "label with a space"), (8, ("ünï★",), "unicode label")]
    assert rep.blank == 1 and rep.multi_label == 1 and rep.lines == 8
    assert "several labels" in rep.warnings()[0] and "the first was used" in rep.warnings()[0]


BAD = {"no label at all": "no label", "__label__ text": "an empty label",
       "__label__pos": "no text", "\ttext": "no label before the TAB",
       "__label__a\x01b text": "control character", "pos\t   ": "no text",
       "__label__" + "x" * 300 + " t": "300 characters"}


@pytest.mark.parametrize("line", list(BAD))
def test_bad_lines_fail_with_their_line_numbers_or_are_skipped(line):
    lines = ["__label__a ok", line, "__label__b fine", line]
    with pytest.raises(CorpusError) as e:
        reader.read_lines(lines, "f.txt")
    assert "line 2" in e.value.message and "line 4" in e.value.message
    assert BAD[line] in e.value.message and "\n" not in e.value.message
    exs, rep = reader.read_lines(lines, "f.txt", bad_lines="skip")
    assert [e.lineno for e in exs] == [1, 3] and [n for n, _ in rep.bad] == [2, 4]
    assert "skipped 2 bad line(s)" in rep.warnings()[0]


def test_many_bad_lines_are_summarised_on_one_line():
    with pytest.raises(CorpusError) as e:
        reader.read_lines(["__label__a x"] + ["junk"] * 50, "f")
    assert "50 line(s)" in e.value.message and "and 45 more" in e.value.message


def test_crlf_bom_and_encoding(tmp_path):
    exs, _ = reader.read_file(write(tmp_path, b"\xef\xbb\xbf__label__a x\r\n__label__b y\r\n"))
    assert [(e.labels, e.text) for e in exs] == [(("a",), "x"), (("b",), "y")]
    with pytest.raises(CorpusError, match="NUL byte"):
        reader.read_file(write(tmp_path, b"__label__a x\n\x00\x01binary"))
    with pytest.raises(CorpusError, match=r"not valid utf-8.*line 2"):
        reader.read_file(write(tmp_path, b"__label__a x\n__label__b \xff\xfe\n"))
    exs, _ = reader.read_file(write(tmp_path, b"__label__a caf\xe9\n"), encoding="latin-1")
    assert exs[0].text == "café"


def test_empty_inputs(tmp_path):
    with pytest.raises(CorpusError, match="is empty"):
        reader.read_file(write(tmp_path, b""))
    with pytest.raises(CorpusError, match="only whitespace"):
        reader.read_file(write(tmp_path, b"\n \n"))
    with pytest.raises(CorpusError, match="no labelled examples"):
        reader.read_lines(["", "  "], "x")


def test_a_ten_megabyte_line_is_read(tmp_path):
    big = "__label__a " + "word " * 2_000_000 + "\n__label__b short\n"
    t0 = time.perf_counter()
    exs, _ = reader.read_file(write(tmp_path, big))
    assert len(exs[0].text) == 10_000_000 - 1 and exs[1].text == "short"
    assert time.perf_counter() - t0 < 10


def test_single_class_is_an_error_and_labels_sort_naturally():
    exs, _ = reader.read_lines(["__label__x a", "__label__x b"], "one.txt")
    with pytest.raises(CorpusError, match="every example has the label 'x'"):
        reader.check_classes(exs, "one.txt")
    assert reader.label_order(["10", "2", "b", "1", "a", "nan"]) == ["1", "2", "10", "a", "b",
                                                                     "nan"]


def test_strip_gold_for_prediction():
    known = {"pos", "neg"}
    assert reader.strip_gold("__label__pos __label__x the text", known) == "the text"
    assert reader.strip_gold("pos\tthe text", known) == "the text"
    assert reader.strip_gold("other\tthe text", known) == "other\tthe text"
    assert reader.strip_gold("  plain text ", known) == "plain text"
    assert reader.strip_gold("__label__pos", known) == ""


# ------------------------------------------------------------------------------------ metrics
def test_metrics_match_hand_computed_definitions():
    labels = ["a", "b", "c"]
    y = np.array([0, 0, 1, 1, 1, 2, -1, -1])
    pred = np.array([0, 1, 1, 1, 0, 1, 2, 0])
    gold = ["a", "a", "b", "b", "b", "c", "z", "z"]
    m = classification_metrics(y, pred, labels, gold)
    assert m["n"] == 8 and m["accuracy"] == pytest.approx(3 / 8)
    assert m["confusion"] == [[1, 1, 0], [1, 2, 0], [0, 1, 0]]
    # a: P 1/3 (predicted 3 times, once right), R 1/2; b: P 2/4, R 2/3; c: P 0/1, R 0
    pa, ra, pb, rb = 1 / 3, 1 / 2, 2 / 4, 2 / 3
    fa, fb = 2 * pa * ra / (pa + ra), 2 * pb * rb / (pb + rb)
    assert m["per_label"]["a"] == pytest.approx({"precision": pa, "recall": ra, "f1": fa,
                                                 "support": 2})
    assert m["per_label"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["unseen"] == {"z": 2} and m["per_label"]["z"]["support"] == 2
    assert m["macro_f1"] == pytest.approx((fa + fb + 0 + 0) / 4)  # a, b, c and the unseen z


def test_metrics_leave_out_labels_neither_gold_nor_predicted():
    m = classification_metrics(np.array([0, 1]), np.array([0, 1]), ["a", "b", "c"])
    assert m["accuracy"] == 1.0 and m["macro_f1"] == 1.0 and m["per_label"]["c"]["support"] == 0


def test_read_blocks_of_a_pipe_and_of_a_file(tmp_path):
    """streams.read_blocks: a pipe's lines as they arrive (universal newlines across chunk
    ends, a last line without its newline, blocks of at most max_lines), a file's in full
    blocks, and the lines before an undecodable byte come out before the error."""
    import os
    import threading

    from rnn_cli import streams

    def blocks(data: bytes, n: int, pieces=1, out=None):
        r, w = os.pipe()

        def write():
            step = max(1, len(data) // pieces)
            for i in range(0, len(data), step):
                os.write(w, data[i:i + step])
            os.close(w)
        t = threading.Thread(target=write)
        t.start()
        out = [] if out is None else out
        try:
            with open(r, encoding="utf-8", newline=None) as f:
                for b in streams.read_blocks("<pipe>", f, n):
                    out.append([line.rstrip("\n") for line in b])
        finally:
            t.join()
        return out

    data = "a\r\nb\rc\n\nd\u00e9\ne".encode()
    for pieces in (1, 3, len(data)):  # \r\n and the two bytes of é split across reads
        got = blocks(data, 2, pieces)
        assert [x for b in got for x in b] == ["a", "b", "c", "", "d\u00e9", "e"]
        assert all(1 <= len(b) <= 2 for b in got)
    got = []
    with pytest.raises(CorpusError, match=r"<pipe>: not valid utf-8 after line 2"):
        blocks(b"one\ntwo\n\xff\n", 10, out=got)
    assert got == [["one", "two"]]
    f = tmp_path / "f.txt"
    f.write_bytes(data)
    with open(f, encoding="utf-8", newline=None) as s:
        assert [len(b) for b in streams.read_blocks(str(f), s, 4)] == [4, 2]


def test_lines_hand_out_what_a_pipe_has_brought_and_what_a_peek_left(tmp_path):
    """streams.Lines (lines with or without their "\\n"): a leading BOM dropped; idle()
    once every line that has arrived from a pipe is out (never for a file); the bytes a
    format sniff peeked at are not lost."""
    import os

    from rnn_cli import streams

    r, w = os.pipe()
    os.write(w, "\ufeffa\nb\n".encode())
    with open(r, encoding="utf-8", newline=None) as f:
        assert f.buffer.peek(1).startswith(b"\xef\xbb\xbf")  # a sniff's peek
        lines = streams.Lines("<pipe>", f, 10)
        it = iter(lines)
        assert next(it).rstrip("\n") == "a" and not lines.idle()  # the "\n" may be gone
        assert next(it).rstrip("\n") == "b" and lines.idle()
        os.write(w, b"c\n")
        os.close(w)
        assert [line.rstrip("\n") for line in it] == ["c"] and lines.lineno == 3
    path = tmp_path / "f.txt"
    path.write_text("x\ny\n")
    with open(path, encoding="utf-8", newline=None) as f:
        lines = streams.Lines(str(path), f, 1)
        assert [(line, lines.idle()) for line in lines] == [("x\n", False), ("y\n", False)]
