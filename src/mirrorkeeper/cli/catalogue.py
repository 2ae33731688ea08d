"""Verbs about what to mirror and whether it is ready: ``profiles``, ``init``, ``config
check``/``schema``, ``doctor`` and ``demo``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from ..config.problems import ConfigError, did_you_mean
from ..exitcodes import Exit
from .common import UsageProblem, console, err_console, load

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


@click.command()
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


@click.command()
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


@click.group("config")
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


@click.command()
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("demo-run"), show_default=True,
              help="Scratch directory for the upstream tree, mirror, state and logs.")
@click.option("--packages", default=1500, show_default=True, type=click.IntRange(min=10),
              help="Source packages in the generated tree (two .deb files each).")
def demo(workdir: Path, packages: int) -> int:
    """Sync a generated Debian-like tree from an rsync daemon on 127.0.0.1, twice."""
    from ..demo.run import run_demo

    return run_demo(workdir.resolve(), packages, console)


@click.command()
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

    config = load(ctx)
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
