"""The classifier's defaults: what `rnn-cli train --task classify` uses for a flag not given
(the model's `ClassifyConfig` and the run's `FitConfig` take them from here). No numpy: the
`--help` of `rnn-cli train` shows them.

Why these (bench/CLASSIFY.md has the measurements): a word-level bidirectional LSTM whose
states are max-pooled over time is the usual strong recurrent sentence classifier (Conneau et
al. 2017, "InferSent": BiLSTM-max), and word tokens make a sentence ~5x shorter than its
characters, so each step of training sees more text; for texts of a single word (names, codes)
a word vocabulary would see each once, so the level falls back to char (run.choose_level).
"""

from __future__ import annotations

LEVEL = "word"  # char when most training texts are single words
CELL = "lstm"
HIDDEN = 128  # per direction
EMBED = 128
LAYERS = 1
BIDIRECTIONAL = True
POOL = "max"
DROPOUT = 0.3
MAX_LEN = 400  # tokens of an example read, at most; the rest is cut (and counted)
EPOCHS = 10.0  # when no --steps, --epochs or --max-seconds is given
METRICS = ("accuracy", "macro_f1", "loss")  # --metric; the first is the default
