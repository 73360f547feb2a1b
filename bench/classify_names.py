#!/usr/bin/env python3
"""Surname -> language, the second set of bench/classify.py: surnames of ten languages written
in the Latin alphabet, from the name lists that ship inside the Faker package (PyPI `faker`, MIT
licence; `faker.providers.person.<locale>.Provider.last_names`), in the spirit of PyTorch's
"classifying names with a character-level RNN" tutorial. A surname found in the lists of two
languages is left out (it says nothing about either). Seeded 80/10/10 split into OUT/train.txt,
dev.txt, test.txt as `__label__Language Surname` lines; nothing is downloaded.

    python classify_names.py OUT_DIR          (needs `pip install faker`)
"""

from __future__ import annotations

import importlib
import json
import random
import sys
from pathlib import Path

LOCALES = {"de_DE": "German", "en_US": "English", "es_ES": "Spanish", "fi_FI": "Finnish",
           "fr_FR": "French", "it_IT": "Italian", "nl_NL": "Dutch", "sv_SE": "Swedish",
           "hr_HR": "Croatian", "et_EE": "Estonian"}
SEED = 26


def surnames(locale: str) -> set[str]:
    p = importlib.import_module(f"faker.providers.person.{locale}").Provider
    names = getattr(p, "last_names", None)
    if names is None:
        names = [*getattr(p, "last_names_male", ()), *getattr(p, "last_names_female", ())]
    return {n.strip() for n in names if n.strip()}


def main(out: Path) -> dict:
    import faker

    by_lang = {lang: surnames(loc) for loc, lang in LOCALES.items()}
    seen: dict[str, int] = {}
    for names in by_lang.values():
        for n in names:
            seen[n] = seen.get(n, 0) + 1
    rows = sorted((lang, n) for lang, names in by_lang.items() for n in names if seen[n] == 1)
    random.Random(SEED).shuffle(rows)
    k = len(rows) // 10
    parts = {"test.txt": rows[:k], "dev.txt": rows[k:2 * k], "train.txt": rows[2 * k:]}
    out.mkdir(parents=True, exist_ok=True)
    for name, part in parts.items():
        (out / name).write_text("".join(f"__label__{lang} {n}\n" for lang, n in part),
                                encoding="utf-8")
    info = {"faker": faker.VERSION, "languages": len(LOCALES), "names": len(rows),
            "dropped_shared": sum(1 for c in seen.values() if c > 1),
            **{name: len(part) for name, part in parts.items()}}
    (out / "PROVENANCE.json").write_text(json.dumps(info, indent=1))
    return info


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
