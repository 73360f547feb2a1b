"""The terminal side of rnn-cli: one rich Console on stderr, the quiet/colour policy, progress.

stdout is data only (sampled text, scores, JSON) and is written by `cli.py` without rich, so it
never carries ANSI codes. Everything for the human (progress, logs, warnings, errors, the dim
samples shown during training) goes through `ui.err`, a `Console(stderr=True)`: rich turns colour
off by itself when stderr is not a terminal, honours NO_COLOR / FORCE_COLOR / TERM=dumb, and
`--no-color` forces it off.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class UI:
    """stderr console + verbosity: quiet 1 hides info (keeps warnings), quiet 2 hides warnings."""

    def __init__(self, quiet: int = 0, verbose: int = 0, no_color: bool = False):
        self.quiet, self.verbose = quiet, verbose
        self.err = Console(stderr=True, no_color=no_color or None, highlight=False,
                           soft_wrap=True)

    @property
    def interactive(self) -> bool:
        """Progress bars only on a terminal, and not when quieted."""
        return self.err.is_terminal and self.quiet == 0

    def info(self, msg: str, style: str | None = None) -> None:
        if self.quiet == 0:
            self.err.print(escape(msg), style=style)

    def debug(self, msg: str) -> None:
        if self.verbose and self.quiet == 0:
            self.err.print(escape(msg), style="dim")

    def warn(self, msg: str) -> None:
        if self.quiet < 2:
            self.err.print(f"[yellow]rnn-cli: warning:[/] {escape(msg)}")

    def error(self, msg: str, hint: str | None = None) -> None:
        self.err.print(f"[bold red]rnn-cli: error:[/] {escape(msg)}")
        if hint:
            self.err.print(f"  [dim]hint:[/] {escape(hint)}")

    def sample_preview(self, text: str) -> None:
        if self.quiet == 0:
            self.err.print(escape(text), style="dim")

    def progress(self) -> Progress:
        """A transient training bar; never redirects stdout (rich's default would swallow it)."""
        return Progress(
            TextColumn("[bold]train[/]"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
            TextColumn("step {task.fields[step]}"), TextColumn("loss {task.fields[loss]}"),
            TextColumn("val {task.fields[val]}"), TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=self.err, transient=True,
            redirect_stdout=False, redirect_stderr=False)
