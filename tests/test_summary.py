"""The per-mirror summary rows (issue #12): right after every kind of run end and after the
migration that fills them from a store written before they existed; and the shared reading the web
shares between clients. A real SQLite store throughout; the reference is the history itself."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Hashable
from pathlib import Path

import pytest
import sqlalchemy as sa

from mirrorkeeper.config.load import load_config
from mirrorkeeper.overview import status_rows
from mirrorkeeper.record import RunRecord, StageResult
from mirrorkeeper.store import Store
from mirrorkeeper.store.schema import pending_deletions, runs
from mirrorkeeper.store.summary import RECENT_RUNS
from mirrorkeeper.sync.lock import MirrorLock
from mirrorkeeper.sync.run import lock_dir
from mirrorkeeper.web.reading import SharedReading

from .conftest import write_config

UPSTREAM = "rsync://up.example/debian/"


def finished(mirror: str, run_id: int, started: float, outcome: str,
             duration: float) -> RunRecord:
    stage = StageResult(name="single", argv=("rsync",), started_at=started,
                        finished_at=started + duration, exit_code=0 if outcome == "success"
                        else 23, size_bytes=int(duration) * 1000, files_total=int(duration))
    return RunRecord(run_id, mirror, UPSTREAM, started, started + duration, outcome, (stage,))


def reference(store: Store, mirror: str) -> dict[str, object]:
    """What the summary must say, from the whole history, newest first."""
    history = store.run_rows(mirror, limit=10**6)
    pending = store.pending_summary(mirror)
    return {
        "newest": history[0]["id"] if history else None,
        "last_done": next((r["id"] for r in history if r["outcome"] != "running"), None),
        "last_success": next((r["id"] for r in history if r["outcome"] == "success"), None),
        "durations": tuple(r["duration_seconds"] for r in reversed(history[:RECENT_RUNS])
                           if r["outcome"] != "running" and r["duration_seconds"] is not None),
        "pending": pending,
    }


def summarized(store: Store, mirror: str) -> dict[str, object]:
    s = store.summaries([mirror]).get(mirror)
    if s is None:
        return {"newest": None, "last_done": None, "last_success": None, "durations": (),
                "pending": (0, None)}
    return {
        "newest": s.newest.run_id if s.newest else None,
        "last_done": s.last_done.run_id if s.last_done else None,
        "last_success": s.last_success.run_id if s.last_success else None,
        "durations": s.recent_durations,
        "pending": (s.pending_deletions, s.pending_since),
    }


def test_summary_follows_success_failure_running_and_interrupted_runs(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    try:
        assert store.summaries() == {}
        ok = store.start_run("deb", UPSTREAM, 1000.0)
        s = store.summaries()["deb"]
        assert s.newest is not None and s.newest.outcome == "running"
        assert s.last_done is None and s.last_success is None
        store.finish_run(finished("deb", ok, 1000.0, "success", 60.0))
        bad = store.start_run("deb", UPSTREAM, 2000.0)
        store.finish_run(finished("deb", bad, 2000.0, "failed", 30.0))
        s = store.summaries()["deb"]
        assert s.last_done is not None and s.last_done.run_id == bad
        assert s.last_done.outcome == "failed"
        assert s.last_success is not None and s.last_success.run_id == ok
        assert s.last_success.size_bytes == 60_000  # the record, figures and all
        assert s.recent_durations == (60.0, 30.0)
        died = store.start_run("deb", UPSTREAM, 3000.0)  # its process is SIGKILLed
        assert store.mark_abandoned("deb", now=3100.0) == 1
        s = store.summaries()["deb"]
        assert s.newest is not None and s.newest.run_id == died
        assert s.last_done is not None and s.last_done.run_id == died
        assert s.last_done.outcome == "interrupted"
        assert s.recent_durations == (60.0, 30.0)  # an interrupted run has no duration
        store.set_pending_deletions("deb", {"pool/a.deb": 500.0, "pool/b.deb": 700.0})
        s = store.summaries()["deb"]
        assert (s.pending_deletions, s.pending_since) == (2, 500.0)
        assert s.last_done is not None and s.last_done.run_id == died  # the runs unchanged
        store.set_pending_deletions("deb", {})
        assert store.summaries()["deb"].pending_deletions == 0
        assert store.summaries(["other"]) == {}
    finally:
        store.close()


def test_summary_matches_the_history_through_any_sequence_of_writes(tmp_path: Path) -> None:
    """Runs of two mirrors started, ended, abandoned, history seeded older than what is there,
    more than the sparkline's width: after every write the summary says what the history does."""
    rng = random.Random(12)
    store = Store.open(tmp_path)
    open_runs: dict[str, tuple[int, float]] = {}
    clock = {"deb": 10**6, "ubu": 10**6}
    try:
        for _ in range(120):
            mirror = rng.choice(["deb", "ubu"])
            action = rng.random()
            if mirror in open_runs and action < 0.6:
                run_id, started = open_runs.pop(mirror)
                store.finish_run(finished(mirror, run_id, started, rng.choice(
                    ["success", "success", "failed", "partial"]), rng.choice([10.0, 20.0])))
            elif mirror in open_runs and action < 0.7:
                open_runs.pop(mirror)
                store.mark_abandoned(mirror, now=clock[mirror] + 1)
            elif action < 0.8:
                # history from elsewhere: older than anything the mirror has
                started = 1000.0 + rng.random() * 1000
                run_id = store.start_run(mirror, UPSTREAM, started)
                store.finish_run(finished(mirror, run_id, started, "success", 5.0))
            elif action < 0.9:
                store.set_pending_deletions(mirror, {
                    f"f{i}": float(rng.randrange(100, 900)) for i in range(rng.randrange(3))})
            elif mirror not in open_runs:
                clock[mirror] += 100
                open_runs[mirror] = (store.start_run(mirror, UPSTREAM, clock[mirror]),
                                     clock[mirror])
            for name in ("deb", "ubu"):
                assert summarized(store, name) == reference(store, name)
        assert len(store.history("deb", limit=1000)) > RECENT_RUNS
    finally:
        store.close()


def test_last_success_and_last_finish_further_back_than_the_sparkline(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    try:
        ok = store.start_run("deb", UPSTREAM, 100.0)
        store.finish_run(finished("deb", ok, 100.0, "success", 10.0))
        for i in range(RECENT_RUNS + 1):
            failed = store.start_run("deb", UPSTREAM, 200.0 + i)
            store.finish_run(finished("deb", failed, 200.0 + i, "failed", 1.0))
        s = store.summaries()["deb"]
        assert s.last_success is not None and s.last_success.run_id == ok
        assert s.last_done is not None and s.last_done.run_id == failed
        for i in range(RECENT_RUNS + 1):  # left running by processes long gone, unmarked
            store.start_run("deb", UPSTREAM, 1000.0 + i)
        s = store.summaries()["deb"]
        assert s.last_done is not None and s.last_done.run_id == failed
        assert s.last_success is not None and s.last_success.run_id == ok
        assert s.recent_durations == ()
    finally:
        store.close()


def test_migration_fills_the_summaries_of_a_store_written_before_them(tmp_path: Path) -> None:
    """A store at revision 0005 with history (more failures in a row than the sparkline's
    width, a run left running, pending deletions) opens with every summary right."""
    from importlib import resources

    from alembic import command
    from alembic.config import Config as AlembicConfig

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'mirrorkeeper.db'}")
    with engine.begin() as conn:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location",
                            str(resources.files("mirrorkeeper.store") / "migrations"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0005")
        rows = []
        for i in range(80):
            outcome = "success" if i < 10 else "failed"
            rows.append({"mirror": "deb", "started_at": 1000.0 + i * 100,
                         "finished_at": 1050.0 + i * 100, "outcome": outcome,
                         "duration_seconds": 50.0 + i, "stages": {"stages": []}})
        rows.append({"mirror": "deb", "started_at": 9000.0, "finished_at": None,
                     "outcome": "running", "duration_seconds": None, "stages": None})
        rows.append({"mirror": "ubu", "started_at": 500.0, "finished_at": 560.0,
                     "outcome": "success", "duration_seconds": 60.0, "stages": None})
        conn.execute(runs.insert(), rows)
        conn.execute(pending_deletions.insert(), [
            {"mirror": "gone", "path": "pool/x.deb", "first_seen": 42.0}])
    engine.dispose()
    store = Store.open(tmp_path)  # migrates to the head
    try:
        for mirror in ("deb", "ubu", "gone"):
            assert summarized(store, mirror) == reference(store, mirror)
        deb = store.summaries()["deb"]
        assert deb.last_success is not None and deb.last_success.started_at == 1900.0
        assert deb.newest is not None and deb.newest.outcome == "running"
        assert len(deb.recent_durations) == RECENT_RUNS - 1
        assert store.summaries()["gone"].pending_deletions == 1
    finally:
        store.close()


def test_status_rows_from_the_summary(tmp_path: Path) -> None:
    """`status`'s rows: running while a process holds the lock, crashed when the run's
    process is gone without a word, figures of the last finished run, age of the last success."""
    config = load_config(write_config(tmp_path / "mk.toml", {
        name: {"profile": "debian", "dest": str(tmp_path / name), "upstreams": [UPSTREAM]}
        for name in ("deb", "never")}))
    store = Store.open(config.settings.state_dir)
    try:
        now = time.time()
        ok = store.start_run("deb", UPSTREAM, now - 7200)
        store.finish_run(finished("deb", ok, now - 7200, "success", 600.0))
        bad = store.start_run("deb", UPSTREAM, now - 3600)
        store.finish_run(finished("deb", bad, now - 3600, "failed", 60.0))
        current = store.start_run("deb", UPSTREAM, now - 60)
        with MirrorLock(lock_dir(config), "deb"):
            rows = {r["mirror"]: r for r in status_rows(config, store)}
        deb = rows["deb"]
        assert (deb["state"], deb["current_run_id"]) == ("running", current)
        assert (deb["run_id"], deb["outcome"]) == (bad, "failed")
        assert deb["last_success_size_bytes"] == 600_000
        assert 6590 < deb["age_seconds"] < 6700
        assert rows["never"]["state"] == "never synced" and rows["never"]["run_id"] is None
        deb = status_rows(config, store, ["deb"])[0]  # the lock is free, the run unfinished
        assert (deb["state"], deb["current_run_id"]) == ("crashed", None)
    finally:
        store.close()


def test_one_read_serves_every_waiting_client_until_the_token_changes() -> None:
    reads: list[Hashable] = []
    token: list[Hashable] = [1]

    def read() -> int:
        reads.append(token[0])
        return len(reads)

    async def scenario() -> None:
        shared = SharedReading(read, lambda: token[0], max_age=3600)
        first = await asyncio.gather(*(shared.get() for _ in range(20)))
        assert {s.value for s in first} == {1} and len(reads) == 1
        assert (await shared.get()).value == 1  # nothing changed: the same reading
        token[0] = 2  # a commit
        assert (await shared.get()).value == 2
        made: list[int] = []

        def page(value: int) -> str:
            made.append(value)
            return f"page {value}"

        reading = await shared.get()
        assert await asyncio.gather(*(reading.memo("/", page) for _ in range(5))) == [
            "page 2"] * 5
        assert made == [2]  # made once for all five

    asyncio.run(scenario())


def test_an_aged_reading_is_served_while_the_next_is_read() -> None:
    """Past max_age a request still gets the current reading at once, a new one is read in
    the background with its pages made again, and later requests get that one; one that
    nobody asked for in three max_ages is not served."""
    reads: list[int] = []

    def read() -> int:
        reads.append(1)
        return len(reads)

    now = [0.0]

    async def scenario() -> None:
        shared = SharedReading(read, lambda: "same", max_age=1.0, clock=lambda: now[0])
        old = await shared.get()
        assert await old.memo("/", lambda v: f"page {v}") == "page 1"
        now[0] = 1.5
        assert await shared.get() is old  # aged: served, and a new read started
        assert shared.refreshing is not None
        await shared.refreshing
        new = await shared.get()
        assert new.value == 2 and new.derived["/"].result() == "page 2"  # made in advance
        now[0] = 3.0
        await shared.get()  # aged again, and nobody asked for the page of this one...
        assert shared.refreshing is not None
        await shared.refreshing
        newer = await shared.get()
        assert newer.value == 3 and "/" not in newer.derived  # ...so it is not made again
        now[0] = 10.0
        assert (await shared.get()).value == 4  # too old to serve: read while it waited

    asyncio.run(scenario())


def test_a_failed_background_read_is_met_by_the_next_request() -> None:
    """Old figures are not served on after the store became unreadable: the request after a
    failed background read reads again and gets the error."""
    now = [0.0]
    broken = [False]

    def read() -> str:
        if broken[0]:
            raise OSError("store unreadable")
        return "figures"

    async def scenario() -> None:
        shared = SharedReading(read, lambda: "same", max_age=1.0, clock=lambda: now[0])
        assert (await shared.get()).value == "figures"
        broken[0], now[0] = True, 1.5
        assert (await shared.get()).value == "figures"  # aged: served, read in background
        assert shared.refreshing is not None
        with pytest.raises(OSError):
            await shared.refreshing
        with pytest.raises(OSError):
            await shared.get()

    asyncio.run(scenario())


def test_a_failed_derivation_is_tried_again() -> None:
    async def scenario() -> None:
        shared = SharedReading(lambda: 0, lambda: 0, max_age=3600)
        reading = await shared.get()
        attempts: list[int] = []

        def flaky(value: int) -> str:
            attempts.append(value)
            if len(attempts) == 1:
                raise OSError("disk full")
            return "ok"

        with pytest.raises(OSError):
            await reading.memo("x", flaky)
        assert await reading.memo("x", flaky) == "ok"

    asyncio.run(scenario())


def test_change_token_moves_with_every_commit_and_leaves_the_store_at_rest(
        tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    other = Store.open(tmp_path)  # another process's sync, say
    try:
        first = store.change_token()
        assert store.change_token() == first  # nothing committed
        other.start_run("deb", UPSTREAM, 100.0)
        second = store.change_token()
        assert second != first
        store.set_pending_deletions("deb", {"a": 1.0})  # this store's own writes count too
        assert store.change_token() != second
    finally:
        other.close()
        store.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mirrorkeeper.db"]  # at rest
    assert Store.empty().change_token() is None
