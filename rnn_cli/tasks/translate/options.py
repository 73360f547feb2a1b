"""The translator's defaults: what `rnn-cli train --task translate` uses for a flag not given (the
model's `TranslateConfig` and its training run take them from here), and `rnn-cli translate`'s.
No numpy: the `--help` of `rnn-cli train` shows them.

Why these (bench/TRANSLATE.md has the measurements): the published network of the course's
example (a bidirectional GRU encoder, additive attention, a GRU decoder; Bahdanau et al. 2015, as
bentrevett/pytorch-seq2seq notebook 3), at 256 units, with the output layer read through a
256-unit projection tied to the target embedding (Luong et al. 2015, Press & Wolf 2017): the
output layer is most of a step's work, and this cuts it about 7x with no loss of BLEU on Multi30k;
label smoothing 0.1 and dropout 0.3 as is usual for a corpus of that size; batches of 64 pairs.
"""

from __future__ import annotations

LEVEL = "word"  # of both sides unless --src-level / --tgt-level say
CELL = "gru"
HIDDEN = 256  # per encoder direction
EMBED = 256
LAYERS = 1  # encoder layers
BIDIRECTIONAL = True
DEC_HIDDEN = 0  # 0: --hidden (dot attention: the encoder's output width, 2 x --hidden when
# bidirectional)
ATTENTION = "additive"
ATTENTIONS = ("none", "dot", "general", "additive")
ATTN_SIZE = 0  # 0: the decoder's state size
PROJ = 256  # 0: logits straight from [state; context; embedding]
TIE_WEIGHTS = True
DROPOUT = 0.3
LABEL_SMOOTHING = 0.1
MAX_LEN = 100  # tokens of a side, <EOS> counted: longer training pairs are left out (counted)
EPOCHS = 10.0  # when no --steps, --epochs or --max-seconds is given
BATCH_SIZE = 64
LR = 2e-3
CLIP = 1.0
METRICS = ("auto", "bleu", "chrf", "exact", "loss")  # --metric; auto: exact for short targets,
# else BLEU (with sacrebleu), else loss
BEAM = 1  # translate: greedy unless --beam K
