"""The command line's shape: each verb imports only what it needs, and the verb table that
``--help`` reads without importing any verb says what the verbs themselves say."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from mirrorkeeper.cli import VERBS, cli

from .conftest import write_config

HEAVY = ("sqlalchemy", "alembic", "starlette", "huey", "uvicorn")


def test_every_verb_resolves_and_its_table_line_is_its_own_help() -> None:
    ctx = click.Context(cli, obj={"config": None})
    assert sorted(cli.list_commands(ctx)) == sorted(VERBS)
    for name, (module, attr, line) in VERBS.items():
        command = getattr(importlib.import_module(f"mirrorkeeper.cli.{module}"), attr)
        assert cli.get_command(ctx, name) is command
        assert command.name == name
        first = " ".join((command.help or "").split("\n\n")[0].split())
        assert line == first, name
        for limit in (30, 45, 80):
            assert (click.Command(name, help=line).get_short_help_str(limit)
                    == command.get_short_help_str(limit))


def _loaded_after(args: list[str]) -> tuple[int, set[str]]:
    """Run the CLI in a fresh interpreter; its exit status and which heavy packages it loaded."""
    probe = (
        "import sys\n"
        "from mirrorkeeper.cli import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        "print('@@', code, ' '.join(m for m in sys.modules if m.split('.')[0] in "
        f"{HEAVY!r}), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=False, timeout=60)
    tail = done.stderr.strip().splitlines()[-1].split(" ")
    assert tail[0] == "@@", done.stderr
    return int(tail[1]), {m.split(".")[0] for m in tail[2:]}


@pytest.mark.parametrize("args", [["--help"], ["profiles"], ["profiles", "debian"],
                                  ["sync", "--help"], ["config", "check"],
                                  ["config", "schema"]])
def test_verbs_that_need_no_store_or_web_do_not_import_them(tmp_path: Path,
                                                             args: list[str]) -> None:
    config = write_config(tmp_path / "mk.toml", {
        "deb": {"profile": "debian", "dest": str(tmp_path / "m"),
                "upstreams": ["rsync://127.0.0.1:1/debian"]}})
    code, heavy = _loaded_after(["-c", str(config), *args])
    assert code == 0
    assert heavy == set(), f"{args} imported {sorted(heavy)}"


def test_status_still_works_through_the_lazy_group(tmp_path: Path) -> None:
    config = write_config(tmp_path / "mk.toml", {
        "deb": {"profile": "debian", "dest": str(tmp_path / "m"),
                "upstreams": ["rsync://127.0.0.1:1/debian"]}})
    done = subprocess.run([sys.executable, "-m", "mirrorkeeper", "-c", str(config), "status",
                           "--json"], capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert [row["mirror"] for row in json.loads(done.stdout)] == ["deb"]
