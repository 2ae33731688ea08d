"""Verbs that only look at the store: ``status``, ``history`` and ``logs``. They open it
read-only, so a user who may only read the state directory can run them."""

from __future__ import annotations

import json
import sys
import time

import click

from ..config.problems import did_you_mean
from ..exitcodes import Exit
from ..sync.lock import is_locked
from .common import UsageProblem, console, load, reader


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> int:
    """Every mirror: state, progress if running, last success and its age."""
    from ..overview import public_row, status_rows
    from . import render

    config = load(ctx, events=False)
    store = reader(config)
    try:
        rows = status_rows(config, store)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps([public_row(row) for row in rows], indent=2))
    else:
        console.print(render.status_table(rows))
    return Exit.OK


@click.command()
@click.argument("name")
@click.option("--limit", "-n", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def history(ctx: click.Context, name: str, limit: int, as_json: bool) -> int:
    """The last runs of one mirror, newest first."""
    from ..record.present import run_json
    from . import render

    config = load(ctx, events=False)
    if name not in config.mirrors:
        raise UsageProblem(f"no mirror `{name}`. " + did_you_mean(name, config.mirrors))
    store = reader(config)
    try:
        records = store.history(name, limit)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps([run_json(r) for r in records], indent=2))
    else:
        console.print(render.history_table(name, records))
    return Exit.OK


@click.command()
@click.argument("name")
@click.option("--run", "run_id", type=int, help="A run id (default: the newest run).")
@click.option("--follow", "-f", is_flag=True, help="Keep printing while the run goes on.")
@click.pass_context
def logs(ctx: click.Context, name: str, run_id: int | None, follow: bool) -> int:
    """Print a run's log: every line rsync printed, with Mirrorkeeper's notes."""
    from ..logs import open_run_log
    from ..sync.run import lock_dir

    config = load(ctx, events=False)
    if name not in config.mirrors:
        raise UsageProblem(f"no mirror `{name}`. " + did_you_mean(name, config.mirrors))
    store = reader(config)
    try:
        record = store.run(run_id) if run_id else store.last_run(name)
        if record is None or record.mirror != name or not record.log_path:
            raise UsageProblem(f"no such run of `{name}`; see `mirrorkeeper history {name}`")
        with open_run_log(record.log_path) as handle:
            while True:
                line = handle.readline()
                if line:
                    sys.stdout.write(line)
                    continue
                if not follow:
                    break
                if not is_locked(lock_dir(config), name):
                    # The run is over and its log complete: print what came since, then stop.
                    sys.stdout.writelines(handle.readlines())
                    break
                sys.stdout.flush()
                time.sleep(0.5)
    except FileNotFoundError:
        raise UsageProblem(f"the log of that run is gone (kept: {config.settings.keep_run_logs}"
                           f" runs, {config.settings.keep_run_logs_days:g} days)") from None
    finally:
        store.close()
    return Exit.OK
