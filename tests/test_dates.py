"""The shipped dates task (corpora/dates.py, corpora/dates/): reproducible, unambiguous, split
without overlap, and read by the translator's reader."""

from __future__ import annotations

import datetime
import importlib.util
import re
from pathlib import Path

import pytest

from rnn_cli.tasks.translate import reader

CORPORA = Path(__file__).resolve().parents[1] / "corpora"


@pytest.fixture(scope="module")
def dates():
    spec = importlib.util.spec_from_file_location("dates", CORPORA / "dates.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_shipped_files_are_what_the_generator_writes(dates):
    assert dates.main(["--check"]) == 0
    texts = dates.generate()
    assert dates.generate() == texts  # seeded
    assert dates.generate(seed=1) != texts


def test_splits_are_disjoint_valid_and_varied(dates):
    sources = {}
    for split, n in dates.SIZES.items():
        pairs = reader.read_pairs(str(CORPORA / "dates" / f"{split}.tsv"))
        assert len(pairs) == n and not pairs.report.messages()
        sources[split] = set(pairs.src)
        for tgt in pairs.tgt:
            datetime.date.fromisoformat(tgt)
    assert not sources["train"] & sources["test"]
    assert not sources["train"] & sources["valid"] and not sources["valid"] & sources["test"]
    assert len(dates.FORMATS) >= 10


@pytest.mark.parametrize("day", [datetime.date(1999, 3, 3), datetime.date(2001, 11, 22),
                                 datetime.date(1950, 1, 1), datetime.date(2049, 12, 31)])
def test_every_format_reads_back_to_its_date(dates, day):
    """Each format, parsed by its own convention, gives back the date: one answer per source."""
    months = {m.lower(): i + 1 for i, m in enumerate(dates.MONTHS)}
    months |= {m[:3]: i for m, i in list(months.items())}
    for name, (write, two_digit) in dates.FORMATS.items():
        text = write(day)
        nums = [int(x) for x in re.findall(r"\d+", text)]
        words = [w.lower() for w in re.findall(r"[A-Za-z]+", text)]
        month = next((months[w] for w in words if w in months), None)
        if name == "yyyymmdd":
            y, m, d = nums[0] // 10000, nums[0] // 100 % 100, nums[0] % 100
        elif month is not None:
            m, d, y = month, nums[0], nums[-1]
        elif "/" in text and name.startswith("yyyy"):
            y, m, d = nums
        elif "/" in text:
            m, d, y = nums
        else:
            d, m, y = nums
        if two_digit:
            y += 1900 if y >= 50 else 2000
        assert datetime.date(y, m, d) == day, (name, text)
    assert dates.ordinal(11) == "11th" and dates.ordinal(22) == "22nd" and dates.ordinal(3) == "3rd"
