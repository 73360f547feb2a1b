"""Text classification (`--task classify`): many-to-one, the seed's sentiment example.

    options.py   its defaults (no numpy: `rnn-cli train --help` shows them)
    reader.py    labelled lines (fastText's `__label__X text`, `label<TAB>text`), bad-line policy
    model.py     embedding -> shared encoder -> pooling -> linear -> softmax; the model file format
    metrics.py   accuracy, macro-F1, per-label scores, confusion matrix, unseen gold labels
    run.py       training runs (ClassifyRun: start, resume, run, save) on tasks/fit.py
    task.py      the task `rnn_cli.training` drives, and the `rnn-cli test` report
    predict.py   a loaded model (Classifier: probs, predict a stream of lines, test): the API's
                 `rnn_cli.Classifier`

Nothing is imported here, so that the CLI can read `options` without numpy.
"""
