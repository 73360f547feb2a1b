"""`rnn-cli test -m M FILE`: a model's metrics on a gold file, for a model of any kind.

    language model   the perplexity of FILE read as one stream (= `score --total`)
    classifier       N, accuracy, macro-F1, loss, per-label precision / recall / F1 / support,
                     the confusion matrix; gold labels the model never saw are counted

What is measured is the task's (`Task.test` of `rnn_cli.tasks`, which returns a `TestReport`);
this module only shows the report: rich tables on a terminal, TAB-separated rows when piped,
one JSON object with --json; the report's warnings on stderr. A task adds its kind to `test` by
giving its task object a `test` method: nothing here names a kind.
"""

from __future__ import annotations

import json
import math
import sys

from rnn_cli.flags import add_decoding


def add_parser(sub, formatter, common, model_choice) -> None:
    from rnn_cli.tasks import KINDS

    p = sub.add_parser("test", formatter_class=formatter,
                       help="a model's metrics on a gold file",
                       description="Measure a model on a gold file, by the model's kind: a "
                                   "language model, the perplexity of FILE read as one stream "
                                   "(as `score --total`); a classifier, N, accuracy, macro-F1, "
                                   "per-label precision, recall, F1 and support, and the "
                                   "confusion matrix (gold labels the model never saw are "
                                   "counted as errors and reported). Rich tables on a "
                                   "terminal, TAB-separated rows when piped, --json for "
                                   "scripts.")
    p.set_defaults(handler=run)
    p.add_argument("file", metavar="FILE",
                   help="the gold file, in the training format of the model's task (- reads "
                        "standard input)")
    model_choice(p, kinds=KINDS)
    g = p.add_argument_group("input and output")
    g.add_argument("--json", action="store_true", help="everything as one JSON object")
    g.add_argument("--bad-lines", choices=("fail", "skip"), default=None,
                   help="a gold line that cannot be read: fail names the lines (one error), "
                        "skip leaves them out with a warning that counts them (default: fail)")
    add_decoding(g)
    common(p)


def run(args, ui) -> int:
    from rnn_cli import tasks
    from rnn_cli.taskfile import resolve_model

    path, kind = resolve_model(args.model, args.level, args.task)
    options = {"bad_lines": args.bad_lines, "encoding": args.encoding, "errors": args.errors,
               "device": args.device, "threads": args.threads,
               "level": args.level, "warn": ui.warn}
    report = tasks.get(kind).test(path, args.file, options)
    for line in report.warnings:
        ui.warn(line)
    out = sys.stdout
    if args.json:
        out.write(json.dumps(_jsonable(report.data), ensure_ascii=False, allow_nan=False) + "\n")
    elif out.isatty():
        _rich(report, args.no_color)
    else:
        out.write(_plain(report))
    out.flush()
    return 0


def _jsonable(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def _plain(report) -> str:
    """name<TAB>value rows, then each table after a blank line: `# title`, the header, rows."""
    text = "".join(f"{name}\t{_cell(v)}\n" for name, v in report.summary)
    for t in report.tables:
        text += f"\n# {t.title}\n" + "\t".join(t.columns) + "\n"
        text += "".join("\t".join(_cell(v) for v in row) + "\n" for row in t.rows)
    return text


def _rich(report, no_color: bool) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    con = Console(file=sys.stdout, highlight=False, no_color=no_color or None)
    for name, v in report.summary:
        con.print(f"[bold]{escape(name):<16}[/] {escape(_cell(v))}")
    for t in report.tables:
        table = Table(title=escape(t.title), title_justify="left", title_style="bold")
        for i, col in enumerate(t.columns):
            table.add_column(escape(col), justify="left" if i == 0 else "right")
        for row in t.rows:
            table.add_row(*(escape(_cell(v)) for v in row))
        con.print(table)
