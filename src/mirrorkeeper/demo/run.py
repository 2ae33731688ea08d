"""``mirrorkeeper demo``: the whole story on one machine, with real rsync.

It generates an upstream tree, serves it with an rsync daemon on 127.0.0.1, writes a config,
and runs the real ``mirrorkeeper`` commands as a user would — a first full sync, an upstream
update, a second sync, ``status`` and ``history`` — then checks the mirror against the upstream
and the reported figures against what it changed.
"""

from __future__ import annotations

import filecmp
import json
import shutil
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from ..config.edit import HEADER, mirror_table, toml_string
from ..sync.trace import own_files
from .rsyncd import Module, RsyncDaemon
from .tree import DebianLikeTree

MARKER = ".mirrorkeeper-demo"


def _prepare(workdir: Path) -> None:
    """Reuse only a directory the demo made itself: never wipe someone's data."""
    if workdir.exists() and any(workdir.iterdir()):
        if not (workdir / MARKER).exists():
            raise SystemExit(f"mirrorkeeper demo: {workdir} exists and was not made by the "
                             "demo; choose another --workdir")
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).write_text("made by `mirrorkeeper demo`; safe to delete\n")


def _mk(console: Console, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    shown = " ".join(["mirrorkeeper", "-c", str(config), *args])
    console.print(f"\n[bold cyan]$ {shown}[/]")
    sys.stdout.flush()
    return subprocess.run(
        [sys.executable, "-m", "mirrorkeeper", "-c", str(config), *args],
        check=False, text=True, stdout=subprocess.PIPE if "--json" in args else None)


DEMO_HOST = "demo-mirror.example"
#: The mirror's own trace (debian profile) ...
OWN_TRACE = f"project/trace/{DEMO_HOST}"
#: ... and every other file only the mirror has: ftpsync's chain files and markers.
OWN_FILES = frozenset({*own_files("debian", DEMO_HOST), "project/trace/_hierarchy.mirror"})


def _trees_equal(a: Path, b: Path, here: str = "") -> bool:
    cmp = filecmp.dircmp(a, b)
    right_only = [name for name in cmp.right_only if here + name not in OWN_FILES]
    if cmp.left_only or right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    return not mismatch and not errors and all(
        _trees_equal(a / d, b / d, f"{here}{d}/") for d in cmp.common_dirs)


def run_demo(workdir: Path, packages: int, console: Console) -> int:
    _prepare(workdir)
    upstream, dest = workdir / "upstream", workdir / "mirror" / "debian"
    console.print(f"[bold]Mirrorkeeper demo[/] in {workdir}")
    tree = DebianLikeTree(upstream, seed=7)
    tree.create(packages=packages)
    console.print(f"generated a Debian-like upstream: {len(tree.pool_files())} .deb files in "
                  "pool/, Packages/Release/InRelease in dists/")
    with RsyncDaemon(workdir / "rsyncd", [Module("debian", upstream)]) as daemon:
        console.print(f"rsync daemon serving it at {daemon.url('debian')}")
        config = workdir / "mirrorkeeper.toml"
        config.write_text(
            HEADER.replace('# state_dir = "/var/lib/mirrorkeeper"',
                           f"state_dir = {toml_string(str(workdir / 'state'))}")
            .replace('# log_dir = "/var/log/mirrorkeeper"',
                     f"log_dir = {toml_string(str(workdir / 'logs'))}")
            .replace('# hostname = "mirror.example.org"', f'hostname = "{DEMO_HOST}"')
            + mirror_table("debian-demo", "debian", str(dest))
            + f"upstreams = [{toml_string(daemon.url('debian'))}]\n"
            + "# The profile keeps files the upstream dropped for an hour, for clients that\n"
            + "# fetched the previous index; the demo deletes them at once.\n"
            + 'delete_grace = "0s"\n')
        console.print(f"config written to {config} (the shipped `debian` profile, "
                      "upstream overridden)")
        codes = [_mk(console, config, "config", "check").returncode]
        codes.append(_mk(console, config, "sync", "debian-demo").returncode)
        first_ok = _trees_equal(upstream, dest)
        change = tree.mutate(add=60, change=25, remove=40)
        console.print(f"\n[bold]upstream update:[/] {len(change.added)} new, "
                      f"{len(change.changed)} changed and {len(change.removed)} removed .deb "
                      "files, new Packages/Release/InRelease")
        codes.append(_mk(console, config, "sync", "debian-demo").returncode)
        second_ok = _trees_equal(upstream, dest)
        codes.append(_mk(console, config, "status").returncode)
        codes.append(_mk(console, config, "history", "debian-demo").returncode)
        runs = json.loads(_mk(console, config, "history", "debian-demo", "--json").stdout)
    latest = runs[0]
    checks = [
        ("first sync: mirror identical to upstream", first_ok),
        ("second sync: mirror identical to upstream", second_ok),
        (f"second sync deleted {latest['files_deleted']} files; the update removed "
         f"{len(change.removed)}", latest["files_deleted"] == len(change.removed)),
        (f"trace file {OWN_TRACE} written", (dest / OWN_TRACE).is_file()),
        ("deletions only after stage 2 brought the new indexes",
         bool(latest["deletions"]) and latest["deletions"]["deleted"] == len(change.removed)
         and all(s["files_deleted"] == 0 for s in latest["stages"])),
        ("every command succeeded", all(code == 0 for code in codes)),
    ]
    console.print("\n[bold]checks[/]")
    for text, ok in checks:
        console.print(f"  {'[green]ok[/]  ' if ok else '[red]FAIL[/]'} {text}")
    console.print(f"\nper-run rsync logs: {workdir / 'logs' / 'runs' / 'debian-demo'}\n"
                  f"event log: {workdir / 'logs' / 'events.jsonl'}")
    return 0 if all(ok for _, ok in checks) else 1
