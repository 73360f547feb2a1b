"""The tagger's defaults: what `rnn-cli train --task tag` uses for a flag not given (the model's
`TagConfig` and the run's `FitConfig` take them from here). No numpy: the `--help` of `rnn-cli
train` shows them.

Why these (bench/TAG.md has the measurements): a word embedding and a character BiLSTM per word
under a BiLSTM over the sentence is the standard neural tagger (Lample et al. 2016, Plank et al.
2016); on UD English EWT the character encoder's size is what mattered most (an OOV word's tag
comes from its spelling): 64 + 64 units over 48-wide character embeddings reached 94.7 % UPOS
where 32 + 32 over 32 stayed at 93.9 %. Words seen once in training are <UNK> for the word
embedding (`MIN_COUNT`), so <UNK> is trained on rare words and an unseen word gets it plus its
characters; the word embedding reads lower-cased words (the characters keep the case).
"""

from __future__ import annotations

CELL = "lstm"
HIDDEN = 128  # per direction, the word encoder
LAYERS = 1
BIDIRECTIONAL = True
EMBED = 100  # word embeddings
CHAR_EMBED = 50
CHAR_HIDDEN = 100  # per direction, the character encoder; 0: none
DROPOUT = 0.33  # the word encoder's input, between its layers, before the output layer
CRF = False
LOWER = True  # the word embedding of the lower-cased word
MAX_LEN = 0  # training sentences cut to N tokens (0: never)
MIN_COUNT = 2  # words seen fewer times in training are <UNK> for the word embedding
BATCH_SIZE = 16  # sentences
LR = 2e-3
EPOCHS = 20.0  # when no --steps, --epochs or --max-seconds is given
PATIENCE = 5  # validations without a better --metric before stopping
VAL_FRAC = 0.1  # held out without --valid (a seeded random choice of the sentences)
METRICS = ("f1", "accuracy", "precision", "recall", "loss")  # f1 etc.: entity tag sets only
