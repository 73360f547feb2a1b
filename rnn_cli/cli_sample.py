"""`rnn-cli sample`: stream novel text from a model to stdout."""

from __future__ import annotations

import sys

from rnn_cli.errors import UsageError


def add_parser(sub, formatter, common, model_choice) -> None:
    from rnn_cli.cli import _finite_float, _nonneg_int, _positive_int

    p = sub.add_parser("sample", formatter_class=formatter, help="stream text from a model",
                       description="Draw novel text from a model, one token at a time: a<0> = 0, "
                                   "draw from y_hat, feed it back. Text goes to stdout as it is "
                                   "drawn.")
    p.set_defaults(handler=run)
    model_choice(p)
    g = p.add_argument_group("sampling")
    g.add_argument("-n", "--length", type=_positive_int,
                   help="tokens to draw (default: 500, or no limit with --lines)")
    g.add_argument("--lines", type=_positive_int,
                   help="stop after N lines (sentences ended by <EOS> at word level)")
    g.add_argument("--temperature", type=_finite_float(0.0, True, 100.0),
                   help="divide the logits by T: < 1 is safer, > 1 is wilder (default: 1)")
    g.add_argument("--top-k", type=_positive_int,
                   help="draw only among the k most probable tokens (default: all)")
    g.add_argument("--argmax", action="store_true",
                   help="always take the most probable token (deterministic)")
    g.add_argument("--prime", metavar="TEXT",
                   help="text fed through the network first and printed; - reads stdin")
    g.add_argument("--allow-unk", action="store_true", help="let <UNK> be drawn")
    common(p)


def run(args, ui) -> int:
    import numpy as np

    from rnn_cli import checkpoint

    if args.argmax and (args.temperature is not None or args.top_k is not None):
        raise UsageError("--argmax cannot be combined with --temperature or --top-k",
                         hint="--argmax always takes the most probable token; drop one of them")
    from rnn_cli.cuda.backend import resolve as resolve_device

    device = resolve_device(args.device, ui.warn)  # no numba.cuda import for --device cpu
    model = checkpoint.load(checkpoint.resolve_model_path(args.model, args.level), args.level)
    from rnn_cli.cuda.backend import for_model

    device = for_model(device, args.device, model.cfg, ui.warn)
    vocab = model.vocab
    if args.lines and vocab.eos_id is None:
        raise UsageError("--lines needs a model whose vocabulary has an end-of-line symbol",
                         hint="use -n/--length instead")
    prime = args.prime or ""
    if prime == "-":
        if sys.stdin.isatty():
            raise UsageError("--prime - reads standard input, but it is a terminal",
                             hint="pipe the text in, or pass --prime TEXT")
        prime = sys.stdin.read()
    length = args.length if args.length or args.lines else 500
    from rnn_cli.sample import SampleConfig, Sampler  # numba: only once the model is valid

    sc = SampleConfig(length=length, lines=args.lines, temperature=args.temperature or 1.0,
                      top_k=args.top_k or 0, greedy=args.argmax, allow_unk=args.allow_unk,
                      prime=prime)
    if device == "cuda":
        from rnn_cli.cuda.sampling import CudaSampler

        sampler = CudaSampler(model)
    else:
        sampler = Sampler(model)
    x0, unknown = sampler.prime(prime)
    if unknown:
        ui.warn(f"{unknown} token(s) of --prime are not in the vocabulary and were read as <UNK>")
    rng = np.random.default_rng(args.seed)
    tty = sys.stdout.isatty()
    out = sys.stdout
    last = ""
    if prime:
        out.write(prime)
        last = prime[-1]
    for piece in sampler.generate(sc, rng, x0, chunk=64 if tty else 1024):
        out.write(piece)
        last = piece[-1]
        if tty or "\n" in piece:
            out.flush()
    if last != "\n":
        out.write("\n")
    out.flush()
    return 0
