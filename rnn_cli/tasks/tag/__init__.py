"""The tagger (`--task tag`): one label per token, read with both directions.

What lives here: the readers of CoNLL column files, CoNLL-U and raw text (`reader`), tag schemes,
allowed transitions and spans (`tagset`), and the scorer (`metrics`: token accuracy, conlleval's
entity precision / recall / F1). Its kernels are `kernels/crf.py` (the CRF layer, Viterbi) and
`kernels/token_softmax.py` (the per-token softmax loss).
"""
