"""`rnn-cli translate -m M [FILE|-]`: one output line per input line, in order, flushed per line.

    translation                                   (the best; greedy unless --beam K)
    translation<TAB>score                         (--with-score: log P / lp, the beam's ranking)
    t1<TAB>t2 ...  /  t1<TAB>s1<TAB>t2<TAB>s2 ... (--n-best N: the N best, best first)
    {"line", "translations": [{"text", "score", "logprob", "finished"}, ...]}   (--json)

A blank input line is answered by a blank line (no model call), so the output stays aligned
with the input. Lines are decoded --batch-size at a time, eight batches' lines read ahead and
sorted by length across them; from a pipe, the lines that have arrived are translated without
waiting for more (a line piped in is answered at once, while a fast writer fills whole blocks).
`--attention-out FILE` writes the attention of the first non-blank line's best translation: an
SVG heatmap for FILE.svg, else TSV. The numbers come from the Python API (`rnn_cli.Translator`);
this module parses flags and writes lines.
"""

from __future__ import annotations

import json
import sys

from rnn_cli.errors import CorpusError, UsageError
from rnn_cli.flags import add_decoding, finite_float, input_source, nonneg_int, positive_int

BATCH_LINES = 128  # lines decoded together (= search.DECODE_BATCH; rows stream in input order)
READ_AHEAD = 8  # batches read ahead (= translator.READ_AHEAD): sorted by length across them


def add_parser(sub, formatter, common, model_choice) -> None:
    p = sub.add_parser("translate", formatter_class=formatter,
                       help="translate lines with a translation model",
                       description="Translate each line of FILE (or standard input) with a "
                                   "model trained by `rnn-cli train --task translate`: one "
                                   "output line per input line, in order, each written as soon "
                                   "as its batch is done; a blank line for a blank line. Greedy "
                                   "decoding, or beam search with --beam K (GNMT's length "
                                   "penalty ((5 + n) / 6) ** A ranks the finished hypotheses).")
    p.set_defaults(handler=run)
    p.add_argument("input", metavar="FILE", nargs="?",
                   help="the lines to translate (- or nothing, when piped, reads stdin)")
    model_choice(p, kinds=("translate",))
    g = p.add_argument_group("decoding")
    g.add_argument("--beam", type=positive_int, default=None, metavar="K",
                   help="beam search with K hypotheses a sentence (default: 1, greedy)")
    g.add_argument("--length-penalty", type=finite_float(0.0, False, 10.0), default=None,
                   metavar="A",
                   help="rank finished hypotheses by log P / ((5 + n) / 6) ** A, n their "
                        "tokens: 0 ranks by log P alone, which favours short outputs "
                        "(default: 1.0 with --beam, 0 for greedy)")
    g.add_argument("--n-best", type=positive_int, default=None, metavar="N",
                   help="write the N best translations of each line, best first, TAB-separated "
                        "on its one output line (needs --beam N or wider; default: 1)")
    g.add_argument("--max-len", type=nonneg_int, default=None, metavar="N",
                   help="stop an output after N tokens, <EOS> counted (default: 0, automatic: "
                        "twice the source's tokens + 10 when both sides have the same level, "
                        "8 times + 10 from words to characters); a cut output is counted in a "
                        "warning")
    g = p.add_argument_group("output")
    g.add_argument("--with-score", action="store_true",
                   help="follow each translation by a TAB and its score (log P, divided by "
                        "the length penalty with --beam)")
    g.add_argument("--json", action="store_true",
                   help="one JSON object a line: {\"line\", \"translations\": [{\"text\", "
                        "\"score\", \"logprob\", \"finished\"}, ...]}")
    g.add_argument("--attention-out", metavar="FILE",
                   help="write the attention of the first non-blank line's translation: an "
                        "SVG heatmap when FILE ends in .svg, else TSV (a row per output token, "
                        "a column per source token)")
    g.add_argument("--batch-size", type=positive_int, default=None,
                   help=f"lines decoded at once (default: {BATCH_LINES}); {READ_AHEAD} batches' "
                        "lines are read ahead and sorted by length into the batches, each row "
                        "written in input order when its block is done; from a pipe a block is "
                        "at most the lines that have arrived, so a line is answered without "
                        "waiting for the next")
    add_decoding(g)
    common(p)


def _blocks(lines):
    """Blocks of the input lines without their line ends (`streams.Lines`: from a pipe, the
    lines that have arrived); a NUL byte is binary input, refused."""
    for block in lines.blocks():
        first = lines.lineno - len(block) + 1
        block = [raw.rstrip("\n").rstrip("\r") for raw in block]
        for i, line in enumerate(block):
            if "\x00" in line:
                raise CorpusError(f"{lines.name} line {first + i} holds a NUL byte: the input "
                                  "looks like binary data, not text",
                                  hint="give text, one sentence a line")
        yield block


def run(args, ui) -> int:
    from rnn_cli import streams
    from rnn_cli.taskfile import resolve_model
    from rnn_cli.tasks.translate.translator import Translator

    path, _ = resolve_model(args.model, args.level, args.task)
    beam, n_best = args.beam or 1, args.n_best or 1
    if n_best > beam:
        raise UsageError(f"--n-best {n_best} needs a beam at least as wide",
                         hint=f"pass --beam {n_best} (or more)")
    alpha = args.length_penalty if args.length_penalty is not None else (1.0 if beam > 1
                                                                         else 0.0)
    if args.json and args.with_score:
        raise UsageError("--json already holds the scores", hint="drop --with-score")
    source = input_source(args.input, "nothing to translate: give FILE, or pipe lines in",
                          f'e.g. echo "ein Haus" | rnn-cli translate -m {path}')
    if args.device == "cuda":
        ui.warn("the translator runs on the CPU (its CUDA kernels are not written yet)")
    tr = Translator.load(path, threads=args.threads)
    name, stream = streams.open_input(source, args.encoding or "utf-8", args.errors or "strict")
    batch = args.batch_size or BATCH_LINES
    block = batch if batch == 1 else batch * READ_AHEAD
    out = sys.stdout
    n = cut_out = 0
    attention_done = False
    with stream:
        answered = (answers for lines in _blocks(streams.Lines(name, stream, block))
                    for answers in tr.translate_batch(lines, beam=beam, n_best=n_best,
                                                      length_penalty=alpha,
                                                      max_len=args.max_len or 0, batch=batch))
        for answers in answered:
            n += 1
            if not answers[0].source_tokens:  # a blank line
                out.write(_dump({"line": n, "translations": []}) + "\n" if args.json else "\n")
                out.flush()
                continue
            cut_out += sum(not a.finished for a in answers)
            if args.attention_out and not attention_done:
                _write_attention(args.attention_out, answers[0])
                attention_done = True
            if args.json:
                out.write(_dump({"line": n, "translations": [
                    {"text": a.text, "score": a.score, "logprob": a.logprob,
                     "finished": a.finished} for a in answers]}) + "\n")
            elif args.with_score:
                out.write("\t".join(f"{a.text}\t{a.score:.4f}" for a in answers) + "\n")
            else:
                out.write("\t".join(a.text for a in answers) + "\n")
            out.flush()  # one record per input record, as it comes (a pipe is not line-buffered)
    if args.attention_out and not attention_done:
        ui.warn(f"no attention written to {args.attention_out}: every input line was blank")
    if tr.cut_sources:
        ui.warn(f"{tr.cut_sources} line(s) were longer than the model's --max-len "
                f"{tr.config.max_len} tokens and were translated from their first "
                f"{tr.config.max_len}")
    if tr.unknown_lines:
        ui.warn(f"{tr.unknown_lines} of {n} line(s) had {tr.config.src_level}s the model does "
                "not know (read as <UNK>)")
    if cut_out:
        ui.warn(f"{cut_out} translation(s) reached the output length limit without ending "
                "(--max-len to change it)")
    return 0


def _write_attention(path: str, t) -> None:
    from rnn_cli.tasks.translate import heatmap

    try:
        heatmap.write(path, t.source_tokens, t.tokens, t.attention, t.text)
    except OSError as e:
        raise UsageError(f"cannot write --attention-out {path}: {e.strerror or e}",
                         hint="give a path in a folder you can write to") from None


def _dump(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False)
