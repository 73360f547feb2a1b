"""The whole translator network (tasks/translate/model.py): source embedding -> shared encoder ->
attentional decoder. Central finite differences of the loss with respect to every parameter
(float64, tiny sizes, dropout masks drawn the same each time), padding inert, the trainer learning
a toy task, and decoding agreeing with the teacher-forced loss."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import FD_EPS, FD_MAX_REL_ERR, FD_MEAN_REL_ERR
from rnn_cli.tasks.translate.model import Encoded, TranslateConfig, TranslatorNet
from rnn_cli.tasks.translate.search import decode_all
from rnn_cli.vocab import Vocab

FD_STEP = 10 * FD_EPS  # gated cells (tests/test_cells.py)
SRC = Vocab("word", ["<EOS>", "<UNK>", "a", "b", "c"])
TGT = Vocab("word", ["<EOS>", "<UNK>", "w", "x", "y", "z"])


def net_and_data(cell, layers=2, bidirectional=True, attention="additive", proj=2, tie=True,
                 dropout=0.0, eps=0.0, seed=0):
    cfg = TranslateConfig(cell=cell, hidden=3, layers=layers, bidirectional=bidirectional,
                          embed=2, dec_hidden=4 if attention != "dot" else 0,
                          attention=attention, attn_size=3, proj=proj, tie_weights=tie,
                          dropout=dropout).validate()
    net = TranslatorNet(cfg, SRC, TGT, dtype=np.float64, label_smoothing=eps)
    net.init(np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    src = [rng.integers(0, len(SRC), n).astype(np.int32) for n in (4, 2, 3)]
    tgt = [rng.integers(0, len(TGT), n).astype(np.int32) for n in (3, 3, 1)]
    return net, Encoded(src, tgt, ["", "", ""])


CASES = [dict(cell="gru"), dict(cell="lstm", layers=1, attention="general", proj=0, tie=False),
         dict(cell="gru", bidirectional=False, attention="dot", dropout=0.3, eps=0.1),
         dict(cell="lstm", attention="none", proj=3, tie=False)]
IDS = ["gru-bi2-additive-tied", "lstm-bi-general", "gru-uni-dot-dropout-smoothed",
       "lstm-none-proj"]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_every_gradient_matches_finite_differences(case):
    net, data = net_and_data(**case)
    idx = np.array([0, 1, 2])
    idx = idx[np.argsort(-data.lengths[idx], kind="stable")]
    masks = (lambda: np.random.default_rng(9)) if net.cfg.dropout else (lambda: None)
    net.forward(data, idx, masks())
    grads = net.params.zeros_like()
    net.backward(grads)
    flat = net.params.flat
    numeric = np.zeros(flat.shape[0])
    for i in range(flat.shape[0]):
        keep = flat[i]
        flat[i] = keep + FD_STEP
        up = net.forward(data, idx, masks())
        flat[i] = keep - FD_STEP
        down = net.forward(data, idx, masks())
        flat[i] = keep
        numeric[i] = (up - down) / (2 * FD_STEP)
    err = np.abs(grads.flat - numeric) / np.maximum(np.abs(grads.flat) + np.abs(numeric), 1e-4)
    worst = int(np.argmax(err))
    name = next(n for n, (a, b) in net.params.spans.items() if a <= worst < b)
    assert err.max() < FD_MAX_REL_ERR, (name, grads.flat[worst], numeric[worst])
    assert err.mean() < FD_MEAN_REL_ERR
    assert np.abs(grads.flat).sum() > 0


def test_batch_order_and_company_do_not_change_an_example():
    """A pair's loss alone equals its share of a batch's (padding and lane order inert)."""
    net, data = net_and_data("gru")
    both = net.forward(data, np.array([0, 1]), None) * net.dec.n_tokens
    alone = [net.forward(data, np.array([i]), None) * net.dec.n_tokens for i in (0, 1)]
    assert both == pytest.approx(sum(alone), rel=1e-12)


def test_greedy_decoding_scores_its_output_as_the_training_pass_does():
    """The log-probability greedy decoding reports for its output equals minus the teacher-forced
    loss of that output (the stepping and the training pass are the same network)."""
    net, data = net_and_data("lstm", attention="general", proj=0, tie=False, seed=3)
    hyps = decode_all(net, data.src, max_len=6)
    for i, (h,) in enumerate(hyps):
        if not h.finished:
            continue
        out = Encoded([data.src[i]], [np.array(h.tokens + [TGT.eos_id], np.int32)], [""])
        loss = net.forward(out, np.array([0]), None) * net.dec.n_tokens
        assert -loss == pytest.approx(h.logprob, rel=1e-9)
