"""Verbs that run syncs: ``sync`` (now, in the foreground), ``daemon`` (on schedule) and
``trigger`` (a push, e.g. from an ssh forced command)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from ..config.problems import ConfigError, did_you_mean
from ..exitcodes import Exit
from ..logs import event
from ..rsync.guard import start_guardian
from ..sync.lock import MirrorLocked
from .common import UsageProblem, console, err_console, load, not_runnable, warn_not_runnable
from .signals import SignalStop

if TYPE_CHECKING:
    from ..config.spec import Config, MirrorSpec
    from ..record import RunRecord

#: At most this much of what an ssh client sent (``SSH_ORIGINAL_COMMAND``) reaches the log.
MAX_LOGGED_COMMAND = 256


@click.command()
@click.argument("names", nargs=-1)
@click.option("--all", "all_mirrors", is_flag=True, help="Sync every enabled mirror.")
@click.option("--quiet", "-q", is_flag=True, help="No progress; only the summary.")
@click.option("--json", "as_json", is_flag=True, help="Print each run record as JSON.")
@click.option("--due", is_flag=True,
              help="Only the enabled mirrors that are due now (by schedule or a changed update "
                   "signal): for a systemd timer or cron instead of the daemon.")
@click.pass_context
def sync(ctx: click.Context, names: tuple[str, ...], all_mirrors: bool, quiet: bool,
         as_json: bool, due: bool) -> int:
    """Sync the named mirrors (or --all, or --due) once, one after the other."""
    from ..store import Store

    if (bool(names) + all_mirrors + due) != 1:
        raise UsageProblem("name one or more mirrors, or use --all or --due")
    start_guardian()  # forked while this process has one thread: see rsync/guard.py
    with SignalStop() as signals:  # from the start: a signal must never kill a run midway
        config = load(ctx)
        for name in names:  # in a fleet, another host's mirror is that host's to sync
            spec = config.mirrors.get(name)
            if spec is not None and config.host_of(spec) != config.host:
                raise UsageProblem(
                    f"mirror `{name}` is synced by fleet host {config.host_of(spec)}, not "
                    f"this one ({config.host}); `mirrorkeeper trigger {name}` queues it there")
        config = config.local()  # --all and --due: this host's mirrors
        if not names:
            warn_not_runnable(config)
        if due:
            from ..daemon.service import plan_once

            store = Store.for_config(config)
            try:
                names = tuple(d.mirror for d in plan_once(config, store))
            finally:
                store.close()
            if not names:
                if not quiet and not as_json:
                    console.print("nothing is due")
                return signals.exit_status or (
                    Exit.CONFIG if config.broken_enabled() else Exit.OK)
        for name in names:
            if name in config.broken:
                raise ConfigError(not_runnable(config, config.broken[name]))
            if name not in config.mirrors:
                raise UsageProblem(f"no mirror `{name}` in {config.path}. "
                                   + (did_you_mean(name, config.mirrors) or
                                      f"Known: {', '.join(config.mirrors) or 'none'}"))
        mirrors = config.enabled() if all_mirrors else [config.mirrors[n] for n in names]
        code = _sync_mirrors(config, mirrors, signals, quiet=quiet, as_json=as_json)
        if code in (Exit.OK, Exit.LOCKED) and not names and config.broken_enabled():
            return Exit.CONFIG  # every mirror that could run did; the others wait for a fix
        return code


def _sync_mirrors(config: Config, mirrors: list[MirrorSpec], signals: SignalStop, *,
                  quiet: bool, as_json: bool, scope: str = "all", trigger: str = "",
                  mhop: bool = False) -> int:
    """Sync ``mirrors`` one after the other; a signal stops the running one and the rest."""
    from ..sync.prefetch import ProbePrefetch

    # The first mirror's signal probe runs while the rest of the start-up (the store) happens.
    prefetch = ProbePrefetch(config, mirrors[0], signals.stop) if mirrors else None
    from ..job import run_job
    from ..record.present import run_json
    from ..store import Store
    from . import render
    from .progress import ProgressDisplay

    stop = signals.stop
    store = Store.for_config(config)
    sink = None
    if config.metrics.enabled:
        from ..metrics.sink import MetricsSink

        sink = MetricsSink(config)
    results: list[RunRecord] = []
    locked = 0
    try:
        for mirror in mirrors:
            if stop.is_set():
                break
            display = ProgressDisplay(mirror.name, console, enabled=not quiet and not as_json)
            try:
                with display:
                    job = run_job(config, mirror, store, stop=stop, sink=sink,
                                  on_progress=display.update, scope=scope, trigger=trigger,
                                  mhop=mhop, prefetch=prefetch)
            except MirrorLocked as exc:
                locked += 1
                err_console.print(f"mirrorkeeper: {exc}; not starting a second run")
                event("run.locked", mirror=mirror.name, holder=exc.holder)
                continue
            results.append(job.record)
            for line in job.notices:
                err_console.print(line, markup=False)
            for line in job.problems:
                err_console.print(f"mirrorkeeper: {line}", markup=False)
            if as_json:
                click.echo(json.dumps(run_json(job.record), indent=2))
            else:
                console.print(render.run_summary(job.record))
    finally:
        if sink is not None:
            sink.close()  # at most a couple of seconds, whatever the endpoints do
        store.close()
    if signals.exit_status is not None:
        return signals.exit_status
    if any(r.outcome not in ("success", "staged") for r in results):
        return Exit.SYNC_FAILED
    return Exit.LOCKED if locked else Exit.OK


@click.command()
@click.pass_context
def daemon(ctx: click.Context) -> int:
    """Run every enabled mirror on its schedule, detect updates, serve the dashboard.

    SIGTERM stops it cleanly (running syncs are stopped and recorded as interrupted);
    SIGHUP reloads the config (a config with errors is refused and the old one kept).
    """
    from ..config.files import web_file_problems
    from ..daemon.service import Daemon, WebUnavailable

    start_guardian()  # before the workers' threads: see rsync/guard.py
    config = load(ctx)
    problems = web_file_problems(config)
    if problems:  # every action would be a 401: say why now, not in a browser later
        raise ConfigError(problems)
    daemon = Daemon(config)
    try:
        return daemon.run()
    except MirrorLocked:
        err_console.print(f"mirrorkeeper: a daemon already runs for {config.settings.state_dir}")
        return Exit.LOCKED
    except WebUnavailable as exc:
        err_console.print(f"mirrorkeeper: {exc}", markup=False)
        return Exit.CONFIG
    finally:
        daemon.close()


@click.command()
@click.argument("name", required=False)
@click.argument("flags", nargs=-1)
@click.pass_context
def trigger(ctx: click.Context, name: str | None, flags: tuple[str, ...]) -> int:
    """Ask for a sync of NAME now: push mirroring's entry point.

    Use it as an ssh forced command (``command="mirrorkeeper trigger debian"`` in
    authorized_keys). The pusher's ftpsync words (``sync:all``, ``sync:stage1``,
    ``sync:stage2``, ``sync:mhop``, ``sync:callback``, ``sync:archive:NAME``) arrive in
    SSH_ORIGINAL_COMMAND; FLAGS given here override them. A staged push runs here and now
    (the pusher waits for its stage); a full one is queued with the daemon if it runs.
    """
    from .push import run_trigger

    start_guardian()  # while this process has one thread: see rsync/guard.py
    with SignalStop() as signals:
        return run_trigger(ctx, name, flags, signals)
