"""Argument types and flag groups shared by the `rnn-cli` commands (argparse only).

`cli.py` builds the parser tree and imports the command modules (`cli_train.py`, `cli_sample.py`,
`cli_query.py`); they take their argument types from here, so the imports run one way:
cli -> cli_<command> -> flags. Nothing here prints, exits, or imports numpy, numba (`--help`
stays fast) or rich (the help formatter is cli.py's); a bad value raises
`argparse.ArgumentTypeError`, which argparse reports as a usage error (exit 2).
"""

from __future__ import annotations

import argparse


def _int_at_least(low: int, kind: str, bound: str):
    """An argparse type: an integer >= low; `kind` and `bound` word the two errors."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value
    return parse


positive_int = _int_at_least(1, "a positive integer", "a positive integer")
nonneg_int = _int_at_least(0, "an integer >= 0", ">= 0")


def finite_float(low: float = 0.0, low_open: bool = True, high: float = float("inf")):
    """An argparse type: a finite float in (low, high] (or [low, high] when not `low_open`)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if value < low or (low_open and value == low) or value > high:
            lo = "(" if low_open else "["
            raise argparse.ArgumentTypeError(f"must be in {lo}{low:g}, {high:g}], got {value:g}")
        return value
    return parse


def add_common(p: argparse.ArgumentParser) -> None:
    """The "output and system" flags every command takes."""
    g = p.add_argument_group("output and system")
    g.add_argument("-q", "--quiet", action="count", default=0,
                   help="less on stderr: -q keeps warnings and errors, -qq errors only")
    g.add_argument("-v", "--verbose", action="count", default=0, help="more detail on stderr")
    g.add_argument("--no-color", action="store_true", help="no colour on stderr")
    g.add_argument("--traceback", action="store_true",
                   help="show the Python traceback of an error instead of one line")
    g.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads for kernels and BLAS (default: all cores)")
    g.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu",
                   help="where kernels run: cuda runs every cell, --layers, --embed, "
                        "--tie-weights and --dropout (not --softmax classes); auto takes the GPU "
                        "when one is usable, else the CPU with a notice (default: %(default)s)")
    g.add_argument("--seed", type=nonneg_int, default=None,
                   help="random seed; the same seed gives the same result (train default 1234)")


def add_model_choice(p: argparse.ArgumentParser, kinds: tuple[str, ...] = ()) -> None:
    """-m/--model and --level: which model a reading command (sample, score, ...) uses; with
    `kinds` (a command that reads models of several kinds), --task picks the stored model of a
    kind when no -m is given; with one kind (`tag`, `translate`), -m alone (args.task is that
    kind, args.level None), so `taskfile.resolve_model(args.model, args.level, args.task)`
    serves every command."""
    g = p.add_argument_group("model")
    if len(kinds) == 1:  # a command of one task (tag, translate): -m, else the stored model
        g.add_argument("-m", "--model", metavar="PATH",
                       help=f"model file (default: the stored one, $RNN_CLI_HOME/{kinds[0]}.npz)")
        p.set_defaults(level=None, task=kinds[0])
        return
    g.add_argument("-m", "--model", metavar="PATH",
                   help="model file (default: the stored model of "
                        + ("--task, of --level for a language model)" if kinds else "--level)"))
    g.add_argument("--level", choices=("char", "word"), default=None,
                   help="pick the stored language model of this level (default: char)")
    if kinds:
        g.add_argument("--task", choices=kinds, default=None,
                       help="pick the stored model of this task ($RNN_CLI_HOME/TASK.npz; "
                            "default: lm, the language model of --level); with -m, the file "
                            "must be of this task")
