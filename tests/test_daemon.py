"""The daemon end to end: a real ``mirrorkeeper daemon`` process, real rsync daemons on
127.0.0.1, its real HTTP server. Schedules, update detection, push triggers, signals."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mirrorkeeper.config.load import load_config
from mirrorkeeper.daemon import poller
from mirrorkeeper.demo.rsyncd import Module, RsyncDaemon, free_port
from mirrorkeeper.demo.tree import DebianLikeTree
from mirrorkeeper.record import RunRecord
from mirrorkeeper.store import Store
from mirrorkeeper.store.schema import polls as polls_table
from mirrorkeeper.store.schema import runs as runs_table
from mirrorkeeper.sync.run import sync_mirror

from .conftest import CliResult, processes_mentioning, python_cli, wait_for, write_config
from .test_metrics import Listener, graphite

__all__ = ["graphite"]  # a fixture, imported for pytest

TOKEN = "s3cret-token"


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def daemon_config(tmp_path: Path, mirrors: dict[str, dict[str, Any]],
                  daemon: dict[str, Any] | None = None) -> tuple[Path, int]:
    """A config plus [daemon] (1 s tick, no jitter) and [web] (a free port, a token)."""
    port = free_port()
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "token").chmod(0o600)  # the daemon refuses a token others can read
    path = write_config(tmp_path / "mirrorkeeper.toml", mirrors)
    settings = {"tick": '"1s"', "jitter": '"0s"', "poll_interval": '"0s"', "max_parallel": "2",
                **{k: json.dumps(v) for k, v in (daemon or {}).items()}}
    path.write_text(path.read_text() + "\n[daemon]\n"
                    + "".join(f"{k} = {v}\n" for k, v in settings.items())
                    + f'\n[web]\nlisten = "127.0.0.1:{port}"\n'
                    f'token_file = "{tmp_path / "token"}"\n')
    return path, port


class RunningDaemon:
    def __init__(self, config: Path, port: int) -> None:
        self.config, self.port = config, port
        self.proc = subprocess.Popen([*python_cli(), "-c", str(config), "daemon"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(self.answers, timeout=20, what="the daemon's web server answers")

    def wait_for_rsync(self, dest: Path) -> None:
        """Until one of the daemon's syncs has an rsync running into ``dest``."""
        wait_for(lambda: any(p != self.proc.pid for p in processes_mentioning(str(dest))),
                 what=f"an rsync into {dest}")

    def answers(self) -> bool:
        assert self.proc.poll() is None, self.proc.communicate()
        try:
            self.get("/api/status")
            return True
        except OSError:
            return False

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as reply:
            return json.loads(reply.read())

    def post(self, path: str, token: str | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method="POST",
                                         data=b"{}", headers={"Accept": "application/json",
                                                              "Content-Type": "application/json"})
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _out, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, err


@pytest.fixture
def start_daemon() -> Iterator[Callable[[Path, int], RunningDaemon]]:
    started: list[RunningDaemon] = []

    def start(config: Path, port: int) -> RunningDaemon:
        daemon = RunningDaemon(config, port)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.communicate()


def runs(config: Path, mirror: str) -> list[RunRecord]:
    settings = load_config(config).settings
    store = Store.open(settings.state_dir)
    try:
        return store.history(mirror, limit=100)
    finally:
        store.close()


def finished(config: Path, mirror: str) -> list[RunRecord]:
    return [r for r in runs(config, mirror) if r.outcome != "running"]


def events(tmp_path: Path, name: str) -> list[dict[str, Any]]:
    path = tmp_path / "logs" / "events.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [e for e in map(json.loads, lines) if e["event"] == name]


def sync_now(config: Path, mirror: str) -> RunRecord:
    loaded = load_config(config)
    store = Store.open(loaded.settings.state_dir)
    try:
        return sync_mirror(loaded, loaded.mirrors[mirror], store)
    finally:
        store.close()


def seed_run(config: Path, mirror: str, started_at: float) -> None:
    """A finished run in the history, as if it had happened at ``started_at``."""
    store = Store.open(load_config(config).settings.state_dir)
    try:
        run_id = store.start_run(mirror, "seed", started_at)
        store.finish_run(RunRecord(run_id, mirror, "seed", started_at, started_at + 60,
                                   "success"))
    finally:
        store.close()


def test_schedule_fires_for_the_overdue_mirror_only(
        tmp_path: Path, served: str, start_daemon: Callable[[Path, int], RunningDaemon]) -> None:
    mirrors = {name: {"profile": "debian", "dest": str(tmp_path / name), "upstreams": [served],
                      "schedule": "every 6h"} for name in ("overdue", "fresh")}
    config, port = daemon_config(tmp_path, mirrors)
    now = time.time()
    seed_run(config, "overdue", now - 7 * 3600)
    seed_run(config, "fresh", now - 3600)
    daemon = start_daemon(config, port)
    wait_for(lambda: len(finished(config, "overdue")) == 2, what="the overdue mirror synced")
    time.sleep(2.5)  # two more ticks: the fresh mirror must still wait
    assert len(runs(config, "fresh")) == 1
    assert [e["reason"] for e in events(tmp_path, "job.start")] == ["schedule"]
    assert finished(config, "overdue")[0].outcome == "success"
    jobs = {j["name"]: j for j in daemon.get("/jobs")}
    assert jobs["fresh"]["next_schedule_ts"] == int(now - 3600 + 6 * 3600)
    assert jobs["overdue"]["status"] == "success"
    code, err = daemon.stop()
    assert code == 0, err


def test_a_changed_update_signal_is_synced_early_and_an_unchanged_one_is_not(
        tmp_path: Path, upstream: DebianLikeTree,
        rsyncd: Callable[[list[Module]], RsyncDaemon],
        start_daemon: Callable[[Path, int], RunningDaemon]) -> None:
    quiet = DebianLikeTree(tmp_path / "quiet-upstream", seed=5)
    quiet.create(packages=50)
    rsync = rsyncd([Module("debian", upstream.root), Module("quiet", quiet.root)])
    mirrors = {"deb": {"profile": "debian", "dest": str(tmp_path / "deb"),
                       "upstreams": [rsync.url("debian")], "delete_grace": "0s"},
               "quiet": {"profile": "debian", "dest": str(tmp_path / "quiet"),
                         "upstreams": [rsync.url("quiet")]}}
    config, port = daemon_config(tmp_path, mirrors, {"poll_interval": "30s"})
    assert sync_now(config, "deb").outcome == "success"
    assert sync_now(config, "quiet").outcome == "success"
    change = upstream.mutate(add=5, change=2, remove=3)  # a new publish: a newer trace
    start_daemon(config, port)
    wait_for(lambda: len(finished(config, "deb")) == 2, what="the early sync")
    assert finished(config, "deb")[0].files_deleted == len(change.removed)
    assert [e["mirror"] for e in events(tmp_path, "job.start")] == ["deb"]
    assert events(tmp_path, "job.queued")[0]["reason"] == "update signal"
    store = Store.open(tmp_path / "state")
    try:
        deb_polls, quiet_polls = store.polls("deb"), store.polls("quiet")
    finally:
        store.close()
    assert deb_polls[-1]["triggered"] and deb_polls[-1]["upstream_mtime"] > deb_polls[-1][
        "local_mtime"]
    assert deb_polls[-1]["seconds"] < 5 and deb_polls[-1]["error"] is None
    assert len(quiet_polls) == 1 and not quiet_polls[0]["triggered"]
    assert len(runs(config, "quiet")) == 1


def test_push_triggers_over_http_and_the_trigger_command(
        tmp_path: Path, served: str, start_daemon: Callable[[Path, int], RunningDaemon]) -> None:
    config, port = daemon_config(tmp_path, {"deb": {
        "profile": "debian", "dest": str(tmp_path / "deb"), "upstreams": [served]}})
    sync_now(config, "deb")
    daemon = start_daemon(config, port)
    assert daemon.post("/api/mirrors/deb/sync")[0] == 401
    assert daemon.post("/api/mirrors/deb/sync", token="wrong")[0] == 401
    assert daemon.post("/api/mirrors/nope/sync", token=TOKEN)[0] == 404
    assert daemon.post("/api/mirrors/deb/sync", token=TOKEN) == (202, {"mirror": "deb",
                                                                       "queued": True})
    wait_for(lambda: len(finished(config, "deb")) == 2, what="the HTTP-triggered sync")
    # The environment sshd gives a forced command; the real sshd path is tested further down.
    forced = subprocess.run([*python_cli(), "-c", str(config), "trigger", "deb"],
                            capture_output=True, text=True, timeout=30,
                            env={"SSH_ORIGINAL_COMMAND": "sync:all", "PATH": "/usr/bin:/bin"})
    assert forced.returncode == 0 and "queued with the daemon" in forced.stdout, forced.stderr
    wait_for(lambda: len(finished(config, "deb")) == 3, what="the ssh-triggered sync")
    assert [e["reason"] for e in events(tmp_path, "job.start")] == ["push", "push"]
    assert events(tmp_path, "trigger")[0]["ssh_command"] == "sync:all"
    assert daemon.stop()[0] == 0


def test_trigger_without_a_daemon_syncs_in_the_foreground(
        mirror_config: Path, mk: Callable[..., CliResult]) -> None:
    result = mk("-c", str(mirror_config), "trigger", "deb")
    assert result.code == 0 and "no daemon is running; syncing now" in result.out
    assert [r.outcome for r in runs(mirror_config, "deb")] == ["success"]
    assert mk("-c", str(mirror_config), "trigger", "nope").code == 64


def test_sigterm_stops_running_syncs_and_records_them_interrupted(
        tmp_path: Path, served: str, start_daemon: Callable[[Path, int], RunningDaemon]) -> None:
    dest = tmp_path / "deb"
    config, port = daemon_config(tmp_path, {"deb": {
        "profile": "debian", "dest": str(dest), "upstreams": [served], "bwlimit": 300}})
    daemon = start_daemon(config, port)
    daemon.wait_for_rsync(dest)
    began = time.monotonic()
    code, err = daemon.stop()
    assert code == 0, err
    assert time.monotonic() - began < 15
    assert [r.outcome for r in runs(config, "deb")] == ["interrupted"]
    assert runs(config, "deb")[0].attempts[-1].reason == "stopped by SIGTERM"
    assert processes_mentioning(str(dest)) == []
    assert "daemon.stop" in err  # the events reach stderr, for journald


@pytest.fixture
def silent_upstream() -> Iterator[str]:
    """An upstream that takes the connection and never says a word (a hung server, or a
    firewall that swallows the session): the kernel completes the handshake, no one reads."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"rsync://127.0.0.1:{server.getsockname()[1]}/debian/"


def test_sigterm_during_a_probe_of_a_hung_upstream_stops_at_once(
        tmp_path: Path, silent_upstream: str,
        start_daemon: Callable[[Path, int], RunningDaemon]) -> None:
    # The first run's signal probe waits on an upstream that never answers (rsync's own
    # --timeout is ten minutes); a stop must not wait for it, nor leave it behind.
    port = silent_upstream.split(":")[2].split("/")[0]
    config, web = daemon_config(tmp_path, {"deb": {
        "profile": "debian", "dest": str(tmp_path / "deb"), "upstreams": [silent_upstream]}})
    daemon = start_daemon(config, web)
    wait_for(lambda: bool(processes_mentioning(f"127.0.0.1:{port}")), what="the probe's rsync")
    began = time.monotonic()
    code, err = daemon.stop()
    assert code == 0, err
    assert time.monotonic() - began < 10
    assert processes_mentioning(f"127.0.0.1:{port}") == []
    assert [r.outcome for r in runs(config, "deb")] == ["interrupted"]


def test_sigterm_to_a_sync_probing_a_hung_upstream_stops_it_at_once(
        tmp_path: Path, silent_upstream: str) -> None:
    # The same from the command line (a timer's `sync`), where the probe runs ahead of the
    # run while the store is opened (sync/prefetch.py).
    port = silent_upstream.split(":")[2].split("/")[0]
    path = write_config(tmp_path / "mk.toml", {"deb": {
        "profile": "debian", "dest": str(tmp_path / "deb"), "upstreams": [silent_upstream]}})
    proc = subprocess.Popen([*python_cli(), "-c", str(path), "sync", "deb", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: bool(processes_mentioning(f"127.0.0.1:{port}")), what="the probe")
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert time.monotonic() - began < 10, err
    assert proc.returncode != 0 and "Traceback" not in err
    # Stopped before its run began (the store still opening), or as an interrupted run.
    assert [r.outcome for r in runs(path, "deb")] in ([], ["interrupted"])
    assert processes_mentioning(f"127.0.0.1:{port}") == []


def test_a_poll_of_a_hung_upstream_ends_when_asked_and_records_nothing(
        tmp_path: Path, silent_upstream: str) -> None:
    path = write_config(tmp_path / "mk.toml", {"deb": {
        "profile": "debian", "dest": str(tmp_path / "deb"), "upstreams": [silent_upstream]}})
    config = load_config(path)
    store = Store.open(config.settings.state_dir)
    stop = threading.Event()
    answer: list[object] = []
    try:
        poll = threading.Thread(target=lambda: answer.append(
            poller.poll_signal(config, config.mirrors["deb"], store, stop)))
        poll.start()
        port = silent_upstream.split(":")[2].split("/")[0]
        wait_for(lambda: bool(processes_mentioning(f"127.0.0.1:{port}")), what="the poll")
        began = time.monotonic()
        stop.set()
        poll.join(10)
        assert not poll.is_alive() and time.monotonic() - began < 5
        assert answer == [None]
        assert store.last_poll("deb") is None  # a stop is not the upstream's answer
        assert processes_mentioning(f"127.0.0.1:{port}") == []
    finally:
        stop.set()
        store.close()


def test_sighup_reloads_a_good_config_and_refuses_a_bad_one(
        tmp_path: Path, served: str, start_daemon: Callable[[Path, int], RunningDaemon]) -> None:
    config, port = daemon_config(tmp_path, {"deb": {
        "profile": "debian", "dest": str(tmp_path / "deb"), "upstreams": [served]}})
    good = config.read_text()
    daemon = start_daemon(config, port)
    config.write_text(good + "\n[mirrors.broken]\nprofile = \"debian\"\n")  # no dest
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: bool(events(tmp_path, "config.reload_refused")), what="refusal logged")
    refused = events(tmp_path, "config.reload_refused")[0]
    assert any("mirrors.broken.dest" in p for p in refused["problems"])
    assert [r["mirror"] for r in daemon.get("/api/status")] == ["deb"]
    second = tmp_path / "second"
    config.write_text(good.replace("[daemon]", f'[mirrors.second]\nprofile = "debian"\n'
                                   f'dest = "{second}"\nupstreams = ["{served}"]\n\n[daemon]'))
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: [r["mirror"] for r in daemon.get("/api/status")] == ["deb", "second"],
             what="the new mirror appears")
    wait_for(lambda: len(finished(config, "second")) == 1, what="the new mirror's first run")
    assert daemon.stop()[0] == 0


def test_parallel_limit_and_one_failure_does_not_stop_the_others(
        tmp_path: Path, served: str, start_daemon: Callable[[Path, int], RunningDaemon]) -> None:
    mirrors = {name: {"profile": "debian", "dest": str(tmp_path / name), "upstreams": [served],
                      "bwlimit": 3000} for name in ("a", "b", "c")}
    mirrors["broken"] = {"profile": "debian", "dest": str(tmp_path / "broken"),
                         "upstreams": [served.replace("/debian/", "/nosuchmodule/")],
                         "attempts_per_upstream": 1}
    config, port = daemon_config(tmp_path, mirrors, {"max_parallel": 1})
    start_daemon(config, port)
    wait_for(lambda: all(len(finished(config, m)) == 1 for m in mirrors), timeout=60,
             what="every mirror ran once")
    assert finished(config, "broken")[0].outcome == "failed"
    spans = sorted((r.started_at, r.finished_at or 0.0) for m in mirrors
                   for r in finished(config, m))
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end - 0.05, "two runs overlapped with max_parallel = 1"


def test_sync_due_for_a_timer_polls_and_syncs_only_what_is_due(
        tmp_path: Path, upstream: DebianLikeTree, rsyncd: Callable[[list[Module]], RsyncDaemon],
        mk: Callable[..., CliResult]) -> None:
    """The timer-only mode: `sync --due` makes the daemon's decisions in one go."""
    quiet = DebianLikeTree(tmp_path / "quiet-upstream", seed=5)
    quiet.create(packages=50)
    rsync = rsyncd([Module("debian", upstream.root), Module("quiet", quiet.root)])
    mirrors = {"overdue": {"profile": "debian", "dest": str(tmp_path / "overdue"),
                           "upstreams": [rsync.url("quiet")]},
               "fresh": {"profile": "debian", "dest": str(tmp_path / "fresh"),
                         "upstreams": [rsync.url("quiet")]},
               "signalled": {"profile": "debian", "dest": str(tmp_path / "signalled"),
                             "upstreams": [rsync.url("debian")]}}
    config, _ = daemon_config(tmp_path, mirrors, {"poll_interval": "5m"})
    seed_run(config, "overdue", time.time() - 7 * 3600)
    assert sync_now(config, "fresh").outcome == "success"
    assert sync_now(config, "signalled").outcome == "success"
    result = mk("-c", str(config), "sync", "--due", "--json")
    assert result.code == 0, result.err
    assert [len(runs(config, m)) for m in mirrors] == [2, 1, 1]  # the schedule: overdue only
    upstream.mutate(add=2, change=0, remove=0)
    assert mk("-c", str(config), "sync", "--due").out.strip() == "nothing is due"  # polled 5m ago
    store = Store.open(tmp_path / "state")
    try:  # as if the last polls were older than poll_interval
        with store.engine.begin() as conn:
            conn.execute(polls_table.update().values(polled_at=polls_table.c.polled_at - 600))
    finally:
        store.close()
    result = mk("-c", str(config), "sync", "--due", "--json")
    assert result.code == 0, result.err
    assert [len(runs(config, m)) for m in mirrors] == [2, 1, 2]  # the changed signal
    assert mk("-c", str(config), "sync", "--due", "--all").code == 64


def test_skip_unchanged_costs_one_probe_until_the_upstream_publishes(
        tmp_path: Path, upstream: DebianLikeTree, served: str,
        mk: Callable[..., CliResult]) -> None:
    """A scheduled run of an upstream whose signal has not changed is skipped after one
    probe; once the upstream publishes, the next `sync --due` runs it."""
    config, _ = daemon_config(tmp_path, {"deb": {
        "profile": "debian", "dest": str(tmp_path / "deb"), "upstreams": [served],
        "skip_unchanged": True}}, {"poll_interval": "5m"})
    assert sync_now(config, "deb").outcome == "success"

    def age(table: Any, *columns: str, seconds: float) -> None:
        store = Store.open(tmp_path / "state")
        try:
            with store.engine.begin() as conn:
                conn.execute(table.update().values(
                    **{c: getattr(table.c, c) - seconds for c in columns}))
        finally:
            store.close()

    age(runs_table, "started_at", "finished_at", seconds=7 * 3600)  # due by its 6h schedule
    assert mk("-c", str(config), "sync", "--due").out.strip() == "nothing is due"
    assert len(runs(config, "deb")) == 1
    store = Store.open(tmp_path / "state")
    try:
        assert len(store.polls("deb")) == 1  # the one probe that decided
    finally:
        store.close()
    assert mk("-c", str(config), "sync", "--due").out.strip() == "nothing is due"
    upstream.mutate(add=2, change=0, remove=0)
    age(polls_table, "polled_at", seconds=600)  # the next poll is due
    result = mk("-c", str(config), "sync", "--due", "--json")
    assert result.code == 0, result.err
    assert len(runs(config, "deb")) == 2  # the publish was seen and synced


def test_the_daemon_keeps_ages_current_without_any_sync(
        tmp_path: Path, served: str, graphite: Listener,
        start_daemon: Callable[[Path, int], RunningDaemon]) -> None:
    """Graphite gets age_seconds on every tick and the Prometheus textfile is rewritten, so
    a graph of age climbs (and an alert can fire) even when nothing syncs at all."""
    config, port = daemon_config(tmp_path, {"deb": {
        "profile": "debian", "dest": str(tmp_path / "deb"), "upstreams": [served]}})
    textfile = tmp_path / "mirrorkeeper.prom"
    config.write_text(config.read_text() + f'\n[metrics]\ngraphite = "tcp://127.0.0.1:'
                      f'{graphite.sock.getsockname()[1]}"\nprometheus_textfile = "{textfile}"\n')
    seed_run(config, "deb", time.time() - 3600)  # fresh: nothing is due
    start_daemon(config, port)

    def ages() -> list[int]:
        return [int(line.split()[1]) for line in graphite.lines()
                if line.startswith("mirrorkeeper.mirror_test.deb.age_seconds ")]

    wait_for(lambda: len(set(ages())) >= 3, what="three different ages, one per tick")
    assert ages() == sorted(ages()) and 3500 < ages()[0] < 3600 + 60
    assert re.search(r'^mirrorkeeper_age_seconds\{mirror="deb"\} 35\d\d', textfile.read_text(),
                     re.M)
    assert len(runs(config, "deb")) == 1


def test_a_taken_port_or_a_second_daemon_is_a_clear_error(
        tmp_path: Path, served: str, start_daemon: Callable[[Path, int], RunningDaemon]) -> None:
    config, port = daemon_config(tmp_path, {"deb": {
        "profile": "debian", "dest": str(tmp_path / "deb"), "upstreams": [served]}})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen(1)
        proc = subprocess.run([*python_cli(), "-c", str(config), "daemon"], capture_output=True,
                              text=True, timeout=30)
    assert proc.returncode == 78
    assert f"cannot serve the dashboard on 127.0.0.1:{port}" in proc.stderr
    assert "set [web] listen to a free HOST:PORT" in proc.stderr
    assert runs(config, "deb") == []  # nothing started
    daemon = start_daemon(config, port)
    second = subprocess.run([*python_cli(), "-c", str(config), "daemon"], capture_output=True,
                            text=True, timeout=30)
    assert second.returncode == 75 and "a daemon already runs" in second.stderr
    assert daemon.proc.poll() is None and daemon.stop()[0] == 0


@pytest.mark.skipif(shutil.which("sshd") is None and not Path("/usr/sbin/sshd").exists(),
                    reason="needs openssh-server: `sh scripts/bootstrap.sh --test`")
@pytest.mark.skipif(os.geteuid() != 0, reason="the test's sshd runs as root")
def test_push_over_a_real_ssh_forced_command(
        tmp_path: Path, served: str, start_daemon: Callable[[Path, int], RunningDaemon]) -> None:
    """Debian-style push: the upstream logs in with a key that may only run the trigger."""
    config, port = daemon_config(tmp_path, {"deb": {
        "profile": "debian", "dest": str(tmp_path / "deb"), "upstreams": [served]}})
    sync_now(config, "deb")
    ssh_dir = tmp_path / "ssh"
    ssh_dir.mkdir()
    for key in ("host", "upstream"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        str(ssh_dir / key)], check=True)
    mk = Path(sys.executable).parent / "mirrorkeeper"
    (ssh_dir / "authorized_keys").write_text(
        f'command="{mk} -c {config} trigger deb",restrict '
        f'{(ssh_dir / "upstream.pub").read_text()}')
    (ssh_dir / "authorized_keys").chmod(0o600)
    ssh_port = free_port()
    (ssh_dir / "sshd_config").write_text(
        f"Port {ssh_port}\nListenAddress 127.0.0.1\nHostKey {ssh_dir / 'host'}\n"
        f"AuthorizedKeysFile {ssh_dir / 'authorized_keys'}\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\n"
        # The keys live under /tmp, which StrictModes rejects (world-writable parent).
        f"StrictModes no\nPidFile {ssh_dir / 'sshd.pid'}\n")
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    sshd = subprocess.Popen([shutil.which("sshd") or "/usr/sbin/sshd", "-D", "-e", "-f",
                             str(ssh_dir / "sshd_config")], stderr=subprocess.DEVNULL)
    push = ["ssh", "-i", str(ssh_dir / "upstream"), "-p", str(ssh_port), "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "root@127.0.0.1", "sync:all"]
    try:
        wait_for(lambda: listening(ssh_port), what="sshd listening")
        alone = subprocess.run(push, capture_output=True, text=True, timeout=60)
        assert alone.returncode == 0, alone.stderr  # no daemon: synced there and then
        assert "no daemon is running; syncing now" in alone.stdout
        assert len(finished(config, "deb")) == 2
        daemon = start_daemon(config, port)
        queued = subprocess.run(push, capture_output=True, text=True, timeout=60)
        assert queued.returncode == 0 and "queued with the daemon" in queued.stdout
        wait_for(lambda: len(finished(config, "deb")) == 3, what="the pushed sync")
        assert [e["reason"] for e in events(tmp_path, "job.start")] == ["push"]
        trigger = events(tmp_path, "trigger")[-1]
        assert trigger["ssh_command"] == "sync:all"
        assert trigger["ssh_client"].startswith("127.0.0.1 ")
        assert daemon.stop()[0] == 0
    finally:
        sshd.terminate()
        sshd.wait(timeout=10)


def test_pushes_during_a_sync_earn_exactly_one_more_run(
        tmp_path: Path, served: str, start_daemon: Callable[[Path, int], RunningDaemon]) -> None:
    dest = tmp_path / "deb"
    config, port = daemon_config(tmp_path, {"deb": {
        "profile": "debian", "dest": str(dest), "upstreams": [served], "bwlimit": 1000}})
    daemon = start_daemon(config, port)
    daemon.wait_for_rsync(dest)
    for _ in range(3):
        assert daemon.post("/api/mirrors/deb/sync", token=TOKEN)[0] == 202
    wait_for(lambda: len(events(tmp_path, "job.coalesced")) == 3, what="three pushes folded")
    wait_for(lambda: len(finished(config, "deb")) == 2, timeout=60, what="one more run")
    time.sleep(2.5)  # two more ticks: nothing else may start
    assert len(runs(config, "deb")) == 2
    assert [e["reason"] for e in events(tmp_path, "job.start")] == ["first run", "push"]
    assert daemon.stop()[0] == 0


def vm_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def raw_http(port: int, head: str, body: bytes = b"", timeout: float = 5.0) -> bytes:
    """Send a request's head and part of its body over a plain socket; whatever the server
    answered within ``timeout`` (it may answer before the body is complete, or never)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.encode() + body)
        data = b""
        deadline = time.monotonic() + timeout
        try:
            while b"\r\n\r\n" not in data and time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError:  # a timeout: no answer
            pass
    return data


def test_huge_bodies_are_refused_from_the_headers_alone(
        tmp_path: Path, served: str, start_daemon: Callable[[Path, int], RunningDaemon]) -> None:
    config, port = daemon_config(tmp_path, {"deb": {
        "profile": "debian", "dest": str(tmp_path / "deb"), "upstreams": [served]}})
    seed_run(config, "deb", time.time() - 60)  # fresh: nothing is due
    daemon = start_daemon(config, port)
    rss_before = vm_rss_kib(daemon.proc.pid)

    def head(method: str, path: str, *extra: str, length: int | None = 1_500_000_000) -> str:
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *extra]
        if length is not None:
            lines.append(f"Content-Length: {length}")
        return "\r\n".join(lines) + "\r\n\r\n"

    form = "Content-Type: application/x-www-form-urlencoded"
    # No token, 1.5 GB announced: the answer comes before the body (it used to be read whole).
    started = time.monotonic()
    reply = raw_http(port, head("POST", "/api/mirrors/deb/sync", form), b"token=" + b"x" * 65536)
    assert reply.startswith(b"HTTP/1.1 413 "), reply
    assert b"connection: close" in reply.lower() and time.monotonic() - started < 5
    # The limit holds with a valid token, and on every endpoint.
    for request in (head("POST", "/api/mirrors/deb/sync", f"Authorization: Bearer {TOKEN}",
                         "Content-Type: application/json"),
                    head("GET", "/api/status"), head("POST", "/api/alerts/1/ack", form)):
        assert raw_http(port, request).startswith(b"HTTP/1.1 413 "), request
    # No length at all (chunked): counted as it arrives.
    chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
    reply = raw_http(port, head("POST", "/api/mirrors/deb/sync", form,
                                "Transfer-Encoding: chunked", length=None), chunk * 16)
    assert reply.startswith(b"HTTP/1.1 413 "), reply
    # A client that keeps sending after the refusal is cut off; the daemon's memory stays.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head("POST", "/api/mirrors/deb/sync", form).encode())
        sent = 0
        try:
            while sent < 300 * 2**20:
                sock.sendall(b"x" * 2**20)
                sent += 2**20
        except OSError:
            pass
    assert sent < 300 * 2**20, "the daemon read on after refusing the request"
    assert vm_rss_kib(daemon.proc.pid) - rss_before < 32 * 1024
    assert daemon.get("/api/status")[0]["mirror"] == "deb"
    assert events(tmp_path, "job.queued") == []
    code, err = daemon.stop()
    assert code == 0 and "Traceback" not in err, err


def test_trigger_logs_a_bounded_prefix_of_the_ssh_command(
        mirror_config: Path, mk: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch,
        ) -> None:
    monkeypatch.setenv("SSH_ORIGINAL_COMMAND", "sync:all " + "A" * 100_000)
    assert mk("-c", str(mirror_config), "trigger", "deb").code == 0
    logged = events(mirror_config.parent, "trigger")[0]
    assert logged["ssh_command"].startswith("sync:all AAAA")
    assert len(logged["ssh_command"]) <= 256 and logged["ssh_command_length"] == 100_009
    assert (mirror_config.parent / "logs" / "events.jsonl").stat().st_size < 20_000


def with_plugins(config: Path, plugins: list[dict[str, Any]]) -> None:
    config.write_text(config.read_text() + "".join(
        "\n[[alerts.plugins]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in p.items())
        for p in plugins))


def test_each_notice_is_sent_once_per_plugin_with_parallel_workers(
        tmp_path: Path, served: str, start_daemon: Callable[[Path, int], RunningDaemon]) -> None:
    """Three mirrors fail at once (three workers), then recover: three notices and three
    `resolved`, each delivered exactly once although workers and the tick all send."""
    names = ("a", "b", "c")
    mirrors = {name: {"profile": "debian", "dest": str(tmp_path / name),
                      "upstreams": ["rsync://127.0.0.1:9/debian/"], "attempts_per_upstream": 1}
               for name in names}
    config, port = daemon_config(tmp_path, mirrors, {"max_parallel": 3})
    sent = tmp_path / "sent.jsonl"
    slow = tmp_path / "slow-jsonl"  # a slow mail server: wide windows for double sends
    slow.write_text(f"#!/bin/sh\nsleep 0.5\nexec mirrorkeeper-alert-jsonl {sent}\n")
    slow.chmod(0o755)
    with_plugins(config, [{"name": "mail", "command": [str(slow)], "min_severity": "info"}])

    def lines() -> list[dict[str, Any]]:
        return [json.loads(x) for x in sent.read_text().splitlines()] if sent.exists() else []

    daemon = start_daemon(config, port)
    wait_for(lambda: len(lines()) >= 3, timeout=30, what="three notices")
    config.write_text(config.read_text().replace("rsync://127.0.0.1:9/debian/", served))
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: bool(events(tmp_path, "config.reloaded")), what="the good upstream")
    for name in names:
        assert daemon.post(f"/api/mirrors/{name}/sync", token=TOKEN)[0] == 202
    wait_for(lambda: len(lines()) >= 6, timeout=60, what="three resolved notices")
    time.sleep(3)  # three more ticks: nothing more may go out
    sent_lines = lines()
    keys = [(x["mirror"], x["code"], x["resolved"]) for x in sent_lines]
    assert sorted(keys) == sorted((n, "upstream.unreachable", r) for n in names
                                  for r in (False, True)), keys
    assert daemon.stop()[0] == 0


def test_a_hung_plugin_holds_up_no_sync_and_no_shutdown(
        tmp_path: Path, served: str, start_daemon: Callable[[Path, int], RunningDaemon]) -> None:
    """Two plugins hang (one times out after 3 s, one would wait 10 min): a sync queued behind
    the failing run starts at once, the timed-out one's process group is gone, and SIGTERM
    stops the daemon within 10 s while the other still hangs."""
    marker = f"mk-hang-{os.getpid()}-{time.monotonic_ns()}"
    sleep = f"{sys.executable} -c 'import time; time.sleep(900)'"
    plugins = []
    for name, timeout in (("short", "3s"), ("long", "10m")):
        path = tmp_path / f"hang-{name}"
        path.write_text(f"#!/bin/sh\n{sleep} {marker}-{name}-helper &\n"
                        f"exec {sleep} {marker}-{name}\n")
        path.chmod(0o755)
        plugins.append({"name": name, "command": [str(path)], "timeout": timeout,
                        "min_severity": "info"})
    config, port = daemon_config(tmp_path, {
        "broken": {"profile": "debian", "dest": str(tmp_path / "broken"),
                   "upstreams": ["rsync://127.0.0.1:9/debian/"], "attempts_per_upstream": 1},
        "good": {"profile": "debian", "dest": str(tmp_path / "good"), "upstreams": [served]}},
        {"max_parallel": 1})
    with_plugins(config, plugins)
    seed_run(config, "good", time.time() - 60)  # fresh: only `broken` is due
    daemon = start_daemon(config, port)
    try:
        wait_for(lambda: len(finished(config, "broken")) == 1, what="the failing run")
        wait_for(lambda: processes_mentioning(f"{marker}-long") != [], what="plugins hanging")
        pushed = time.time()
        assert daemon.post("/api/mirrors/good/sync", token=TOKEN)[0] == 202
        wait_for(lambda: len(finished(config, "good")) == 2, timeout=20,
                 what="the pushed sync, with the only worker free")
        assert finished(config, "good")[0].started_at - pushed < 3
        assert finished(config, "good")[0].outcome == "success"
        wait_for(lambda: any(e["plugin"] == "short" and e["error"] == "timed out after 3s"
                             for e in events(tmp_path, "alert.delivery")), timeout=15,
                 what="the short plugin's timeout")
        wait_for(lambda: processes_mentioning(f"{marker}-short") == [], timeout=3,
                 what="the timed-out plugin's process group killed")
        assert len(processes_mentioning(f"{marker}-long")) == 2  # still hanging, helper too
        began = time.monotonic()
        code, err = daemon.stop()
        assert code == 0 and time.monotonic() - began < 10, err
        assert "Traceback" not in err
        wait_for(lambda: processes_mentioning(marker) == [], timeout=3,
                 what="the hanging plugin killed at shutdown")
    finally:
        for pid in processes_mentioning(marker):  # only ours: the marker is unique
            os.kill(pid, signal.SIGKILL)


def test_a_queued_mirror_absorbs_further_pushes(
        tmp_path: Path, served: str, start_daemon: Callable[[Path, int], RunningDaemon]) -> None:
    """With the only worker busy, 12 pushes over HTTP and 2 through `trigger` for a mirror
    that waits in the queue are one run (they were 5 back-to-back runs)."""
    config, port = daemon_config(tmp_path, {
        "blocker": {"profile": "debian", "dest": str(tmp_path / "blocker"),
                    "upstreams": [served], "bwlimit": 400},
        "deb": {"profile": "debian", "dest": str(tmp_path / "deb"), "upstreams": [served]}},
        {"max_parallel": 1})
    seed_run(config, "deb", time.time() - 60)  # fresh: only `blocker` is due
    daemon = start_daemon(config, port)
    daemon.wait_for_rsync(tmp_path / "blocker")
    for _ in range(12):
        assert daemon.post("/api/mirrors/deb/sync", token=TOKEN)[0] == 202
    triggers = [subprocess.Popen([*python_cli(), "-c", str(config), "trigger", "deb"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]
    for trigger in triggers:
        out, err = trigger.communicate(timeout=30)
        assert trigger.returncode == 0 and "queued with the daemon" in out, err
    assert len(finished(config, "blocker")) == 0, "the blocker ended before the pushes"
    wait_for(lambda: len(finished(config, "deb")) == 2, timeout=60, what="deb synced")
    wait_for(lambda: len([e for e in events(tmp_path, "job.coalesced")
                          if e["mirror"] == "deb"]) == 13, what="every other push absorbed")
    time.sleep(2.5)  # two more ticks: nothing else may start
    assert len(runs(config, "deb")) == 2
    assert [e["mirror"] for e in events(tmp_path, "job.start")] == ["blocker", "deb"]
    assert daemon.stop()[0] == 0
