"""Generate the dates task: human-readable dates -> ISO 8601 dates, one pair a line.

    3rd of March 1999<TAB>1999-03-03
    Mar 3, 99<TAB>1999-03-03
    03/03/1999<TAB>1999-03-03

The classic exercise of the deep-learning course the seed comes from (neural machine translation
with attention on dates), rebuilt here with our own generator and a few more formats, so the data
are ours to ship. Seeded: the same command writes byte-identical files.

Conventions, so that every source has exactly one answer:
  * slashes are month first (US: 03/04/1999 is March 4th); dots are day first (German and
    European: 04.03.1999 is March 4th); year-first forms use dashes or slashes (1999/03/04);
  * a two-digit year is 1950-2049 (50-99 -> 19xx, 00-49 -> 20xx), and only dates in that span are
    written with one; four-digit years run 1900-2099;
  * weekday names are the real ones of the date.

Outputs (written to corpora/dates/ by default): train.tsv, valid.tsv, test.tsv; no source string
occurs in two of them (a held-out example is never a training example). UTF-8, "\\n" line ends.

Usage:
    python corpora/dates.py            # write the three files
    python corpora/dates.py --check    # regenerate in memory; exit 1 unless the files match
Standard library only.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20240531
SIZES = {"train": 10_000, "valid": 500, "test": 1_000}
FIRST, LAST = datetime.date(1900, 1, 1), datetime.date(2099, 12, 31)
TWO_DIGIT = (datetime.date(1950, 1, 1), datetime.date(2049, 12, 31))

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]  # not calendar's: it follows the locale
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def ordinal(n: int) -> str:
    """1st 2nd 3rd 4th ... 11th 12th 13th ... 21st 22nd 23rd ... 31st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _mon(d):
    return MONTHS[d.month - 1]


def _abbr(d):
    return MONTHS[d.month - 1][:3]


def _yy(d):
    return f"{d.year % 100:02d}"


# name -> (writer, needs a two-digit-year date); each writer takes a date and returns the text
FORMATS = {
    "ordinal of month year": (lambda d: f"{ordinal(d.day)} of {_mon(d)} {d.year}", False),
    "the ordinal of month, year": (lambda d: f"the {ordinal(d.day)} of {_mon(d)}, {d.year}",
                                   False),
    "month ordinal, year": (lambda d: f"{_mon(d)} {ordinal(d.day)}, {d.year}", False),
    "month day, year": (lambda d: f"{_mon(d)} {d.day}, {d.year}", False),
    "month day year": (lambda d: f"{_mon(d)} {d.day} {d.year}", False),
    "day month year": (lambda d: f"{d.day} {_mon(d)} {d.year}", False),
    "day mon year": (lambda d: f"{d.day} {_abbr(d)} {d.year}", False),
    "dd mon year": (lambda d: f"{d.day:02d} {_abbr(d)} {d.year}", False),
    "mon day, yy": (lambda d: f"{_abbr(d)} {d.day}, {_yy(d)}", True),
    "mon day, year": (lambda d: f"{_abbr(d)} {d.day}, {d.year}", False),
    "weekday, month day, year": (
        lambda d: f"{WEEKDAYS[d.weekday()]}, {_mon(d)} {d.day}, {d.year}", False),
    "wkd day mon year": (lambda d: f"{WEEKDAYS[d.weekday()][:3]} {d.day} {_abbr(d)} {d.year}",
                         False),
    "d-mon-year": (lambda d: f"{d.day}-{_abbr(d)}-{d.year}", False),
    "mm/dd/yyyy": (lambda d: f"{d.month:02d}/{d.day:02d}/{d.year}", False),
    "m/d/yy": (lambda d: f"{d.month}/{d.day}/{_yy(d)}", True),
    "dd.mm.yyyy": (lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}", False),
    "d.m.yy": (lambda d: f"{d.day}.{d.month}.{_yy(d)}", True),
    "yyyy/mm/dd": (lambda d: f"{d.year}/{d.month:02d}/{d.day:02d}", False),
    "yyyymmdd": (lambda d: f"{d.year}{d.month:02d}{d.day:02d}", False),
    "MONTH DAY, YEAR": (lambda d: f"{_mon(d).upper()} {d.day}, {d.year}", False),
    "day month lower": (lambda d: f"{d.day} {_mon(d).lower()} {d.year}", False),
}


def _random_date(rng: random.Random, two_digit: bool) -> datetime.date:
    lo, hi = TWO_DIGIT if two_digit else (FIRST, LAST)
    return lo + datetime.timedelta(days=rng.randrange((hi - lo).days + 1))


def generate(seed: int = SEED, sizes: dict[str, int] | None = None) -> dict[str, str]:
    """{split: file text}: pairs drawn with formats in turn at random, sources unique overall."""
    sizes = sizes or SIZES
    rng = random.Random(seed)
    names = sorted(FORMATS)
    seen: set[str] = set()
    out = {}
    for split, n in sizes.items():
        lines = []
        while len(lines) < n:
            writer, two_digit = FORMATS[names[rng.randrange(len(names))]]
            d = _random_date(rng, two_digit)
            src = writer(d)
            if src in seen:
                continue
            seen.add(src)
            lines.append(f"{src}\t{d.isoformat()}\n")
        out[split] = "".join(lines)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(HERE / "dates"), help="folder of the three files")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--check", action="store_true", help="compare with the files, write nothing")
    a = p.parse_args(argv)
    out = Path(a.out)
    texts = generate(a.seed)
    bad = 0
    for split, text in texts.items():
        path = out / f"{split}.tsv"
        data = text.encode("utf-8")
        info = f"{path}: {len(data):,} bytes, {text.count(chr(10)):,} pairs, sha256 " \
               f"{hashlib.sha256(data).hexdigest()}"
        if a.check:
            same = path.exists() and path.read_bytes() == data
            bad += not same
            print(f"{'ok' if same else 'DIFFERS'} {info}", file=sys.stderr)
        else:
            out.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            print(info, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
