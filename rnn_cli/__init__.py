"""rnn-cli: train recurrent-network language models on a text file and stream text from them.

Only the version lives here: importing the package must stay cheap (no numpy, no numba), so that
`rnn-cli --help` and `--version` answer at once.
"""

__version__ = "0.1.0"
