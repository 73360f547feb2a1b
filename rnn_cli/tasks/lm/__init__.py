"""The language model: a recurrent network over a running text that predicts each next token
(many-to-many), trained by truncated backpropagation through time; sampled, scored and asked
for next tokens. `task.py` is what `rnn_cli.training` drives (`rnn_cli.tasks` has the protocol).
"""
