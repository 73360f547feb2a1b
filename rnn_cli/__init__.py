"""rnn-cli: train recurrent networks on text files (language models, and the tasks of
`rnn_cli.tasks`) and ask the models questions.

The Python API: `rnn_cli.train(corpus, ...)` trains and saves a model as `rnn-cli train` does
(`rnn_cli.training`: options, events, the summary); `rnn_cli.Model.load(path)` reads a language
model file once, and its `score_lines`, `score_total`, `predict` and `sample` give the numbers of
the commands of the same name (`rnn_cli.tasks.lm.api`); `rnn_cli.Classifier.load(path)` reads
a classifier, whose `predict`, `probs` and `test` give the numbers of `rnn-cli predict` and
`rnn-cli test` (`rnn_cli.tasks.classify.predict`); `rnn_cli.Tagger.load(path)` reads a tagger,
whose `tag`, `tag_tokens` and `test` give the numbers of `rnn-cli tag` and `rnn-cli test`
(`rnn_cli.tasks.tag.tagger`); `rnn_cli.Translator.load(path)` a translator, whose `translate`
and `test` give those of `rnn-cli translate` and `rnn-cli test`
(`rnn_cli.tasks.translate.translator`). Importing the package must stay cheap (no
numpy, no numba), so that `rnn-cli --help` and `--version` answer at once: the API names below
are imported on first access (PEP 562).
"""

from __future__ import annotations

__version__ = "0.1.0"

_API = ("Model", "Prediction", "Candidate", "Summary", "Sampling")
_ERRORS = ("RnnCliError", "UsageError", "CorpusError", "ModelFileError", "RnnCliWarning")
__all__ = ["__version__", "train", *_API, "LineScore", "Classifier", "Tagger", "Translator",
           *_ERRORS]


def __getattr__(name: str):
    import importlib

    if name == "train":  # the one way in to training (rnn_cli/training.py)
        return importlib.import_module("rnn_cli.training").train
    if name in _API:
        return getattr(importlib.import_module("rnn_cli.tasks.lm.api"), name)
    if name == "Classifier":  # a classification model (rnn_cli/tasks/classify/predict.py)
        return importlib.import_module("rnn_cli.tasks.classify.predict").Classifier
    if name == "Tagger":  # a tagging model (rnn_cli/tasks/tag/tagger.py)
        return importlib.import_module("rnn_cli.tasks.tag.tagger").Tagger
    if name == "Translator":  # a translation model (rnn_cli/tasks/translate/translator.py)
        return importlib.import_module("rnn_cli.tasks.translate.translator").Translator
    if name == "LineScore":  # one row of Model.score_lines
        return importlib.import_module("rnn_cli.tasks.lm.score").LineScore
    if name in _ERRORS:
        return getattr(importlib.import_module("rnn_cli.errors"), name)
    raise AttributeError(f"module 'rnn_cli' has no attribute {name!r}")
