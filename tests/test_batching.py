"""rnn_cli/batching.py: length-bucketed batches of examples, deterministic, resumable."""

from __future__ import annotations

import numpy as np
import pytest

from rnn_cli.batching import CutReport, ExampleBatches, cut_to_max_len, eval_batches


def lengths_of(n=103, seed=0):
    return np.random.default_rng(seed).integers(1, 60, n)


def test_every_example_once_per_epoch_in_batches_sorted_longest_first():
    lens = lengths_of()
    b = ExampleBatches(lens, batch_size=8, seed=3)
    for epoch in range(3):
        plan = b.plan(epoch)
        seen = np.concatenate(plan)
        assert sorted(seen.tolist()) == list(range(lens.size))
        assert all(1 <= len(x) <= 8 for x in plan)
        assert all((np.diff(lens[x]) <= 0).all() for x in plan)
    assert not all(np.array_equal(x, y) for x, y in zip(b.plan(0), b.plan(1)))


def test_buckets_keep_padding_low():
    lens = lengths_of(2000)
    plan = ExampleBatches(lens, batch_size=16, seed=0).plan(0)
    padded = sum(len(x) * lens[x].max() for x in plan)
    assert padded < 1.1 * lens.sum()  # a random cut pads ~1.7x here
    rand = np.random.default_rng(0).permutation(lens.size)
    assert sum(16 * lens[rand[a:a + 16]].max() for a in range(0, 2000, 16)) > 1.5 * lens.sum()


def test_same_seed_same_batches_other_seed_others():
    lens = lengths_of()
    a, b, c = (ExampleBatches(lens, 8, seed=s) for s in (5, 5, 6))
    for _ in range(40):  # across an epoch boundary
        x, y, z = a.next(), b.next(), c.next()
        assert np.array_equal(x, y)
    assert len(a.plan(0)) == 13 and a.epoch == 3 and 3.0 < a.epochs_done() < 3.1
    assert any(not np.array_equal(p, q) for p, q in zip(a.plan(0), c.plan(0)))


def test_resume_from_the_state_dict_continues_exactly():
    lens = lengths_of()
    run = ExampleBatches(lens, 8, seed=1)
    first = [run.next() for _ in range(17)]
    state = run.state_dict()
    rest = [run.next() for _ in range(20)]
    resumed = ExampleBatches(lens, 8, seed=1)
    resumed.load_state_dict(state)
    assert all(np.array_equal(x, y) for x, y in zip(rest, [resumed.next() for _ in range(20)]))
    assert len(first) == 17
    with pytest.raises(ValueError):
        resumed.load_state_dict({"epoch": 0, "position": 10**6})


def test_token_cap_limits_padded_positions():
    lens = lengths_of(500)
    plan = ExampleBatches(lens, 64, seed=0, max_tokens=200).plan(0)
    assert all(len(x) * lens[x].max() <= 200 or len(x) == 1 for x in plan)
    assert sorted(np.concatenate(plan).tolist()) == list(range(500))
    huge = ExampleBatches(np.array([500, 3, 3]), 64, seed=0, max_tokens=100).plan(0)
    assert sorted(len(x) for x in huge) == [1, 2]  # a too-long example alone


def test_eval_batches_sorted_and_complete():
    lens = lengths_of(50)
    batches = eval_batches(lens, 7)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(50)) and (np.diff(lens[flat]) <= 0).all()
    assert [len(x) for x in batches] == [7] * 7 + [1]


def test_cut_to_max_len_counts_what_it_cut():
    seqs = [np.arange(n) for n in (3, 10, 5, 12)]
    out, rep = cut_to_max_len(seqs, 5)
    assert [s.shape[0] for s in out] == [3, 5, 5, 5]
    assert rep == CutReport(5, examples=2, tokens=5 + 7, longest=12)
    same, none = cut_to_max_len(seqs, 0)
    assert same == seqs and none.examples == 0 and none.longest == 12


def test_bad_arguments():
    with pytest.raises(ValueError):
        ExampleBatches(np.array([], np.int64), 8, 0)
    with pytest.raises(ValueError):
        ExampleBatches(np.array([1, 2]), 0, 0)
