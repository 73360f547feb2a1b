"""The language model: a recurrent network over a running text that predicts each next token
(many-to-many), trained by truncated backpropagation through time; sampled, scored and asked
for next tokens. What is the language model's alone lives here; what every task shares (config,
vocabulary, corpus reading, id cache, parameters, optimizer, model files, kernels) is one level up.

    task.py        the task `rnn_cli.training` drives (`rnn_cli.tasks` has the protocol)
    options.py     its options: the flags it reads, the defaults scaled to the corpus
    windows.py     the train/validation split of the ids and the (T, B) BPTT windows
    network.py     one window forward and backward through the compiled kernels
    classes.py     the class softmax's word classes (Mikolov 2011)
    sparse.py      --updates sparse: zeroing, clipping and updates by rows
    train.py       Trainer: the loop over steps, validation, the model file's content
    sample.py      Sampler: text streamed from a model (temperature, top-k, top-p, beams)
    score.py       Scorer: log-probabilities of lines and texts, the next-token top k
    api.py         the Python API of a model file (`rnn_cli.Model`)
    dask_score.py  `score --dask`: scoring on a Dask cluster (the optional extra)
    model_info.py  what `rnn-cli info` shows of a model
"""
