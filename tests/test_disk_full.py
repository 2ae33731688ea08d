"""The state disk full, for real: the state and log directories on a small tmpfs, filled to the
last page. Writers stop with exit 73 naming the file and the fix, readers still read, the daemon
says so once instead of thousands of times, and everything carries on when there is room again.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import python_cli, wait_for, write_config

pytestmark = pytest.mark.privileged


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (mounting needs root, and a kernel and sandbox that allow it)."""
    path = tmp_path / "var"
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs",
                              str(path)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> Path:
    """Write until the filesystem refuses even one byte; return the file to delete later."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as handle:
        for size in (1 << 20, 1 << 16, 1 << 12, 1):
            try:
                while True:
                    handle.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    return filler


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*python_cli(), "-c", str(config), *args], capture_output=True,
                          text=True, timeout=120)


def test_writers_stop_clearly_and_readers_still_read(tmp_path: Path, small_disk: Path,
                                                     served: str) -> None:
    config = write_config(tmp_path / "mk.toml", {"deb": {
        "profile": "debian", "dest": str(tmp_path / "mirror"), "upstreams": [served]}},
        {"state_dir": str(small_disk / "state"), "log_dir": str(small_disk / "logs")})
    assert cli(config, "sync", "deb", "--quiet").returncode == 0
    filler = fill(small_disk)
    db = small_disk / "state" / "mirrorkeeper.db"
    full = (f"cannot use {db} as the store: the filesystem is full (no space left on device); "
            f"fix: free space on the filesystem that holds {db.parent}")
    for args in (("sync", "deb", "--quiet"), ("trigger", "deb"), ("daemon",)):
        writer = cli(config, *args)
        assert writer.returncode == 73, (args, writer.stdout, writer.stderr)
        assert full in writer.stderr, (args, writer.stderr)
        assert "Traceback" not in writer.stdout + writer.stderr
    readers = {args: cli(config, *args) for args in (
        ("status", "--json"), ("history", "deb"), ("check", "deb"), ("logs", "deb"),
        ("alerts", "list"))}
    for args, reader in readers.items():
        assert reader.returncode == 0, (args, reader.stdout, reader.stderr)
        assert "Traceback" not in reader.stdout + reader.stderr
    assert json.loads(readers["status", "--json"].stdout)[0]["outcome"] == "success"
    assert readers["check", "deb"].stdout.startswith("MIRRORKEEPER OK - deb synced")
    filler.unlink()  # room again: the next sync simply works
    again = cli(config, "sync", "deb", "--quiet")
    assert again.returncode == 0, again.stdout + again.stderr


def finished_ok(state: Path, mirror: str) -> bool:
    """A successful run of ``mirror`` is in the store (read as any reader would)."""
    try:
        conn = sqlite3.connect(f"file:{state / 'mirrorkeeper.db'}?mode=ro", uri=True)
        try:
            return bool(conn.execute("SELECT count(*) FROM runs WHERE mirror = ? AND "
                                     "outcome = 'success'", (mirror,)).fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return False  # not there yet


def test_the_daemon_says_it_once_and_recovers(tmp_path: Path, small_disk: Path,
                                              served: str) -> None:
    state = small_disk / "state"
    mirrors = {"deb": {"profile": "debian", "dest": str(tmp_path / "deb"), "upstreams": [served]}}
    daemon_settings = ('\n[daemon]\ntick = "1s"\njitter = "0s"\npoll_interval = "30s"\n'
                       '\n[web]\nenabled = false\n')
    config = write_config(tmp_path / "mk.toml", mirrors, {
        "state_dir": str(state), "log_dir": str(small_disk / "logs")})
    config.write_text(config.read_text() + daemon_settings)
    err_path = tmp_path / "daemon.err"
    with open(err_path, "w") as err:
        daemon = subprocess.Popen([*python_cli(), "-c", str(config), "daemon"],
                                  stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_for(lambda: finished_ok(state, "deb"), timeout=60, what="the first sync")
        time.sleep(1.5)  # its poll of the update signal, after the run
        before = len(err_path.read_text().splitlines())
        filler = fill(small_disk)
        # A new mirror arrives (SIGHUP) while the disk is full: it is due at every tick now.
        mirrors["late"] = {"profile": "debian", "dest": str(tmp_path / "late"),
                           "upstreams": [served]}
        text = write_config(tmp_path / "new.toml", mirrors, {
            "state_dir": str(state), "log_dir": str(small_disk / "logs")}).read_text()
        config.write_text(text + daemon_settings)
        daemon.send_signal(signal.SIGHUP)
        time.sleep(12)
        during = err_path.read_text().splitlines()[before:]
        assert daemon.poll() is None, during
        assert len(during) <= 10, during  # not a line per try
        assert any("the filesystem is full" in line for line in during), during
        assert not any("Traceback" in line or "Logging error" in line for line in during)
        push = cli(config, "trigger", "deb")  # sshd's forced command, the daemon running
        assert push.returncode == 73 and "Traceback" not in push.stderr, push.stderr
        assert f"cannot use {state / 'queue.db'} as the queue: the filesystem is full" \
            in push.stderr
        filler.unlink()
        wait_for(lambda: finished_ok(state, "late"), timeout=60,
                 what="the new mirror synced once there was room")
        assert "daemon.recovered" in err_path.read_text()
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
    assert daemon.returncode == 0, err_path.read_text()
