"""House rules that a grep (or the ast module) can check (STYLE §3.1, §3.3)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

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


def _imports(path: Path) -> set[str]:
    """The rnn_cli modules `path` imports, at module level or inside functions alike."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)  # `from rnn_cli import cli_train`: the submodules too
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def _import_graph() -> dict[str, set[str]]:
    mods = {".".join(p.relative_to(PKG.parent).with_suffix("").parts).removesuffix(".__init__"): p
            for p in _sources()}
    return {m: {d for d in _imports(p) if d in mods and d != m} for m, p in mods.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of `graph` as [a, b, ..., a], or [] when the imports run one way."""
    state, path = {}, []

    def visit(m):
        state[m] = "open"
        path.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == "open":
                return path[path.index(d):] + [d]
            if d not in state and (found := visit(d)):
                return found
        state[m] = "done"
        path.pop()
        return []

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return []


def test_the_cycle_finder_sees_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_imports_run_one_way():
    """cli -> cli_<command> -> flags and the engine; no module imports back up (lazy imports
    inside functions count: they are cycles all the same)."""
    graph = _import_graph()
    assert not _cycle(graph), " -> ".join(_cycle(graph))
    commands = {m for m in graph if m.startswith("rnn_cli.cli_")}
    assert {"rnn_cli.cli_train", "rnn_cli.cli_sample", "rnn_cli.cli_query"} <= commands
    back = {m for m, deps in graph.items() if "rnn_cli.cli" in deps} - {"rnn_cli.__main__"}
    assert not back, f"{sorted(back)} import rnn_cli.cli (only __main__ may)"
    sideways = {m: sorted(deps & commands) for m, deps in graph.items()
                if m in commands and deps & commands}
    assert not sideways, f"command modules import each other: {sideways}"


# What the shared engine (the modules at the package's top level) may import of a task's own
# modules, and why; every other import of rnn_cli.tasks.<kind> from there is a layout error.
SHARED_TO_TASK = {
    "rnn_cli.checkpoint": {"rnn_cli.tasks.lm.classes"},  # the LM's word classes, checked on load
    "rnn_cli.optimizer": {"rnn_cli.tasks.lm.sparse"},  # typing only: the LM's sparse row updates
    "rnn_cli.cli_train": {"rnn_cli.tasks.lm.options",  # --help shows the tasks' defaults
                          "rnn_cli.tasks.classify.options", "rnn_cli.tasks.tag.options",
                          "rnn_cli.tasks.translate.options"},
    "rnn_cli.flags": {"rnn_cli.tasks.classify.options", "rnn_cli.tasks.tag.options",  # train's
                      "rnn_cli.tasks.translate.options"},  # task flag groups name their defaults
    "rnn_cli.cli_translate": {"rnn_cli.tasks.translate.translator",  # translate: the API, and
                              "rnn_cli.tasks.translate.heatmap"},  # --attention-out's writer
    "rnn_cli.cli_sample": {"rnn_cli.tasks.lm.api"},  # the LM's verbs (sample, score, info)
    "rnn_cli.cli_query": {"rnn_cli.tasks.lm.api", "rnn_cli.tasks.lm.dask_score",
                          "rnn_cli.tasks.lm.model_info"},
    "rnn_cli.cli_predict": {"rnn_cli.tasks.lm.api", "rnn_cli.tasks.lm.model_info",  # predict:
                            "rnn_cli.tasks.classify.predict"},  # next tokens, or labels
    "rnn_cli.cli_tag": {"rnn_cli.tasks.tag.reader", "rnn_cli.tasks.tag.tagger",  # tag: the
                        "rnn_cli.tasks.tag.tagset"},  # Tagger, its input formats and spans
}


def _task_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 3 and parts[1] == "tasks" else None


def test_tasks_import_no_other_task():
    """Each task is a room of its own: it shares the engine, never another task's modules."""
    graph = _import_graph()
    crossing = {m: sorted(d for d in deps if _task_of(d) not in (None, _task_of(m)))
                for m, deps in graph.items() if _task_of(m)}
    assert not {m: d for m, d in crossing.items() if d}, crossing


def test_shared_engine_imports_tasks_only_where_listed():
    graph = _import_graph()
    shared = {m for m in graph if m.count(".") == 1}  # rnn_cli.<module>: not kernels/, cuda/
    assert {"rnn_cli.training", "rnn_cli.corpus", "rnn_cli.params"} <= shared
    found = {m: {d for d in graph[m] if _task_of(d)} for m in shared}
    extra = {m: sorted(d - SHARED_TO_TASK.get(m, set())) for m, d in found.items()}
    assert not {m: d for m, d in extra.items() if d}, extra
    stale = {m: sorted(d - found.get(m, set())) for m, d in SHARED_TO_TASK.items()}
    assert not {m: d for m, d in stale.items() if d}, f"SHARED_TO_TASK lists gone imports: {stale}"


def test_license_is_an_spdx_string():
    """A `license = {text = ...}` table makes every `pip install` print a setuptools deprecation."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    meta = tomllib.loads((PKG.parent / "pyproject.toml").read_text())
    assert isinstance(meta["project"]["license"], str), meta["project"]["license"]
    assert "setuptools>=77" in meta["build-system"]["requires"]  # the first to read the string
