"""Tests for rnn_cli/idcache.py and corpus.Source: corpora read in chunks into memory-mapped id
files, cached by corpus hash and vocabulary settings; training from them as from ids in memory."""

from __future__ import annotations

import glob
import io
import json
import os

import numpy as np
import pytest

from rnn_cli import corpus, idcache
from rnn_cli.corpus import Source, read_text
from rnn_cli.errors import CorpusError, UsageError
from rnn_cli.tasks.lm import windows
from rnn_cli.tasks.lm.windows import Batches
from rnn_cli.vocab import build_vocab

# Multi-byte UTF-8 (2, 3 and 4 bytes), "\r\n" pairs, a BOM, Greek capitals (lower() depends on
# the next letter: final sigma), clitics, tabs, a blank line, long lines without a newline.
TEXT = ("\ufeffΣΟΦΙΑΣ said: don't\tgo, O'Brien's café 漢字\r\nÉté 🙂 x\ry\r\n\n"
        + "word " * 12 + "ΣΑΣ ΣΑΣ\n" + "unbroken" * 5 + " tail <unk> <eos> last line")
SETTINGS = [dict(level="char"), dict(level="char", lower=True),
            dict(level="char", vocab_size=6, min_count=2), dict(level="word"),
            dict(level="word", lower=True), dict(level="word", tokenizer="space"),
            dict(level="word", vocab_size=5)]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes(TEXT.encode("utf-8"))
    return str(path)


def load(path, cache, chunk=corpus.CHUNK_BYTES, stdin=None, **settings):
    with Source(path, stdin=stdin, spool_dir=str(cache), chunk=chunk) as src:
        return idcache.load_ids(src, cache=str(cache), **settings)


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 8, 13, 1 << 20])
def test_pieces_join_to_the_text_and_never_split_a_word(text_file, chunk):
    whole, _ = read_text(text_file)
    for anywhere in (False, True):
        with Source(text_file, chunk=chunk) as src:
            pieces = list(src.pieces(anywhere))
        assert "".join(p for p, _ in pieces) == whole
        assert [final for _, final in pieces] == [False] * (len(pieces) - 1) + [True]
        if not anywhere:  # every cut after whitespace
            assert all(p[-1:] in ("\n", " ", "\t") for p, _ in pieces[:-1])


@pytest.mark.parametrize("chunk", [1, 3, 7, 1 << 20])
@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: "-".join(map(str, s.values())))
def test_id_file_equals_the_encoding_in_memory(tmp_path, text_file, chunk, settings):
    """Chunk boundaries fall inside multi-byte characters, words and "\\r\\n" pairs."""
    whole, info = read_text(text_file)
    vocab = build_vocab(whole, **settings)
    ids, unknown = vocab.encode(whole)
    got = load(text_file, tmp_path / "cache", chunk=chunk, **settings)
    assert isinstance(got.ids, np.memmap) and not got.ids.flags.writeable
    assert got.vocab == vocab and got.unknown == unknown and got.info == info
    assert got.ids.dtype == np.uint8 and np.array_equal(got.ids, ids)
    again = load(text_file, tmp_path / "cache", chunk=chunk, vocab=vocab)  # by the vocabulary
    assert again.cached and again.path == got.path


def test_dtype_follows_the_vocabulary_size():
    assert [idcache.id_dtype(v) for v in (2, 256, 257, 65536, 65537)] == [
        "uint8", "uint8", "uint16", "uint16", "uint32"]


def test_word_ids_are_uint16_above_256_symbols(tmp_path):
    path = tmp_path / "w.txt"
    words = [f"w{i}" for i in range(300)]
    path.write_text(" ".join(words) + "\n" + " ".join(reversed(words)) + "\n")
    got = load(str(path), tmp_path / "cache", chunk=64, level="word")
    ids, _ = got.vocab.encode(path.read_text())
    assert got.ids.dtype == np.uint16 and np.array_equal(got.ids, ids)


def test_cache_hits_and_misses_on_every_key(tmp_path, text_file):
    cache = tmp_path / "cache"
    first = load(text_file, cache, level="char")
    assert not first.cached and load(text_file, cache, level="char").cached
    for change in (dict(lower=True), dict(min_count=2), dict(vocab_size=5), dict(level="word"),
                   dict(level="word", tokenizer="space")):
        assert not load(text_file, cache, **{"level": "char", **change}).cached, change
    with Source(text_file, "latin-1", spool_dir=str(cache)) as src:  # another decoding
        other = idcache.load_ids(src, cache=str(cache), level="char")
    assert not other.cached and len(other.ids) > len(first.ids)
    with Source(text_file, errors="replace", spool_dir=str(cache)) as src:
        assert not idcache.load_ids(src, cache=str(cache), level="char").cached
    # the corpus edited in place: same size, another hash, rebuilt with the new text
    data = bytearray(TEXT.encode())
    data[-1:] = b"X"
    with open(text_file, "wb") as f:
        f.write(data)
    edited = load(text_file, cache, level="char")
    assert not edited.cached and edited.info["sha256"] != first.info["sha256"]
    assert edited.vocab.decode(edited.ids[-1:]) == "X"
    assert not [n for n in os.listdir(cache) if n.startswith(".rnn-cli-")]  # no temporaries


def _damage(cache, pattern, how):
    (path,) = glob.glob(os.path.join(cache, pattern))
    with open(path, "r+b") as f:
        how(f)


@pytest.mark.parametrize("damage", [
    ("ids-*.json", lambda f: f.truncate(17)),  # cut sidecar: not JSON
    ("ids-*.json", lambda f: f.write(b"[1, 2]   ")),  # JSON, not an object
    ("ids-*.bin", lambda f: f.truncate(10)),  # fewer ids than the sidecar says
    ("ids-*.bin", lambda f: f.write(b"\xff")),  # an id outside the vocabulary
    ("vocab-*.json", lambda f: f.truncate(30)),
], ids=["sidecar-cut", "sidecar-list", "ids-cut", "id-out-of-range", "vocab-cut"])
def test_a_damaged_entry_is_rebuilt_not_trusted(tmp_path, text_file, damage):
    cache = str(tmp_path / "cache")
    good = load(text_file, cache, level="word")
    good_ids = np.array(good.ids)  # (damaged in place below, under its mapping)
    _damage(cache, *damage)
    again = load(text_file, cache, level="word")
    assert not again.cached or damage[0].startswith("vocab")  # the ids are keyed by vocabulary
    assert again.vocab == good.vocab and np.array_equal(again.ids, good_ids)
    assert load(text_file, cache, level="word").cached


@pytest.mark.parametrize("field,value", [("n_tokens", 3), ("n_tokens", "12"), ("dtype", "uint64"),
                                         ("unknown", -1), ("sha256", "0" * 64)])
def test_a_sidecar_that_lies_is_rebuilt(tmp_path, text_file, field, value):
    cache = str(tmp_path / "cache")
    good = np.array(load(text_file, cache, level="char").ids)
    (side,) = glob.glob(os.path.join(cache, "ids-*.json"))
    meta = json.loads(open(side).read())
    meta[field] = value
    open(side, "w").write(json.dumps(meta))
    again = load(text_file, cache, level="char")
    assert not again.cached and np.array_equal(again.ids, good)


def test_stdin_is_spooled_hashed_and_removed(tmp_path, text_file):
    cache = tmp_path / "cache"
    from_file = load(text_file, cache, level="word")
    stdin = io.TextIOWrapper(io.BytesIO(TEXT.encode()), encoding="utf-8")
    got = load("-", cache, chunk=5, stdin=stdin, level="word")
    assert got.cached and got.info == {**from_file.info, "name": "<stdin>"}
    assert sorted(os.listdir(cache)) == sorted(n for n in os.listdir(cache)
                                               if not n.startswith(".rnn-cli-"))


def test_read_errors_in_any_chunk(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok line\nsecond \xc3\xa9 line\n\xff tail\n")
    for chunk in (1, 4, 1 << 20):
        with pytest.raises(CorpusError, match=r"byte 0xff at offset 23 \(line 3\)"):
            load(str(bad), tmp_path / "cache", chunk=chunk)
    bad.write_bytes(b"a\nb\nc\xc3(d\n")  # a cut 2-byte character: its first byte is pending
    for chunk in (1, 2, 1 << 20):
        with pytest.raises(CorpusError, match=r"byte 0xc3 at offset 5 \(line 3\)"):
            load(str(bad), tmp_path / "cache", chunk=chunk)
    blank = tmp_path / "blank.txt"
    blank.write_bytes(b" \r\n\t\n" * 5)
    with pytest.raises(CorpusError, match="only whitespace"):
        load(str(blank), tmp_path / "cache", chunk=3)


def test_resumed_model_needs_its_corpus(tmp_path, text_file):
    class Resumed:
        vocab = build_vocab(TEXT, "char")
        state = {"corpus": {"name": "other.txt", "sha256": "0" * 64}}

    with pytest.raises(UsageError, match="not the text this model was trained on"):
        idcache.corpus_ids(text_file, resumed=Resumed(), cache=str(tmp_path / "cache"))


def test_batches_from_a_memmap_match_batches_in_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(windows, "RELEASE_EVERY", 2)  # drop the mapped pages between windows
    path = tmp_path / "ids.bin"
    ids = np.random.default_rng(0).integers(0, 200, 1000).astype(np.uint8)
    ids.tofile(path)
    mapped = Batches(np.memmap(path, np.uint8, "r"), 3, 7)
    held = Batches(ids.astype(np.int32), 3, 7)
    for _ in range(2 * held.windows_per_epoch + 3):
        (x1, y1, r1), (x2, y2, r2) = mapped.next_window(), held.next_window()
        assert r1 == r2 and np.array_equal(x1, x2) and np.array_equal(y1, y2)
        assert x1.dtype == np.int32
    assert mapped.state_dict() == held.state_dict()


def test_training_from_the_id_file_is_bit_identical(tmp_path, text_file, monkeypatch):
    """The same steps and validation from a memory-mapped uint8 id file as from int32 ids in
    memory, the memory-mapped validation ids read in parts of HELD_OUT_CHUNK (made tiny here)."""
    from rnn_cli.checkpoint import Model
    from rnn_cli.config import ModelConfig, TrainConfig
    from rnn_cli.params import Params
    from rnn_cli.tasks.lm import train as train_mod

    got = load(text_file, tmp_path / "cache", level="char")
    mcfg = ModelConfig(level="char", cell="gru", hidden=6, vocab_size=len(got.vocab)).validate()
    tcfg = TrainConfig(batch_size=2, seq_len=5, steps=6, eval_every=3, val_frac=0.3,
                       seed=1).validate()
    monkeypatch.setattr(train_mod, "EVAL_WINDOW", 4)
    results = []
    for ids, chunk in ((got.ids, 8), (np.array(got.ids, dtype=np.int32), 1 << 30)):
        monkeypatch.setattr(train_mod, "HELD_OUT_CHUNK", chunk)
        train_ids, val_ids = windows.split_train_val(ids, tcfg.val_frac)
        rng = np.random.default_rng(1)
        model = Model(mcfg, got.vocab, Params(mcfg).init(rng), tcfg, {})
        trainer = train_mod.Trainer(model, tcfg, train_ids, val_ids, rng)
        summary = trainer.run(lambda kind, info: None, lambda: False)
        results.append((trainer.params.flat.copy(), summary["val_loss"], trainer.evaluate()))
    (p1, v1, e1), (p2, v2, e2) = results
    assert np.array_equal(p1, p2) and v1 == v2 and e1 == e2


def test_a_pipe_is_read_once_and_spooled(tmp_path):
    """A path that is not a regular file (a FIFO, bash's <(...)) cannot be read twice."""
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(TEXT.encode()))
    writer.start()
    got = load(str(fifo), tmp_path / "cache", chunk=4, level="char")
    writer.join()
    whole, info = read_text("-", stdin=io.BytesIO(TEXT.encode()))
    assert got.info["sha256"] == info["sha256"] and got.vocab.decode(got.ids) == whole
    assert not [n for n in os.listdir(tmp_path / "cache") if n.startswith(".rnn-cli-")]


def test_cli_trains_from_the_cache_and_sees_an_edit(tmp_path):
    from clihelp import NAMES, TINY, ok, run_cli

    corpus_file = tmp_path / "names.txt"
    corpus_file.write_bytes(NAMES.read_bytes()[:20_000])
    args = ("train", corpus_file, *TINY, "--steps", "3", "--seed", "2", "-v", "-o")
    runs = [ok(run_cli(*args, tmp_path / f"m{i}.npz", home=tmp_path / "home")) for i in range(2)]
    assert [b"token ids (built)" in r.stderr for r in runs] == [True, False]
    assert b"token ids (cached)" in runs[1].stderr
    m0, m1 = (np.load(tmp_path / f"m{i}.npz") for i in range(2))
    assert all(np.array_equal(m0[k], m1[k]) for k in m0.files if k not in ("meta", "history"))
    with open(corpus_file, "r+b") as f:  # edited in place, same size
        f.write(b"Zed")
    edited = ok(run_cli(*args, tmp_path / "m2.npz", home=tmp_path / "home"))
    assert b"token ids (built)" in edited.stderr
    assert len(glob.glob(str(tmp_path / "home" / "cache" / "ids-*.bin"))) == 2
