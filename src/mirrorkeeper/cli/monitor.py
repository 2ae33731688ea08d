"""Verbs for monitoring systems: ``check`` (a Nagios plugin), ``collectd-exec`` and
``nagios-config``."""

from __future__ import annotations

import os
import sys
import time

import click

from ..config.problems import ConfigError
from ..errors import StateUnavailable
from ..exitcodes import Exit
from ..sync.lock import is_locked
from .common import load, reader


@click.command()
@click.argument("names", nargs=-1)
@click.option("--all", "all_mirrors", is_flag=True, help="Every enabled mirror, one line each "
              "(in a fleet: every host's, from the shared store).")
@click.option("--host", "fleet_host", metavar="NAME", help="With --all in a fleet: only the "
              "mirrors that fleet host NAME syncs.")
@click.option("--warning", "-w", metavar="RANGE", help="Age range in seconds (default: twice "
              "the schedule's interval).")
@click.option("--critical", "-c", metavar="RANGE", help="Age range in seconds (default: "
              "stale_after).")
@click.option("--verbose", "-v", count=True)
@click.pass_context
def check(ctx: click.Context, names: tuple[str, ...], all_mirrors: bool,
          fleet_host: str | None, warning: str | None, critical: str | None,
          verbose: int) -> int:
    """A Nagios/Icinga plugin: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."""
    from ..config.load import find_config, load_config
    from ..nagios import run_check

    try:
        config = load_config(find_config(ctx.obj["config"]))
    except ConfigError as exc:
        click.echo(f"MIRRORKEEPER UNKNOWN - configuration: {exc.problems[0]}")
        return 3
    for name in names:
        if name in config.broken:
            broken = config.broken[name]
            first = f": {broken.problems[0]}" if broken.problems else ""
            click.echo(f"MIRRORKEEPER UNKNOWN - configuration: mirror {name} is not synced, "
                       f"its profile {broken.profile} does not validate{first}")
            return 3
    unknown = [n for n in names if n not in config.mirrors]
    if unknown or bool(names) == all_mirrors:
        click.echo("MIRRORKEEPER UNKNOWN - " + (f"no mirror {', '.join(unknown)}" if unknown
                                                  else "name a mirror or use --all"))
        return 3
    mirrors = config.enabled() if all_mirrors else [config.mirrors[n] for n in names]
    if fleet_host is not None:
        if not all_mirrors or config.fleet is None:
            click.echo("MIRRORKEEPER UNKNOWN - --host needs --all and a [fleet] table")
            return 3
        mirrors = [m for m in mirrors if config.host_of(m) == fleet_host]
        if not mirrors:
            click.echo(f"MIRRORKEEPER UNKNOWN - no enabled mirror is synced by fleet host "
                       f"{fleet_host}")
            return 3
    try:
        store = reader(config)
    except Exception as exc:  # noqa: BLE001 - any unreadable state is UNKNOWN for Nagios
        click.echo(f"MIRRORKEEPER UNKNOWN - cannot open the store: {exc}")
        return 3
    try:
        run_check(config, store, mirrors, warning, critical, max(verbose, int(all_mirrors)))
    except StateUnavailable as exc:  # a lock file it may not read, say
        click.echo(f"MIRRORKEEPER UNKNOWN - {exc}")
    finally:
        store.close()
    return 3  # run_check exits; reaching here is itself unknown


@click.command("collectd-exec")
@click.option("--once", is_flag=True, help="Print one round and exit.")
@click.pass_context
def collectd_exec(ctx: click.Context, once: bool) -> int:
    """For collectd's exec plugin: PUTVAL lines for every enabled mirror, every interval."""
    from ..metrics import wire
    from ..metrics.sink import latest_values
    from ..sync.run import lock_dir

    config = load(ctx, events=False)
    interval = float(os.environ.get("COLLECTD_INTERVAL") or config.metrics.interval)
    host = os.environ.get("COLLECTD_HOSTNAME") or config.settings.hostname
    while True:
        store = reader(config)
        try:
            now = time.time()
            for mirror in config.enabled():
                values = latest_values(store, mirror.name, now)
                live = store.live(mirror.name) if is_locked(lock_dir(config), mirror.name) \
                    else None
                values["running"] = 1 if live else 0
                if live and live["percent"] is not None:
                    values["progress_percent"] = live["percent"]
                for line in wire.collectd(host, mirror.name, values, int(now), interval):
                    sys.stdout.write(line)
            sys.stdout.flush()
        finally:
            store.close()
        if once:
            return Exit.OK
        time.sleep(interval)


@click.command("nagios-config")
@click.option("--host", default=None,
              help="Attach the services to this host, which your Nagios already defines "
                   "(default: [global] hostname, and a host definition for it is printed too; "
                   "in a fleet: each mirror's fleet host, each defined).")
@click.option("--this-host", is_flag=True,
              help="In a fleet: only the mirrors this host syncs, as outside a fleet.")
@click.option("--command", "command", default=None,
              help="The mirrorkeeper that Nagios runs (default: the one running now, e.g. "
                   "/usr/local/bin/mirrorkeeper as docs/deploy.md installs it).")
@click.pass_context
def nagios_config_cmd(ctx: click.Context, host: str | None, this_host: bool,
                      command: str | None) -> int:
    """Print Nagios/Icinga definitions: a command, the host, one service per enabled mirror.

    In a fleet: every host's mirrors, each on its host, unless --this-host or --host."""
    from ..nagios import nagios_config, running_command

    config = load(ctx, events=False)
    fleet = config.fleet is not None and not this_host and host is None
    click.echo(nagios_config(config.local() if this_host else config,
                             command or running_command(), host or config.settings.hostname,
                             define_host=host is None, fleet=fleet))
    return Exit.OK
