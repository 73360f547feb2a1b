"""The task models beside the language model: one package per kind under `rnn_cli/tasks/`
(`classify/`, ...), sharing the encoder (`rnn_cli/encoder.py`), length batching
(`rnn_cli/batching.py`), the example trainer (`fit.py`), the optimizer and the model files
(`rnn_cli/taskfile.py`). (The task registry and the orchestration come with the layout work.)
"""
