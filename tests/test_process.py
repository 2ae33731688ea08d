"""Processes and signals: the lock, SIGTERM, SIGKILL, the watchdog, live progress.

These start ``mirrorkeeper sync`` as a real subprocess against a bandwidth-limited daemon, so a
sync lasts long enough to be watched, locked and interrupted.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mirrorkeeper.demo.rsyncd import Module, RsyncDaemon
from mirrorkeeper.demo.tree import DebianLikeTree
from mirrorkeeper.rsync.process import run_process
from mirrorkeeper.sync.lock import MirrorLock, MirrorLocked, is_locked

from .conftest import CliResult, processes_mentioning, python_cli, wait_for, write_config


@pytest.fixture
def slow_config(tmp_path: Path, served: str) -> Callable[[int | None], Path]:
    """A config whose sync is throttled to ``bwlimit`` KiB/s (the tree is ~3.7 MB)."""

    def make(bwlimit: int | None) -> Path:
        limit = {"bwlimit": bwlimit} if bwlimit else {}
        return write_config(tmp_path / "mk.toml", {"deb": {
            "profile": "debian", "dest": str(tmp_path / "mirror"), "upstreams": [served],
            **limit}})

    return make


def start_sync(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([*python_cli(), "-c", str(config), "sync", "deb", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def sync_with_rsync_running(config: Path, dest: str) -> subprocess.Popen[str]:
    """Start ``mirrorkeeper sync`` and return once its rsync processes are running."""
    proc = start_sync(config)
    wait_for(lambda: any(p != proc.pid for p in processes_mentioning(dest)),
             what="rsync started")
    return proc


def test_lock_file_semantics(tmp_path: Path) -> None:
    with MirrorLock(tmp_path, "deb"):
        assert is_locked(tmp_path, "deb")
        with pytest.raises(MirrorLocked) as info:
            MirrorLock(tmp_path, "deb").acquire()
        assert info.value.holder == str(os.getpid())
    assert not is_locked(tmp_path, "deb")
    assert (tmp_path / "deb.lock").exists()  # kept: unlinking lock files races


def test_second_sync_exits_75_without_disturbing_the_first(
        slow_config: Callable[[int | None], Path], mk: Callable[..., CliResult],
        tmp_path: Path) -> None:
    config = slow_config(1500)
    first = start_sync(config)
    try:
        wait_for(lambda: is_locked(tmp_path / "state" / "locks", "deb"))
        second = mk("-c", str(config), "sync", "deb")
        assert second.code == 75
        assert "mirror `deb` is already being synced (by pid" in second.err
        status = mk("-c", str(config), "status", "--json").json()[0]
        assert status["state"] == "running"
    finally:
        out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert '"outcome": "success"' in out


def test_status_shows_live_progress(slow_config: Callable[[int | None], Path],
                                    mk: Callable[..., CliResult]) -> None:
    config = slow_config(700)
    proc = start_sync(config)
    seen: list[float] = []
    try:
        def progressed() -> bool:
            row = mk("-c", str(config), "status", "--json").json()[0]
            if row["state"] == "running" and row["progress_percent"]:
                seen.append(row["progress_percent"])
                assert row["stage"] == "stage1" and row["bytes_done"] >= 0
                # The figures are the last *finished* run's: there is none yet.
                assert row["outcome"] is None and isinstance(row["current_run_id"], int)
            return len(seen) >= 2 and seen[-1] > seen[0]
        wait_for(progressed, timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert 0 < seen[0] < seen[-1] < 100


def test_sigterm_stops_rsync_and_records_interrupted(
        slow_config: Callable[[int | None], Path], mk: Callable[..., CliResult],
        tmp_path: Path) -> None:
    config = slow_config(200)
    dest = str(tmp_path / "mirror")
    proc = sync_with_rsync_running(config, dest)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    wait_for(lambda: processes_mentioning(dest) == [], timeout=5)
    history = mk("-c", str(config), "history", "deb", "--json").json()
    assert history[0]["outcome"] == "interrupted"
    assert history[0]["stages"][0]["stopped_by"] == "signal"
    assert history[0]["skipped_stages"] == ["stage2"]
    status = mk("-c", str(config), "status", "--json").json()[0]
    assert status["state"] == "idle" and status["outcome"] == "interrupted"


def test_sigkill_of_mirrorkeeper_takes_rsync_down_and_is_noticed(
        slow_config: Callable[[int | None], Path], mk: Callable[..., CliResult],
        tmp_path: Path) -> None:
    config = slow_config(200)
    dest = str(tmp_path / "mirror")
    proc = sync_with_rsync_running(config, dest)
    proc.kill()
    proc.communicate(timeout=10)
    wait_for(lambda: processes_mentioning(dest) == [], timeout=5,
             what=f"rsync gone after SIGKILL: {processes_mentioning(dest)}")
    status = mk("-c", str(config), "status", "--json").json()[0]
    assert status["state"] == "crashed"
    fast = slow_config(None)  # the same mirror, unthrottled
    assert mk("-c", str(fast), "sync", "deb", "--quiet").code == 0
    outcomes = [h["outcome"] for h in mk("-c", str(fast), "history", "deb", "--json").json()]
    assert outcomes == ["success", "interrupted"]


def test_watchdog_stops_a_silent_process() -> None:
    lines: list[str] = []
    started = time.monotonic()
    result = run_process(["sh", "-c", "echo hello; sleep 60"], lambda _s, x: lines.append(x),
                         no_output_timeout=1.0, poll_seconds=0.1)
    assert time.monotonic() - started < 15
    assert result.stopped_by == "watchdog" and result.exit_code == -signal.SIGTERM
    assert lines[0] == "hello" and "no output from rsync for 1s" in lines[-1]


def test_stop_kills_the_whole_process_group(tmp_path: Path) -> None:
    marker = f"sleep 3{os.getpid() % 1000}"  # a unique command line to look for
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    result = run_process(["sh", "-c", f"{marker} & {marker}; wait"], lambda _s, _x: None,
                         stop=stop, poll_seconds=0.1)
    assert result.stopped_by == "signal"
    wait_for(lambda: processes_mentioning(marker) == [], timeout=5)


def test_cannot_start_is_a_value_not_an_exception(tmp_path: Path) -> None:
    result = run_process([str(tmp_path / "missing")], lambda _s, _x: None)
    assert result.exit_code is None and result.start_error is not None


def test_upstream_daemon_unit(tmp_path: Path) -> None:
    """The daemon helper used by the demo and the tests serves a module and stops cleanly."""
    tree = DebianLikeTree(tmp_path / "up", seed=1)
    tree.create(packages=10)
    with RsyncDaemon(tmp_path / "d", [Module("m", tree.root)]) as daemon:
        listing = subprocess.run(["rsync", daemon.url("m")], capture_output=True, text=True,
                                 check=True).stdout
        assert "pool" in listing and "dists" in listing
        port = daemon.port
    refused = subprocess.run(["rsync", f"rsync://127.0.0.1:{port}/m/"], capture_output=True)
    assert refused.returncode == 10


def test_logs_follow_streams_until_the_run_ends(
        slow_config: Callable[[int | None], Path], tmp_path: Path) -> None:
    config = slow_config(1500)
    proc = start_sync(config)
    try:
        wait_for(lambda: is_locked(tmp_path / "state" / "locks", "deb"))
        time.sleep(0.5)
        follow = subprocess.run([*python_cli(), "-c", str(config), "logs", "deb", "--follow"],
                                capture_output=True, text=True, timeout=60)
    finally:
        proc.communicate(timeout=60)
    assert follow.returncode == 0
    assert "# stage1: rsync " in follow.stdout and "# stage2: rsync " in follow.stdout
    assert "# outcome success" in follow.stdout  # it kept reading to the end of the run


def tree_state(root: Path) -> dict[str, int]:
    return {str(p): p.lstat().st_size for p in root.rglob("*")}


def test_a_stop_ends_rsync_s_whole_tree_promptly(tmp_path: Path, served: str) -> None:
    """SIGTERM makes rsync's receiver try a controlled shutdown through the throttled socket
    while its generator exits: the receiver must not live on, writing files, until the SIGKILL
    fallback. Three stops, since which of the two exits first varies."""
    for attempt in range(3):
        dest = tmp_path / f"mirror{attempt}"
        stop = threading.Event()
        lines: list[str] = []
        asked: list[float] = []

        def stop_while_transferring(dest: Path = dest, stop: threading.Event = stop,
                                    asked: list[float] = asked) -> None:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not any(
                    p.is_file() for p in dest.rglob("*.deb")):
                time.sleep(0.05)
            time.sleep(0.3)
            asked.append(time.monotonic())
            stop.set()

        threading.Thread(target=stop_while_transferring, daemon=True).start()
        argv = ["rsync", "-a", "--bwlimit=300", "--out-format=%i %n", served, f"{dest}/"]
        result = run_process(argv, lambda _s, line, lines=lines: lines.append(line), stop=stop,
                             poll_seconds=0.1)
        took = time.monotonic() - asked[0]
        assert result.stopped_by == "signal"
        assert processes_mentioning(str(dest)) == []  # nothing of rsync's tree lives on
        assert not any("sending SIGKILL" in line for line in lines), lines[-3:]
        assert took < 2.5, f"stop {attempt + 1} took {took:.1f}s"
        before = tree_state(dest)
        time.sleep(0.5)
        assert tree_state(dest) == before  # and nothing writes into the mirror any more


@pytest.mark.parametrize(("command", "sig"), [
    ("sync", signal.SIGHUP), ("sync", signal.SIGINT), ("sync", signal.SIGQUIT),
    ("trigger", signal.SIGHUP), ("trigger", signal.SIGINT)])
def test_every_terminating_signal_is_recorded_as_interrupted_with_its_name(
        slow_config: Callable[[int | None], Path], mk: Callable[..., CliResult],
        tmp_path: Path, command: str, sig: signal.Signals) -> None:
    """README: exit 128+N, rsync stopped, the run `interrupted` — for any signal, not only
    SIGTERM (SIGHUP used to kill the process and leave the run `running`)."""
    config = slow_config(200)
    dest = str(tmp_path / "mirror")
    proc = subprocess.Popen([*python_cli(), "-c", str(config), command, "deb"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: any(p != proc.pid for p in processes_mentioning(dest)),
             what="rsync started")
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err
    assert processes_mentioning(dest) == []
    run = mk("-c", str(config), "history", "deb", "--json").json()[0]
    assert run["outcome"] == "interrupted"
    assert run["attempts"][-1]["reason"] == f"stopped by {sig.name}"
    assert run["stages"][0]["stopped_by"] == "signal"
    assert f"stopped by {sig.name}" in Path(run["log_path"]).read_text()



GUARDED = """
import subprocess, sys, threading, time
from mirrorkeeper.rsync.guard import start_guardian
if sys.argv[1] == "threaded":  # a process that already runs a thread gets the exec'd guardian
    threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
guardian = start_guardian()
import os
kept, done = os.environ["KEPT"], os.environ["DONE"]  # not in our own command line
child = subprocess.Popen(["sh", "-c", f"{kept} & {kept}; wait"], start_new_session=True,
                         stdout=subprocess.DEVNULL)
guardian.register(child.pid)
other = subprocess.Popen(["sh", "-c", f"{done} & {done}; wait"], start_new_session=True,
                         stdout=subprocess.DEVNULL)
guardian.register(other.pid)
guardian.unregister(other.pid)  # finished with: it must be left alone
print(guardian.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("kind", ["forked", "threaded"])
def test_the_guardian_kills_registered_groups_when_its_process_is_killed(kind: str) -> None:
    """SIGKILL leaves no handler to run: the guardian sees its pipe close and kills every
    process group still registered — the rsync receiver a SIGKILLed sync would orphan."""
    tag = f"{os.getpid() % 1000}{len(kind)}"
    registered, unregistered = f"sleep 41{tag}", f"sleep 52{tag}"
    proc = subprocess.Popen([python_cli()[0], "-c", GUARDED, kind], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "KEPT": registered,
                                            "DONE": unregistered})
    try:
        assert proc.stdout is not None
        guardian = int(proc.stdout.readline())
        cmdline = Path(f"/proc/{guardian}/cmdline").read_bytes()
        # Forked: a copy of this interpreter, no new program; threaded: the exec'd module.
        assert (b"-m\0mirrorkeeper.rsync.guard" in cmdline) == (kind == "threaded")
        wait_for(lambda: len(processes_mentioning(registered)) == 3
                 and len(processes_mentioning(unregistered)) == 3, timeout=10)
        proc.kill()
        proc.wait(timeout=10)
        wait_for(lambda: processes_mentioning(registered) == [], timeout=5,
                 what=f"registered group gone: {processes_mentioning(registered)}")
        assert len(processes_mentioning(unregistered)) == 3  # not ours any more: left alone
        wait_for(lambda: not Path(f"/proc/{guardian}").exists()
                 or Path(f"/proc/{guardian}/stat").read_text().split()[2] == "Z", timeout=5,
                 what="the guardian exits with its process")
    finally:
        proc.kill()
        proc.communicate(timeout=10)
        for pid in processes_mentioning(registered) + processes_mentioning(unregistered):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
