"""Shared fixtures. Every rsync here is real: a daemon on 127.0.0.1 started per test."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mirrorkeeper.classify.findings import Finding, Severity
from mirrorkeeper.classify.judge import classify_run
from mirrorkeeper.cli import main
from mirrorkeeper.config.load import load_config
from mirrorkeeper.demo.rsyncd import Module, RsyncDaemon, free_port
from mirrorkeeper.demo.tree import DebianLikeTree
from mirrorkeeper.record import RunRecord, StageResult
from mirrorkeeper.store import Store
from mirrorkeeper.sync.run import sync_mirror
from mirrorkeeper.sync.trace import own_files

# The shipped alert plugins are console scripts beside this interpreter, as they would be on an
# installed system's PATH.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

if shutil.which("rsync") is None:  # pragma: no cover - the bootstrap installs it
    raise pytest.UsageError("rsync is not installed: run `sh scripts/bootstrap.sh` first")


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(value)


def write_config(path: Path, mirrors: dict[str, dict[str, Any]],
                 global_: dict[str, Any] | None = None) -> Path:
    base = path.parent
    settings = {"state_dir": str(base / "state"), "log_dir": str(base / "logs"),
                "profiles_dir": str(base / "profiles"), "hostname": TEST_HOSTNAME,
                **(global_ or {})}
    lines = ["[global]", *(f"{k} = {toml_value(v)}" for k, v in settings.items()), ""]
    for name, table in mirrors.items():
        lines.append(f"[mirrors.{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in table.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def mk(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run the real CLI entry point in-process; returns its exit status and output."""

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        else:  # pragma: no cover - main always exits
            code = 0
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def rsyncd(tmp_path: Path) -> Iterator[Callable[[list[Module]], RsyncDaemon]]:
    daemons: list[RsyncDaemon] = []

    def start(modules: list[Module]) -> RsyncDaemon:
        daemon = RsyncDaemon(tmp_path / f"rsyncd{len(daemons)}", modules).start()
        daemons.append(daemon)
        return daemon

    yield start
    for daemon in daemons:
        daemon.stop()


@pytest.fixture
def upstream(tmp_path: Path) -> DebianLikeTree:
    tree = DebianLikeTree(tmp_path / "upstream", seed=3)
    tree.create(packages=300)
    return tree


@pytest.fixture
def served(upstream: DebianLikeTree, rsyncd: Callable[[list[Module]], RsyncDaemon]) -> str:
    """The upstream tree's rsync:// URL on a fresh daemon."""
    return rsyncd([Module("debian", upstream.root)]).url("debian")


@pytest.fixture
def mirror_config(tmp_path: Path, served: str) -> Path:
    """A config with one mirror ``deb`` of the debian profile, synced from the test daemon.

    It deletes what the upstream dropped at once (the profile waits an hour), so that a test's
    figures match bare rsync's; tests/test_zero_false_negatives.py covers ``delete_grace``.
    """
    return write_config(tmp_path / "mirrorkeeper.toml", {
        "deb": {"profile": "debian", "dest": str(tmp_path / "mirror"), "upstreams": [served],
                "delete_grace": "0s"},
    })


def python_cli() -> list[str]:
    return [sys.executable, "-m", "mirrorkeeper"]


#: The hostname test configs give the mirror host; its trace file exists only on the mirror.
TEST_HOSTNAME = "mirror.test"
OWN_TRACE = f"project/trace/{TEST_HOSTNAME}"


#: Every file the mirror host writes itself in a Debian-style mirror (the trace, ftpsync's
#: chain files and markers): only the mirror has them.
OWN_FILES = frozenset({*own_files("debian", TEST_HOSTNAME),
                       "project/trace/_hierarchy.mirror"})


def tree_files(root: Path) -> dict[str, bytes]:
    """Every regular file of a tree, but the files the mirror host writes itself."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink() and str(p.relative_to(root)) not in OWN_FILES}


def processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line contains ``text`` (to prove no rsync was left behind)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split()[2]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def wait_for(condition: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"not met in {timeout}s: {what or condition}")


@pytest.fixture
def public() -> Iterator[Path]:
    """A directory `nobody` can read (pytest's own tmp dirs are 0700), for rsync daemon modules
    that run as `nobody` so that `chmod 000` bites even when the tests run as root."""
    path = Path(tempfile.mkdtemp(prefix="mk-public-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@dataclass
class SmtpServer:
    port: int
    #: Every message accepted, as aiosmtpd's envelopes (``.rcpt_tos``, ``.content``).
    received: list[Any]


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on a free port of 127.0.0.1, accepting every message."""
    from aiosmtpd.controller import Controller

    server = SmtpServer(free_port(), [])

    class Handler:
        async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
            server.received.append(envelope)
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=server.port)
    controller.start()
    yield server
    controller.stop()


def sync_and_classify(tmp_path: Path, upstreams: list[str],
                      on_stage: Callable[[StageResult], None] | None = None,
                      **overrides: Any) -> tuple[RunRecord, list[Finding]]:
    """One run of a debian mirror ``deb`` (deleting at once, quick retries) from
    ``upstreams``, and the findings the classifier makes of it."""
    path = write_config(tmp_path / "mk.toml", {"deb": {
        "profile": "debian", "dest": str(tmp_path / "mirror"), "upstreams": upstreams,
        "retry_backoff": "0.1s", "delete_grace": "0s", **overrides}})
    config = load_config(path)
    store = Store.open(config.settings.state_dir)
    try:
        history = store.history("deb", 2)
        last_ok = next((r for r in history if r.outcome == "success"), None)
        record = sync_mirror(config, config.mirrors["deb"], store, on_stage=on_stage)
    finally:
        store.close()
    last_total = last_ok.files_total if last_ok else None
    return record, classify_run(record, config.mirrors["deb"].settings, last_total)


def codes(findings: list[Finding]) -> dict[str, Severity]:
    return {f.code: f.severity for f in findings}
