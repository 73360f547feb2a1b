"""Model kinds: a model file records what it is in `meta["kind"]` (absent: "lm", as in every
file from before the task models), and every command checks it before reading the rest, so a
command given another kind of model fails with one line naming the command for it. No numpy."""

from __future__ import annotations

from rnn_cli import __version__
from rnn_cli.errors import ModelFileError

# kind -> (what it is called, the command that uses it)
KINDS = {"lm": ("language model", "rnn-cli sample"),
         "classify": ("classification model", "rnn-cli predict"),
         "tag": ("tagging model", "rnn-cli tag"),
         "translate": ("translation model", "rnn-cli translate")}


def wrong_kind(path: str, kind: str) -> ModelFileError:
    """`path is a classification model; use `rnn-cli predict``, with a hint."""
    what, verb = KINDS[kind]
    return ModelFileError(f"{path} is a {what}; use `{verb}`",
                          hint=f"`rnn-cli info -m {path}` shows what the file holds")


def meta_kind(meta: dict, path: str) -> str:
    """The kind a model file's meta record names ("lm" when none); ModelFileError for a kind this
    version does not know (a file from a newer rnn-cli)."""
    kind = meta.get("kind", "lm")
    if not isinstance(kind, str) or kind not in KINDS:
        raise ModelFileError(f"{path} is a model of kind {str(kind)[:40]!r}, which this rnn-cli "
                             f"({__version__}) does not know", hint="upgrade rnn-cli")
    return kind
