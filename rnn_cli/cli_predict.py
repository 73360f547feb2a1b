"""`rnn-cli predict`: what a model predicts, by the model's kind.

    language model   the k most probable next tokens after a context TEXT, with their
                     probabilities (token<TAB>probability rows)
    classifier       one line per input line of FILE or standard input, in order, classified
                     and written a block of the lines at hand at a time (a line typed into a
                     pipe is answered at once): label<TAB>probability (the k most probable,
                     side by side), or `__label__X prob` (--format fasttext), or one JSON
                     object a line (--json)

The numbers come from the Python API (`rnn_cli.Model.predict`, `rnn_cli.Classifier.predict`);
this module parses flags and writes rows. A model of another kind (a tagger, a translator) is
the one-line error naming the command for it.
"""

from __future__ import annotations

import json
import sys

from rnn_cli.errors import CorpusError, UsageError
from rnn_cli.flags import add_decoding, finite_float, input_source, positive_int

BATCH_LINES = 256  # classifier: lines classified together (rows still stream in input order)
READ_AHEAD = 8  # classifier: batches of lines read at most before their rows are written


def add_parser(sub, formatter, common, model_choice) -> None:
    p = sub.add_parser("predict", formatter_class=formatter,
                       help="the next tokens after a text, or the labels of lines",
                       description="A language model: feed TEXT from a<0> = 0 and print the k "
                                   "most probable next tokens with their probabilities, most "
                                   "probable first (token, probability; tab-separated; spaces "
                                   "show as ␣, newlines as \\n). A classifier: one output line "
                                   "per input line of FILE (or standard input), in order: "
                                   "label<TAB>probability, the k most probable side by side; a "
                                   "blank line for a blank line (or when no label reaches "
                                   "--threshold). A gold label at the start of an input line "
                                   "(__label__X, or X<TAB> for a label the model knows) is "
                                   "ignored: the text alone is classified.")
    p.set_defaults(handler=run)
    p.add_argument("input", metavar="TEXT|FILE", nargs="?",
                   help="language model: the context (- reads stdin; one trailing newline is "
                        "dropped); classifier: the file of lines to classify (- or nothing, "
                        "when piped, reads stdin)")
    model_choice(p, kinds=("lm", "classify"))
    g = p.add_argument_group("output")
    g.add_argument("-k", "--top-k", dest="k", type=positive_int, default=None,
                   help="how many tokens or labels (default: 5 tokens, 1 label)")
    g.add_argument("--threshold", type=finite_float(0.0, False, 1.0), metavar="P",
                   help="classifier: only labels of probability >= P (default: 0)")
    g.add_argument("--format", choices=("tsv", "fasttext"), default=None,
                   help="classifier: tsv, label<TAB>probability; fasttext, __label__X "
                        "probability, space-separated, as `fasttext predict-prob` writes "
                        "(default: tsv)")
    g.add_argument("--json", action="store_true",
                   help="language model: one JSON object; classifier: one a line, {\"line\", "
                        "\"label\", \"prob\", \"labels\": [{\"label\", \"prob\"}, ...]}")
    g.add_argument("--batch-size", type=positive_int, default=None,
                   help=f"classifier: lines classified at once (default: {BATCH_LINES}); rows "
                        f"still come in input order, a block at a time: {READ_AHEAD} batches "
                        "of lines, or from a pipe the lines at hand (a line is answered "
                        "without waiting for the next); 1: a line at a time")
    add_decoding(g, prefix="classifier: ")
    common(p)


def run(args, ui) -> int:
    from rnn_cli.kinds import wrong_kind
    from rnn_cli.taskfile import resolve_model

    path, kind = resolve_model(args.model, args.level, args.task)
    if kind == "lm":
        return _predict_lm(args, ui, path)
    if kind == "classify":
        return _predict_classify(args, ui, path)
    raise wrong_kind(path, kind)


def _dump(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False)


def _tsv_rows(r, labels, threshold, first) -> str:
    """A block's rows: label<TAB>probability, the k kept side by side ("" when none)."""
    if threshold == 0.0 and all(len(t) == 1 for t in r.top):  # the usual case: one label a row
        rows = [f"{labels[t[0]]}\t{p[0]:.6f}" for t, p in zip(r.top, r.probs)]
        return "".join(rows[j] + "\n" if j >= 0 else "\n" for j in r.rows)
    return "".join("\t".join(f"{lab}\t{p:.6f}" for lab, p in r.kept(j, labels, threshold))
                   + "\n" if j >= 0 else "\n" for j in r.rows)


def _fasttext_rows(r, labels, threshold, first) -> str:
    return "".join(" ".join(f"__label__{lab} {p:.6f}" for lab, p in r.kept(j, labels, threshold))
                   + "\n" if j >= 0 else "\n" for j in r.rows)


def _json_rows(r, labels, threshold, first) -> str:
    out = []
    for i, j in enumerate(r.rows):
        kept = r.kept(j, labels, threshold) if j >= 0 else []
        top = kept[0] if kept else (None, None)
        out.append(_dump({"line": first + i, "label": top[0], "prob": top[1],
                          "labels": [{"label": lab, "prob": p} for lab, p in kept]}) + "\n")
    return "".join(out)


# -------------------------------------------------------------------- language model
def _predict_lm(args, ui, path) -> int:
    from rnn_cli.tasks.lm import api
    from rnn_cli.tasks.lm.model_info import show_symbol

    only = [f for f, v in (("--threshold", args.threshold), ("--format", args.format),
                           ("--batch-size", args.batch_size), ("--encoding", args.encoding),
                           ("--errors", args.errors)) if v is not None]
    if only:
        raise UsageError(f"{only[0]} applies to classifiers; {path} is a language model",
                         hint=f"drop {only[0]}")
    text = args.input
    if text is None or text == "-":
        if sys.stdin is None or sys.stdin.isatty():
            error = CorpusError if text == "-" else UsageError
            raise error("'-' expects piped input, but standard input is a terminal"
                        if text == "-" else "no context: give TEXT, or pipe it in",
                        hint='e.g. rnn-cli predict --level word "the cat sat on the"')
        text = sys.stdin.read().removeprefix("\ufeff")
        text = text[:-1] if text.endswith("\n") else text
    lm = api.Model.load(path, level=args.level, device=args.device, threads=args.threads,
                        warn=ui.warn)
    p = lm.predict(text, k=args.k or 5)
    if p.oov:
        ui.warn(f"{p.oov} token(s) of the context are not in the vocabulary and were read as "
                "<UNK>")
    out = sys.stdout
    if args.json:
        nxt = [{"token": c.token, "prob": c.prob, "logprob": c.logprob if c.prob > 0 else None}
               for c in p.candidates]
        out.write(_dump({"context": text, "context_tokens": p.context_tokens, "oov": p.oov,
                         "next": nxt}) + "\n")
    else:
        out.write("".join(f"{show_symbol(c.token)}\t{c.prob:.6f}\n" for c in p.candidates))
    out.flush()
    return 0


# -------------------------------------------------------------------- classifier
def _predict_classify(args, ui, path) -> int:
    from rnn_cli import streams
    from rnn_cli.tasks.classify.predict import Classifier

    if args.json and args.format:
        raise UsageError("--json and --format are two output formats; choose one",
                         hint="drop --format, or drop --json")
    source = input_source(args.input, "nothing to classify: give FILE, or pipe lines in",
                          f'e.g. `echo "a fine film" | rnn-cli predict -m {path}`')
    if args.device == "cuda":
        ui.warn("the classifier runs on the CPU (its CUDA kernels are not written yet)")
    clf = Classifier.load(path, threads=args.threads)
    name, stream = streams.open_input(source, args.encoding or "utf-8", args.errors or "strict")
    out = sys.stdout
    k, threshold = args.k or 1, args.threshold or 0.0
    batch = args.batch_size or BATCH_LINES
    fmt = _json_rows if args.json else _fasttext_rows if args.format == "fasttext" else _tsv_rows
    n = unknown = cut = 0
    with stream:  # a block of the lines at hand at a time, its rows in one write
        for block in streams.read_blocks(name, stream, batch if batch == 1 else
                                         batch * READ_AHEAD):
            r = clf.predict_block(block, k, batch, first=n == 0)
            out.write(fmt(r, clf.labels, threshold, n + 1))
            out.flush()  # the rows of every block as it is done (a pipe is not line-buffered)
            n += len(block)
            unknown += sum(u > 0 for u in r.unknown)
            cut += sum(r.cut)
    if unknown:
        ui.warn(f"{unknown} of {n} line(s) had tokens the model does not know (read as <UNK>)"
                if clf.vocab.level == "word" else
                f"{unknown} of {n} line(s) had characters the model does not know (read as "
                "<UNK>)")
    if cut:
        ui.warn(f"{cut} line(s) were longer than the model's --max-len {clf.cfg.max_len} tokens "
                f"and were classified from their first {clf.cfg.max_len}")
    return 0
