"""`rnn-cli` as the runnable blocks of README.md and docs/*.md see it (tests/test_docs.py).

This checkout's CLI, with every command line shrunk so that a page's commands run in seconds:

- every command runs on one thread: `--threads` becomes 1 (added when absent);
- `train` trains a tiny model: `--hidden` becomes 8 (added when absent, except with `--resume`,
  which keeps the model's), a non-zero `--embed` becomes 8 (so `--tie-weights` still finds
  E = H), and so do a translator's non-zero `--proj` (a tied one still finds P = E),
  `--dec-hidden` and `--attn-size`; `--steps` becomes 3, or 6 with `--resume` (added when
  absent: it ends the run long before `--epochs` or `--max-seconds` would).

Nothing else changes: the flags a reader sees are the flags that run.

    python tests/docs_cli.py COMMAND [ARGS ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _set(argv: list[str], flag: str, value: str, add: bool = True) -> list[str]:
    """argv with every `flag V` / `flag=V` set to `flag value`; appended if absent and `add`."""
    out, found, i = [], False, 0
    while i < len(argv):
        a = argv[i]
        if a == flag and i + 1 < len(argv):
            out += [flag, value(argv[i + 1]) if callable(value) else value]
            found, i = True, i + 2
            continue
        if a.startswith(flag + "="):
            v = a.split("=", 1)[1]
            out.append(f"{flag}={value(v) if callable(value) else value}")
            found = True
        else:
            out.append(a)
        i += 1
    if add and not found:
        out += [flag, value("") if callable(value) else value]
    return out


def shrink(argv: list[str]) -> list[str]:
    """The command line the docs show, shrunk as the module docstring says."""
    if not argv or argv[0] in ("-h", "--help", "--version"):
        return argv
    argv = _set(argv, "--threads", "1")
    if argv[0] == "train":
        resume = "--resume" in argv
        argv = _set(argv, "--hidden", "8", add=not resume)
        for flag in ("--embed", "--proj", "--dec-hidden", "--attn-size"):
            argv = _set(argv, flag, lambda v: "8" if v not in ("", "0") else v, add=False)
        argv = _set(argv, "--steps", "6" if resume else "3")
    return argv


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from rnn_cli.cli import main as cli_main

    return cli_main(shrink(sys.argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
