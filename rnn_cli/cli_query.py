"""`rnn-cli score` and `info`: ask a model questions. Results are data, on stdout.

score   one row per input line: ln P(line + <EOS>), tokens, perplexity, line (tab-separated);
        or one summary for the whole input with the state carried (`--total`, = validation loss)
info    what a model file of any kind is, with its train/validation loss curve (text, JSON or
        SVG)

The computing goes through the Python API (`api.Model`: score.py's sentence scores),
`dask_score.py` (`score --dask`), `model_info.py` (a language model's description) and
`task_info.py` (any other kind's); this module parses flags and writes rows. Notes and warnings
go to stderr through `ui`. (`predict` is cli_predict.py's, `test` cli_test.py's.)
"""

from __future__ import annotations

import json
import math
import sys

from rnn_cli.errors import RnnCliError, UsageError
from rnn_cli.flags import add_decoding, positive_int
from rnn_cli.tasks import KINDS

LN10 = math.log(10.0)
BATCH_LINES = 256  # = score.BATCH_LINES (not imported here: --help stays free of numpy)


# -------------------------------------------------------------------- parsers
def add_score_parser(sub, formatter, common, model_choice) -> None:
    p = sub.add_parser("score", formatter_class=formatter,
                       help="log-probability and perplexity of sentences",
                       description="Score each input line as a sentence by the chain rule: "
                                   "ln P(y<1> ... y<Ty>, <EOS>) from a<0> = 0. Columns (tab-"
                                   "separated): log P, tokens, perplexity, line. Blank lines are "
                                   "skipped.")
    p.set_defaults(handler=run_score)
    p.add_argument("file", metavar="FILE", nargs="*",
                   help="text, one sentence per line; several FILEs are read in turn, as `cat` "
                        "would give them; - (or nothing, when piped) reads stdin")
    model_choice(p)
    g = p.add_argument_group("output")
    g.add_argument("--total", action="store_true",
                   help="one summary for the whole input, the state carried across lines as in "
                        "validation: tokens, OOV, nats/token, perplexity (bits/char at char "
                        "level)")
    g.add_argument("--tokens", action="store_true",
                   help="after each line, one row per token: token, probability, log P")
    g.add_argument("--sort", action="store_true",
                   help="print the lines most probable first (buffers the whole input)")
    g.add_argument("--log10", action="store_true", help="log P in base 10 (default: natural)")
    g.add_argument("--json", action="store_true", help="one JSON object per line (or summary)")
    g.add_argument("--batch-size", type=positive_int, default=BATCH_LINES,
                   help="lines scored at once in parallel streams (default: %(default)s); rows "
                        "still come in input order, in blocks of 8 batches; 1: each row as soon "
                        "as its line is read. Not used by --total (one stream)")
    g.add_argument("--dask", metavar="ADDRESS",
                   help="score the lines on a Dask cluster: a scheduler address (e.g. "
                        "tcp://10.0.0.5:8786), or local:N to start N worker processes here. "
                        "The model goes once to each worker, the lines in chunks; the rows are "
                        "those of a single-process run, in input order. Not with --total. Needs "
                        "the dask extra: pip install 'rnn-cli\\[dask]'")  # \\[: not rich markup
    add_decoding(g, defaults=True)
    common(p)


def add_info_parser(sub, formatter, common, model_choice) -> None:
    p = sub.add_parser("info", formatter_class=formatter,
                       help="what a model is, with its loss curve",
                       description="Describe a model file of any kind: format, architecture, "
                                   "parameters, vocabulary, label set (a classifier), the "
                                   "corpus it was trained on, steps, tokens or examples, the "
                                   "best validation loss or metric, training time, and the "
                                   "train/val loss curve recorded during training.")
    p.set_defaults(handler=run_info)
    model_choice(p, kinds=KINDS)
    g = p.add_argument_group("output")
    g.add_argument("--json", action="store_true", help="everything as one JSON object")
    g.add_argument("--plot", metavar="FILE.svg", help="also write the loss curve as an SVG image")
    common(p)


# -------------------------------------------------------------------- shared
def _load(args, ui):
    """The model of -m/--level on --device, through the Python API (`api.Model.load`)."""
    from rnn_cli import checkpoint
    from rnn_cli.tasks.lm import api

    path = checkpoint.resolve_model_path(args.model, args.level)
    return api.Model.load(path, level=args.level, device=getattr(args, "device", "cpu"),
                          threads=getattr(args, "threads", None), warn=ui.warn)


def _num(x):
    return x if x is None or math.isfinite(x) else None


def _dump(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False)


# -------------------------------------------------------------------- score
def run_score(args, ui) -> int:
    from rnn_cli.tasks.lm.model_info import show_symbol

    if args.total and (args.tokens or args.sort):
        raise UsageError("--total gives one summary; it cannot be combined with --tokens or "
                         "--sort", hint="drop --total to get one row per line")
    if args.dask:
        _check_dask(args)
    paths = args.file or []
    if not paths:
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("no input: give FILE, or pipe text in",
                             hint="e.g. `echo \"the cat sat\" | rnn-cli score --level word`")
        paths = ["-"]
    lm = _load(args, ui)
    lines = _input_lines(paths, args.encoding, args.errors)
    out, tty = sys.stdout, sys.stdout.isatty()
    base = LN10 if args.log10 else 1.0
    if args.total:
        return _score_total(args, lm, lines, out)
    with _dask_scoring(args, lm, ui) as dask_score:
        if dask_score is not None:
            results = dask_score(lines, args.batch_size)
        else:
            results = lm.score_lines(lines, batch_size=args.batch_size)
        if args.sort:
            results = sorted(results, key=lambda r: -r.logprob)
        oov = oov_lines = n_lines = 0
        symbols = lm.file.vocab.symbols
        for r in results:
            n_lines += 1
            oov += r.unknown
            oov_lines += r.unknown > 0
            syms = [symbols[i] for i in r.ids.tolist()] if args.tokens else None
            if args.json:
                out.write(_dump(_line_json(r, syms)) + "\n")
            else:
                out.write(f"{r.logprob / base:.4f}\t{r.n}\t{r.perplexity:.4f}\t{r.line}\n")
                if syms:
                    for s, nll in zip(syms, r.nll.tolist()):
                        out.write(f"\t{show_symbol(s)}\t{math.exp(-nll):.6g}\t{-nll / base:.4f}\n")
            if tty:
                out.flush()
    out.flush()
    if oov:
        ui.warn(f"{oov} token(s) in {oov_lines} of {n_lines} line(s) were not in the vocabulary "
                "and were scored as <UNK>")
    return 0


def _input_lines(paths: list[str], encoding: str, errors: str):
    """The raw lines of every FILE in turn, as `cat FILE...` would give them (each file opened
    when its turn comes; '-' is standard input)."""
    from rnn_cli import streams

    for path in paths:
        name, stream = streams.open_input(path, encoding, errors)
        with stream:
            for _, raw in streams.read_lines(name, stream):
                yield raw


def _check_dask(args) -> None:
    """Usage errors of --dask, before anything is loaded."""
    if args.total:
        raise UsageError("--total carries the state across the whole input as one stream; "
                         "it cannot be split over Dask workers",
                         hint="drop --dask for --total, or drop --total: each row of --dask "
                              "starts from a<0> = 0")
    if args.device != "cpu":
        raise UsageError("--dask scores on the workers' CPUs; --device applies to one process",
                         hint="drop --device, or drop --dask")
    from rnn_cli.tasks.lm import dask_score  # the optional extra: only with --dask

    dask_score.require()  # not installed: one line and the install hint, before any work


class _dask_scoring:
    """Context: None without --dask; else `score(lines, batch)` on the cluster of --dask,
    which is shut down (local:N) or disconnected on exit."""

    def __init__(self, args, lm, ui):
        self.args, self.lm, self.ui, self.session = args, lm, ui, None

    def __enter__(self):
        if not self.args.dask:
            return None
        from rnn_cli.tasks.lm import dask_score  # the optional extra: only with --dask

        self.session = dask_score.Session.open(self.args.dask, threads=self.args.threads,
                                               verbose=self.args.verbose > 0)
        self.ui.debug(f"dask: {self.session.describe()}")
        return lambda lines, batch: self.session.score_lines(self.lm, lines, batch,
                                                             tokens=self.args.tokens)

    def __exit__(self, *exc) -> None:
        if self.session is not None:
            self.session.close()


def _line_json(r, syms) -> dict:
    d = {"line": r.line, "logprob": r.logprob, "log10prob": r.logprob / LN10, "tokens": r.n,
         "perplexity": _num(r.perplexity), "oov": r.unknown}
    if syms is not None:
        d["token_probs"] = [{"token": s, "prob": math.exp(-nll), "logprob": -nll}
                            for s, nll in zip(syms, r.nll.tolist())]
    return d


def _score_total(args, lm, lines, out) -> int:
    t = lm.score_total(lines)
    if args.json:
        s = {"lines": t.lines, "tokens": t.tokens, "oov": t.oov, "logprob": t.logprob,
             "nats_per_token": t.nats_per_token, "perplexity": _num(t.perplexity)}
        if t.bits_per_char is not None:
            s["bits_per_char"] = t.bits_per_char
        s["log10prob"] = t.log10prob
        out.write(_dump(s) + "\n")
    else:
        rows = [("lines", t.lines), ("tokens", t.tokens), ("oov", t.oov),
                ("log10prob" if args.log10 else "logprob",
                 f"{t.logprob / (LN10 if args.log10 else 1.0):.4f}"),
                ("nats_per_token", f"{t.nats_per_token:.6f}"),
                ("perplexity", "inf" if _num(t.perplexity) is None else f"{t.perplexity:.4f}")]
        if t.bits_per_char is not None:
            rows.append(("bits_per_char", f"{t.bits_per_char:.6f}"))
        out.write("".join(f"{k}\t{v}\n" for k, v in rows))
    out.flush()
    return 0


# -------------------------------------------------------------------- info
def run_info(args, ui) -> int:
    import numpy as np

    from rnn_cli import checkpoint, plot
    from rnn_cli.tasks.lm.model_info import describe, summary_rows

    if args.plot and not args.plot.lower().endswith(".svg"):
        raise UsageError(f"--plot writes SVG images only, got {args.plot!r}",
                         hint="name the file .svg (convert it with e.g. `rsvg-convert -o "
                              "curve.png curve.svg` if you need a PNG)")
    from rnn_cli.taskfile import resolve_model

    path, kind = resolve_model(args.model, args.level, args.task)
    if kind == "lm":
        model = checkpoint.load(path, args.level)
        d = describe(model, path)
        history = np.asarray(model.history, np.float64).reshape(-1, 4)
        rows, unit = summary_rows(d), "nats/token"
        title = f"{d['level']} model, H = {d['hidden']}: {(d['corpus'] or {}).get('name', '')}"
    else:
        d, rows, history, unit = _task_info(path, kind)
        title = f"{d['what']}: {(d['corpus'] or {}).get('name', '')}"
    if args.plot:
        if history.shape[0] == 0:
            raise RnnCliError(f"{path} has no recorded loss curve to plot",
                              hint="models trained by `rnn-cli train` record one")
        try:
            with open(args.plot, "w", encoding="utf-8") as f:
                f.write(plot.svg_plot(history, title, unit=unit))
        except OSError as e:
            raise RnnCliError(f"cannot write {args.plot}: {e.strerror or e}",
                              hint="check the folder exists and is writable") from None
        ui.info(f"wrote the loss curve to {args.plot}")
    if args.json:
        sys.stdout.write(_dump(d) + "\n")
        sys.stdout.flush()
        return 0
    from rich.console import Console
    from rich.markup import escape
    from rich.text import Text

    con = Console(file=sys.stdout, highlight=False, soft_wrap=True,
                  no_color=args.no_color or None)
    for key, value in rows:
        con.print(f"[bold]{escape(key):<11}[/] {escape(value)}")
    if history.shape[0] == 0:
        con.print(f"[bold]{'loss curve':<11}[/] - (none recorded)")
        return 0
    con.print(f"[bold]loss curve[/]  {history.shape[0]} evaluations")
    for row in plot.text_plot(history, unit=unit):
        t = Text()
        for piece, style in row:
            t.append(piece, style=style or None)
        con.print(t)
    return 0


def _task_info(path: str, kind: str):
    """(description, its human rows, the loss history as plot.py draws it, the loss's unit) of
    a task model."""
    from rnn_cli import task_info, tasks
    from rnn_cli.taskfile import load_task, peek_meta

    task = tasks.get(kind)
    model = load_task(path, task.format)
    d = task_info.describe(model, path, peek_meta(path).get("rnn_cli_version"))
    return (d, task_info.summary_rows(d), task_info.plot_history(d),
            getattr(task, "loss_unit", "nats/example"))
