"""Tests for rnn_cli/corpus.py (reading text) and rnn_cli/tasks/lm/windows.py (splitting,
batch-shape fitting and BPTT windows)."""

from __future__ import annotations

import hashlib
import io
import os

import numpy as np
import pytest

from rnn_cli.corpus import read_text
from rnn_cli.errors import CorpusError, RnnCliError
from rnn_cli.tasks.lm.windows import Batches, fit_batch_shape, split_train_val


class FakeStdin:
    """A text stream with a binary .buffer and a chosen isatty()."""

    def __init__(self, data: bytes, tty: bool = False):
        self.buffer = io.BytesIO(data)
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def write(tmp_path, data: bytes, name: str = "c.txt") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


# ------------------------------------------------------------------------ read_text
def test_read_text_normalises_and_reports(tmp_path):
    raw = "\ufeffone\r\ntwo\rthree é\n".encode("utf-8")
    text, info = read_text(write(tmp_path, raw))
    assert text == "one\ntwo\nthree é\n"
    assert info["bytes"] == len(raw) and info["sha256"] == hashlib.sha256(raw).hexdigest()
    assert info["name"].endswith("c.txt")


def test_read_text_stdin_pipe():
    text, info = read_text("-", stdin=FakeStdin(b"hello\r\nworld"))
    assert text == "hello\nworld" and info["name"] == "<stdin>" and info["bytes"] == 12


def test_read_text_stdin_tty_refused():
    with pytest.raises(CorpusError, match="standard input is a terminal") as e:
        read_text("-", stdin=FakeStdin(b"x", tty=True))
    assert "cat corpus.txt | rnn-cli train -" in e.value.hint


def test_read_text_missing_and_directory(tmp_path):
    with pytest.raises(CorpusError, match="not found") as e:
        read_text(str(tmp_path / "nope.txt"))
    assert e.value.hint
    with pytest.raises(CorpusError, match="directory") as e:
        read_text(str(tmp_path))
    assert e.value.hint


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can read anything")
def test_read_text_permission_denied(tmp_path):
    path = write(tmp_path, b"secret")
    os.chmod(path, 0)
    with pytest.raises(CorpusError, match="permission denied"):
        read_text(path)


@pytest.mark.parametrize("data, match", [
    (b"", "empty"),
    (b"  \n\t\r\n ", "only whitespace"),
    (b"\xef\xbb\xbf", "only whitespace"),  # a BOM and nothing else
])
def test_read_text_empty(tmp_path, data, match):
    with pytest.raises(CorpusError, match=match):
        read_text(write(tmp_path, data))


def test_read_text_invalid_utf8_offset(tmp_path):
    path = write(tmp_path, "ab\né".encode("utf-8") + b"x\xffyz")
    with pytest.raises(CorpusError, match=r"byte 0xff at offset 6 \(line 2\)") as e:
        read_text(path)
    assert "--encoding" in e.value.hint and "--errors replace" in e.value.hint
    text, _ = read_text(path, errors="replace")
    assert text == "ab\néx\ufffdyz"
    assert read_text(path, encoding="latin-1")[0] == "ab\nÃ©xÿyz"


def test_read_text_nul_bytes(tmp_path):
    with pytest.raises(CorpusError, match="NUL byte at offset 3"):
        read_text(write(tmp_path, b"abc\x00def"))
    # NUL bytes are normal inside UTF-16; accepted there
    assert read_text(write(tmp_path, "hi".encode("utf-16")), encoding="utf-16")[0] == "hi"


def test_read_text_bad_codec_names(tmp_path):
    path = write(tmp_path, b"abc")
    with pytest.raises(RnnCliError, match="unknown encoding"):
        read_text(path, encoding="no-such-codec")
    with pytest.raises(RnnCliError, match="unknown --errors"):
        read_text(path, errors="nope")


# ------------------------------------------------------------------------ split
def test_split_train_val():
    ids = np.arange(10, dtype=np.int32)
    train, val = split_train_val(ids, 0.25)  # floor(2.5) = 2
    assert train.tolist() == list(range(8)) and val.tolist() == [8, 9]
    train, val = split_train_val(ids, 0.0)
    assert len(train) == 10 and len(val) == 0
    assert len(split_train_val(np.arange(100), 0.29)[1]) == 29
    with pytest.raises(RnnCliError):
        split_train_val(ids, 1.0)
    with pytest.raises(RnnCliError):
        split_train_val(ids, -0.1)


# ------------------------------------------------------------------------ fit_batch_shape
def test_fit_batch_shape_keeps_when_it_fits():
    assert fit_batch_shape(10_001, 32, 64) == (32, 64, False)  # 10000//32=312 → 4 windows


def test_fit_batch_shape_shrinks_batch_then_seq_len():
    b, t, adjusted = fit_batch_shape(1001, 32, 64)
    assert (b, t, adjusted) == (3, 64, True)  # 1000//3 = 333 → 5 windows; B=4 → 3 windows
    assert ((1001 - 1) // b) // t >= 4
    assert fit_batch_shape(101, 32, 64) == (1, 25, True)
    assert fit_batch_shape(9, 32, 64) == (1, 2, True)


def test_fit_batch_shape_refuses_with_minimum_size():
    with pytest.raises(CorpusError, match="at least 9 tokens") as e:
        fit_batch_shape(8, 32, 64)
    assert e.value.hint
    with pytest.raises(RnnCliError):
        fit_batch_shape(100, 0, 64)


@pytest.mark.parametrize("n", range(9, 400, 7))
def test_fit_batch_shape_result_always_works(n):
    b, t, _ = fit_batch_shape(n, 16, 32, min_windows=4)
    assert Batches(np.arange(n), b, t).windows_per_epoch >= 4


# ------------------------------------------------------------------------ Batches
def test_batches_match_hand_computation_and_wrap():
    bt = Batches(np.arange(11), batch_size=2, seq_len=2)  # L = 5, 2 windows, tail dropped
    assert (bt.stream_len, bt.windows_per_epoch, bt.tokens_per_epoch) == (5, 2, 8)
    assert bt.reset_state and bt.position == 0 and bt.epoch == 0
    x, y, reset = bt.next_window()
    assert reset and x.dtype == np.int32 and y.dtype == np.int32 and x.shape == (2, 2)
    assert x.tolist() == [[0, 5], [1, 6]] and y.tolist() == [[1, 6], [2, 7]]
    assert not bt.reset_state and bt.position == 1
    x2, y2, reset = next(bt)
    assert not reset and x2 is x and y2 is y  # the same preallocated buffers
    assert x.tolist() == [[2, 7], [3, 8]] and y.tolist() == [[3, 8], [4, 9]]
    assert bt.epoch == 1 and bt.position == 0 and bt.reset_state
    x, y, reset = bt.next_window()
    assert reset and x.tolist() == [[0, 5], [1, 6]] and bt.epoch == 1


def test_batches_targets_are_next_ids_in_stream():
    ids = np.random.default_rng(0).integers(0, 50, 1000)
    bt = Batches(ids, batch_size=7, seq_len=9)
    L = 999 // 7
    for w in range(bt.windows_per_epoch):
        x, y, _ = bt.next_window()
        for b in range(7):
            start = b * L + w * 9
            assert x[:, b].tolist() == ids[start:start + 9].tolist()
            assert y[:, b].tolist() == ids[start + 1:start + 10].tolist()


def test_batches_state_dict_resumes_at_same_window():
    ids = np.arange(500)
    a = Batches(ids, 3, 5)
    for _ in range(40):
        a.next_window()
    state = a.state_dict()
    assert all(type(v) is int for v in state.values())
    b = Batches(ids, 3, 5)
    b.load_state_dict(dict(state))
    for _ in range(50):
        xa, ya, ra = a.next_window()
        xb, yb, rb = b.next_window()
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb) and ra == rb
    assert (a.epoch, a.position) == (b.epoch, b.position)


def test_batches_state_dict_refuses_other_shape():
    state = Batches(np.arange(500), 3, 5).state_dict()
    with pytest.raises(CorpusError, match="batch_size") as e:
        Batches(np.arange(500), 4, 5).load_state_dict(state)
    assert e.value.hint
    with pytest.raises(CorpusError, match="out of range"):
        Batches(np.arange(500), 3, 5).load_state_dict({**state, "position": 10_000})


def test_batches_too_short():
    with pytest.raises(CorpusError, match="at least 9") as e:
        Batches(np.arange(8), 2, 4)
    assert e.value.hint
    assert Batches(np.arange(9), 2, 4).windows_per_epoch == 1
