"""The `rnn-cli` command line: argparse tree, flags -> configs, exit codes, pipes and Ctrl-C.

This module and its command handlers (`cli_train.py`, `cli_sample.py`, `cli_query.py`,
`cli_predict.py`, `cli_tag.py`, `cli_test.py`, `cli_translate.py`) are the only code that touches
the terminal; only `main()` decides the exit status. Imports run one way:
cli -> cli_<command> -> flags.py (argument types, shared flag groups) and the engine (a test in
test_layout.py checks it). numpy and numba are imported inside the handlers, so `rnn-cli --help`
and `--version` answer without loading them.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from rnn_cli import (__version__, cli_predict, cli_query, cli_sample, cli_tag, cli_test,
                     cli_train, cli_translate)
from rnn_cli.errors import ExitStatus, RnnCliError
from rnn_cli.flags import add_common, add_model_choice

try:  # coloured, grouped --help; plain argparse help if the package is missing
    from rich_argparse import RawDescriptionRichHelpFormatter as HelpFormatter
except ImportError:  # pragma: no cover
    HelpFormatter = argparse.RawDescriptionHelpFormatter

EPILOG = """examples:
  rnn-cli train corpus.txt                        char model, saved to the model store
  rnn-cli train --level word corpus.txt -o words.npz
  cat corpus.txt | rnn-cli train -                '-' reads standard input
  rnn-cli sample --level char -n 500              stream 500 characters
  rnn-cli sample -m words.npz --lines 5           five sentences
  echo "the cat sat" | rnn-cli score --level word  log P, tokens, perplexity of a sentence
  rnn-cli predict --level word "the cat sat on the" -k 5
  rnn-cli info --level char                       what the model is, with its loss curve
  rnn-cli train reviews.txt -o sst.npz            __label__ lines: a classifier (--task classify)
  rnn-cli predict -m sst.npz reviews.txt          label<TAB>probability, one line per line
  rnn-cli test -m sst.npz test.txt                accuracy, macro-F1, per label, confusion
  rnn-cli train ner.tsv -o ner.npz --crf          token<TAB>tag columns: a tagger (--task tag)
  rnn-cli tag -m ner.npz tweets.txt               token<TAB>tag rows, a blank line per sentence
  rnn-cli test -m ner.npz test.tsv                token accuracy, entity precision/recall/F1
  rnn-cli train corpora/dates/train.tsv --level char -o dates.npz   source<TAB>target: a
                                                  translator (--task translate)
  echo "3rd of March 1999" | rnn-cli translate -m dates.npz         1999-03-03
  rnn-cli test -m dates.npz corpora/dates/test.tsv                  BLEU, chrF, exact match
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnn-cli", formatter_class=HelpFormatter, epilog=EPILOG,
        description="Train recurrent networks on a text file (character or word level): "
                    "language models that stream novel text, classifiers of labelled lines, "
                    "taggers of tokens, and translators of sentence pairs.")
    parser.add_argument("--version", action="version", version=f"rnn-cli {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    cli_train.add_parser(sub, HelpFormatter, add_common)
    cli_sample.add_parser(sub, HelpFormatter, add_common, add_model_choice)
    cli_query.add_score_parser(sub, HelpFormatter, add_common, add_model_choice)
    cli_predict.add_parser(sub, HelpFormatter, add_common, add_model_choice)
    cli_tag.add_parser(sub, HelpFormatter, add_common, add_model_choice)
    cli_translate.add_parser(sub, HelpFormatter, add_common, add_model_choice)
    cli_test.add_parser(sub, HelpFormatter, add_common, add_model_choice)
    cli_query.add_info_parser(sub, HelpFormatter, add_common, add_model_choice)
    return parser


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _clamp_threads(args, ui) -> None:
    """--threads above the usable cores: warn and use the cores (every command)."""
    threads, cores = getattr(args, "threads", None), _cores()
    if threads and threads > cores:
        ui.warn(f"--threads {threads} is more than the {cores} cores here; using {cores}")
        args.threads = cores


class _Interrupts:
    """SIGINT (Ctrl-C) and SIGTERM raise KeyboardInterrupt (training saves the model, every
    command exits 130), and are remembered. An interrupt that lands while a C library calls back
    into Python (numba compiling a kernel: llvmlite's object-cache callback) is swallowed there,
    printed as "Exception ignored ...", and the library then fails in its own way (numba: "no
    compiled object yet"). While installed, that message is silenced and main() reports such a
    failure as the interrupt it is."""

    def __init__(self):
        self.signum = 0
        self._old: dict = {}
        self._hook = None

    def __call__(self, signum, frame):
        self.signum = signum
        raise KeyboardInterrupt

    def _unraisable(self, u) -> None:
        if not isinstance(u.exc_value, KeyboardInterrupt):
            self._hook(u)

    def __enter__(self) -> "_Interrupts":
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self)
        except ValueError:  # not the main thread (main() called from a library): leave them be
            return self
        self._hook, sys.unraisablehook = sys.unraisablehook, self._unraisable
        return self

    def __exit__(self, *exc) -> bool:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        if self._hook is not None:
            sys.unraisablehook = self._hook
        return False


def _set_thread_env(threads: int | None) -> None:
    """BLAS thread pools read their size at import: set it before numpy is imported."""
    if threads:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(threads)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from rnn_cli.console import UI

    ui = UI(quiet=args.quiet, verbose=args.verbose, no_color=args.no_color)
    _clamp_threads(args, ui)
    _set_thread_env(getattr(args, "threads", None))
    with _Interrupts() as interrupts:
        try:
            return int(args.handler(args, ui))
        except RnnCliError as e:
            if args.traceback:
                raise
            ui.error(e.message, e.hint)
            return int(e.exit_code)
        except BrokenPipeError:
            # stdout was closed early (`rnn-cli sample | head`): quietly stop (CPython's note)
            _silence_stdout()
            return int(ExitStatus.ERROR)
        except KeyboardInterrupt:
            if args.traceback:
                raise
            ui.error("interrupted")
            return int(ExitStatus.INTERRUPTED)
        except MemoryError:
            ui.error("out of memory", hint="use a smaller --hidden, --batch-size or --vocab-size")
            return int(ExitStatus.ERROR)
        except Exception:
            if not interrupts.signum or args.traceback:
                raise
            ui.error("interrupted")  # a library failed because Ctrl-C landed inside it
            return int(ExitStatus.INTERRUPTED)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
