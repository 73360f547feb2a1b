"""Tests for rnn_cli/vocab.py: building, encoding/decoding, streaming detokenizer, arrays."""

from __future__ import annotations

import io
import os
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnn_cli.errors import CorpusError, ModelFileError, RnnCliError
from rnn_cli.vocab import EOS, UNK, UNK_TEXT, Detokenizer, Vocab, build_vocab, tokenize

CHAR_TEXT = "Héllo — wörld 😀!\nSecond line, with ünïcödé…\n"
WORD_TEXT = (
    "Hello, world! Don't stop: it's a well-known fact (really).\n"
    "\"Quoted text,\" she said; o'clock [sharp] {braces}?\n"
    "The dogs' bones aren't here.\n"
)
SHAKESPEARE = os.path.join(os.path.dirname(__file__), "..", "corpora", "shakespeare.txt")


def npz_round_trip(vocab: Vocab) -> Vocab:
    buf = io.BytesIO()
    np.savez(buf, **vocab.to_arrays())
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as z:
        return Vocab.from_arrays(z)


# ------------------------------------------------------------------------ char level
def test_char_round_trip_non_ascii():
    v = build_vocab(CHAR_TEXT, "char")
    assert v.level == "char" and v.tokenizer == "chars"
    ids, n_unk = v.encode(CHAR_TEXT)
    assert ids.dtype == np.int32 and n_unk == 0 and len(ids) == len(CHAR_TEXT)
    assert v.decode(ids) == CHAR_TEXT
    assert "😀" in v.symbols and "é" in v.symbols and "—" in v.symbols


def test_char_ids_codepoint_order_unk_last_eos_is_newline():
    v = build_vocab("cab\nba", "char")
    assert v.symbols == ("\n", "a", "b", "c", UNK)
    assert v.unk_id == 4 and v.eos_id == 0 and len(v) == 5
    assert build_vocab("abab", "char").eos_id is None


def test_char_unknown_counted_and_decoded_as_replacement():
    v = build_vocab("abc", "char")
    ids, n_unk = v.encode("abzzé")
    assert n_unk == 3 and ids.tolist() == [0, 1, 3, 3, 3]
    assert v.decode(ids) == "ab" + UNK_TEXT * 3


def test_char_vocab_size_and_min_count():
    text = "aaaabbbccd"
    assert build_vocab(text, "char", vocab_size=2).symbols == ("a", "b", UNK)
    assert build_vocab(text, "char", min_count=2).symbols == ("a", "b", "c", UNK)
    # ties broken by code point: b and c both occur twice
    assert build_vocab("aaabbcc", "char", vocab_size=2).symbols == ("a", "b", UNK)


def test_char_nul_and_surrogates_survive_arrays():
    v = build_vocab("a\x00b\x00\ud800", "char")
    assert "\x00" in v.symbols
    assert npz_round_trip(v) == v


def test_char_encode_lines_appends_newline():
    v = build_vocab("ab\nba\n", "char")
    rows = list(v.encode_lines("ab\nbx\n"))
    assert [r[0] for r in rows] == ["ab", "bx"]
    assert v.decode(rows[1][1]) == "b" + UNK_TEXT + "\n" and rows[1][2] == 1


# ------------------------------------------------------------------------ word level
def test_word_round_trip_punctuation_and_apostrophes():
    v = build_vocab(WORD_TEXT, "word")
    ids, n_unk = v.encode(WORD_TEXT)
    assert n_unk == 0
    assert v.decode(ids) == WORD_TEXT


def test_word_tokenizer_rules():
    assert tokenize("Don't <unk> x<UNK>y o'clock well-known it 's") == [
        "Don't", "<unk>", "x", "<UNK>", "y", "o'clock", "well-known", "it", "'s"]
    assert tokenize("end. <eos> (a)") == ["end", ".", "<eos>", "(", "a", ")"]
    assert tokenize("mr. u.s. s&p <unk>", "space") == ["mr.", "u.s.", "s&p", "<unk>"]
    assert tokenize("The <UNK>", lower=True) == ["the", "<unk>"]


def test_word_ids_alphabetical_with_specials():
    v = build_vocab("a And Harry\nPotter Zulu a\n", "word")
    assert list(v.symbols) == sorted(v.symbols)
    assert v.symbols == (EOS, UNK, "And", "Harry", "Potter", "Zulu", "a")
    assert v.eos_id == 0 and v.unk_id == 1


def test_word_eos_per_line_and_blank_lines():
    v = build_vocab("a b\n\n   \nb a", "word")
    ids, _ = v.encode("a b\n\n   \nb a")
    assert [v.symbols[i] for i in ids] == ["a", "b", EOS, "b", "a", EOS]
    ids, _ = v.encode("a b", final_eos=False)
    assert [v.symbols[i] for i in ids] == ["a", "b"]
    assert v.decode(v.encode("a b\nb a\n")[0]) == "a b\nb a\n"


def test_ptb_style_unk_is_not_unknown_nor_split():
    ptb = " the <unk> rose to $ N mr. <unk> said \n the u.s. fell \n"
    v = build_vocab(ptb, "word", tokenizer="space")
    assert "<unk>" not in v.symbols and "<" not in v.symbols and "mr." in v.symbols
    ids, n_unk = v.encode(ptb)
    assert n_unk == 0 and int(np.sum(ids == v.unk_id)) == 2
    ids, n_unk = v.encode("the zebra <unk> said")
    assert n_unk == 1 and int(np.sum(ids == v.unk_id)) == 2
    assert "<" not in build_vocab("a <unk> b <eos>\n", "word").symbols


def test_word_lower():
    v = build_vocab("The the THE <UNK>\n", "word", lower=True)
    assert v.symbols == (EOS, UNK, "the") and v.lower
    ids, n_unk = v.encode("THE cat <UNK>")
    assert n_unk == 1 and ids.tolist() == [2, 1, 1, 0]


def test_word_vocab_size_min_count_ties_alphabetical():
    text = "c c c b b a a d\n"
    assert build_vocab(text, "word", vocab_size=2).symbols == (EOS, UNK, "a", "c")
    assert build_vocab(text, "word", min_count=2).symbols == (EOS, UNK, "a", "b", "c")
    v = build_vocab(text, "word", vocab_size=2)
    assert v.encode("b d c")[1] == 2


def test_word_decode_spacing():
    v = build_vocab("x n't 's ( ) [ ] . , do it\n", "word", tokenizer="space")
    ids = [v.index[t] for t in ["do", "n't", "x", "(", "it", ")", "x", "'s", "."]]
    assert v.decode(ids) == "don't x (it) x's."
    assert v.decode([v.eos_id, v.index["x"], v.eos_id]) == "\nx\n"


def test_encode_lines_streams_an_iterable():
    v = build_vocab("a b\nc\n", "word")
    rows = list(v.encode_lines(iter(["a b\n", "\n", "z c\r\n"])))
    assert [r[0] for r in rows] == ["a b", "", "z c"]
    assert [r[1].tolist() for r in rows] == [[2, 3, 0], [], [1, 4, 0]]
    assert [r[2] for r in rows] == [0, 0, 1]
    assert all(r[1].dtype == np.int32 for r in rows)


@pytest.mark.parametrize("text, level, kwargs", [
    ("", "char", {}),
    ("aaaa", "char", {}),
    ("   \n \n", "word", {}),
    ("<unk> <unk>\n", "word", {}),
    ("a b c\n", "word", {"min_count": 2}),
    ("abc", "char", {"vocab_size": 1}),
    ("a b", "word", {"vocab_size": 1}),
    ("a b", "word", {"tokenizer": "bpe"}),
    ("a b", "token", {}),
])
def test_build_errors_have_hints(text, level, kwargs):
    with pytest.raises(RnnCliError) as info:
        build_vocab(text, level, **kwargs)
    assert info.value.hint


def test_single_symbol_message():
    with pytest.raises(CorpusError, match="single distinct symbol"):
        build_vocab("zzzz", "char")


# ------------------------------------------------------------------------ arrays
@pytest.mark.parametrize("text, level, kwargs", [
    (CHAR_TEXT, "char", {}),
    (WORD_TEXT, "word", {}),
    (WORD_TEXT, "word", {"tokenizer": "space", "lower": True}),
])
def test_arrays_round_trip_through_npz(text, level, kwargs):
    v = build_vocab(text, level, **kwargs)
    arrays = v.to_arrays()
    assert all(a.dtype == np.int32 and a.ndim == 1 for a in arrays.values())
    w = npz_round_trip(v)
    assert w == v and w.unk_id == v.unk_id and w.eos_id == v.eos_id
    assert np.array_equal(w.encode(text)[0], v.encode(text)[0])


class _FakeVocab:
    """Enough of a Vocab for Vocab.to_arrays, with arbitrary (invalid) symbols."""

    def __init__(self, v: Vocab, symbols):
        self.symbols, self.level = tuple(symbols), v.level
        self.tokenizer, self.lower = v.tokenizer, v.lower


def _corrupt(v: Vocab, symbols) -> dict:
    return Vocab.to_arrays(_FakeVocab(v, symbols))


@pytest.mark.parametrize("symbols, match", [
    (["a", "a", UNK], "duplicate"),
    (["a", "b"], "<UNK> is missing"),
    (["b", "a", UNK], "code-point order"),
    (["ab", "c", UNK], "single characters"),
    ([UNK], "at least 2"),
])
def test_from_arrays_refuses_bad_char_symbols(symbols, match):
    v = build_vocab("ab", "char")
    with pytest.raises(ModelFileError, match=match) as info:
        Vocab.from_arrays(_corrupt(v, symbols))
    assert info.value.hint


@pytest.mark.parametrize("symbols, match", [
    ([UNK, "a"], "without <EOS>"),
    ([EOS, UNK, "b", "a"], "alphabetical"),
    ([EOS, UNK, "a", "a"], "duplicate"),
])
def test_from_arrays_refuses_bad_word_symbols(symbols, match):
    v = build_vocab("a b", "word")
    with pytest.raises(ModelFileError, match=match):
        Vocab.from_arrays(_corrupt(v, symbols))


def test_from_arrays_refuses_bad_arrays():
    v = build_vocab("a b", "word")
    good = v.to_arrays()
    bad = [
        {k: a for k, a in good.items() if k != "vocab_offsets"},
        {**good, "vocab_codepoints": good["vocab_codepoints"].astype(np.int64)},
        {**good, "vocab_offsets": good["vocab_offsets"][None, :]},
        {**good, "vocab_meta": np.array([1, 7, 1, 0], np.int32)},
        {**good, "vocab_meta": np.array([99, 1, 1, 0], np.int32)},
        {**good, "vocab_meta": np.array([1, 0, 1, 0], np.int32)},  # char level, word tokenizer
        {**good, "vocab_offsets": good["vocab_offsets"][::-1].copy()},
        {**good, "vocab_codepoints": np.array([-5] * good["vocab_codepoints"].size, np.int32)},
        {**good, "vocab_meta": np.array(["x"] * 4)},
    ]
    for d in bad:
        with pytest.raises(ModelFileError) as info:
            Vocab.from_arrays(d)
        assert info.value.hint


# ------------------------------------------------------------------------ detokenizer
_WORD_VOCAB = build_vocab(WORD_TEXT + "x n't 's `` '' \" \" ( ) ...\n", "word", tokenizer="space")
_CHAR_VOCAB = build_vocab(CHAR_TEXT, "char")


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_detokenizer_any_chunking_equals_decode(data):
    vocab = data.draw(st.sampled_from([_WORD_VOCAB, _CHAR_VOCAB]))
    ids = data.draw(st.lists(st.integers(0, len(vocab) - 1), max_size=60))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(ids)), max_size=8)))
    chunks = [ids[a:b] for a, b in zip([0] + cuts, cuts + [len(ids)])]
    d = Detokenizer(vocab)
    pieces = [d.piece(np.array(c, dtype=np.int32)) for c in chunks]
    assert "".join(pieces) == vocab.decode(ids)
    d = vocab.detokenizer()  # one token at a time, as a sampler does, ints
    assert "".join(d.piece(i) for i in ids) == vocab.decode(np.array(ids, dtype=np.int64))


def test_detokenizer_rejects_out_of_range():
    with pytest.raises(ValueError):
        _CHAR_VOCAB.decode([len(_CHAR_VOCAB)])
    with pytest.raises(ValueError):
        _CHAR_VOCAB.decode([-1])


# ------------------------------------------------------------------------ speed, real corpus
def test_encode_speed_word_and_char():
    rng = np.random.default_rng(0)
    words = np.array([f"w{i}" for i in range(12000)] + ["<unk>", "mr.", "'s"])
    lines = [" ".join(rng.choice(words, 22)) for _ in range(42000)]  # ~930k tokens like PTB
    text = "\n".join(lines) + "\n"
    v = build_vocab(text, "word", vocab_size=11000, tokenizer="space")
    t0 = time.perf_counter()
    ids, n_unk = v.encode(text)
    assert time.perf_counter() - t0 < 3.0
    assert len(ids) == 23 * 42000
    assert n_unk == sum(t not in v.index and t != "<unk>" for line in lines for t in line.split())
    chars = "".join(rng.choice(list("abcdefghij klmno\n,.é"), 1_100_000))
    c = build_vocab(chars, "char")
    t0 = time.perf_counter()
    c.encode(chars)
    assert time.perf_counter() - t0 < 0.5


@pytest.mark.skipif(not os.path.exists(SHAKESPEARE), reason="corpora/shakespeare.txt not present")
def test_shakespeare_char_round_trip():
    from rnn_cli.corpus import read_text

    text, info = read_text(SHAKESPEARE)
    v = build_vocab(text, "char")
    assert set(v.symbols[:-1]) == set(text) and len(v) == len(set(text)) + 1
    ids, n_unk = v.encode(text)
    assert n_unk == 0 and v.decode(ids) == text
    assert npz_round_trip(v) == v


@given(st.lists(st.text(max_size=12), max_size=8))
@settings(max_examples=80, deadline=None)
def test_encode_many_equals_encode_lines(lines):
    """The batched encoder of per-line `score` gives encode_lines' ids and unknown counts, at char
    level (one pass over all code points; lower-casing that changes a length, CR, unknown and
    non-BMP characters) and word level."""
    lines = [line.replace("\n", " ") for line in lines] + ["İstanbul\r", "", "😀 x"]
    vocabs = [build_vocab(CHAR_TEXT, "char"), build_vocab(CHAR_TEXT, "char", lower=True),
              build_vocab(WORD_TEXT, "word")]
    for v in vocabs:
        many = v.encode_many(lines)
        one = [(ids, n) for _, ids, n in v.encode_lines(lines)]
        assert len(many) == len(one)
        for (a, na), (b, nb) in zip(many, one):
            np.testing.assert_array_equal(a, b)
            assert a.dtype == b.dtype and na == nb
