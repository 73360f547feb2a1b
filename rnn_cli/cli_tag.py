"""`rnn-cli tag -m M [FILE|-]`: a tag for every token, sentence by sentence, in order.

Input: raw text (one sentence a line, tokens split on whitespace or by `--tokenizer words`), a
CoNLL column file (the token in the first column; its gold tag, if any, in the last or
`--column`) or CoNLL-U; the format is sniffed from the first 64 KiB (`--input-format` to say
it). Output, one block per input sentence (an empty line of raw text gives an empty block), a
blank line after each, written and flushed once per block of sentences tagged together
(`--batch-size` x 8; from a pipe, the sentences that have arrived, so each is answered without
waiting for the next):

    token<TAB>tag                   the default
    token<TAB>gold<TAB>tag          --gold: the column file's gold tag kept (conlleval's input)
    ...<TAB>probability             --probs: the tag's probability (the CRF's marginal)
    {"line", "tokens", "spans"}     --spans: one JSON object per sentence instead of rows

The numbers come from the Python API (`rnn_cli.Tagger`); this module parses flags and writes.
"""

from __future__ import annotations

import json
import sys

from rnn_cli.errors import UsageError
from rnn_cli.flags import add_decoding, input_source, positive_int

BATCH = 32  # sentences tagged at once (rows still stream in order, a block of 8 batches at a time)
READ_LINES = 1 << 14  # input lines read at most at once (from a pipe: those that have arrived)
FORMATS = ("auto", "raw", "conll", "conllu")


def add_parser(sub, formatter, common, model_choice) -> None:
    p = sub.add_parser("tag", formatter_class=formatter, help="tag every token of sentences",
                       description="Tag every token: raw text (one sentence a line), a CoNLL "
                                   "column file or CoNLL-U in; token<TAB>tag rows out, a blank "
                                   "line after each sentence, in input order, each sentence "
                                   "flushed as soon as it is tagged. Entity tags (BIO, IOB1, "
                                   "BIOES) always come as a sequence their scheme allows.")
    p.set_defaults(handler=run)
    p.add_argument("input", metavar="FILE", nargs="?",
                   help="the text to tag (- or nothing, when piped: standard input)")
    model_choice(p, kinds=("tag",))
    g = p.add_argument_group("input")
    g.add_argument("--input-format", choices=FORMATS, default=None,
                   help="raw: one sentence a line; conll: one token a line (a gold tag column "
                        "may follow), a blank line between sentences; conllu: CoNLL-U "
                        "(default: auto, CoNLL or CoNLL-U when the first 64 KiB read as one, "
                        "else raw)")
    g.add_argument("--tokenizer", choices=("space", "words"), default=None,
                   help="raw text: space splits on whitespace; words also splits punctuation "
                        "off words (the language model's rules) (default: space)")
    g.add_argument("--column", type=int, metavar="N", default=None,
                   help="conll: the gold tag column for --gold (default: the one the model "
                        "was trained on, or the last)")
    g.add_argument("--field", choices=("upos", "xpos"), default=None,
                   help="conllu: the gold tags for --gold (default: the model's, or upos)")
    add_decoding(g)
    g = p.add_argument_group("output")
    g.add_argument("--probs", action="store_true",
                   help="add each tag's probability (with --crf models, the marginal "
                        "probability of that tag at that token)")
    g.add_argument("--gold", action="store_true",
                   help="keep the input's gold tags: token<TAB>gold<TAB>tag, the 3-column "
                        "input of conlleval (a column file with tags only)")
    g.add_argument("--spans", action="store_true",
                   help="one JSON object per sentence instead of rows: {\"line\", \"tokens\", "
                        "\"spans\": [{\"start\", \"end\" (token indices, end exclusive), "
                        "\"type\", \"text\", \"confidence\" (the mean probability of its "
                        "tokens' tags)}]} (with --gold, \"gold\": the gold spans)")
    g.add_argument("--batch-size", type=positive_int, default=None,
                   help=f"sentences tagged at once (default: {BATCH}); output still comes in "
                        "input order, a block of 8 batches at a time, or from a pipe the "
                        "sentences that have arrived, so a sentence is answered without "
                        "waiting for the next")
    common(p)


def run(args, ui) -> int:
    from rnn_cli import streams
    from rnn_cli.taskfile import resolve_model
    from rnn_cli.tasks.tag.reader import ReadReport
    from rnn_cli.tasks.tag.tagger import Tagger

    path, _ = resolve_model(args.model, args.level, args.task)
    source = input_source(args.input, "nothing to tag: give FILE, or pipe sentences in",
                          f'e.g. `echo "Harry Potter met Hermione" | rnn-cli tag -m {path}`')
    encoding, errors = args.encoding or "utf-8", args.errors or "strict"
    fmt = args.input_format or "auto"
    if fmt == "auto":
        fmt = _sniff(source, encoding)
    _check_flags(args, fmt)
    if args.device == "cuda":
        ui.warn("the tagger runs on the CPU (its CUDA kernels are not written yet)")
    tagger = Tagger.load(path, threads=args.threads)
    if args.spans and tagger.scheme == "none":
        raise UsageError(f"--spans: the tags of {path} have no entity scheme (BIO, IOB1, "
                         "BIOES), so no spans", hint="drop --spans: rows give every tag")
    column = args.column if args.column is not None else tagger.column
    field = args.field if args.field is not None else tagger.field
    name, stream = streams.open_input(source, encoding, errors)
    report = ReadReport(name, fmt)
    out = sys.stdout
    with stream:
        lines = streams.Lines(name, stream, READ_LINES)
        for block in tagger.tag_lines(lines, fmt=fmt, tokenizer=args.tokenizer or "space",
                                      column=column if fmt == "conll" else None,
                                      field=field if fmt == "conllu" else None,
                                      probs=args.probs or args.spans,
                                      batch_size=args.batch_size or BATCH, name=name,
                                      report=report, idle=lines.idle):
            text = []
            for s in block:
                if args.gold and s.gold is None:
                    out.write("".join(text))  # the sentences before it, as without the error
                    raise UsageError(f"--gold: {name}, line {s.line}: no gold tag column",
                                     hint="give a column file with tags (token<TAB>tag), or "
                                          "drop --gold")
                text.append(_spans(s, args.gold) if args.spans else
                            _rows(s, args.probs, args.gold))
            out.write("".join(text))  # one write per block, flushed as it comes (a pipe is
            out.flush()  # not line-buffered); from a pipe: each sentence once it has arrived
    for message in report.messages():
        ui.warn(message)
    return 0


def _sniff(source: str, encoding: str) -> str:
    """conll / conllu when the input's head reads as one, else raw (a stream that cannot be
    looked at without reading it: raw)."""
    from rnn_cli.tasks.guess import sample_lines
    from rnn_cli.tasks.tag.reader import looks_like

    lines = sample_lines(source, encoding)
    if not lines:
        return "raw"
    found = looks_like("\n".join(lines) + "\n")
    if found:
        return found
    rows = [ln.split("\t") for ln in lines if ln.strip()]  # too short for looks_like's rules:
    n = len(rows[0]) if rows else 0  # token<TAB>tag lines still read as columns
    if n >= 2 and all(len(r) == n and r[-1].strip() and not any(c.isspace() for c in r[-1])
                      for r in rows):
        return "conll"
    return "raw"


def _check_flags(args, fmt: str) -> None:
    if args.tokenizer is not None and fmt != "raw":
        raise UsageError(f"--tokenizer splits raw text; the input is {fmt} (one token a line)",
                         hint="drop --tokenizer, or pass --input-format raw")
    if args.column is not None and fmt != "conll":
        raise UsageError(f"--column picks the gold column of a CoNLL column file; the input "
                         f"is {fmt}", hint="drop --column")
    if args.field is not None and fmt != "conllu":
        raise UsageError(f"--field picks the gold tags of CoNLL-U; the input is {fmt}",
                         hint="drop --field")
    if args.gold and fmt == "raw":
        raise UsageError("--gold keeps the gold tags of a column file; the input is raw text",
                         hint="drop --gold, or give token<TAB>tag lines (--input-format conll)")


def _rows(s, probs: bool, gold: bool) -> str:
    cols = [s.tokens] + ([s.gold] if gold else []) + [s.tags]
    if probs:
        cols.append([f"{p:.6f}" for p in s.probs])
    return "".join("\t".join(row) + "\n" for row in zip(*cols)) + "\n"


def _spans(s, gold: bool) -> str:
    from rnn_cli.tasks.tag.tagset import span_records

    obj = {"line": s.line, "tokens": s.tokens, "spans": s.spans()}
    if gold:
        obj["gold"] = span_records(s.tokens, s.gold)
    return json.dumps(obj, ensure_ascii=False) + "\n"
