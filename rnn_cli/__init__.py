"""rnn-cli: train recurrent-network language models on a text file and stream text from them.

The Python API (`rnn_cli.api`): `rnn_cli.Model.load(path)` reads a model file once; its
`score_lines`, `score_total`, `predict` and `sample` give the numbers of the commands of the same
name. Importing the package must stay cheap (no numpy, no numba), so that `rnn-cli --help` and
`--version` answer at once: the API names below are imported on first access (PEP 562).
"""

from __future__ import annotations

__version__ = "0.1.0"

_API = ("Model", "Prediction", "Candidate", "Summary", "Sampling")
_ERRORS = ("RnnCliError", "UsageError", "CorpusError", "ModelFileError", "RnnCliWarning")
__all__ = ["__version__", *_API, "LineScore", *_ERRORS]


def __getattr__(name: str):
    import importlib

    if name in _API:
        return getattr(importlib.import_module("rnn_cli.api"), name)
    if name == "LineScore":  # one row of Model.score_lines
        return importlib.import_module("rnn_cli.score").LineScore
    if name in _ERRORS:
        return getattr(importlib.import_module("rnn_cli.errors"), name)
    raise AttributeError(f"module 'rnn_cli' has no attribute {name!r}")
