"""The docs run: the commands README.md and docs/*.md show a reader, and their links (issue 29).

Marking. A fenced block runs when HTML comments stand on the lines just above its opening fence
(invisible on the rendered page), one setting a comment:

    <!-- run -->                 run it; it must exit 0
    <!-- run: exit N -->         it must exit N (an error shown on purpose)
    <!-- run: stdout REGEX -->   its stdout must match REGEX (re.search, MULTILINE)
    <!-- run: stderr REGEX -->   its stderr likewise

A `bash` block runs command by command (a line, or lines joined by a trailing backslash; a
variable or `cd` does not carry over to the next command), as `bash -e` would: the first failing
command stops the block, and a pipeline counts as its last command. A `python` block runs as a
script with this Python. Whatever a block expects, its stderr holds no Python traceback, and a
block expected to exit 0 has no `rnn-cli: error:` line either (so a failing command at the head
of a pipe is seen). Blocks that cannot run here (a Dask cluster, a GPU, a 30-minute benchmark)
stay unmarked.

Running. Each page runs in a folder of its own, its blocks in order (a block may use what an
earlier block of the page made), with `RNN_CLI_HOME` in that folder and `NO_COLOR=1`. Every
command line is shrunk by tests/docs_cli.py (the rule is that module's docstring: one thread;
`train` makes a tiny model, H 8, 3 steps). A plain `rnn-cli ...` command (no pipe, redirection
or expansion) runs in this process through `rnn_cli.cli.main`, as clihelp.run_cli runs it (a
process would cost ~1 CPU-second of start-up and kernel loading, and the point here is what the
command accepts and writes); anything else runs under `bash -c`, with `rnn-cli` on PATH being
this checkout's CLI through tests/docs_cli.py. The README's folder holds only `corpora/` (this
checkout's), so the tour is checked to stand on its own. Every docs/ page's folder also holds
these fixtures, made once:

    corpus.txt, valid.txt, test.txt   about 20 kB, 3 kB and 3 kB of corpora/shakespeare.txt
    chapter1.txt, sentences.txt, big.txt   2 kB, 50 lines and 200 lines of it
    ptb.train.txt, ptb.valid.txt, ptb.test.txt   lower-cased words of it, one sentence a line,
                                      also as ../shared/corpora/ptb/ptb.*.txt
    my.npz, model.npz, shakespeare.npz   a tiny char model of corpus.txt (also the store's char.npz)
    words.npz                         a tiny word model of corpus.txt (class softmax, as the
                                      defaults give it; also the store's word.npz)

Cost (42 commands today): 9 go through bash, starting 9 rnn-cli processes at ~1 CPU-second each
(interpreter, numba import, cached kernels); the rest run in this process in milliseconds; the two
Python blocks run as scripts. About 15 CPU-seconds in all, run alone on a 2-core machine.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from clihelp import ROOT, SHAKESPEARE, env, ok, run_cli

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_LIMIT = 12 * 1024  # bytes: the front page a newcomer reads in five minutes (issue 29)
# Pages written on another branch, linked from this one before they arrive (the lead merges both):
# a link to one of these is checked only once the file exists.
ARRIVING: set = set()
BLOCK_TIMEOUT = 180  # seconds

MARKER = re.compile(r"^<!--\s*run(?::\s*(?P<key>\w+)(?:\s+(?P<value>.*?))?)?\s*-->\s*$")
FENCE = re.compile(r"^```(?P<lang>[\w+-]*)\s*$")


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    exit: int = 0
    stdout: list = field(default_factory=list)
    stderr: list = field(default_factory=list)

    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def parse(page: Path, text: str | None = None) -> tuple[list[Block], list[str]]:
    """The runnable blocks of a page (or of `text`, as if it were that page), and what is wrong
    with its markers."""
    lines = (page.read_text(encoding="utf-8") if text is None else text).splitlines()
    blocks, problems, pending, i = [], [], [], 0
    rel = page.relative_to(ROOT)
    while i < len(lines):
        text = lines[i]
        m = MARKER.match(text)
        if m:
            key, value = m.group("key"), m.group("value")
            if key is None:
                pending.append(("run", None))
            elif key == "exit" and value and value.isdigit():
                pending.append(("exit", int(value)))
            elif key in ("stdout", "stderr") and value:
                try:
                    pending.append((key, re.compile(value, re.M)))
                except re.error as e:
                    problems.append(f"{rel}:{i + 1}: bad {key} regex {value!r}: {e}")
            else:
                problems.append(f"{rel}:{i + 1}: unknown run setting {text.strip()!r}")
            i += 1
            continue
        f = FENCE.match(text)
        if f and pending:
            lang = f.group("lang")
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
            if end is None:
                problems.append(f"{rel}:{i + 1}: a runnable block without its closing fence")
                break
            if lang not in ("bash", "python"):
                problems.append(f"{rel}:{i + 1}: a runnable block must be bash or python, "
                                f"not {lang!r}")
            b = Block(page, i + 1, lang, "\n".join(lines[i + 1:end]) + "\n")
            for key, value in pending:
                if key == "exit":
                    b.exit = value
                elif key in ("stdout", "stderr"):
                    getattr(b, key).append(value)
            blocks.append(b)
            pending, i = [], end + 1
            continue
        if f:  # an unmarked block: skip it whole (its lines are not markers)
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")),
                       len(lines))
            i = end + 1
            continue
        if pending:
            problems.append(f"{rel}:{i + 1}: a run marker not followed by a fenced block")
            pending = []
        i += 1
    if pending:
        problems.append(f"{rel}: a run marker at the end of the page")
    return blocks, problems


RUNNABLE = [p for p in PAGES if parse(p)[0]]


# ----------------------------------------------------------------------------- the fixtures
def _lines(text: str, n: int) -> str:
    return "".join(line + "\n" for line in [s for s in text.splitlines() if s.strip()][:n])


def _head(text: str, start: int, size: int) -> str:
    """About `size` characters of `text` from `start`, cut at line ends."""
    a = text.index("\n", start) + 1 if start else 0
    return text[a:text.index("\n", a + size) + 1]


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    """The folder every docs/ page copies: texts, PTB-like files, two tiny models, the store."""
    d = tmp_path_factory.mktemp("docs-fixtures")
    text = SHAKESPEARE.read_text(encoding="utf-8")
    files = {"corpus.txt": _head(text, 0, 20_000), "valid.txt": _head(text, 40_000, 3_000),
             "test.txt": _head(text, 60_000, 3_000), "chapter1.txt": _head(text, 80_000, 2_000),
             "sentences.txt": _lines(text[100_000:], 50), "big.txt": _lines(text[120_000:], 200)}
    words = [" ".join(re.findall(r"[a-z']+", line.lower())) for line in text.splitlines()]
    words = [w for w in words if w]
    for name, part in (("train", words[:1500]), ("valid", words[1500:1700]),
                       ("test", words[1700:1900])):
        files[f"ptb.{name}.txt"] = "\n".join(part) + "\n"
    for name, body in files.items():
        (d / name).write_text(body, encoding="utf-8")
    (d / "home").mkdir()
    for level, out in (("char", "my.npz"), ("word", "words.npz")):
        ok(run_cli("train", d / "corpus.txt", "--level", level, "-o", d / out, "--hidden", "8",
                   "--steps", "3", "--threads", "1", home=d / "home"))
    for name in ("model.npz", "shakespeare.npz"):
        shutil.copy(d / "my.npz", d / name)
    shutil.copy(d / "my.npz", d / "home" / "char.npz")
    shutil.copy(d / "words.npz", d / "home" / "word.npz")
    shared = d / "shared" / "corpora" / "ptb"
    shared.mkdir(parents=True)
    for name in ("train", "valid", "test"):
        shutil.copy(d / f"ptb.{name}.txt", shared / f"ptb.{name}.txt")
    return d


def _folder(page: Path, fixtures: Path) -> Path:
    """A fresh folder for `page`, beside a copy of ../shared: bare for the README (the tour
    makes what it uses), the fixtures for a docs/ page."""
    base = fixtures.parent / f"run-{page.stem}"
    if base.exists():
        shutil.rmtree(base)
    base.mkdir()
    shutil.copytree(fixtures / "shared", base / "shared")
    work = base / "work"
    if page.name == "README.md" and page.parent == ROOT:
        work.mkdir()
        (work / "home").mkdir()
    else:
        shutil.copytree(fixtures, work, ignore=shutil.ignore_patterns("shared"))
    (work / "corpora").symlink_to(ROOT / "corpora")
    return work


def _environment(work: Path) -> dict:
    bin_dir = work.parent / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "rnn-cli"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{ROOT / "tests" / "docs_cli.py"}" "$@"\n')
    shim.chmod(0o755)
    e = env(work / "home")
    e["PATH"] = f"{bin_dir}{os.pathsep}{e.get('PATH', '')}"
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [e.get("PYTHONPATH")])])
    e["NUMBA_NUM_THREADS"] = "1"  # the Python blocks' kernels too (the shim gives --threads 1)
    return e


def commands(code: str) -> list[str]:
    """A bash block's commands: its lines, backslash continuations joined, comments and blank
    lines dropped."""
    out, part = [], ""
    for line in code.splitlines():
        if line.rstrip().endswith("\\"):
            part += line.rstrip()[:-1] + " "
            continue
        line, part = part + line, ""
        if line.strip() and not line.lstrip().startswith("#"):
            out.append(line.strip())
    return out


def plain_argv(command: str) -> list[str] | None:
    """The argv of a command that needs no shell (no pipe, list, redirection, expansion or
    glob; quotes and a trailing comment are fine), else None."""
    lex = shlex.shlex(command, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    try:
        tokens = list(lex)
    except ValueError:  # unbalanced quotes: let bash say so
        return None
    if not tokens or any(set(t) <= set("();<>|&") or re.search(r"[$`*?~{}\[]", t)
                         for t in tokens):
        return None
    return tokens


@contextlib.contextmanager
def _cwd(path: Path):
    """contextlib.chdir of Python 3.11, for 3.10."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _run_command(command: str, work: Path, e: dict) -> subprocess.CompletedProcess:
    from docs_cli import shrink

    argv = plain_argv(command)
    if argv and argv[0] == "rnn-cli":
        with _cwd(work):
            return run_cli(*shrink(argv[1:]), home=work / "home")
    r = subprocess.run(["bash", "-c", command], cwd=work, env=e, capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=BLOCK_TIMEOUT)
    return r


def _run(block: Block, work: Path, e: dict) -> tuple[int, str, str]:
    """Run a block: (exit status, stdout, stderr), the commands' outputs one after the other."""
    if block.lang == "python":
        script = work.parent / f"block-{block.line}.py"
        script.write_text(block.code, encoding="utf-8")
        r = subprocess.run([sys.executable, str(script)], cwd=work, env=e, capture_output=True,
                           stdin=subprocess.DEVNULL, timeout=BLOCK_TIMEOUT)
        return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
    out, err, code = [], [], 0
    for command in commands(block.code):
        r = _run_command(command, work, e)
        out.append(r.stdout.decode(errors="replace"))
        err.append(r.stderr.decode(errors="replace"))
        code = r.returncode
        if code != 0:
            break
    return code, "".join(out), "".join(err)


# ----------------------------------------------------------------------------- the tests
def test_run_markers_are_well_formed():
    problems = [p for page in PAGES for p in parse(page)[1]]
    assert not problems, "\n".join(problems)
    assert ROOT / "README.md" in RUNNABLE, "the README's tour has no runnable block"


def test_the_marker_parser_finds_settings_and_skips_unmarked_blocks():
    text = ("```bash\n<!-- run -->\necho no\n```\n\n<!-- run: exit 2 -->\n<!-- run: stdout ^a$ -->\n"
            "```bash\necho a\n```\n<!-- run -->\n<!-- run: colour red -->\n```python\nprint(1)\n"
            "```\n```bash\necho unmarked\n```\n<!-- run -->\ntext\n")
    blocks, problems = parse(ROOT / "docs" / "probe.md", text)
    assert [(b.line, b.lang, b.exit, b.code) for b in blocks] == [
        (8, "bash", 2, "echo a\n"), (13, "python", 0, "print(1)\n")]
    assert blocks[0].stdout[0].search("x\na\n")
    assert any("unknown run setting" in p for p in problems)
    assert any("not followed by a fenced block" in p for p in problems)


def test_a_block_splits_into_commands_and_plain_ones_skip_the_shell():
    code = "# a comment\nrnn-cli train a.txt \\\n    --hidden 4  # tiny\n\necho 'x|y' | wc -l\n"
    assert commands(code) == ["rnn-cli train a.txt      --hidden 4  # tiny", "echo 'x|y' | wc -l"]
    assert plain_argv("rnn-cli sample --prime \"ROMEO: a|b\" -n 5  # c") == [
        "rnn-cli", "sample", "--prime", "ROMEO: a|b", "-n", "5"]
    for shell in ("a | b", "a > f", "a && b", "a $HOME", "a *.txt", "a; b", "cat < f"):
        assert plain_argv(shell) is None, shell


def test_the_shim_shrinks_what_the_docs_show():
    from docs_cli import shrink

    assert shrink(["train", "c.txt", "--hidden", "512", "--embed", "256", "--tie-weights",
                   "--threads=2"]) == ["train", "c.txt", "--hidden", "8", "--embed", "8",
                                       "--tie-weights", "--threads=1", "--steps", "3"]
    assert shrink(["train", "c.txt", "--resume", "--steps", "4000"]) == [
        "train", "c.txt", "--resume", "--steps", "6", "--threads", "1"]
    assert shrink(["train", "c.txt", "--embed", "0"])[:4] == ["train", "c.txt", "--embed", "0"]
    assert shrink(["train", "p.tsv", "--embed", "32", "--proj", "32", "--dec-hidden", "128",
                   "--proj=0"]) == ["train", "p.tsv", "--embed", "8", "--proj", "8",
                                    "--dec-hidden", "8", "--proj=0", "--threads", "1",
                                    "--hidden", "8", "--steps", "3"]
    assert shrink(["sample", "-m", "m.npz", "-n", "0"]) == [
        "sample", "-m", "m.npz", "-n", "0", "--threads", "1"]


@pytest.mark.parametrize("page", RUNNABLE, ids=[str(p.relative_to(ROOT)) for p in RUNNABLE])
def test_the_commands_of_a_page_run(page, fixtures):
    blocks, problems = parse(page)
    assert not problems, problems
    work = _folder(page, fixtures)
    e = _environment(work)
    for b in blocks:
        code, stdout, stderr = _run(b, work, e)
        said = f"{b.where()} exited {code}\n--- stdout\n{stdout[-3000:]}\n" \
               f"--- stderr\n{stderr[-3000:]}"
        assert code == b.exit, said
        assert "Traceback (most recent call last)" not in stderr, said
        if b.exit == 0:
            assert "rnn-cli: error:" not in stderr, said
        assert "\x1b[" not in stdout, said  # stdout is data: never a colour code
        for rx in b.stdout:
            assert rx.search(stdout), f"stdout does not match {rx.pattern!r}: {said}"
        for rx in b.stderr:
            assert rx.search(stderr), f"stderr does not match {rx.pattern!r}: {said}"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    out, in_code = set(), False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            out.add(_slug(line.lstrip("#")))
    return out


LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")


def test_relative_links_and_anchors_resolve():
    broken = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in LINK.findall(text):
            if re.match(r"^[a-z]+:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if dest in ARRIVING and not dest.exists():
                continue
            if not dest.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_the_readme_is_a_front_page_that_links_every_docs_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) <= README_LIMIT, len(readme.encode())
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in LINK.findall(readme)}
    pages = set(PAGES[1:]) | ARRIVING
    assert not pages - linked, sorted(str(p.relative_to(ROOT)) for p in pages - linked)
