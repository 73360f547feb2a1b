"""params.ParamSet (the task models' flat buffer with named views) and optimizer.task_lr_pieces."""

from __future__ import annotations

import numpy as np
import pytest

from rnn_cli.config import ModelConfig
from rnn_cli.optimizer import TWO_BIAS_LR_SCALE, lr_pieces, merge_pieces, task_lr_pieces
from rnn_cli.params import ParamSet, Params, param_shapes

SHAPES = {"emb.W": (4, 3), "enc.b_a_l0": (6,), "head.W": (2, 5), "head.b": (2,)}


def test_views_cover_the_buffer_in_the_dict_order():
    p = ParamSet(SHAPES)
    assert len(p) == 12 + 6 + 10 + 2 and p.flat.dtype == np.float32
    assert p.spans == {"emb.W": (0, 12), "enc.b_a_l0": (12, 18), "head.W": (18, 28),
                       "head.b": (28, 30)}
    for name, shape in SHAPES.items():
        assert p[name].shape == shape and np.shares_memory(p[name], p.flat)
    p["head.W"][1, 4] = 7.0
    assert p.flat[27] == 7.0


def test_zeros_like_and_copy_keep_the_layout():
    p = ParamSet(SHAPES, np.float64)
    p.flat[:] = np.arange(len(p))
    z, c, c32 = p.zeros_like(), p.copy(), p.copy(np.float32)
    assert type(z) is ParamSet and z.shapes == p.shapes and not z.flat.any()
    assert c.flat.dtype == np.float64 and np.array_equal(c.flat, p.flat)
    assert c32.flat.dtype == np.float32 and np.array_equal(c32["head.b"], [28, 29])
    c.flat[0] = -1
    assert p.flat[0] == 0  # a copy, not a view


def test_aliases_share_a_block():
    p = ParamSet({"W_emb": (3, 2), "b": (2,)}, aliases={"W_out": "W_emb"})
    assert len(p) == 8 and np.shares_memory(p["W_out"], p["W_emb"])
    z = p.zeros_like()
    assert np.shares_memory(z["W_out"], z.flat) and z.aliases == {"W_out": "W_emb"}


@pytest.mark.parametrize("tie", [False, True])
def test_params_is_the_lm_case_with_the_same_buffer_order(tie):
    cfg = ModelConfig(cell="gru", hidden=4, layers=2, vocab_size=5, embed=4 if tie else 0,
                      tie_weights=tie)
    p = Params(cfg)
    assert isinstance(p, ParamSet) and p.shapes == param_shapes(cfg)
    starts = [p.spans[n][0] for n in param_shapes(cfg)]
    assert starts == sorted(starts) and starts[0] == 0
    assert type(p.zeros_like()) is Params and p.copy().cfg is cfg
    assert ("W_emb" in p.views and np.shares_memory(p.W_ya, p.W_emb)) == tie


def test_task_lr_pieces_scale_named_elements():
    p = ParamSet(SHAPES)
    pieces = task_lr_pieces(p, [("enc.b_a_l0", 0, 4, TWO_BIAS_LR_SCALE), ("head.b", 0, None, 3.0)])
    assert pieces == [(0, 12, 1.0), (12, 16, 2.0), (16, 28, 1.0), (28, 30, 3.0)]
    with pytest.raises(ValueError):
        task_lr_pieces(p, [("head.b", 0, 3, 2.0)])  # past the block's end
    with pytest.raises(ValueError):
        merge_pieces(10, [(0, 5, 2.0), (4, 6, 2.0)])  # overlapping


def test_lm_lr_pieces_unchanged():
    cfg = ModelConfig(cell="gru", hidden=4, layers=2, vocab_size=5)
    p = Params(cfg)
    a, _ = p.spans["b_a"]
    assert lr_pieces(p, "adam") == [(0, 60, 32.0), (60, a, 1.0), (a, a + 8, 2.0),
                                    (a + 8, a + 12, 1.0), (a + 12, a + 20, 2.0),
                                    (a + 20, len(p), 1.0)]
