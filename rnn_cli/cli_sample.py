"""`rnn-cli sample`: stream novel text from a model to stdout."""

from __future__ import annotations

import math
import sys

from rnn_cli.errors import CorpusError, UsageError
from rnn_cli.flags import finite_float, nonneg_int, positive_int


def add_parser(sub, formatter, common, model_choice) -> None:
    p = sub.add_parser("sample", formatter_class=formatter, help="stream text from a model",
                       description="Draw novel text from a model, one token at a time: a<0> = 0, "
                                   "draw from y_hat, feed it back. Text goes to stdout as it is "
                                   "drawn.")
    p.set_defaults(handler=run)
    model_choice(p)
    g = p.add_argument_group("sampling")
    g.add_argument("-n", "--length", type=nonneg_int,
                   help="tokens to draw (default: 500, or no limit with --lines); 0: stream "
                        "without end until stdout closes or Ctrl-C")
    g.add_argument("--lines", type=positive_int,
                   help="stop after N lines (sentences ended by <EOS> at word level)")
    g.add_argument("--temperature", type=finite_float(0.0, True, 100.0),
                   help="divide the logits by T: < 1 is safer, > 1 is wilder (default: 1)")
    g.add_argument("--top-k", type=positive_int,
                   help="draw only among the k most probable tokens (default: all)")
    g.add_argument("--top-p", type=finite_float(0.0, True, 1.0), metavar="P",
                   help="nucleus sampling: draw only from the smallest set of most probable "
                        "tokens whose probability reaches P, after --temperature and --top-k "
                        "(default: 1, all)")
    g.add_argument("--argmax", action="store_true",
                   help="always take the most probable token (deterministic)")
    g.add_argument("--beam", type=positive_int, metavar="K",
                   help="beam search over K hypotheses: the most probable continuation of -n "
                        "tokens, or with --lines of each line (deterministic; 1 = --argmax)")
    g.add_argument("--length-norm", type=finite_float(0.0, False, 10.0), metavar="ALPHA",
                   help="with --beam --lines: compare finished lines by logP / tokens^ALPHA "
                        "(default: 0, the most probable line; 1 favours longer lines)")
    pr = g.add_mutually_exclusive_group()
    pr.add_argument("--prime", metavar="TEXT",
                    help="text fed through the network first (one compiled pass) and printed; "
                         "- reads stdin; -v shows its log-probability")
    pr.add_argument("--prime-file", metavar="FILE",
                    help="like --prime, with the text of FILE (- reads stdin)")
    g.add_argument("--allow-unk", action="store_true", help="let <UNK> be drawn")
    common(p)


def run(args, ui) -> int:
    from rnn_cli import checkpoint
    from rnn_cli.tasks.lm import api

    _check_modes(args)
    path = checkpoint.resolve_model_path(args.model, args.level)
    lm = api.Model.load(path, level=args.level, device=args.device, warn=ui.warn)
    prime = _read_prime(args)
    text = lm.sample(args.length, lines=args.lines,
                     temperature=args.temperature or 1.0, top_k=args.top_k or 0,
                     top_p=args.top_p or 1.0, argmax=args.argmax, beam=args.beam or 0,
                     length_norm=args.length_norm or 0.0, prime=prime,
                     allow_unk=args.allow_unk, seed=args.seed,
                     prime_logprob=args.verbose > 0, chunk=64 if sys.stdout.isatty() else 1024,
                     on_beam=_beam_report(ui, args.beam, args.lines))
    if text.prime_oov:
        ui.warn(f"{text.prime_oov} token(s) of --prime are not in the vocabulary and were read "
                "as <UNK>")
    if prime and args.verbose:
        ui.debug(f"prime: ln P = {text.prime_logprob:.6f} over {text.prime_tokens} tokens "
                 f"({text.prime_logprob / math.log(10):.6f} in log10)")
    tty = sys.stdout.isatty()
    out = sys.stdout
    last = ""
    if prime:
        out.write(prime)
        last = prime[-1]
    for piece in text:
        out.write(piece)
        last = piece[-1]
        if tty or "\n" in piece:
            out.flush()
    if last != "\n":
        out.write("\n")
    out.flush()
    return 0


def _check_modes(args) -> None:
    """Usage errors (exit 2) for sampling flags that do not go together."""
    shaping = [f for f, v in (("--temperature", args.temperature), ("--top-k", args.top_k),
                              ("--top-p", args.top_p)) if v is not None]
    if args.argmax and shaping:
        raise UsageError(f"--argmax cannot be combined with {shaping[0]}",
                         hint="--argmax always takes the most probable token; drop one of them")
    if args.beam is not None:
        if shaping or args.argmax:
            raise UsageError(f"--beam cannot be combined with {(shaping or ['--argmax'])[0]}",
                             hint="beam search draws nothing: it keeps the K most probable "
                                  "continuations; drop one of them")
        if args.length == 0 and not args.lines:
            raise UsageError("--beam needs an end: -n 0 streams without one",
                             hint="give -n N (tokens) or --lines N")
    elif args.length_norm is not None:
        raise UsageError("--length-norm applies to --beam only",
                         hint="add --beam K, or drop --length-norm")


def _read_prime(args) -> str:
    """The text of --prime / --prime-file ('-': standard input, refused when it is a terminal)."""
    flag, value = ("--prime-file", args.prime_file) if args.prime_file else ("--prime", args.prime)
    if not value:
        return ""
    if value == "-":
        if sys.stdin.isatty():
            raise UsageError(f"{flag} - reads standard input, but it is a terminal",
                             hint="pipe the text in, or pass --prime TEXT")
        return sys.stdin.read()
    if flag == "--prime":
        return value
    try:
        with open(value, encoding="utf-8", newline=None) as f:
            return f.read().removeprefix("\ufeff")
    except FileNotFoundError:
        raise CorpusError(f"--prime-file: file not found: {value}",
                          hint="check the path, or pass --prime-file - to read standard input"
                          ) from None
    except IsADirectoryError:
        raise CorpusError(f"--prime-file: {value} is a directory",
                          hint="give the path of a text file") from None
    except UnicodeDecodeError as e:
        raise CorpusError(f"--prime-file: {value} is not valid UTF-8 (byte offset {e.start})",
                          hint="convert the file to UTF-8 (e.g. iconv -t utf-8)") from None
    except OSError as e:
        raise CorpusError(f"--prime-file: cannot read {value}: {e.strerror or e}",
                          hint="check that the path is a readable text file") from None


def _beam_report(ui, beam, lines):
    """-v: each beam search's ln P on stderr; a warning when a line hit the length cap."""
    def report(logprob: float, tokens: int, finished: bool) -> None:
        ui.debug(f"beam {beam}: ln P = {logprob:.6f} over {tokens} tokens")
        if lines is not None and not finished:
            ui.warn(f"beam search found no end of line within {tokens} tokens; the line is cut")
    return report
