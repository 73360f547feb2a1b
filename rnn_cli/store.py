"""The model store: where `rnn-cli train` saves a model when no `-o` is given, and where the
other commands look for one when no `-m` is given. No numpy (the CLI resolves paths early).

    $RNN_CLI_HOME (else the user data dir, ~/.local/share/rnn-cli)
        char.npz, word.npz      language models, one per level
        classify.npz            the classifier (and tag.npz, translate.npz: one per task)
        cache/                  token ids of corpora (idcache.py)
"""

from __future__ import annotations

import os

from rnn_cli.errors import ModelFileError


def store_dir() -> str:
    """The model store: $RNN_CLI_HOME, else the user data dir (XDG: ~/.local/share/rnn-cli)."""
    home = os.environ.get("RNN_CLI_HOME")
    if home:
        return home
    import platformdirs

    return platformdirs.user_data_dir("rnn-cli", appauthor=False)


def store_path(level: str) -> str:
    """The stored language model of `level`."""
    return os.path.join(store_dir(), f"{level}.npz")


def task_store_path(kind: str, level: str | None = None) -> str:
    """The store's place for a model of `kind`: a language model's by its level (char.npz,
    word.npz), any other kind's by the kind (classify.npz, tag.npz, translate.npz)."""
    return store_path(level or "char") if kind == "lm" else \
        os.path.join(store_dir(), f"{kind}.npz")


def resolve_model_path(model: str | None, level: str | None, kind: str | None = None) -> str:
    """-m PATH when given, else the stored model of `kind` (None or "lm": the language model of
    `level`, char by default), which must exist."""
    if model:
        return model
    if kind not in (None, "lm"):
        path = task_store_path(kind)
        if not os.path.exists(path):
            raise ModelFileError(f"no stored {kind} model yet ({path})",
                                 hint=f"train one with `rnn-cli train --task {kind} CORPUS`, "
                                      "or pass -m PATH")
        return path
    lvl = level or "char"
    path = store_path(lvl)
    if not os.path.exists(path):
        raise ModelFileError(
            f"no stored {lvl} model yet ({path})",
            hint=f"train one with `rnn-cli train --level {lvl} CORPUS`, or pass -m PATH")
    return path

