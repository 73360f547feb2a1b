"""Text classification (`--task classify`): many-to-one, the seed's sentiment example.

    reader.py    labelled lines (fastText's `__label__X text`, `label<TAB>text`), bad-line policy
    model.py     embedding -> shared encoder -> pooling -> linear -> softmax; the model file format
    metrics.py   accuracy, macro-F1, per-label scores, confusion matrix, unseen gold labels
    run.py       training runs (ClassifyRun: start, resume, run, save) on tasks/fit.py
    predict.py   a loaded model (Classifier: probs, predict a stream of lines, test)
"""

from rnn_cli.tasks.classify.predict import Classifier, Prediction
from rnn_cli.tasks.classify.run import ClassifyRun

__all__ = ["Classifier", "ClassifyRun", "Prediction"]
