"""``mirrorkeeper import ftpsync|tunasync``: move an existing setup over.

Prints the equivalent ``[mirrors.NAME]`` tables, with every source setting listed as mapped
or not mapped (and why) in comments; ``--append`` adds them to the config instead (validated
as a whole first, as ``init`` does), writes the admin profiles they need, and — for ftpsync —
records ftpsync's last sync (from its trace) in the history, so the mirror's age goes on.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import click

from ..exitcodes import Exit


@click.group("import")
def import_group() -> None:
    """Move mirrors over from ftpsync or tunasync."""


@import_group.command("ftpsync")
@click.argument("path", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--name", help="The mirror's name (default: the archive of ftpsync-NAME.conf, "
                             "else `debian`).")
@click.option("--profile", help="The profile (default: debian, or debian-NAME for "
                                "ftpsync-NAME.conf when the catalogue has it).")
@click.option("--append", is_flag=True, help="Add the mirror to the config, and ftpsync's "
                                             "last sync to the history, instead of printing.")
@click.pass_context
def import_ftpsync(ctx: click.Context, path: Path, name: str | None, profile: str | None,
                   append: bool) -> int:
    """Read PATH (an ftpsync.conf) and its mirror's trace; print the Mirrorkeeper config."""
    from ..migrate.ftpsync import archive_of, from_ftpsync, from_runmirrors, past_run
    from ..migrate.result import mirrors_text, report_text
    from ..profiles import load_catalogue
    from .catalogue import _admin_profiles_dir
    from .common import console

    archive = archive_of(path)
    name = name or archive or "debian"
    catalogue = load_catalogue(_admin_profiles_dir(ctx))
    if profile is None:
        profile = (f"debian-{archive}" if archive and catalogue.get(f"debian-{archive}")
                   else "debian")
    text = path.read_text(encoding="utf-8", errors="replace")
    imported, mirrorname = from_ftpsync(text, name=name, profile=profile)
    if re.search(r"(?m)^\s*(?:export\s+)?HUB=[\"']?true", text):
        stem = f"runmirrors-{archive}" if archive else "runmirrors"
        from_runmirrors(imported, name, _read(path.with_name(f"{stem}.conf")),
                        _read(path.with_name(f"{stem}.mirror")),
                        str(path.with_name(f"{stem}.mirror")))
    dest = str(imported.mirrors[name]["dest"])
    trace = Path(dest, "project/trace", mirrorname or socket.getfqdn())
    past = None
    try:
        past = past_run(trace.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        imported.skip("trace", f"no ftpsync trace at {trace}: the history starts empty")
    if past is not None:
        imported.map("trace", f"{trace}: ftpsync's last sync (finished "
                              f"{_utc(past.finished_at)} from {past.upstream}) "
                              + ("recorded in the history" if append else
                                 "goes into the history with --append"))
    report = report_text(imported, str(path))
    if not append:
        console.print(report + mirrors_text(imported), markup=False, end="")
        return Exit.OK
    config_path = _append(ctx, imported)
    if past is not None:
        _record(config_path, name, past)
    console.print(report + f"appended to {config_path}: {', '.join(imported.mirrors)}",
                  markup=False)
    return Exit.OK


@import_group.command("tunasync")
@click.argument("path", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--append", is_flag=True, help="Add the mirrors to the config and write the "
                                             "admin profiles they need, instead of printing.")
@click.pass_context
def import_tunasync(ctx: click.Context, path: Path, append: bool) -> int:
    """Read PATH (a tunasync worker.conf); print the Mirrorkeeper config of its rsync
    mirrors."""
    from ..config.load import read_toml
    from ..migrate.result import mirrors_text, report_text, table_text
    from ..migrate.tunasync import from_tunasync
    from ..profiles import load_catalogue
    from .catalogue import _admin_profiles_dir
    from .common import console

    profiles_dir = _admin_profiles_dir(ctx)
    catalogue = load_catalogue(profiles_dir)
    imported = from_tunasync(read_toml(path), catalogue.profiles, str(path))
    report = report_text(imported, str(path))
    if not append:
        shown = "".join(
            f"\n# {Path(profiles_dir or '.', name + '.toml')} (written by --append):\n"
            + "".join(f"#   {line}\n" for line in table_text("", table).splitlines())
            for name, table in imported.profiles.items())
        console.print(report + shown + mirrors_text(imported), markup=False, end="")
        return Exit.OK
    config_path = _append(ctx, imported)
    console.print(report + f"appended to {config_path}: {', '.join(imported.mirrors)}",
                  markup=False)
    return Exit.OK


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _utc(when: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(when))


def _append(ctx: click.Context, imported: object) -> Path:
    """Write the admin profiles the mirrors need (never over a file that exists), then append
    the mirrors; the config is validated as a whole before it is replaced."""
    from ..config.edit import append_tables
    from ..config.load import find_config
    from ..config.problems import ConfigError, Problem
    from ..migrate.result import Imported, mirrors_text, table_text
    from .catalogue import _admin_profiles_dir

    assert isinstance(imported, Imported)
    if not imported.mirrors:
        raise click.UsageError("nothing to append: no mirror could be mapped (see above)")
    config_path = find_config(ctx.obj["config"])
    directory = Path(_admin_profiles_dir(ctx) or "/etc/mirrorkeeper/profiles")
    written: list[Path] = []
    for name, table in imported.profiles.items():
        target = directory / f"{name}.toml"
        if target.exists():
            raise ConfigError([Problem(str(target), "", "already exists",
                                       "move it away, or add the mirror by hand with "
                                       "`mirrorkeeper init`")])
        directory.mkdir(parents=True, exist_ok=True)
        target.write_text(table_text("", table), encoding="utf-8")
        written.append(target)
    try:
        append_tables(config_path, mirrors_text(imported), list(imported.mirrors))
    except BaseException:
        for target in written:  # the config refused them: leave no stray profile behind
            target.unlink(missing_ok=True)
        raise
    return config_path


def _record(config_path: Path, name: str, past: object) -> None:
    """ftpsync's last sync as a finished run, unless the mirror has a history already."""
    from ..config.load import load_config
    from ..migrate.ftpsync import PastRun
    from ..record import RunRecord
    from ..store import Store

    assert isinstance(past, PastRun)
    config = load_config(config_path)
    store = Store.for_config(config)
    try:
        if store.history(name, limit=1):
            return
        upstream = f"ftpsync: {past.upstream}"
        run_id = store.start_run(name, upstream, past.started_at)
        store.finish_run(RunRecord(run_id, name, upstream, past.started_at, past.finished_at,
                                   "success"))
    finally:
        store.close()
