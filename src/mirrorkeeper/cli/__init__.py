"""The ``mirrorkeeper`` command (click). Exit statuses: see :mod:`mirrorkeeper.exitcodes`.

Each verb lives in the module of its group (``sync``, ``look``, ``catalogue``, ``monitor``,
``alerts``) and is imported only when it runs: ``mirrorkeeper --help`` or ``profiles`` never
load SQLAlchemy, Alembic, Starlette or Huey. The table below names each verb's module and its
one-line help (a test keeps the line equal to the command's own).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import sys
import threading

import click

from .. import __version__
from ..exitcodes import Exit

#: verb → (module in this package, attribute, the first paragraph of its help).
VERBS: dict[str, tuple[str, str, str]] = {
    "alerts": ("alerts", "alerts_group",
               "Alerts: list, acknowledge, judge, test plugins, replay rules."),
    "check": ("monitor", "check",
              "A Nagios/Icinga plugin: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."),
    "collectd-exec": ("monitor", "collectd_exec",
                      "For collectd's exec plugin: PUTVAL lines for every enabled mirror, "
                      "every interval."),
    "config": ("catalogue", "config_group", "Inspect the configuration."),
    "daemon": ("sync", "daemon",
               "Run every enabled mirror on its schedule, detect updates, serve the "
               "dashboard."),
    "demo": ("catalogue", "demo",
             "Sync a generated Debian-like tree from an rsync daemon on 127.0.0.1, twice."),
    "doctor": ("catalogue", "doctor",
               "Is a mirror ready to enable? Checks each upstream and this host; exit 0 "
               "ready, 1 warnings, 2 errors. Writes nothing."),
    "history": ("look", "history", "The last runs of one mirror, newest first."),
    "import": ("imports", "import_group", "Move mirrors over from ftpsync or tunasync."),
    "init": ("catalogue", "init",
             "Add a mirror of PROFILE to the config (created if missing), keeping its "
             "comments."),
    "logs": ("look", "logs",
             "Print a run's log: every line rsync printed, with Mirrorkeeper's notes."),
    "nagios-config": ("monitor", "nagios_config_cmd",
                      "Print Nagios/Icinga definitions: a command, the host, one service per "
                      "enabled mirror."),
    "profiles": ("catalogue", "profiles", "List the profile catalogue, or show one profile."),
    "rollback": ("snapshots", "rollback_cmd",
                 "Return NAME's destination to SNAPSHOT (default: the newest taken after a "
                 "success)."),
    "snapshots": ("snapshots", "snapshots_cmd",
                  "NAME's snapshots, newest first: the run each came from, and why each is "
                  "kept."),
    "status": ("look", "status",
               "Every mirror: state, progress if running, last success and its age."),
    "store": ("store", "store_group",
              "The run history's store: move it into a fleet's PostgreSQL."),
    "sync": ("sync", "sync",
             "Sync the named mirrors (or --all, or --due) once, one after the other."),
    "trigger": ("sync", "trigger", "Ask for a sync of NAME now: push mirroring's entry point."),
}


class LazyGroup(click.Group):
    """A group whose verbs are imported when one runs (or its own ``--help`` is asked for)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*VERBS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in VERBS:
            return self.commands.get(cmd_name)
        module, attr, _ = VERBS[cmd_name]
        command = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The verb list from the table, so the group's help imports no verb."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)  # as click's own
        rows = [(name, click.Command(name, help=VERBS[name][2]).get_short_help_str(limit)
                 if name in VERBS
                 else self.commands[name].get_short_help_str(limit))
                for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "-c", "config_path", metavar="PATH", envvar=None,
              help="Config file (default: $MIRRORKEEPER_CONFIG, then "
                   "/etc/mirrorkeeper/mirrorkeeper.toml).")
@click.version_option(__version__, prog_name="mirrorkeeper")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Keep rsync mirrors in sync; say when a human must help."""
    ctx.ensure_object(dict)
    ctx.obj["config"] = config_path


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: maps every failure to a documented exit status."""
    try:
        code = cli.main(args=argv, prog_name="mirrorkeeper", standalone_mode=False)
    except click.UsageError as exc:
        exc.show()
        sys.exit(Exit.USAGE)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        sys.exit(Exit.INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(Exit.USAGE)
    except Exception as exc:
        # Imported only on the way out, so that a command that succeeds never loads them.
        from ..config.problems import ConfigError
        from ..errors import StateUnavailable
        from .common import err_console, print_problems

        if isinstance(exc, ConfigError):
            print_problems(exc.problems)
            sys.exit(Exit.CONFIG)
        if isinstance(exc, StateUnavailable):
            err_console.print(f"mirrorkeeper: {exc}", markup=False)
            sys.exit(Exit.CANT_CREATE)
        raise
    sys.exit(int(code or 0))


def entry() -> None:
    """The console script: :func:`main`, then an exit without the interpreter's teardown.

    Freeing every module and object of a process that is about to end takes longer than a
    no-change sync's own work after its last rsync. The exit handlers still run (the logs are
    flushed and closed), then the process ends at once; a process that still has other
    non-daemon threads, or runs under a profiler or tracer, exits the ordinary way.
    """
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    else:  # pragma: no cover - main always exits
        code = 0
    others = [t for t in threading.enumerate()
              if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if others or not isinstance(code, int | None) or sys.getprofile() or sys.gettrace():
        sys.exit(code)  # a profiler or coverage writes its data at the ordinary exit
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(code or 0)
