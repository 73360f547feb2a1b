"""The classifier's defaults: what `rnn-cli train --task classify` uses for a flag not given
(the model's `ClassifyConfig` and the run's `FitConfig` take them from here). No numpy: the
`--help` of `rnn-cli train` shows them.

Why these (bench/CLASSIFY.md has the measurements): a word-level bidirectional recurrent
network whose states are max-pooled over time is the usual strong recurrent sentence classifier
(Conneau et al. 2017, "InferSent": BiLSTM-max); on SST-5 phrases, in the same epochs, the GRU
reached a better validation accuracy than the LSTM (45.2 % against 44.3 % after ~2 epochs) at
~25 % less time a step, and lower-casing helped too (42.2 % against 40.7 % after one epoch).
Word tokens make a sentence ~5x shorter than its characters, so each step of training sees
more text; for texts of a single word (names, codes) a word vocabulary would see each once, so
the level falls back to char (run.choose_level). Validation at each epoch's end, or every
EVAL_STEPS steps when an epoch is longer (a 160k-example epoch is minutes long: the model kept
is then chosen among more than a handful).
"""

from __future__ import annotations

LEVEL = "word"  # char when most training texts are single words
CELL = "gru"
HIDDEN = 128  # per direction
EMBED = 128
LAYERS = 1
BIDIRECTIONAL = True
POOL = "max"
DROPOUT = 0.3
LOWER = True  # lower-case the text (word and char level)
MAX_LEN = 400  # tokens of an example read, at most; the rest is cut (and counted)
EPOCHS = 10.0  # when no --steps, --epochs or --max-seconds is given
EVAL_STEPS = 1000  # validate at least this often (steps) when an epoch is longer
METRICS = ("accuracy", "macro_f1", "loss")  # --metric; the first is the default
