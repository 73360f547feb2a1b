"""The tagger's readers (`rnn_cli/tasks/tag/reader.py`): CoNLL columns (TAB or spaces, --column,
-DOCSTART-), CoNLL-U (comments, multiword ranges, empty nodes, upos/xpos), raw text, the format
sniffer, and every kind of bad input: a one-line error naming the line, or a counted warning."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from rnn_cli.errors import CorpusError, UsageError
from rnn_cli.tasks.tag import reader as rd

CORPORA = Path("/work/shared/corpora")
needs_corpora = pytest.mark.skipif(not (CORPORA / "ner-wnut17").is_dir(),
                                   reason="the shared corpora are not on this machine")


def write(tmp_path, text: str, name="f.tsv", mode="w") -> str:
    p = tmp_path / name
    if mode == "wb":
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8", newline="")
    return str(p)


def conll(lines):
    return list(rd.parse_conll(lines, name="f"))


def error(fn, *a, **k) -> str:
    with pytest.raises(CorpusError) as e:
        fn(*a, **k)
    return str(e.value)


# ------------------------------------------------------------------------------ CoNLL columns
def test_tab_file_keeps_spaces_in_tokens_and_reads_crlf_and_bom_alike(tmp_path):
    text = "New York\tB-LOC\nis\tO\n\n\nnice\tO\n"
    sents, rep = rd.read_tagged(write(tmp_path, text))
    assert [(s.tokens, s.tags, s.line) for s in sents] == [
        (["New York", "is"], ["B-LOC", "O"], 1), (["nice"], ["O"], 5)]
    assert (rep.sentences, rep.tokens, rep.separator, rep.format) == (2, 3, "tab", "conll")
    assert rep.warnings["empty"][:2] == [1, 4]  # the second blank line of a run, counted
    crlf = ("\ufeff" + text.replace("\n", "\r\n")).encode()
    again, _ = rd.read_tagged(write(tmp_path, crlf, "g.tsv", "wb"))
    assert [(s.tokens, s.tags) for s in again] == [(s.tokens, s.tags) for s in sents]
    streamed = conll(io.StringIO("\ufeff" + text.replace("\n", "\r\n")))
    assert [(s.tokens, s.tags) for s in streamed] == [(s.tokens, s.tags) for s in sents]


def test_space_separated_columns_and_column_choice(tmp_path):
    text = ("-DOCSTART- -X- -X- O\n\nEU  NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n"
            "-DOCSTART- -X- -X- O\n\nPeter NNP B-NP B-PER\n")
    path = write(tmp_path, text)
    sents, rep = rd.read_tagged(path)
    assert [s.tags for s in sents] == [["B-ORG", "O"], ["B-PER"]]
    assert rep.separator == "spaces" and rep.skipped == {"docstart": 2} and not rep.warnings
    assert sents[0].line == 3
    assert [s.tags for s in rd.read_tagged(path, column=2)[0]] == [["NNP", "VBZ"], ["NNP"]]
    assert [s.tags for s in rd.read_tagged(path, column=-2)[0]][0] == ["B-NP", "B-VP"]
    for bad in (1, 0, 5, -4):
        with pytest.raises(UsageError, match="--column"):
            rd.read_tagged(path, column=bad)
    with pytest.raises(UsageError, match="--field"):
        rd.read_tagged(path, field="upos")


def test_unicode_spaces_stay_inside_tokens():
    sents = conll(["8\u00a01/2 CD O", "x CD O"])
    assert sents[0].tokens == ["8\u00a01/2", "x"]


@pytest.mark.parametrize("lines, line, what", [
    (["a\tO", "b\tO\tX"], 2, "3 columns where the lines above have 2"),
    (["a O", "b"], 2, "'b' has no tag"),
    (["a\tO", "b"], 2, "'b' has no tag"),
    (["a\tO", "b\tB-PER X"], 2, "contains a space"),
    (["a\tO", "", "b\t"], 3, "an empty tag"),
    (["a\tO", "\tO"], 2, "an empty token"),
    (["word"], 1, "has no tag: the file has one column"),
])
def test_bad_column_lines_are_errors_naming_the_line(lines, line, what):
    msg = error(conll, lines)
    assert msg.startswith(f"f, line {line}: ") and what in msg, msg


def test_tokens_only_when_tags_are_not_required():
    sents = list(rd.parse_conll(["a", "b", "", "c"], require_tags=False))
    assert [(s.tokens, s.tags) for s in sents] == [(["a", "b"], None), (["c"], None)]


def test_a_5000_token_sentence_is_read_whole_and_counted(tmp_path):
    text = "x\tO\n\n" + "".join(f"w{i}\tO\n" for i in range(5000)) + "\ny\tO\n"
    sents, rep = rd.read_tagged(write(tmp_path, text))
    assert [len(s.tokens) for s in sents] == [1, 5000, 1]
    assert rep.warnings["long"] == [1, 3, "5000"] and rep.longest == (5000, 3)
    (msg,) = rep.messages()
    assert "1 sentence of more than 1,000 tokens" in msg and "line 3" in msg


def test_streams_yield_each_sentence_when_its_blank_line_arrives():
    seen = []

    def source():
        for line in ["a\tO", "b\tO", "", "c\tO", ""]:
            seen.append(line)
            yield line
        raise AssertionError("read past the second sentence")

    it = rd.parse_conll(source())
    assert next(it).tokens == ["a", "b"] and len(seen) == 3
    assert next(it).tokens == ["c"] and len(seen) == 5


def test_files_that_are_no_tagging_data(tmp_path):
    assert "neither" in error(rd.read_tagged, write(tmp_path, "Some prose here.\nAnd more of it "
                                                              "on a second line.\n"))
    assert "NUL byte" in error(rd.read_tagged, write(tmp_path, b"a\tO\n\x00\n", "b", "wb"))
    assert "no tagged sentence" in error(rd.read_tagged, write(tmp_path, "\n\n# c\n"), fmt="conllu")
    sents, _ = rd.read_tagged("-", stdin=io.StringIO("a\tB-X\nb\tI-X\n\nc\tO\n"))
    assert [s.tags for s in sents] == [["B-X", "I-X"], ["O"]]


# ------------------------------------------------------------------------------ CoNLL-U
CONLLU = """# sent_id = 1
# text = I don't know.
1\tI\tI\tPRON\tPRP\t_\t4\tnsubj\t_\t_
2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
2\tdo\tdo\tAUX\tVBP\t_\t4\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_
4\tknow\tknow\tVERB\tVB\t_\t0\troot\t_\t_
4.1\tsaid\tsay\tVERB\tVBD\t_\t_\t_\t4:conj\t_
5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\tSpaceAfter=No

# sent_id = 2
1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_

"""


def test_conllu_words_comments_ranges_and_empty_nodes(tmp_path):
    path = write(tmp_path, CONLLU, "f.conllu")
    sents, rep = rd.read_tagged(path)
    assert rep.format == "conllu"
    assert sents[0].tokens == ["I", "do", "n't", "know", "."]
    assert sents[0].tags == ["PRON", "AUX", "PART", "VERB", "PUNCT"] and sents[0].line == 3
    assert sents[1].tokens == ["Hi"] and sents[1].tags == ["INTJ"]
    assert rep.skipped == {"comment": 3, "multiword": 1, "empty node": 1} and not rep.warnings
    assert rd.read_tagged(path, field="xpos")[0][0].tags == ["PRP", "VBP", "RB", "VB", "."]
    with pytest.raises(UsageError, match="--column"):
        rd.read_tagged(path, column=4)
    with pytest.raises(UsageError, match="upos or xpos"):
        rd.read_tagged(path, field="lemma")


def conllu(text, **kw):
    return list(rd.parse_conllu(text.split("\n"), name="f", **kw))


@pytest.mark.parametrize("edit, line, what", [
    (lambda t: t.replace("PRON\tPRP", "PRON\t_"), 3, "no XPOS ('_')"),
    (lambda t: t.replace("\t_\t4\tnsubj", "\t_\t4"), 3, "9 TAB-separated columns"),
    (lambda t: t.replace("4\tknow", "x\tknow"), 7, "the ID 'x'"),
    (lambda t: t.replace("5\t.", "6\t."), 9, "word 6 follows word 4"),
    (lambda t: t.replace("\tPUNCT\t", "\tPUN CT\t"), 9, "contains a space"),
])
def test_bad_conllu_lines_are_errors_naming_the_line(edit, line, what):
    field = "xpos" if "XPOS" in what else None
    with pytest.raises(CorpusError) as e:
        conllu(edit(CONLLU), field=field)
    assert str(e.value).startswith(f"f, line {line}: ") and what in str(e.value), str(e.value)
    if "XPOS" in what:
        assert "--field upos" in e.value.hint


def test_conllu_comment_only_sentence_is_a_counted_warning():
    rep = rd.ReadReport("f", "conllu")
    sents = list(rd.parse_conllu(("# sent_id = 0\n\n" + CONLLU).split("\n"), report=rep))
    assert len(sents) == 2 and rep.warnings["empty"][:2] == [1, 2]
    assert "1 empty sentence skipped (the first at line 2)" in rep.messages()[0]


# ------------------------------------------------------------------------------ raw text
def test_raw_text_one_sentence_a_line():
    sents = list(rd.parse_raw(["Harry Potter and Hermione", "", "don't  stop\r\n"]))
    assert [s.tokens for s in sents] == [["Harry", "Potter", "and", "Hermione"], [],
                                         ["don't", "stop"]]
    assert all(s.tags is None for s in sents) and [s.line for s in sents] == [1, 2, 3]
    words = list(rd.parse_raw(["don't stop."], tokenizer="words"))
    assert words[0].tokens == ["don't", "stop", "."]


# ------------------------------------------------------------------------------ sniffer
@pytest.mark.parametrize("text, want", [
    ("EU\tB-ORG\nrejects\tO\n\nPeter\tB-PER\n", "conll"),
    ("EU NNP B-ORG\nrejects VBZ O\nGerman JJ B-MISC\ncall NN O\nto TO O\nboycott VB O\n", "conll"),
    (CONLLU, "conllu"),
    ("# just a comment\n1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_\n", "conllu"),
    ("To be, or not to be:\nthat is the question.\n", None),
    ("Ein Hund rennt.\tA dog runs.\nZwei Katzen.\tTwo cats.\n", None),
    ("__label__1 a bad film\n__label__5 great fun\n", None),
    ("Ada Lovelace\nAlan Turing\nGrace Hopper\n", None),  # a list of names: no repeats
    ("apple\nbanana\n\ncherry\n", None),
    ("EU\tB-ORG\nrejects\tO\n\nPeter\tB-PER\n\nPaul\tB-P", "conll"),  # a cut last line: ignored
    ("EU\tB-ORG\nrejects\tO\n\nPeter\tB-PER\n\nPaul B-P", "conll"),
    ("", None),
])
def test_looks_like(text, want):
    assert rd.looks_like(text) == want


@needs_corpora
@pytest.mark.parametrize("name, sentences, tokens", [
    ("ner-wnut17/test.tsv", 1287, 23394), ("ud-ewt-pos/test.tsv", 2077, 25094)])
def test_shared_corpora_read_as_their_provenance_counts(name, sentences, tokens):
    path = CORPORA / name
    assert rd.looks_like(path.read_text(encoding="utf-8")[:rd.SNIFF_CHARS]) == "conll"
    sents, rep = rd.read_tagged(str(path))
    assert (rep.sentences, rep.tokens, rep.separator) == (sentences, tokens, "tab")
    assert not rep.warnings and len(sents) == sentences
    for other in ("sst5/test.txt", "multi30k-de-en/test.tsv", "tinyshakespeare.txt"):
        assert rd.looks_like((CORPORA / other).read_text(encoding="utf-8")[:4096]) is None
