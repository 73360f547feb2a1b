"""The translator's reader (tasks/translate/reader.py): pairs, line-aligned files, vocabularies per
side, sources cut to --max-len, pairs over it left out (run.encode), and every kind of bad input
(a one-line error or a counted notice)."""

from __future__ import annotations

import numpy as np
import pytest

from rnn_cli.errors import CorpusError, UsageError
from rnn_cli.tasks.translate import reader as rd
from rnn_cli.tasks.translate.run import encode


def write(tmp_path, name, data: bytes | str):
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return str(path)


def test_pairs_are_read_and_stripped(tmp_path):
    path = write(tmp_path, "p.tsv", "ein Haus\ta house\n\n  zwei \t two  \n")
    pairs = rd.read_pairs(path)
    assert (pairs.src, pairs.tgt, pairs.lines) == (["ein Haus", "zwei"], ["a house", "two"], [1, 3])
    assert pairs.report.messages() == []  # a blank line is no problem


@pytest.mark.parametrize("line,what", [("no tab here", "no TAB"), ("a\tb\tc", "more than one TAB"),
                                       ("\ttarget", "empty source"), ("source\t  ", "empty target")])
def test_a_bad_line_is_counted_or_an_error(tmp_path, line, what):
    path = write(tmp_path, "p.tsv", f"eins\tone\n{line}\nzwei\ttwo\n{line}\n")
    pairs = rd.read_pairs(path, bad_lines="skip")
    assert pairs.src == ["eins", "zwei"]
    assert pairs.report.messages() == [f"{path}: 2 lines skipped: {what} (first: line 2)"]
    with pytest.raises(CorpusError, match=f"2 lines are not a usable sentence pair: 2 with "
                                          f"{what} \\(lines 2, 4\\)") as e:
        rd.read_pairs(path)  # the default: fail, naming the lines
    assert "--bad-lines skip" in e.value.hint


def test_nothing_but_bad_lines_is_an_error(tmp_path):
    path = write(tmp_path, "p.tsv", "one\ntwo\n")
    with pytest.raises(CorpusError, match="no sentence pairs.*2 lines skipped: no TAB"):
        rd.read_pairs(path, bad_lines="skip")


def test_unknown_bad_lines_mode():
    with pytest.raises(UsageError, match="--bad-lines"):
        rd.read_pairs("x", bad_lines="ignore")


def test_crlf_and_byte_order_marks(tmp_path):
    """A BOM + CRLF file, a BOM inside (files joined by cat): the same pairs as plain LF."""
    data = "\ufeffeins\tone\r\nzwei\ttwo\r\n\ufeffdrei\tthree\r\n".encode("utf-8")
    pairs = rd.read_pairs(write(tmp_path, "p.tsv", data))
    assert (pairs.src, pairs.tgt) == (["eins", "zwei", "drei"], ["one", "two", "three"])
    assert pairs.report.messages()[0].endswith(
        "a byte-order mark removed at the line start on 1 line (first: line 3)")
    src = write(tmp_path, "s.txt", "\ufeffeins\r\nzwei\r\ndrei\r\n".encode("utf-8"))
    tgt = write(tmp_path, "t.txt", "one\ntwo\nthree")
    par = rd.read_parallel(src, tgt)
    assert (par.src, par.tgt, par.lines) == (pairs.src, pairs.tgt, [1, 2, 3])


def test_parallel_files_of_different_lengths(tmp_path):
    src = write(tmp_path, "s.txt", "eins\nzwei\ndrei\n")
    tgt = write(tmp_path, "t.txt", "one\ntwo\n")
    with pytest.raises(CorpusError, match="has 3 lines but --tgt .* has 2: .*not line-aligned"):
        rd.read_parallel(src, tgt)


def test_parallel_empty_side_and_tabs(tmp_path):
    src = write(tmp_path, "s.txt", "eins\n\nzwei\tmit tab\n\n")
    tgt = write(tmp_path, "t.txt", "one\ntwo\n\t\n\n")
    par = rd.read_parallel(src, tgt, bad_lines="skip")
    assert (par.src, par.tgt) == (["eins"], ["one"])  # line 4: blank on both sides, no notice
    assert [m.split(": ", 1)[1] for m in par.report.messages()] == [
        "1 line skipped: empty source (first: line 2)", "1 line skipped: empty target (first: line 3)"]


@pytest.mark.parametrize("data,match", [(b"eins\tone\n\x00\x01\x02\n", "NUL byte"),
                                        (b"eins\tone\n\xff\xfe bad\tx\n", "not valid utf-8")])
def test_binary_training_data_is_an_error(tmp_path, data, match):
    with pytest.raises(CorpusError, match=match):
        rd.read_pairs(write(tmp_path, "p.tsv", data))


def test_vocabularies_per_side_end_every_sequence(tmp_path):
    pairs = rd.read_pairs(write(tmp_path, "p.tsv", "ab\tdas Haus\nba\tdas Boot\n"))
    sv = rd.build_vocab(pairs.src, "char")
    tv = rd.build_vocab(pairs.tgt, "word")
    assert sv.eos_id is not None and "\n" in sv.symbols  # char level: "\n" ends a sequence
    data, _ = encode(pairs, sv, tv, 100, "train")
    src, tgt = data.src, data.tgt
    assert [list(s) for s in src] == [[sv.index["a"], sv.index["b"], sv.eos_id],
                                      [sv.index["b"], sv.index["a"], sv.eos_id]]
    assert [tv.decode(t) for t in tgt] == ["das Haus\n", "das Boot\n"]
    assert all(t[-1] == tv.eos_id for t in tgt) and data.refs == ["das Haus", "das Boot"]


def test_a_source_of_10000_tokens(tmp_path):
    long = " ".join(["wort"] * 10_000)
    pairs = rd.read_pairs(write(tmp_path, "p.tsv", f"kurz\tshort\n{long}\tlong\n"))
    sv, tv = rd.build_vocab(pairs.src, "word"), rd.build_vocab(pairs.tgt, "word")
    data, notices = encode(pairs, sv, tv, 100, "train")
    assert len(data.src) == len(data.tgt) == 1
    assert notices == ["--max-len 100: 1 train pair(s) with a longer side left out (the "
                       "longest: 10,001 tokens)"]
    data, notices = encode(pairs, sv, tv, 100, "test", drop=False)  # a test set: cut, kept
    assert len(data.src) == 2 and data.src[1].shape == (100,)
    assert notices == ["--max-len 100: 1 test source(s) cut to 100 tokens"]
    ids, unknown, cut = rd.encode_source(sv, long, 100)
    assert cut and ids.shape == (100,) and ids[-1] == sv.eos_id and unknown == 0
    ids, _, cut = rd.encode_source(sv, "kurz", 100)
    assert not cut and list(ids) == [sv.index["kurz"], sv.eos_id]


def test_encoded_ids_are_int32(tmp_path):
    pairs = rd.read_pairs(write(tmp_path, "p.tsv", "a b\tc d\n"))
    v = rd.build_vocab(pairs.src, "word")
    ids, _ = rd.encode(v, "a b")
    assert ids.dtype == np.int32
