"""Translation metrics (tasks/translate/metrics.py): BLEU/chrF are sacrebleu's own numbers with
its signature, a missing sacrebleu says how to install it, exact match and perplexity."""

from __future__ import annotations

import math
import sys

import pytest

from rnn_cli.errors import RnnCliError
from rnn_cli.tasks.translate import metrics

HYPS = ["A man in an orange hat staring at something.", "A dog runs on the grass.",
        "Two kids play."]
REFS = ["A man in an orange hat starring at something.", "A dog is running on green grass.",
        "Two children are playing."]


def test_bleu_and_chrf_are_sacrebleus():
    sacrebleu = pytest.importorskip("sacrebleu")  # the `mt` extra; `make test` installs it
    got = metrics.bleu_chrf(HYPS, REFS)
    assert got["bleu"] == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS]).score, abs=1e-12)
    assert got["chrf"] == pytest.approx(sacrebleu.corpus_chrf(HYPS, [REFS]).score, abs=1e-12)
    assert got["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp")
    assert "version:" in got["chrf_signature"]
    assert 0.0 < got["bleu"] < 100.0
    assert metrics.bleu_chrf(REFS, REFS)["bleu"] == pytest.approx(100.0)
    assert metrics.sentence_bleu(REFS[0], REFS[0]) == pytest.approx(100.0)


def test_without_sacrebleu_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sacrebleu", None)  # `import sacrebleu` now fails
    with pytest.raises(RnnCliError, match="need sacrebleu") as e:
        metrics.bleu_chrf(HYPS, REFS)
    assert "pip install 'rnn-cli[mt]'" in e.value.hint


def test_exact_match_and_perplexity():
    assert metrics.exact_match(["1999-03-03", " 2001-01-01 "], ["1999-03-03", "2001-01-02"]) == 0.5
    assert metrics.exact_match([], []) == 0.0
    with pytest.raises(ValueError):
        metrics.exact_match(["a"], [])
    assert metrics.perplexity(2 * math.log(3.0), 2) == pytest.approx(3.0)
    assert metrics.perplexity(1e6, 1) == math.inf
    assert math.isnan(metrics.perplexity(0.0, 0))


def test_only_the_metrics_module_imports_sacrebleu():
    from pathlib import Path

    pkg = Path(metrics.__file__).resolve().parents[2]
    users = [p.relative_to(pkg).as_posix() for p in pkg.rglob("*.py")
             if "import sacrebleu" in p.read_text()]
    assert users == ["tasks/translate/metrics.py"]
