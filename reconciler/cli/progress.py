"""What a command shows while it applies: the engine's logs, and on a terminal a progress bar
for each environment's apply of more than one action (click's), with its position and the
estimated time left. Quiet in CI and when stderr is not a terminal; the results are printed
after the apply either way."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..apply.executor import ActionResult
from ..engine import Events


class CommandEvents(Events):
    def __init__(self, *, bar: bool):
        super().__init__()
        self.show_bar = bar
        self.bar: Any = None

    def apply_started(self, env: str, total: int) -> None:
        self.finish()
        if self.show_bar and total > 1:
            self.bar = click.progressbar(length=total, label=f"{env}: applying",
                                         file=sys.stderr, show_pos=True, show_eta=True)
            self.bar.__enter__()

    def applied(self, env: str, result: ActionResult, revision: str) -> None:
        if self.bar is None or result.failed:  # the bar stands for the log of each success
            super().applied(env, result, revision)
        if self.bar is not None:
            self.bar.update(1)
            if self.bar.pos >= self.bar.length:
                self.finish()

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
