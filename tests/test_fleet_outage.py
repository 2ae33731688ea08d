"""Fleet mode when the store or the queue goes away: the local spool and its replay, the
daemon's schedule without PostgreSQL or Redis, and (as root) a real network partition between
a host daemon and PostgreSQL, each in a network namespace of its own.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mirrorkeeper.config.load import load_config
from mirrorkeeper.demo.tree import DebianLikeTree
from mirrorkeeper.record import RunRecord, StageResult
from mirrorkeeper.store import Store
from mirrorkeeper.store.spool import BadSpoolFile, Spool, SpooledRun, spool_dir

from .conftest import processes_mentioning, wait_for
from .fleetservers import Postgres, Redis, missing_fleet_tools, postgres, redis_server
from .netns import Partition, missing_netns_tools
from .test_fleet import fleet_config, fleet_runs, host_config

MISSING = missing_fleet_tools()
__all__ = ["postgres", "redis_server"]  # fixtures, imported for pytest
pytestmark = pytest.mark.skipif(
    bool(MISSING) and not os.environ.get("CI"),
    reason=f"needs {', '.join(MISSING)}: run `sh scripts/bootstrap.sh --test` and `make venv`")


def a_record(mirror: str, started: float, outcome: str = "success", run_id: int = 0,
             ) -> RunRecord:
    stage = StageResult(name="single", argv=("rsync", "-a"), started_at=started,
                        finished_at=started + 2.5, exit_code=23 if outcome == "partial" else 0,
                        bytes_received=4096, files_failed=int(outcome == "partial"),
                        files_total=10, files_transferred=3, upstream="rsync://u/m/")
    return RunRecord(run_id=run_id, mirror=mirror, upstream="rsync://u/m/", started_at=started,
                     finished_at=started + 2.5, outcome=outcome, stages=(stage,),
                     log_path=f"/var/log/{mirror}.log")


# -- the spool's files (no server) ---------------------------------------------------------
def test_spool_files_are_whole_ordered_and_bad_ones_set_aside(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    assert spool.pending() == []  # never used: no directory, nothing to replay
    later = SpooledRun("u-later", "node-a", 42, a_record("deb", 2_000_000_000.5, run_id=-7))
    earlier = SpooledRun("u-earlier", "node-a", 42, a_record("deb", 1_999_999_000.0,
                                                               run_id=12))
    spool.write(later)
    spool.write(earlier)
    again = spool.write(dataclasses.replace(earlier, record=dataclasses.replace(
        earlier.record, outcome="partial")))  # the same run written twice: one file
    assert [p.name for p in spool.pending()] == [again.name, spool.name_of(later)]
    assert [spool.read(p) for p in spool.pending()] == [
        dataclasses.replace(earlier, record=dataclasses.replace(earlier.record,
                                                                outcome="partial")), later]
    assert not [p for p in (tmp_path / "spool").iterdir() if p.name.endswith(".tmp")]

    # A file cut short (a crash while it was copied in by hand, a full disk): set aside with
    # a log line, and the others are still there, in order.
    truncated = spool.path / "1999999500.000000-u-cut.json"
    truncated.write_text(again.read_text()[:40])
    assert [p.name for p in spool.pending()][1] == truncated.name
    with pytest.raises(BadSpoolFile, match=r"cannot read 1999999500\.000000-u-cut\.json"):
        spool.read(truncated)
    moved = spool.set_aside(truncated, "truncated")
    assert moved.parent == spool.path / "bad" and moved.exists() and not truncated.exists()
    assert [p.name for p in spool.pending()] == [again.name, spool.name_of(later)]
    other = spool.path / "1999999600.000000-u-other.json"
    other.write_text(json.dumps({"format": 99}))
    with pytest.raises(BadSpoolFile, match="format 1"):
        spool.read(other)
    (spool.path / ".x.json.tmp").write_text("{")  # a crash mid-write: never replayed
    spool.clear_leftovers()
    assert not (spool.path / ".x.json.tmp").exists()


def test_without_the_store_the_schedule_runs_on_the_last_facts_it_gave() -> None:
    from mirrorkeeper.config.schedule import parse_schedule
    from mirrorkeeper.daemon.facts import offline_facts
    from mirrorkeeper.plan.due import MirrorFacts, SignalSeen, plan_tick

    hourly = parse_schedule("every 1h")
    known = [MirrorFacts("a", hourly, last_started=1000.0, has_signal=True, last_polled_at=1.0,
                         signal=SignalSeen(5000.0, 1.0, 1.0), local_signal_mtime=10.0,
                         deletions_due_at=1500.0),
             MirrorFacts("b", hourly, last_started=None)]
    # "a" was started by this daemon at 4000 (with the store gone); "b" is running now.
    facts = offline_facts(known, {"a": 4000.0}, running={"b"}, queued=set())
    assert [(f.name, f.last_started, f.running, f.has_signal, f.signal, f.deletions_due_at)
            for f in facts] == [("a", 4000.0, False, False, None, None),
                                ("b", None, True, False, None, None)]
    def due(now: float) -> list[str]:
        plan = plan_tick(facts, now, jitter=0.0, poll_interval=0.0, tz=datetime.UTC)
        assert plan.polls == ()  # a poll needs the store
        return [d.mirror for d in plan.due]
    assert due(5000.0) == []  # neither the stale signal nor the grace start a run again
    assert due(4000.0 + 3600) == ["a"]  # an hour after the run it started: due again


# -- the store's side: spooled, replayed once --------------------------------------------
def test_runs_ended_or_started_while_the_store_is_down_are_replayed_once(
        tmp_path: Path, postgres: Postgres) -> None:
    from mirrorkeeper.daemon.replay import replay_spool
    from mirrorkeeper.store.alerts import AlertStore

    url = postgres.create_database()
    config = load_config(fleet_config(tmp_path / "mk.toml", {
        "deb": {"profile": "debian", "dest": str(tmp_path / "deb")}},
        url, "redis://127.0.0.1:1/0", "node-a"))
    store = Store.for_config(config)  # what `sync` and the daemon use: spools when it must
    spool = Spool(spool_dir(config.settings.state_dir))
    try:
        started = time.time() - 60
        online = store.start_run("deb", "rsync://u/m/", started)  # the store is up
        assert online > 0 and not store.deferred(online)
        postgres.pause()  # ... and goes away while the run goes on
        try:
            with store.fleet_lock("deb") as held:
                assert held  # the host's flock alone holds the mirror meanwhile
            finished = dataclasses.replace(a_record("deb", started, "partial"), run_id=online)
            store.finish_run(finished)  # no error: spooled
            assert store.deferred(online)
            offline = store.start_run("deb", "rsync://u/m/", started + 30)
            assert offline < 0  # provisional: the store gives the id on replay
            store.finish_run(a_record("deb", started + 30, "success", run_id=offline))
            assert len(spool.pending()) == 2
            with pytest.raises(sa.exc.OperationalError):
                replay_spool(config, store, spool)
            assert len(spool.pending()) == 2  # nothing lost while the store is down
        finally:
            postgres.resume()
        copies = [p.read_bytes() for p in spool.pending()]
        assert replay_spool(config, store, spool) == 2
        assert spool.pending() == []
        runs = fleet_runs(store)
        assert [(r["mirror"], r["host"], r["outcome"]) for r in runs] == [
            ("deb", "node-a", "partial"), ("deb", "node-a", "success")]
        assert runs[0]["id"] == online
        [first, second] = [store.run(r["id"]) for r in runs]
        assert first == dataclasses.replace(finished, run_id=online)
        assert second is not None and second.files_transferred == 3
        # Judged as any run is: findings stored, alerts raised for the run that failed.
        assert store.findings(runs[0]["id"]) and store.findings(runs[1]["id"]) is not None
        with store.engine.connect() as conn:
                alerts = [tuple(r) for r in conn.execute(sa.text(
                "SELECT run_id, resolved_at IS NOT NULL FROM alerts ORDER BY id"))]
        assert alerts == [(runs[0]["id"], True)]  # the partial run's alert, then resolved
        assert AlertStore(store.engine).open_alerts("deb") == []
        # Replayed again (a crash before the files were removed): stored once.
        for index, data in enumerate(copies):
            (spool.path / f"{1_000_000_000 + index:017.6f}-again.json").write_bytes(data)
        assert replay_spool(config, store, spool) == 2
        assert len(fleet_runs(store)) == 2
        # With the store back, a run's end goes straight to it.
        third = store.start_run("deb", "rsync://u/m/", started + 50)
        store.finish_run(a_record("deb", started + 50, run_id=third))
        assert not store.deferred(third) and spool.pending() == []
        assert [r["outcome"] for r in fleet_runs(store)] == ["partial", "success", "success"]
    finally:
        store.close()


# -- Redis down: the host runs its own jobs ------------------------------------------------
def test_without_redis_the_daemon_runs_its_own_schedule(tmp_path: Path, postgres: Postgres,
                                                        redis_server: Redis) -> None:
    from mirrorkeeper.daemon.service import Daemon

    tree = DebianLikeTree(tmp_path / "upstream", seed=3)
    tree.create(packages=20)
    mirrors = {"a1": {"profile": "debian", "dest": str(tmp_path / "a1"),
                      "upstreams": [str(tree.root) + "/"], "delete_grace": "0s"}}
    url = postgres.create_database()
    path = host_config(tmp_path, "node-a", mirrors, url, redis_server.url)
    daemon = Daemon(load_config(path))  # not run(): its tick is called here
    store = Store.from_url(url)
    try:
        redis_server.stop()
        daemon.tick()  # a1 is due (first run); the queue is unreachable: it runs here
        wait_for(lambda: [r["outcome"] for r in fleet_runs(store)] == ["success"],
                 timeout=60, what="a1 synced without Redis")
        assert daemon.queued == set()
        redis_server.start()
        daemon.tick()  # nothing due; the queue answers again
        assert daemon.queue.pending() == []
        assert "queue" not in daemon._trouble  # recovered
    finally:
        if redis_server.proc is None or redis_server.proc.poll() is not None:
            redis_server.start()
        daemon.stop.set()
        daemon.close()
        store.close()


# -- a real partition between a host and PostgreSQL --------------------------------------
NETNS_MISSING = missing_netns_tools()


@pytest.mark.slow
@pytest.mark.privileged
@pytest.mark.skipif(NETNS_MISSING is not None, reason=NETNS_MISSING or "")
def test_a_host_cut_off_from_postgresql_keeps_its_schedule_spools_and_replays(
        tmp_path: Path, redis_server: Redis) -> None:
    """PostgreSQL in one network namespace, a host daemon in another, one veth pair between
    them; the test cuts the link. Meanwhile the run that was going on ends, a scheduled run
    starts and ends (both spooled, the schedule kept), the plugins hear ``store.unreachable``;
    healed, the spool is replayed: every run is in the store exactly once."""
    partition = Partition().make()
    server: Postgres | None = None
    daemon: subprocess.Popen[str] | None = None
    store: Store | None = None
    try:
        server = Postgres(listen=partition.server_ip, trust_net=partition.net,
                          netns=partition.server).start()
        database = sa.engine.make_url(server.create_database()).database
        assert database is not None
        store = Store.from_url(server.url(database))  # the test reads over the unix socket
        small = DebianLikeTree(tmp_path / "small", seed=4)
        small.create(packages=120)  # big enough that its indexes are under max_delete_fraction
        large = DebianLikeTree(tmp_path / "large", seed=5)
        large.create(packages=300)
        mirrors = {
            "quick": {"profile": "debian", "dest": str(tmp_path / "dest" / "quick"),
                      "upstreams": [str(small.root) + "/"], "delete_grace": "0s",
                      "schedule": "every 1m"},
            # Still running when the link goes down, and ending during the partition.
            "slow": {"profile": "debian", "dest": str(tmp_path / "dest" / "slow"),
                     "upstreams": [str(large.root) + "/"], "delete_grace": "0s",
                     "schedule": "every 1d", "bwlimit": 400},
        }
        path = host_config(tmp_path, "node-a", mirrors, server.tcp_url(database),
                           redis_server.url)
        path.write_text(path.read_text().replace("[web]\n", "[web]\nenabled = false\n"))
        alerts = tmp_path / "alerts.jsonl"
        daemon = subprocess.Popen(partition.exec_argv(partition.host, [
            sys.executable, "-m", "mirrorkeeper", "-c", str(path), "daemon"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

        def runs() -> list[dict[str, Any]]:
            return fleet_runs(store)

        wait_for(lambda: [(r["mirror"], r["outcome"]) for r in runs()] == [
            ("quick", "success"), ("slow", "running")] or
            [(r["mirror"], r["outcome"]) for r in runs()] == [
            ("slow", "running"), ("quick", "success")], timeout=60,
            what="quick synced, slow running")
        first_quick = next(r for r in runs() if r["mirror"] == "quick")

        assert partition.reachable() in (True, None)
        partition.cut()
        assert partition.reachable() in (False, None)
        spool = Spool(spool_dir(tmp_path / "node-a" / "state"))

        def sent(code: str) -> list[dict[str, Any]]:
            if not alerts.exists():
                return []
            return [d for d in map(json.loads, alerts.read_text().splitlines())
                    if d["code"] == code]

        wait_for(lambda: len(sent("store.unreachable")) == 1, timeout=60,
                 what="store.unreachable sent through the plugin directly")
        assert not sent("store.unreachable")[0]["resolved"]
        # The slow run ends, and quick's schedule comes round (a minute after its first
        # start, again a minute later if slow is slower than that on a busy machine): all
        # spooled on the host, the store untouched.

        def spooled() -> list[tuple[str, str, bool]]:
            return sorted((spool.read(p).record.mirror, spool.read(p).record.outcome,
                           spool.read(p).record.run_id < 0) for p in spool.pending())

        wait_for(lambda: {m for m, _o, _n in spooled()} == {"quick", "slow"}, timeout=210,
                 what="slow's end and quick's scheduled run spooled")
        assert daemon.poll() is None
        assert [(r["mirror"], r["outcome"]) for r in runs()].count(("slow", "running")) == 1
        assert len(runs()) == 2
        waiting = spooled()
        assert ("slow", "success", False) in waiting  # started before the cut: its own id
        assert {x for x in waiting if x[0] == "quick"} == {("quick", "success", True)}

        partition.heal()
        wait_for(lambda: spool.pending() == [] and not any(
            r["outcome"] == "running" for r in runs()) and len(runs()) >= len(waiting) + 1,
                 timeout=90, what="the spool replayed")
        wait_for(lambda: len(sent("store.unreachable")) == 2, timeout=30,
                 what="the notice that the store is back")
        back = sent("store.unreachable")[1]
        replayed = re.search(r"(\d+) spooled run\(s\) replayed", back["summary"])
        assert back["resolved"] and replayed and int(replayed.group(1)) >= len(waiting)
        final = runs()
        assert sorted({(r["mirror"], r["outcome"], r["host"]) for r in final}) == [
            ("quick", "success", "node-a"), ("slow", "success", "node-a")]
        assert [r["mirror"] for r in final].count("slow") == 1
        assert first_quick in final  # the run before the partition is untouched
        with store.engine.connect() as conn:
            uuids = [row[0] for row in conn.execute(sa.text("SELECT uuid FROM runs"))]
        assert len(set(uuids)) == len(final) and None not in uuids
        # The server may still keep the session that held slow's fleet lock when the link
        # went down (it has not seen it die); the host ends it, and slow runs again.
        with store.engine.connect() as conn:
            stale = conn.execute(sa.text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")).scalar()
        trigger = subprocess.run(partition.exec_argv(partition.host, [
            sys.executable, "-m", "mirrorkeeper", "-c", str(path), "trigger", "slow"]),
            capture_output=True, text=True, timeout=60)
        assert trigger.returncode == 0, trigger.stderr
        wait_for(lambda: [r["outcome"] for r in runs() if r["mirror"] == "slow"] == [
            "success", "success"], timeout=90, what="slow synced again after the partition")
        # Still running, and it goes on recording straight into the store.
        assert daemon.poll() is None
        daemon.send_signal(15)
        _out, err = daemon.communicate(timeout=60)
        assert daemon.returncode == 0, err[-2000:]
        assert "store.unreachable" in err and "store.back" in err
        assert "Traceback" not in err, err[-3000:]  # said in one line each, never a crash
        if stale:  # (it was, each time this was run)
            assert "fleet.stale_lock_ended" in err
        assert [r["mirror"] for r in runs()].count("slow") == 2  # and never twice
        assert len({r["id"] for r in runs()}) == len(runs())
    finally:
        if store is not None:
            store.close()
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.communicate()
        for pid in processes_mentioning(str(tmp_path / "dest")):
            os.kill(pid, 9)
        if server is not None:
            server.stop()
        partition.remove()
        shutil.rmtree(tmp_path / "large", ignore_errors=True)


def test_a_manual_sync_outlives_the_store_and_its_end_is_spooled(
        tmp_path: Path, postgres: Postgres) -> None:
    """`mirrorkeeper sync` on a fleet host, PostgreSQL stopped under it mid-transfer: the sync
    finishes (exit 0), says where its record waits, and the replay stores it once."""
    from mirrorkeeper.daemon.replay import replay_spool

    from .conftest import python_cli

    tree = DebianLikeTree(tmp_path / "upstream", seed=6)
    tree.create(packages=120)
    url = postgres.create_database()
    path = fleet_config(tmp_path / "mk.toml", {
        "deb": {"profile": "debian", "dest": str(tmp_path / "mirror"),
                "upstreams": [str(tree.root) + "/"], "delete_grace": "0s", "bwlimit": 300}},
        url, "redis://127.0.0.1:1/0", "node-a")
    store = Store.from_url(url)
    sync = subprocess.Popen([*python_cli(), "-c", str(path), "sync", "deb"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: [r["outcome"] for r in fleet_runs(store)] == ["running"],
                 timeout=30, what="the sync running")
        store.engine.dispose()
        postgres.pause()
        try:
            _out, err = sync.communicate(timeout=120)
        finally:
            postgres.resume()
        assert sync.returncode == 0, err
        assert "is spooled in" in err and "the fleet store is unreachable" in err
        spool = Spool(spool_dir(tmp_path / "state"))
        [spooled] = [spool.read(p) for p in spool.pending()]
        assert spooled.record.outcome == "success" and spooled.record.files_transferred > 0
        assert [r["outcome"] for r in fleet_runs(store)] == ["running"]  # nothing written
        assert replay_spool(load_config(path), store, spool) == 1
        [run] = fleet_runs(store)
        assert run["outcome"] == "success"
        assert store.run(run["id"]) == dataclasses.replace(spooled.record, run_id=run["id"])
    finally:
        if sync.poll() is None:
            sync.kill()
            sync.communicate()
        store.close()


def test_a_spooled_runs_critical_finding_is_sent_at_once_and_only_once(
        tmp_path: Path, postgres: Postgres) -> None:
    """A run that ends with the store down tripped the mass-delete guard (critical): the plugin
    hears it now, not when the store is back; the replay raises the alert in the store without
    notifying a second time."""
    from mirrorkeeper.alerts.dispatch import deliver_pending
    from mirrorkeeper.daemon.replay import replay_spool
    from mirrorkeeper.job import JobResult, after_run
    from mirrorkeeper.record import Attempt
    from mirrorkeeper.store.alerts import AlertStore

    url = postgres.create_database()
    sent = tmp_path / "sent.jsonl"
    plugin = Path(sys.executable).with_name("mirrorkeeper-alert-jsonl")
    config = load_config(fleet_config(tmp_path / "mk.toml", {
        "deb": {"profile": "debian", "dest": str(tmp_path / "deb")}},
        url, "redis://127.0.0.1:1/0", "node-a", extra=f"""
[[alerts.plugins]]
name = "jsonl"
command = ["{plugin}", "{sent}"]
"""))
    store = Store.for_config(config)
    spool = Spool(spool_dir(config.settings.state_dir))

    def codes() -> list[tuple[str, bool]]:
        return [(d["code"], d["resolved"]) for d in map(
            json.loads, sent.read_text().splitlines())] if sent.exists() else []
    try:
        postgres.pause()
        try:
            started = time.time() - 30
            run_id = store.start_run("deb", "rsync://u/m/", started)
            guard = Attempt(1, "rsync://u/m/", "guard", "guard.mass_delete",
                            "the upstream dropped 5000 files", "stage2", 0, started,
                            started + 20)
            record = dataclasses.replace(a_record("deb", started, "failed", run_id=run_id),
                                         attempts=(guard,))
            store.finish_run(record)
            result = JobResult(record)
            after_run(config, config.mirrors["deb"], store, record, None, result)
            assert codes() == [("guard.mass_delete", False)]  # now, through the plugin
            assert any("spooled" in p for p in result.problems)
            [path] = spool.pending()
            assert spool.read(path).sent == ("guard.mass_delete",)
        finally:
            postgres.resume()
        assert replay_spool(config, store, spool) == 1
        [alert] = AlertStore(store.engine).open_alerts("deb")
        assert alert["code"] == "guard.mass_delete" and alert["severity"] == "critical"
        assert deliver_pending(config, store) == 0
        assert codes() == [("guard.mass_delete", False)]  # not a second time
    finally:
        store.close()
