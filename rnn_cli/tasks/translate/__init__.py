"""The translator (encoder-decoder with attention, `train --task translate`): what is its alone.

    decoder.py  the attentional decoder over a teacher-forced batch (forward, backward, loss)
    decode.py   greedy and beam search over a one-step decoder
    reader.py   `source<TAB>target` lines, `--src`/`--tgt` files, translate-time input
    metrics.py  BLEU and chrF (sacrebleu, the optional `mt` extra), exact match, perplexity
The source side goes through the shared encoder (`rnn_cli/encoder.py`); kernels live in
`rnn_cli/kernels/attention.py` and `rnn_cli/kernels/decoder.py`.
"""
