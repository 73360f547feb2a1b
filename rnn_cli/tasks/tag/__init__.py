"""Tagging (`--task tag`): one label per token, read with both directions (many-to-many,
Tx = Ty; the seed's named-entity example).

    options.py   the defaults of `rnn-cli train --task tag` (no numpy)
    reader.py    CoNLL column files, CoNLL-U and raw text, read sentence by sentence; the format
                 sniffer for guessing --task
    tagset.py    tag schemes (BIO, IOB1, BIOES, none), allowed transitions, spans, repair
    metrics.py   token accuracy; conlleval entity precision / recall / F1, per type
    data.py      word and character vocabularies, sentences as flat ids, batches
    model.py     word embeddings + character encoder -> shared encoder -> softmax or CRF;
                 constrained decoding; the model file format
    evaluate.py  decoding whole data sets, the validation metrics
    infer.py     a loaded tagger's forward pass with each word's first input product memoized
    run.py       training runs (TagRun: start, resume, run, save) on tasks/fit.py
    task.py      the task of `rnn_cli.train` and `rnn-cli test`
    tagger.py    a loaded model (Tagger: tag a stream, probabilities, spans, test)

Its kernels are `kernels/crf.py` (the CRF layer, Viterbi) and `kernels/token_softmax.py` (the
per-token softmax loss). Nothing is imported here (`rnn-cli --help` reads `options` without
numpy); import the modules themselves.
"""
