"""Argument types and flag groups shared by the `rnn-cli` commands (argparse only).

`cli.py` builds the parser tree and imports the command modules (`cli_train.py`, `cli_sample.py`,
`cli_query.py`); they take their argument types from here, so the imports run one way:
cli -> cli_<command> -> flags. Nothing here prints, exits, or imports numpy, numba (`--help`
stays fast) or rich (the help formatter is cli.py's); a bad value raises
`argparse.ArgumentTypeError`, which argparse reports as a usage error (exit 2).
`input_source` resolves a command's FILE|- argument against standard input.
"""

from __future__ import annotations

import argparse
import sys

from rnn_cli.errors import CorpusError, UsageError


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


def add_decoding(g, what: str = "FILE", prefix: str = "", defaults: bool = False) -> None:
    """--encoding and --errors, how a command decodes its input `what` (every command that reads
    text has both, in the same words; `prefix` e.g. "classifier: " when they apply to one kind
    of model). defaults: the values themselves as the defaults, not None (None: "not given", so
    that a command can tell)."""
    g.add_argument("--encoding", default="utf-8" if defaults else None,
                   help=f"{prefix}text encoding of {what} (default: utf-8)")
    g.add_argument("--errors", choices=("strict", "replace", "ignore"),
                   default="strict" if defaults else None,
                   help=f"{prefix}what to do with undecodable bytes (default: strict)")


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


def add_task_groups(p: argparse.ArgumentParser) -> None:
    """`train`'s flags that only one task reads: the classification, tagging and translation
    groups (their help names the task's defaults, from its options module: no numpy)."""
    from rnn_cli.tasks.classify import options as C
    from rnn_cli.tasks.tag import options as G
    from rnn_cli.tasks.translate import options as TR
    g = p.add_argument_group("classification")
    g.add_argument("--pool", choices=("last", "mean", "max"),
                   help="the text's vector from the encoder's states: last, each direction's "
                        "final state; mean or max, over every position (default: "
                        f"{C.POOL})")
    g.add_argument("--class-weight", choices=("none", "balanced"),
                   help="balanced: weigh each example's loss by N / (K n_label), so rare "
                        "labels count as much as common ones (default: none)")
    g = p.add_argument_group("tagging")
    g.add_argument("--column", type=int, metavar="N",
                   help="tag: the tag column of a CoNLL column file, 1-based (2..), or "
                        "negative from the end (default: -1, the last; the token is column 1)")
    g.add_argument("--field", choices=("upos", "xpos"),
                   help="tag: the tags of a CoNLL-U file (default: upos)")
    g.add_argument("--crf", action="store_true", default=None,
                   help="tag: a linear-chain CRF output layer (transition scores learned, "
                        "Viterbi decoding) instead of each token's softmax (default: off; both "
                        "decode only sequences the BIO/BIOES scheme allows)")
    g.add_argument("--char-hidden", type=nonneg_int, metavar="N",
                   help="tag: units per direction of the character BiRNN that reads each word "
                        f"(default: {G.CHAR_HIDDEN}; 0: no character encoder, words alone)")
    g.add_argument("--char-embed", type=positive_int, metavar="N",
                   help=f"tag: the character embedding's width (default: {G.CHAR_EMBED})")
    g = p.add_argument_group("translation")
    g.add_argument("--src", metavar="FILE",
                   help="the source sentences, one a line, instead of CORPUS (with --tgt: line "
                        "i translates to line i of --tgt; files of different line counts are "
                        "an error)")
    g.add_argument("--tgt", metavar="FILE", help="the target sentences, one a line (with --src)")
    g.add_argument("--src-level", choices=("char", "word"),
                   help="tokens of the source side (default: --level, else word)")
    g.add_argument("--tgt-level", choices=("char", "word"),
                   help="tokens of the target side (default: --level, else word)")
    g.add_argument("--attention", choices=TR.ATTENTIONS,
                   help="how the decoder reads the source at each step: none (the encoder's "
                        "final states only), dot or general (Luong et al. 2015), additive "
                        f"(Bahdanau et al. 2015) (default: {TR.ATTENTION})")
    g.add_argument("--dec-hidden", type=positive_int, metavar="H",
                   help="the decoder's state size (default: --hidden; with --attention dot: "
                        "the encoder's output width, 2 x --hidden when bidirectional)")
    g.add_argument("--attn-size", type=positive_int, metavar="A",
                   help="additive attention's hidden size (default: the decoder's state size)")
    g.add_argument("--proj", type=nonneg_int, metavar="P",
                   help="the output layer reads a P-unit projection tanh(W [state; context; "
                        "embedding]) instead of those 1,000-odd numbers themselves (Luong et "
                        "al. 2015): the output layer is most of a step's work; 0: none "
                        f"(default: {TR.PROJ})")
    g.add_argument("--label-smoothing", type=finite_float(0.0, False, 0.99), metavar="EPS",
                   help="train towards 1 - EPS on the right token and EPS spread over the "
                        "vocabulary (Szegedy et al. 2016); the loss shown in training is that "
                        f"objective, validation's the plain one (default: {TR.LABEL_SMOOTHING:g})")


def input_source(source: str | None, nothing: str, example: str) -> str:
    """A command's input: FILE, or "-" (standard input) when FILE is "-" or absent and standard
    input is piped. With a terminal on standard input, no FILE is a usage error (`nothing`, the
    words; `example`, its hint) and "-" an input error (a terminal is no input to read)."""
    if source is not None and source != "-":
        return source
    if sys.stdin is None or sys.stdin.isatty():
        if source == "-":
            raise CorpusError("'-' expects piped input, but standard input is a terminal",
                              hint=example)
        raise UsageError(nothing, hint=example)
    return "-"
