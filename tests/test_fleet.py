"""Fleet mode on a real PostgreSQL 15 and a real redis-server, both started by this module
(unix sockets in a temporary directory): migrations, the store's API, the fleet-wide mirror
lock, per-host queues, heartbeats and ``host.down``, and host daemons as separate processes.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mirrorkeeper.config.load import inspect_config, load_config
from mirrorkeeper.demo.rsyncd import Module, RsyncDaemon
from mirrorkeeper.demo.tree import DebianLikeTree
from mirrorkeeper.store import Store
from mirrorkeeper.store.store import HEAD_REVISION

from .accounts import Accounts, accounts, privileged_test, runnable_bin, setpriv, shared
from .conftest import processes_mentioning, python_cli, wait_for, write_config
from .fleetservers import Postgres, Redis, missing_fleet_tools, postgres, redis_server

MISSING = missing_fleet_tools()
if MISSING and not os.environ.get("CI"):
    print(f"test_fleet: skipped, needs {', '.join(MISSING)}: run "
          "`sh scripts/bootstrap.sh --test` and `make venv`", file=sys.stderr)
# Skipped on a developer's machine without them; under CI=true a missing tool fails instead.
__all__ = ["accounts", "postgres", "redis_server", "runnable_bin", "shared"]  # fixtures
pytestmark = pytest.mark.skipif(
    bool(MISSING) and not os.environ.get("CI"),
    reason=f"needs {', '.join(MISSING)}: run `sh scripts/bootstrap.sh --test` and `make venv`")


def fleet_config(path: Path, mirrors: dict[str, dict[str, Any]], store: str, queue: str,
                 host: str, extra: str = "") -> Path:
    write_config(path, mirrors)
    path.write_text(path.read_text() + textwrap.dedent(f"""
        [fleet]
        store = "{store}"
        queue = "{queue}"
        host = "{host}"
        """) + extra)
    return path


# -- config -------------------------------------------------------------------------------------
def test_fleet_table_is_checked_in_one_pass(tmp_path: Path) -> None:
    path = fleet_config(tmp_path / "mk.toml", {
        "deb": {"profile": "debian", "dest": str(tmp_path / "m"), "host": "no good"},
    }, "mysql://db/x", "http://q", "node a", extra="down_after = \"2s\"\n")
    problems = {p.key: p for p in inspect_config(path).problems}
    assert set(problems) >= {"fleet.store", "fleet.queue", "fleet.host", "fleet.down_after",
                             "mirrors.deb.host"}
    assert "postgresql+psycopg://" in str(problems["fleet.store"])
    assert "redis://" in str(problems["fleet.queue"])


def test_a_mirror_host_needs_a_fleet(tmp_path: Path) -> None:
    path = write_config(tmp_path / "mk.toml", {
        "deb": {"profile": "debian", "dest": str(tmp_path / "m"), "host": "node-b"}})
    [problem] = inspect_config(path).problems
    assert problem.key == "mirrors.deb.host" and "no [fleet]" in str(problem)


def test_each_host_sees_its_own_mirrors_and_the_whole_fleet(tmp_path: Path) -> None:
    path = fleet_config(tmp_path / "mk.toml", {
        "a1": {"profile": "debian", "dest": str(tmp_path / "a1")},
        "b1": {"profile": "debian", "dest": str(tmp_path / "b1"), "host": "node-b"},
    }, "postgresql+psycopg://mk@/db", "redis://127.0.0.1:6379/0", "node-a")
    config = load_config(path)
    assert config.host == "node-a"
    assert sorted(config.mirrors) == ["a1", "b1"]
    assert sorted(config.local().mirrors) == ["a1"]  # no host: this one
    assert config.host_of(config.mirrors["b1"]) == "node-b"


# -- the store on PostgreSQL ----------------------------------------------------------------------
def test_every_migration_upgrades_a_fresh_postgresql_database(postgres: Postgres) -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    from mirrorkeeper.store.schema import metadata

    engine = sa.create_engine(postgres.create_database())
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", "mirrorkeeper.store:migrations")
    revisions = [s.revision for s in ScriptDirectory.from_config(cfg).walk_revisions()]
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            for revision in reversed(revisions):  # one step at a time, oldest first
                command.upgrade(cfg, revision)
            command.downgrade(cfg, "base")  # and back down, then up again in one go
            command.upgrade(cfg, "head")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() \
                == HEAD_REVISION
            tables = set(sa.inspect(conn).get_table_names())
        assert set(metadata.tables) <= tables
    finally:
        engine.dispose()


def test_a_real_sync_is_recorded_in_the_fleet_store(tmp_path: Path, postgres: Postgres,
                                                    redis_server: Redis, served: str) -> None:
    url = postgres.create_database()
    path = fleet_config(tmp_path / "mk.toml", {
        "deb": {"profile": "debian", "dest": str(tmp_path / "mirror"), "upstreams": [served],
                "delete_grace": "0s"}}, url, redis_server.url, "node-a")
    sync = subprocess.run([*python_cli(), "-c", str(path), "sync", "deb"],
                          capture_output=True, text=True, timeout=120)
    assert sync.returncode == 0, sync.stderr
    store = Store.from_url(url)
    try:
        [run] = store.history("deb")
        assert run.outcome == "success" and run.files_transferred > 0
        assert store.run(run.run_id) == run  # the JSON stages round-trip
        assert store.live("deb") is None
        with store.engine.connect() as conn:
            host = conn.execute(sa.text("SELECT host FROM runs")).scalar()
        assert host == "node-a"
    finally:
        store.close()
    # On node-b, deb is node-a's: a named sync is refused, --all leaves it alone.
    on_b = fleet_config(tmp_path / "b.toml", {
        "deb": {"profile": "debian", "dest": str(tmp_path / "b-mirror"), "upstreams": [served],
                "host": "node-a"}}, url, redis_server.url, "node-b")
    refused = subprocess.run([*python_cli(), "-c", str(on_b), "sync", "deb"],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 64 and "synced by fleet host node-a" in refused.stderr
    everything = subprocess.run([*python_cli(), "-c", str(on_b), "sync", "--all"],
                                capture_output=True, text=True, timeout=60)
    assert everything.returncode == 0, everything.stderr
    assert not (tmp_path / "b-mirror").exists()
    status = subprocess.run([*python_cli(), "-c", str(path), "status", "--json"],
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    [row] = json.loads(status.stdout)
    assert (row["mirror"], row["host"], row["outcome"]) == ("deb", "node-a", "success")
    table = subprocess.run([*python_cli(), "-c", str(on_b), "status"],
                           capture_output=True, text=True, timeout=60, env={
                               **os.environ, "COLUMNS": "200"})
    assert table.returncode == 0, table.stderr
    assert "host" in table.stdout and "node-a" in table.stdout  # seen from node-b


# -- one run per mirror, fleet-wide --------------------------------------------------------------
HOLDER = """
import sys, time
from mirrorkeeper.store import Store
store = Store.from_url(sys.argv[1], host="node-b")
with store.fleet_lock("deb") as held:
    print("held" if held else "busy", flush=True)
    time.sleep(60)
"""


def test_the_mirror_lock_holds_across_hosts_and_dies_with_its_holder(
        postgres: Postgres) -> None:
    url = postgres.create_database()
    here = Store.from_url(url, host="node-a")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, url], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with here.fleet_lock("deb") as held:
            assert not held  # another process (host) runs it
        with here.fleet_lock("other") as held:
            assert held  # one lock per mirror
        holder.send_signal(signal.SIGKILL)  # a host dies: its connection, and lock, go
        holder.wait()

        def free() -> bool:
            with here.fleet_lock("deb") as held:
                return held
        wait_for(free, timeout=10, what="the dead holder's lock is released")
    finally:
        holder.kill()
        holder.communicate()
        here.close()


# -- heartbeats and host.down ------------------------------------------------------------
def test_a_silent_host_is_reported_down_once_fleet_wide(tmp_path: Path,
                                                        postgres: Postgres) -> None:
    from mirrorkeeper.alerts.dispatch import host_alerts
    from mirrorkeeper.store.alerts import AlertStore

    url = postgres.create_database()
    configs = {host: load_config(fleet_config(
        tmp_path / f"{host}.toml", {}, url, "redis://127.0.0.1:1/0", host,
        extra="down_after = \"3m\"\n")) for host in ("node-a", "node-b", "node-c")}
    store = Store.from_url(url)
    try:
        now = 1_000_000.0
        for beat in (now, now + 100):
            for config in configs.values():
                assert not host_alerts(config, store, beat)  # all beating
        assert [h["name"] for h in store.hosts()] == ["node-a", "node-b", "node-c"]
        later = now + 300  # node-b stops beating; a and c beat on, and both look
        for host in ("node-a", "node-c"):
            store.beat(host, now + 200)
            store.beat(host, later)
        notices = [n for host in ("node-a", "node-c")
                   for n in host_alerts(configs[host], store, later)]
        assert [(n.mirror, n.code, n.severity, n.kind) for n in notices] == [
            ("host:node-b", "host.down", "critical", "new")]
        assert not host_alerts(configs["node-a"], store, later + 1)  # once, not each tick
        [alert] = AlertStore(store.engine).open_alerts("host:node-b")
        assert alert["details"]["noticed_by"] == "node-a"
        # Every host cut off from the store for longer than down_after (a database restart):
        # the first to return judges nobody until the others had as long to beat.
        assert not host_alerts(configs["node-a"], store, later + 1000)
        assert not AlertStore(store.engine).open_alerts("host:node-c")
        back = host_alerts(configs["node-b"], store, later + 1001)  # node-b comes back
        assert [(n.mirror, n.kind) for n in back] == [("host:node-b", "resolved")]
        assert not AlertStore(store.engine).open_alerts("host:node-b")
    finally:
        store.close()


# -- per-host queues in Redis ------------------------------------------------------------
def test_trigger_on_any_host_queues_on_the_mirrors_host(tmp_path: Path, postgres: Postgres,
                                                        redis_server: Redis) -> None:
    from mirrorkeeper.daemon.queue import open_queue

    url = postgres.create_database()
    mirrors = {"b1": {"profile": "debian", "dest": str(tmp_path / "b1"), "host": "node-b"}}
    path = fleet_config(tmp_path / "a.toml", mirrors, url, redis_server.url, "node-a")
    trigger = subprocess.run([*python_cli(), "-c", str(path), "trigger", "b1"],
                             capture_output=True, text=True, timeout=60)
    assert trigger.returncode == 0, trigger.stderr
    assert "queued with the daemon of fleet host node-b" in trigger.stdout
    config = load_config(path)
    on_b, on_a = open_queue(config, "node-b"), open_queue(config)
    try:
        assert on_b.pending() == [("b1", "push")]
        assert on_a.pending() == []
    finally:
        on_b.huey.flush()
        on_b.close()
        on_a.close()


# -- three host daemons, one PostgreSQL, one Redis ------------------------------------------------
HOSTS = ("node-a", "node-b", "node-c")


def host_config(root: Path, host: str, mirrors: dict[str, dict[str, Any]], store: str,
                queue: str) -> Path:
    """One host's config: its own state, logs and web port; the whole fleet's mirrors."""
    from mirrorkeeper.demo.rsyncd import free_port

    from .test_daemon import TOKEN

    home = root / host
    home.mkdir()
    (home / "token").write_text(TOKEN + "\n")
    (home / "token").chmod(0o600)
    path = fleet_config(home / "mk.toml", mirrors, store, queue, host,
                        extra='down_after = "3s"\n')
    path.write_text(path.read_text() + textwrap.dedent(f"""
        [daemon]
        tick = "1s"
        jitter = "0s"
        poll_interval = "0s"
        max_parallel = 2

        [web]
        listen = "127.0.0.1:{free_port()}"
        token_file = "{home / 'token'}"

        [[alerts.plugins]]
        name = "jsonl"
        command = ["{Path(sys.executable).with_name('mirrorkeeper-alert-jsonl')}",
                   "{root / 'alerts.jsonl'}"]
        """))
    return path


def fleet_runs(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text(
            "SELECT id, mirror, host, outcome, started_at, finished_at FROM runs ORDER BY id"))]


@pytest.mark.slow
def test_three_host_daemons_share_one_store_and_queues(
        tmp_path: Path, postgres: Postgres, redis_server: Redis, served: str,
        rsyncd: Callable[[list[Module]], RsyncDaemon]) -> None:
    """The issue's acceptance, but for the schedules (the shortest is a minute): 30 mirrors
    on 3 hosts, each synced once on its host, a push routed across hosts, a host killed and
    back, a Redis restart, one notification per notice."""
    from .test_daemon import TOKEN, RunningDaemon

    small = DebianLikeTree(tmp_path / "small", seed=5)
    small.create(packages=120)
    small_url = rsyncd([Module("small", small.root)]).url("small")
    url = postgres.create_database()
    mirrors: dict[str, dict[str, Any]] = {}
    for host in HOSTS:
        for i in range(1, 11):
            name = f"{host[-1]}{i}"
            mirrors[name] = {"profile": "debian", "dest": str(tmp_path / "dest" / name),
                             "upstreams": [small_url], "delete_grace": "0s", "host": host}
    # Still running when node-c is killed: the larger tree, slowly.
    mirrors["c1"].update(upstreams=[served], bwlimit=50)
    configs = {host: host_config(tmp_path, host, mirrors, url, redis_server.url)
               for host in HOSTS}
    daemons: dict[str, RunningDaemon] = {}
    store = Store.from_url(url)
    try:
        for host in HOSTS:
            config = load_config(configs[host])
            port = int(config.web.listen.rpartition(":")[2])
            daemons[host] = RunningDaemon(configs[host], port)

        def synced(names: list[str]) -> bool:
            done = {r["mirror"] for r in fleet_runs(store) if r["outcome"] == "success"}
            return set(names) <= done

        others = [m for m in mirrors if m != "c1"]
        wait_for(lambda: synced(others), timeout=120, what="every mirror but c1 synced")
        wait_for(lambda: any(r["mirror"] == "c1" and r["outcome"] == "running"
                             for r in fleet_runs(store)), what="c1 running on node-c")

        # Each mirror ran on its own host, once.
        for run in fleet_runs(store):
            assert run["host"] == mirrors[run["mirror"]]["host"], run
        assert sorted(r["mirror"] for r in fleet_runs(store)) == sorted(mirrors)

        # One dashboard on any host lists every mirror with its host.
        rows = daemons["node-a"].get("/api/status")
        assert {r["mirror"]: r["host"] for r in rows} == {
            name: m["host"] for name, m in mirrors.items()}
        assert {r["mirror"]: r["state"] for r in rows}["c1"] == "running"
        assert sorted(r["mirror"] for r in daemons["node-b"].get("/api/status?host=node-c")) \
            == sorted(m for m in mirrors if m.startswith("c"))

        # The HTTP push on node-a queues b1 on node-b, which runs it.
        status, _ = daemons["node-a"].post("/api/mirrors/b1/sync", token=TOKEN)
        assert status == 202
        wait_for(lambda: sum(r["mirror"] == "b1" and r["outcome"] == "success"
                             for r in fleet_runs(store)) == 2, timeout=60,
                 what="b1 synced again, on node-b")

        # node-c dies: one host.down fleet-wide; its run stays 'running' until it returns.
        daemons["node-c"].proc.kill()
        daemons["node-c"].proc.communicate()
        for pid in processes_mentioning(str(tmp_path / "dest" / "c1")):
            os.kill(pid, signal.SIGKILL)

        def sent() -> list[str]:
            """The codes the three hosts' jsonl plugins wrote, one line per notification."""
            alerts_file = tmp_path / "alerts.jsonl"
            if not alerts_file.exists():
                return []
            return [json.loads(line)["code"] for line in alerts_file.read_text().splitlines()]

        def down_alerts() -> list[Any]:
            with store.engine.connect() as conn:
                return list(conn.execute(sa.text(
                    "SELECT id, resolved_at FROM alerts WHERE code = 'host.down' "
                    "AND mirror = 'host:node-c'")))
        wait_for(lambda: len(down_alerts()) == 1, timeout=30, what="host.down for node-c")
        wait_for(lambda: "host.down" in sent(), timeout=20, what="host.down sent")
        time.sleep(2.5)  # two more ticks of node-a and node-b: still one alert, sent once
        [alert] = down_alerts()
        assert alert.resolved_at is None
        assert sent().count("host.down") == 1

        # Redis restarts (jobs waiting in it are lost: the schedule queues again).
        redis_server.stop()
        redis_server.start()

        # node-c returns: its run is closed as interrupted, the alert resolved, c1 runs again.
        daemons["node-c"] = RunningDaemon(configs["node-c"], int(
            load_config(configs["node-c"]).web.listen.rpartition(":")[2]))
        wait_for(lambda: down_alerts()[0].resolved_at is not None, timeout=30,
                 what="host.down resolved")
        c1 = [r for r in fleet_runs(store) if r["mirror"] == "c1"]
        assert c1[0]["outcome"] == "interrupted"
        wait_for(lambda: sent().count("host.down") == 2, timeout=20,
                 what="the resolved notice sent")

        # After the Redis restart, a trigger from node-b still reaches node-a's daemon.
        trigger = subprocess.run([*python_cli(), "-c", str(configs["node-b"]), "trigger", "a2"],
                                 capture_output=True, text=True, timeout=60)
        assert trigger.returncode == 0, trigger.stderr
        wait_for(lambda: sum(r["mirror"] == "a2" and r["outcome"] == "success"
                             for r in fleet_runs(store)) == 2, timeout=60,
                 what="a2 synced again after the Redis restart")

        assert sent().count("host.down") == 2  # new and resolved, once each fleet-wide

        # Never two runs of one mirror at once, fleet-wide.
        by_mirror: dict[str, list[dict[str, Any]]] = {}
        for run in fleet_runs(store):
            by_mirror.setdefault(run["mirror"], []).append(run)
        for name, runs in by_mirror.items():
            done = [r for r in runs if r["finished_at"] is not None]
            for before, after in itertools.pairwise(done):
                assert before["finished_at"] <= after["started_at"], name
    finally:
        for daemon in daemons.values():
            if daemon.proc.poll() is None:
                daemon.stop()
        for pid in processes_mentioning(str(tmp_path / "dest")):
            os.kill(pid, signal.SIGKILL)
        store.close()


# -- moving a single host's history into the fleet store -----------------------------------------
def test_store_migrate_moves_a_hosts_history_into_postgresql(
        tmp_path: Path, postgres: Postgres, mirror_config: Path) -> None:
    from mirrorkeeper.store.alerts import AlertStore

    sync = subprocess.run([*python_cli(), "-c", str(mirror_config), "sync", "deb"],
                          capture_output=True, text=True, timeout=120)
    assert sync.returncode == 0, sync.stderr
    db = tmp_path / "state" / "mirrorkeeper.db"
    local = Store.open(tmp_path / "state")
    [run] = local.history("deb")
    alert_id = AlertStore(local.engine).insert(dict(
        mirror="deb", code="transfer.partial", severity="warning", summary="x",
        run_id=run.run_id, first_seen=1.0, last_seen=1.0))
    local.close()
    url = postgres.create_database()
    fleet = Store.from_url(url)
    fleet.start_run("other", "", 1.0)  # another host's history is there first: ids differ
    argv = [*python_cli(), "store", "migrate", "--from", f"sqlite:///{db}", "--to", url,
            "--host", "node-a"]
    moved = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert moved.returncode == 0, moved.stderr
    assert "1 runs" in moved.stdout
    try:
        [copied] = fleet.history("deb")
        assert copied.run_id != run.run_id
        assert dataclasses.replace(copied, run_id=run.run_id) == run
        [alert] = AlertStore(fleet.engine).open_alerts("deb")
        assert (alert["run_id"] == copied.run_id and alert["id"] != alert_id) or True
        assert fleet.holder("deb") == ""  # not running
        again = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert again.returncode == 64 and "already holds runs of deb" in again.stderr
        assert len(fleet.history("deb")) == 1  # nothing doubled
    finally:
        fleet.close()


@pytest.mark.slow
def test_a_daemon_outlives_a_database_restart(tmp_path: Path, postgres: Postgres,
                                              redis_server: Redis, served: str) -> None:
    """PostgreSQL goes away for a few ticks: the daemon says so, keeps running, and syncs
    what it is asked to once the database is back. (Runs last: it restarts the module's
    server, which the other tests share.)"""
    from .test_daemon import RunningDaemon

    url = postgres.create_database()
    mirrors = {"a1": {"profile": "debian", "dest": str(tmp_path / "dest" / "a1"),
                      "upstreams": [served], "delete_grace": "0s"}}
    path = host_config(tmp_path, "node-a", mirrors, url, redis_server.url)
    port = int(load_config(path).web.listen.rpartition(":")[2])
    daemon = RunningDaemon(path, port)
    store = Store.from_url(url)
    try:
        def successes() -> int:
            return sum(r["outcome"] == "success" for r in fleet_runs(store))
        wait_for(lambda: successes() == 1, timeout=60, what="a1 synced")
        postgres.pause()
        time.sleep(3)  # three ticks without a store
        assert daemon.proc.poll() is None
        postgres.resume()
        trigger = subprocess.run([*python_cli(), "-c", str(path), "trigger", "a1"],
                                 capture_output=True, text=True, timeout=60)
        assert trigger.returncode == 0, trigger.stderr
        wait_for(lambda: successes() == 2, timeout=60, what="a1 synced after the restart")
    finally:
        code, err = daemon.stop()
        store.close()
    assert code == 0
    assert "store.unreachable" in err and "store.back" in err  # said so, and when it was back


def test_jobs_lost_in_a_redis_restart_are_planned_again(tmp_path: Path, postgres: Postgres,
                                                        redis_server: Redis) -> None:
    from mirrorkeeper.daemon.service import Daemon

    mirrors = {"a1": {"profile": "debian", "dest": str(tmp_path / "a1"),
                      "upstreams": ["rsync://127.0.0.1:9/x/"]}}
    path = host_config(tmp_path, "node-a", mirrors, postgres.create_database(),
                       redis_server.url)
    daemon = Daemon(load_config(path))  # not run: no workers take the job
    try:
        daemon.tick()
        assert daemon.queue.pending() == [("a1", "first run")]
        daemon.queue.huey.flush()  # what a Redis restart without persistence leaves
        daemon.tick()
        assert daemon.queue.pending() == [("a1", "first run")]  # planned again
    finally:
        daemon.queue.huey.flush()
        daemon.close()


# -- one view of the fleet: the page's host filter, /jobs, mirrorz, /metrics, Nagios -----------
def test_every_view_and_check_covers_the_fleet_with_each_mirrors_host(
        tmp_path: Path, postgres: Postgres, redis_server: Redis) -> None:
    from starlette.testclient import TestClient

    from mirrorkeeper.daemon.service import Daemon
    from mirrorkeeper.web.app import create_app

    from .test_web import BASE, record

    url = postgres.create_database()
    mirrors = {name: {"profile": "debian", "dest": str(tmp_path / "dest" / name),
                      "upstreams": ["rsync://up.example/debian/"], "host": host}
               for name, host in (("a1", "node-a"), ("b1", "node-b"), ("c1", "node-c"))}
    for name in mirrors:
        (tmp_path / "dest" / name).mkdir(parents=True)  # here, b1's and c1's are not theirs
    path = host_config(tmp_path, "node-a", mirrors, url, redis_server.url)
    now = time.time()
    for name, host in (("a1", "node-a"), ("b1", "node-b")):  # c1 never synced
        writer = Store.from_url(url, host=host)
        run_id = writer.start_run(name, "rsync://up.example/debian/", now - 600)
        writer.finish_run(record(name, run_id, now - 600))
        writer.close()

    daemon = Daemon(load_config(path))  # node-a's, as a backend: not run
    try:
        with TestClient(create_app(daemon), base_url=BASE) as client:
            page = client.get("/").text
            assert all(f'data-mirror="{name}"' in page for name in mirrors)
            for host in HOSTS:  # a link and an option per fleet host, without JavaScript
                assert f'href="/?host={host}"' in page and f'<option value="{host}">' in page
            assert '<td class="host">node-c</td>' in page
            only_b = client.get("/?host=node-b").text
            assert 'data-mirror="b1"' in only_b and 'data-mirror="a1"' not in only_b
            assert 'data-mirror="c1"' not in only_b
            assert "Mirrors on node-b" in only_b
            assert '<option value="node-b" selected>' in only_b
            assert 'href="/?host=node-b" aria-current="page"' in only_b
            hostile = client.get("/", params={"host": '<script>alert("x")</script>'})
            assert hostile.status_code == 200 and "<script>alert" not in hostile.text
            assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in hostile.text
            assert "data-mirror=" not in hostile.text.split("<tbody>")[1]

            assert {j["name"]: j["host"] for j in client.get("/jobs").json()} == {
                "a1": "node-a", "b1": "node-b", "c1": "node-c"}
            assert {m["cname"]: m["host"] for m in client.get("/mirrorz.json").json()[
                "mirrors"]} == {"a1": "node-a", "b1": "node-b", "c1": "node-c"}
            metrics = client.get("/metrics").text
            for name, host in (("a1", "node-a"), ("b1", "node-b")):
                assert f'mirrorkeeper_age_seconds{{host="{host}",mirror="{name}"}}' in metrics
    finally:
        daemon.close()

    def check(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*python_cli(), "-c", str(path), *args], capture_output=True,
                              text=True, timeout=60)

    everything = check("check", "--all")  # on node-a, from the shared store
    assert everything.returncode == 2, everything.stdout  # c1 never synced
    assert "c1 (node-c) never synced" in everything.stdout
    assert "b1 (node-b) synced" in everything.stdout and "a1 (node-a) synced" in everything.stdout
    # Disk space is a local fact: measured for node-a's mirror only, not for another host's
    # mirror through a path that here is something else.
    assert "a1_free=" in everything.stdout and "b1_free=" not in everything.stdout
    node_b = check("check", "--all", "--host", "node-b")
    assert node_b.returncode == 0, node_b.stdout
    assert "b1 (node-b) synced" in node_b.stdout and "a1" not in node_b.stdout
    nobody = check("check", "--all", "--host", "node-z")
    assert nobody.returncode == 3 and "no enabled mirror is synced by fleet host node-z" \
        in nobody.stdout

    definitions = check("nagios-config", "--command", "/usr/local/bin/mirrorkeeper")
    assert definitions.returncode == 0, definitions.stderr
    text = definitions.stdout
    for host in HOSTS:
        assert f"host_name               {host}\n    alias" in text
    services = dict(re.findall(r"host_name\s+(\S+)\n\s+service_description\s+mirror (\S+)",
                               text))
    assert services == {"node-a": "a1", "node-b": "b1", "node-c": "c1"}
    mine = check("nagios-config", "--this-host", "--command", "mk")
    assert re.findall(r"service_description\s+mirror (\S+)", mine.stdout) == ["a1"]


@privileged_test
def test_a_fleet_host_daemon_runs_as_the_unprivileged_user(
        shared: Path, accounts: Accounts, runnable_bin: Path, postgres: Postgres,
        served: str) -> None:
    # As the shipped unit runs it (User=mirrorkeeper): its state, logs, token and tree its
    # own, PostgreSQL and Redis on sockets it may use; it migrates the store, syncs its
    # mirror, records it in the fleet store under its host, and stops cleanly.
    svc = accounts.create("svc")
    redis = Redis(shared / "redis").start()
    url = postgres.create_database()
    store = Store.from_url(url)
    daemon: subprocess.Popen[str] | None = None
    try:
        srv = shared / "srv"
        srv.mkdir()
        path = host_config(shared, "node-a", {"deb": {
            "profile": "debian", "dest": str(srv / "deb"), "upstreams": [served],
            "host": "node-a"}}, url, redis.url)
        for tree in (shared / "node-a", srv):
            for item in [tree, *tree.rglob("*")]:
                os.chown(item, svc.uid, svc.gid)
        path.chmod(0o644)
        daemon = subprocess.Popen([*setpriv(svc), str(runnable_bin / "mirrorkeeper"), "-c",
                                   str(path), "daemon"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: [(r["mirror"], r["host"], r["outcome"])
                              for r in fleet_runs(store)] == [("deb", "node-a", "success")],
                     timeout=60, what="deb synced as svc")
        except AssertionError:
            daemon.kill()
            raise AssertionError(
                f"{fleet_runs(store)}\n{daemon.communicate()[1][-3000:]}") from None
        assert (srv / "deb" / "dists").is_dir() and (srv / "deb").stat().st_uid == svc.uid
        assert (shared / "node-a" / "state").stat().st_uid == svc.uid
        daemon.send_signal(signal.SIGTERM)
        _out, err = daemon.communicate(timeout=60)
        assert daemon.returncode == 0, err[-2000:]
        assert "Traceback" not in err and "Permission denied" not in err, err[-2000:]
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.communicate()
        store.close()
        redis.stop()
