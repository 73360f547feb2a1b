"""User-facing errors and the exit codes of rnn-cli, in one place.

Library code raises `RnnCliError` (or a subclass) with a message and a hint; only `cli.py` turns it
into one line on stderr and an exit code. Nothing here imports numpy or numba.
"""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    """Process exit codes (httpie `status.py` style)."""

    OK = 0
    ERROR = 1  # runtime or data error: bad corpus, bad model file, loss became NaN, ...
    USAGE = 2  # bad command line (argparse)
    INTERRUPTED = 130  # 128 + SIGINT: training saved a checkpoint first


class RnnCliError(Exception):
    """An error the user can act on: one line of what went wrong, one line of what to do."""

    exit_code = ExitStatus.ERROR

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(RnnCliError):
    """A bad flag value found after argparse (exit 2)."""

    exit_code = ExitStatus.USAGE


class CorpusError(RnnCliError):
    """The text to train on or to score cannot be used."""


class ModelFileError(RnnCliError):
    """A model file is missing, corrupt, hostile or of the wrong kind."""


class RnnCliWarning(UserWarning):
    """A notice of the Python API (`rnn_cli.Model`), e.g. a device fallback; the CLI shows the
    same notices as warnings on stderr."""


class TrainingDiverged(RnnCliError):
    """The loss became NaN or infinite."""
