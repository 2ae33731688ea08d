"""The ``mirrorkeeper`` command (click). Exit statuses: see :mod:`mirrorkeeper.exitcodes`."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from .. import __version__
from ..config.problems import ConfigError, Problem, did_you_mean
from ..config.spec import BrokenMirror, Config, MirrorSpec
from ..errors import StateUnavailable
from ..exitcodes import Exit
from ..logs import event, setup_event_log
from ..record import RunRecord
from ..sync.lock import MirrorLocked, is_locked
from .signals import SignalStop

if TYPE_CHECKING:  # heavy (SQLAlchemy): imported by the commands that need them
    from ..store import Store


def _console(stderr: bool = False) -> Console:
    """Plain text that never wraps; off a terminal (cron mail, logs) tables get 160 columns."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else 160
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width)


console = _console()
err_console = _console(stderr=True)


#: At most this much of what an ssh client sent (``SSH_ORIGINAL_COMMAND``) reaches the log.
MAX_LOGGED_COMMAND = 256


class UsageProblem(click.UsageError):
    """A usage error that exits 64 (EX_USAGE), like every other usage error here."""


def _load(ctx: click.Context, events: bool = True) -> Config:
    """The config, and the event log unless the command only reads (``events=False``): a
    reader must work for a user who may not write the log directory."""
    from ..config.load import find_config, load_config

    config: Config = load_config(find_config(ctx.obj["config"]))
    if events:
        setup_event_log(config.settings.log_dir)
    return config


def _not_runnable(config: Config, broken: BrokenMirror) -> list[Problem]:
    """Why a mirror whose profile does not validate is not synced, and the profile's problems."""
    return [Problem(config.path, f"mirrors.{broken.name}.profile",
                    f"profile `{broken.profile}` does not validate, so the mirror is not synced",
                    "fix the profile's file (below), or choose another profile"),
            *broken.problems]


def _warn_not_runnable(config: Config) -> None:
    """``sync --all``/``--due`` go on without the mirrors of a broken profile, but say so."""
    for broken in config.broken_enabled():
        for problem in _not_runnable(config, broken):
            err_console.print(f"mirrorkeeper: {problem}", markup=False)


def _reader(config: Config) -> Store:
    """The store for a command that only looks: opened read-only, nothing created."""
    from ..store import Store

    return Store.open(config.settings.state_dir, readonly=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "-c", "config_path", metavar="PATH", envvar=None,
              help="Config file (default: $MIRRORKEEPER_CONFIG, then "
                   "/etc/mirrorkeeper/mirrorkeeper.toml).")
@click.version_option(__version__, prog_name="mirrorkeeper")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Keep rsync mirrors in sync; say when a human must help."""
    ctx.ensure_object(dict)
    ctx.obj["config"] = config_path


# -- sync -------------------------------------------------------------------------------------
@cli.command()
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
    with SignalStop() as signals:  # from the start: a signal must never kill a run midway
        config = _load(ctx)
        if not names:
            _warn_not_runnable(config)
        if due:
            from ..daemon.service import plan_once

            store = Store.open(config.settings.state_dir)
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
                raise ConfigError(_not_runnable(config, config.broken[name]))
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
    from ..job import run_job
    from ..record.present import run_json
    from ..store import Store
    from . import render
    from .progress import ProgressDisplay

    stop = signals.stop
    store = Store.open(config.settings.state_dir)
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
                                  mhop=mhop)
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


# -- daemon / trigger ------------------------------------------------------------------------
@cli.command()
@click.pass_context
def daemon(ctx: click.Context) -> int:
    """Run every enabled mirror on its schedule, detect updates, serve the dashboard.

    SIGTERM stops it cleanly (running syncs are stopped and recorded as interrupted);
    SIGHUP reloads the config (a config with errors is refused and the old one kept).
    """
    from ..config.files import web_file_problems
    from ..daemon.service import Daemon, WebUnavailable

    config = _load(ctx)
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


@cli.command()
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

    with SignalStop() as signals:
        return run_trigger(ctx, name, flags, signals)


# -- status / history -------------------------------------------------------------------------
@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> int:
    """Every mirror: state, progress if running, last success and its age."""
    from ..overview import public_row, status_rows
    from . import render

    config = _load(ctx, events=False)
    store = _reader(config)
    try:
        rows = status_rows(config, store)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps([public_row(row) for row in rows], indent=2))
    else:
        console.print(render.status_table(rows))
    return Exit.OK


@cli.command()
@click.argument("name")
@click.option("--limit", "-n", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def history(ctx: click.Context, name: str, limit: int, as_json: bool) -> int:
    """The last runs of one mirror, newest first."""
    from ..record.present import run_json
    from . import render

    config = _load(ctx, events=False)
    if name not in config.mirrors:
        raise UsageProblem(f"no mirror `{name}`. " + did_you_mean(name, config.mirrors))
    store = _reader(config)
    try:
        records = store.history(name, limit)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps([run_json(r) for r in records], indent=2))
    else:
        console.print(render.history_table(name, records))
    return Exit.OK


@cli.command()
@click.argument("name")
@click.option("--run", "run_id", type=int, help="A run id (default: the newest run).")
@click.option("--follow", "-f", is_flag=True, help="Keep printing while the run goes on.")
@click.pass_context
def logs(ctx: click.Context, name: str, run_id: int | None, follow: bool) -> int:
    """Print a run's log: every line rsync printed, with Mirrorkeeper's notes."""
    from ..logs import open_run_log
    from ..sync.run import lock_dir

    config = _load(ctx, events=False)
    if name not in config.mirrors:
        raise UsageProblem(f"no mirror `{name}`. " + did_you_mean(name, config.mirrors))
    store = _reader(config)
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


# -- profiles / init / config -----------------------------------------------------------------
DEFAULT_PROFILES_DIR = "/etc/mirrorkeeper/profiles"


def _admin_profiles_dir(ctx: click.Context) -> str | None:
    """The admin's profiles dir from the config, even when other parts of it are wrong; the
    default only when there is no config to read (``init`` creates it), or, with a warning,
    when it cannot be read or parsed."""
    from ..config.load import find_config, inspect_config

    path = find_config(ctx.obj["config"])
    try:
        return inspect_config(path).config.settings.profiles_dir
    except ConfigError as exc:
        if path.exists() or path.is_symlink():
            for problem in exc.problems:
                err_console.print(f"warning: {problem}", markup=False)
            err_console.print(f"warning: the config cannot be read, so profiles_dir is taken to "
                              f"be {DEFAULT_PROFILES_DIR}", markup=False)
        return DEFAULT_PROFILES_DIR


@cli.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def profiles(ctx: click.Context, name: str | None, as_json: bool) -> int:
    """List the profile catalogue, or show one profile."""
    from ..profiles import load_catalogue
    from . import render

    catalogue = load_catalogue(_admin_profiles_dir(ctx))
    for problem in catalogue.problems:
        err_console.print(f"warning: {problem}", markup=False)
    if name and name in catalogue.broken:
        raise ConfigError(list(catalogue.broken[name].problems))
    if name:
        profile = catalogue.get(name)
        if profile is None:
            raise UsageProblem(f"no profile `{name}`. "
                               + (did_you_mean(name, catalogue.profiles) or
                                  "See `mirrorkeeper profiles`."))
        if as_json:
            click.echo(json.dumps(render.profile_json(profile), indent=2))
        else:
            console.print(render.profile_detail(profile))
        return Exit.OK
    listed = sorted(catalogue.profiles.values(), key=lambda p: p.name)
    broken = sorted(catalogue.broken.values(), key=lambda b: b.name)
    if as_json:
        click.echo(json.dumps([render.profile_json(p) for p in listed]
                              + [render.broken_profile_json(b) for b in broken], indent=2))
    else:
        console.print(render.profiles_table(listed, broken))
    return Exit.OK


@cli.command()
@click.argument("profile", required=False)
@click.option("--dest", metavar="DIR", help="Directory to mirror into.")
@click.option("--name", metavar="NAME", help="Mirror name (default: the profile's name).")
@click.option("--example", is_flag=True, help="Print an annotated example config instead.")
@click.pass_context
def init(ctx: click.Context, profile: str | None, dest: str | None, name: str | None,
         example: bool) -> int:
    """Add a mirror of PROFILE to the config (created if missing), keeping its comments."""
    from ..config.edit import append_mirror
    from ..config.load import find_config
    from ..profiles import load_catalogue

    if example:
        from importlib import resources

        click.echo((resources.files("mirrorkeeper.config") / "example.toml").read_text(
            encoding="utf-8"), nl=False)
        return Exit.OK
    if not profile or not dest:
        raise UsageProblem("name a PROFILE and --dest DIR (or use --example)")
    path = find_config(ctx.obj["config"])
    catalogue = load_catalogue(_admin_profiles_dir(ctx))
    if catalogue.get(profile) is None:
        raise UsageProblem(f"no profile `{profile}`. "
                           + (did_you_mean(profile, catalogue.profiles) or
                              "See `mirrorkeeper profiles`."))
    dest_path = os.path.abspath(dest)
    added = append_mirror(path, name or profile, profile, dest_path)
    console.print(f"added to {path}:\n{added.strip()}")
    command = f"mirrorkeeper{' -c ' + str(path) if ctx.obj['config'] else ''}"
    console.print(f"next: {command} doctor {name or profile}   (are the upstreams and this "
                  "host ready?)\n"
                  f"then: {command} sync {name or profile}")
    return Exit.OK


@cli.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("schema")
def config_schema_cmd() -> int:
    """Print a JSON Schema of the config, for editors (taplo, Even Better TOML)."""
    from ..config.schema import config_schema

    click.echo(json.dumps(config_schema(), indent=2))
    return Exit.OK


@config_group.command("check")
@click.pass_context
def config_check(ctx: click.Context) -> int:
    """Validate the config; list every problem with its file, key and fix.

    One pass: the config file, every profile file (used by a mirror or not), and the files the
    config names (password files, the web's token file).
    """
    from ..config.files import file_problems
    from ..config.load import find_config, inspect_config

    inspection = inspect_config(find_config(ctx.obj["config"]))
    config = inspection.config
    problems = inspection.problems + list(config.profile_problems) + file_problems(config)
    if problems:
        raise ConfigError(problems)
    enabled = [m.name for m in config.enabled()]
    console.print(f"{config.path}: OK — {len(config.mirrors)} mirror(s), "
                  f"{len(enabled)} enabled: {', '.join(enabled) or 'none'}")
    return Exit.OK


@cli.command()
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("demo-run"), show_default=True,
              help="Scratch directory for the upstream tree, mirror, state and logs.")
@click.option("--packages", default=1500, show_default=True, type=click.IntRange(min=10),
              help="Source packages in the generated tree (two .deb files each).")
def demo(workdir: Path, packages: int) -> int:
    """Sync a generated Debian-like tree from an rsync daemon on 127.0.0.1, twice."""
    from ..demo.run import run_demo

    return run_demo(workdir.resolve(), packages, console)


@cli.command()
@click.argument("names", nargs=-1)
@click.option("--all", "all_mirrors", is_flag=True, help="Every enabled mirror.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def doctor(ctx: click.Context, names: tuple[str, ...], all_mirrors: bool, as_json: bool) -> int:
    """Is a mirror ready to enable? Checks each upstream and this host; exit 0 ready,
    1 warnings, 2 errors. Writes nothing."""
    from ..doctor import diagnose, exit_status
    from ..profiles import load_catalogue
    from . import render

    config = _load(ctx)
    unknown = [n for n in names if n not in config.mirrors]
    if unknown:
        raise UsageProblem(f"no mirror `{unknown[0]}`. "
                           + did_you_mean(unknown[0], config.mirrors))
    if bool(names) == all_mirrors:
        raise UsageProblem("name a mirror or use --all")
    mirrors = config.enabled() if all_mirrors else [config.mirrors[n] for n in names]
    catalogue = load_catalogue(config.settings.profiles_dir)
    reports = []
    for mirror in mirrors:
        profile = catalogue.get(mirror.profile)
        reports.append(diagnose(config.settings.rsync, mirror,
                                profile.info if profile else None))
    if as_json:
        click.echo(json.dumps([r.to_json() for r in reports], indent=2))
    else:
        for report in reports:
            console.print(render.doctor_table(report))
    return exit_status(reports)


# -- monitoring -------------------------------------------------------------------------------
@cli.command()
@click.argument("names", nargs=-1)
@click.option("--all", "all_mirrors", is_flag=True, help="Every enabled mirror, one line each.")
@click.option("--warning", "-w", metavar="RANGE", help="Age range in seconds (default: twice "
              "the schedule's interval).")
@click.option("--critical", "-c", metavar="RANGE", help="Age range in seconds (default: "
              "stale_after).")
@click.option("--verbose", "-v", count=True)
@click.pass_context
def check(ctx: click.Context, names: tuple[str, ...], all_mirrors: bool, warning: str | None,
          critical: str | None, verbose: int) -> int:
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
    try:
        store = _reader(config)
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


@cli.command("collectd-exec")
@click.option("--once", is_flag=True, help="Print one round and exit.")
@click.pass_context
def collectd_exec(ctx: click.Context, once: bool) -> int:
    """For collectd's exec plugin: PUTVAL lines for every enabled mirror, every interval."""
    from ..metrics import wire
    from ..metrics.sink import latest_values
    from ..sync.run import lock_dir

    config = _load(ctx, events=False)
    interval = float(os.environ.get("COLLECTD_INTERVAL") or config.metrics.interval)
    host = os.environ.get("COLLECTD_HOSTNAME") or config.settings.hostname
    while True:
        store = _reader(config)
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


@cli.command("nagios-config")
@click.option("--host", default=None,
              help="Attach the services to this host, which your Nagios already defines "
                   "(default: [global] hostname, and a host definition for it is printed too).")
@click.option("--command", "command", default=None,
              help="The mirrorkeeper that Nagios runs (default: the one running now, e.g. "
                   "/usr/local/bin/mirrorkeeper as docs/deploy.md installs it).")
@click.pass_context
def nagios_config_cmd(ctx: click.Context, host: str | None, command: str | None) -> int:
    """Print Nagios/Icinga definitions: a command, the host, one service per enabled mirror."""
    from ..nagios import nagios_config, running_command

    config = _load(ctx, events=False)
    click.echo(nagios_config(config, command or running_command(),
                             host or config.settings.hostname, define_host=host is None))
    return Exit.OK


# -- alerts -------------------------------------------------------------------------------------
@cli.group("alerts")
def alerts_group() -> None:
    """Alerts: list, acknowledge, judge, test plugins, replay rules."""


@alerts_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Resolved alerts too.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def alerts_list(ctx: click.Context, show_all: bool, as_json: bool) -> int:
    """Open alerts (or, with --all, recent ones too)."""
    from ..overview import alert_row
    from ..store.alerts import AlertStore

    config = _load(ctx, events=False)
    store = _reader(config)
    try:
        rows = [alert_row(a) for a in AlertStore(store.engine).recent(200, show_all)]
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return Exit.OK
    for r in rows:
        state = "resolved" if r["resolved_at"] else "acked" if r["acked_at"] else "open"
        console.print(f"#{r['id']} {r['severity']:8} {state:8} {r['mirror']} {r['code']} — "
                      f"{r['summary']} (x{r['occurrences']}, last {r['last_seen']})",
                      markup=False)
    if not rows:
        console.print("no alerts")
    return Exit.OK


def _set_alert(ctx: click.Context, alert_id: int, **values: Any) -> int:
    from ..store import Store
    from ..store.alerts import AlertStore

    config = _load(ctx)
    store = Store.open(config.settings.state_dir)
    try:
        astore = AlertStore(store.engine)
        if astore.get(alert_id) is None:
            raise UsageProblem(f"no alert #{alert_id}; see `mirrorkeeper alerts list --all`")
        astore.update(alert_id, **values)
        event("alert.updated", alert_id=alert_id, **values)
    finally:
        store.close()
    return Exit.OK


@alerts_group.command("ack")
@click.argument("alert_id", type=int)
@click.pass_context
def alerts_ack(ctx: click.Context, alert_id: int) -> int:
    """Acknowledge an alert: no re-notifications while it stays the same."""
    return _set_alert(ctx, alert_id, acked_at=time.time())


@alerts_group.command("mark")
@click.argument("alert_id", type=int)
@click.option("--true", "verdict", flag_value=True, help="It was a real problem.")
@click.option("--false", "verdict", flag_value=False, help="A false positive.")
@click.pass_context
def alerts_mark(ctx: click.Context, alert_id: int, verdict: bool | None) -> int:
    """Record whether an alert was a real problem (replay keeps true ones loud)."""
    if verdict is None:
        raise UsageProblem("say --true or --false")
    return _set_alert(ctx, alert_id, marked_true=verdict)


@alerts_group.command("test")
@click.pass_context
def alerts_test(ctx: click.Context) -> int:
    """Send a test alert through every configured plugin; exit 1 if any failed."""
    from ..alerts.payload import payload
    from ..alerts.plugins import run_plugin

    config = _load(ctx)
    now = time.time()
    data = payload({"mirror": "test", "severity": "critical", "code": "internal.test",
                    "summary": "a test alert from `mirrorkeeper alerts test`", "details": {},
                    "id": None, "first_seen": now, "last_seen": now},
                   host=config.settings.hostname, test=True)
    failed = 0
    for plugin in config.alerts.plugins:
        error = run_plugin(plugin, data)
        failed += error is not None
        console.print(f"{plugin.name}: {'delivered' if error is None else error}", markup=False)
    if not config.alerts.plugins:
        console.print("no plugins configured ([[alerts.plugins]])")
    return Exit.SYNC_FAILED if failed else Exit.OK


@alerts_group.command("watchdog")
@click.pass_context
def alerts_watchdog(ctx: click.Context) -> int:
    """Check every enabled mirror's age now (for cron, e.g. every 10 minutes)."""
    from ..alerts.dispatch import deliver_pending, watchdog
    from ..store import Store

    with SignalStop() as signals:
        config = _load(ctx)
        store = Store.open(config.settings.state_dir)
        try:
            for notice in watchdog(config, store):
                console.print(f"alert {notice.kind}: {notice.mirror} {notice.code} "
                              f"({notice.severity})", markup=False)
            deliver_pending(config, store, stop=signals.stop)  # and earlier ones still due
        finally:
            store.close()
        return signals.exit_status or Exit.OK


@alerts_group.command("replay")
@click.option("--rules", "rules_path", required=True, type=click.Path(dir_okay=False),
              help="A TOML file with the new [alerts] table ([[alerts.rules]] ...).")
@click.option("--limit", default=1000, show_default=True, help="Runs per mirror.")
@click.pass_context
def alerts_replay(ctx: click.Context, rules_path: str, limit: int) -> int:
    """Re-classify stored runs under new rules; exit 1 if a true alert would be silenced."""
    from ..alerts.replay import replay, silenced
    from ..config.load import load_alerts, read_toml
    from ..store.alerts import AlertStore

    config = _load(ctx, events=False)
    problems: list[Problem] = []
    new = load_alerts(read_toml(Path(rules_path)).get("alerts", {}), rules_path, problems)
    if problems:
        raise ConfigError(problems)
    store = _reader(config)
    try:
        changes = [c for m in config.mirrors.values()
                   for c in replay(m, store.history(m.name, limit), config.alerts, new)]
        true_alerts = [a for a in AlertStore(store.engine).recent(10_000)
                       if a["marked_true"]]
    finally:
        store.close()
    for c in changes:
        what = ("appears" if c.before is None else "vanishes" if c.after is None
                else "changes")
        console.print(f"run {c.run_id} {c.mirror} {c.code}: {what} "
                      f"({c.before or '-'} → {c.after or '-'})", markup=False)
    broken = [a for a in true_alerts for c in changes
              if (c.mirror, c.run_id, c.code) == (a["mirror"], a["run_id"], a["code"])
              and silenced(c.before, c.after)]
    for a in broken:
        err_console.print(f"REFUSED: alert #{a['id']} ({a['mirror']} {a['code']}, run "
                          f"{a['run_id']}) was marked a real problem and would be silenced",
                          markup=False)
    console.print(f"{len(changes)} change(s); {len(broken)} true alert(s) silenced")
    return Exit.SYNC_FAILED if broken else Exit.OK


def _print_problems(problems: list[Problem]) -> None:
    err_console.print(f"mirrorkeeper: the configuration has {len(problems)} problem(s):")
    for problem in problems:
        err_console.print(f"  {problem}", markup=False)


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
    except ConfigError as exc:
        _print_problems(exc.problems)
        sys.exit(Exit.CONFIG)
    except StateUnavailable as exc:
        err_console.print(f"mirrorkeeper: {exc}", markup=False)
        sys.exit(Exit.CANT_CREATE)
    sys.exit(int(code or 0))


from .imports import import_group; cli.add_command(import_group)  # noqa: E402, E702, I001
