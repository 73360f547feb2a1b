"""House rules that a grep can check (STYLE §3.1, §3.3)."""

from __future__ import annotations

import re
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "rnn_cli"


def _sources():
    return sorted(PKG.rglob("*.py"))


def test_only_the_jit_module_sets_fastmath():
    offenders = [p.name for p in _sources() if "fastmath=" in p.read_text()
                 and p.name != "_jit.py"]
    assert not offenders, offenders


def test_kernels_import_only_numpy_numba_and_each_other():
    allowed = {"numpy", "numba", "math", "llvmlite", "ctypes", "glob", "os", "hashlib", "pathlib", "types",
               "__future__", "rnn_cli.kernels"}
    for path in (PKG / "kernels").glob("*.py"):
        found = re.findall(r"^(?:from ([\w.]+) import|import ([\w.]+))", path.read_text(), re.M)
        for mod in (a or b for a, b in found):
            assert any(mod == a or mod.startswith(a + ".") for a in allowed), (path.name, mod)


def test_only_cli_modules_touch_the_terminal_or_exit():
    for path in _sources():
        text = path.read_text()
        if path.name.startswith("cli") or path.name in ("console.py", "__main__.py"):
            continue
        assert "print(" not in text, path.name
        assert "sys.exit" not in text and "sys.stdout" not in text, path.name
        assert "import rich" not in text and "from rich" not in text, path.name


def test_modules_stay_small():
    big = {p.name: n for p in _sources() if (n := len(p.read_text().splitlines())) > 450}
    assert not big, big
