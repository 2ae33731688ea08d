"""What every verb shares: the consoles, loading the config, opening the store to read, and the
errors that exit with a documented status."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from ..config.problems import ConfigError, Problem
from ..logs import setup_event_log

if TYPE_CHECKING:  # heavy (SQLAlchemy, pydantic, rich): imported when a command needs them
    from rich.console import Console

    from ..config.spec import BrokenMirror, Config
    from ..store import Store


class _LazyConsole:
    """A rich console made on first use: importing rich costs more than a sync's start-up may
    spend before its first rsync, and most of a sync prints nothing until the end."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            # Plain text that never wraps; off a terminal (cron mail, logs) 160 columns.
            stream = sys.stderr if self._stderr else sys.stdout
            self._console = Console(stderr=self._stderr, highlight=False, soft_wrap=True,
                                    width=None if stream.isatty() else 160)
        return getattr(self._console, name)


console: Console = _LazyConsole(stderr=False)  # type: ignore[assignment]
err_console: Console = _LazyConsole(stderr=True)  # type: ignore[assignment]


class UsageProblem(click.UsageError):
    """A usage error that exits 64 (EX_USAGE), like every other usage error here."""


def load(ctx: click.Context, events: bool = True) -> Config:
    """The config, and the event log unless the command only reads (``events=False``): a
    reader must work for a user who may not write the log directory."""
    from ..config.load import find_config, load_config

    config: Config = load_config(find_config(ctx.obj["config"]))
    if events:
        setup_event_log(config.settings.log_dir)
    return config


def not_runnable(config: Config, broken: BrokenMirror) -> list[Problem]:
    """Why a mirror whose profile does not validate is not synced, and the profile's problems."""
    return [Problem(config.path, f"mirrors.{broken.name}.profile",
                    f"profile `{broken.profile}` does not validate, so the mirror is not synced",
                    "fix the profile's file (below), or choose another profile"),
            *broken.problems]


def warn_not_runnable(config: Config) -> None:
    """``sync --all``/``--due`` go on without the mirrors of a broken profile, but say so."""
    for broken in config.broken_enabled():
        for problem in not_runnable(config, broken):
            err_console.print(f"mirrorkeeper: {problem}", markup=False)


def reader(config: Config) -> Store:
    """The store for a command that only looks: opened read-only, nothing created."""
    from ..store import Store

    return Store.for_config(config, readonly=True)


def print_problems(problems: list[Problem]) -> None:
    err_console.print(f"mirrorkeeper: the configuration has {len(problems)} problem(s):")
    for problem in problems:
        err_console.print(f"  {problem}", markup=False)


__all__ = ["ConfigError", "UsageProblem", "console", "err_console", "load", "not_runnable",
           "print_problems", "reader", "warn_not_runnable"]
