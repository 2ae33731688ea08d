"""What every verb shares: the consoles, loading the config, opening the store to read, and the
errors that exit with a documented status."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click
from rich.console import Console

from ..config.problems import ConfigError, Problem
from ..logs import setup_event_log

if TYPE_CHECKING:  # heavy (SQLAlchemy, pydantic): imported by the commands that need them
    from ..config.spec import BrokenMirror, Config
    from ..store import Store


def _console(stderr: bool = False) -> Console:
    """Plain text that never wraps; off a terminal (cron mail, logs) tables get 160 columns."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else 160
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width)


console = _console()
err_console = _console(stderr=True)


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

    return Store.open(config.settings.state_dir, readonly=True)


def print_problems(problems: list[Problem]) -> None:
    err_console.print(f"mirrorkeeper: the configuration has {len(problems)} problem(s):")
    for problem in problems:
        err_console.print(f"  {problem}", markup=False)


__all__ = ["ConfigError", "UsageProblem", "console", "err_console", "load", "not_runnable",
           "print_problems", "reader", "warn_not_runnable"]
