"""Run history and live state. One SQLite file in the state dir; the same code takes a
PostgreSQL URL for a fleet.

Writers (``sync``, the daemon) open it read-write in WAL mode, so readers never wait for a
sync. Readers (``status``, ``history``, ``logs``, ``check``, ``alerts list``) open it
read-only (``mode=ro``) and never create, migrate or write anything, so that a user who may only
*read* the state directory — Nagios' own user, in the ``mirrorkeeper`` group — can run them.

A WAL database can be read without write access only while its ``-wal`` and ``-shm`` files
exist and are readable (SQLite creates them with the database file's mode), or when the reader
may create them. They exist while a writer has the database open; when the last connection
closes, SQLite deletes them. So a writer that closes leaves the database in rollback-journal
mode when it is the last one (``PRAGMA journal_mode=DELETE``, which SQLite refuses while
anyone else has the file open): at rest the store is one self-contained file that read access
alone can read, and the next writer switches it back to WAL.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import socket
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..access import Place, first_unreadable, read_denied, require_writable, sqlite_problem
from ..errors import StateUnavailable
from ..record import Attempt, Deletions, DownstreamResult, RunRecord, StageResult
from ..record.progress import LiveProgress
from .schema import hosts, live, metadata, polls, runs
from .schema import pending_deletions as pending_table
from .summary import MirrorSummary, read_summaries, refresh_summary

if TYPE_CHECKING:
    from ..config.spec import Config

DB_NAME = "mirrorkeeper.db"
#: The newest migration in ``migrations/versions``; a test keeps the two in step. Knowing it
#: here lets every command skip importing Alembic (~170 ms) when the schema is current.
HEAD_REVISION = "0009"
#: What a fleet store that cannot be reached raises (server down, network cut, connection
#: lost mid-query).
STORE_DOWN = (sa.exc.OperationalError, sa.exc.InterfaceError)
#: libpq's options for a fleet store over TCP (a unix socket ignores them): a store behind a
#: cut link must fail a query within seconds, not after TCP's retries (~15 minutes), so that
#: the daemon spools and keeps its schedule. A URL's own settings win.
PG_TIMEOUTS = {"connect_timeout": 5, "tcp_user_timeout": 15000, "keepalives": 1,
               "keepalives_idle": 15, "keepalives_interval": 5, "keepalives_count": 3}


def application_name(host: str | None) -> str:
    """How this host's sessions show in ``pg_stat_activity`` (see :meth:`Store.fleet_lock`)."""
    return f"mirrorkeeper:{host or socket.gethostname()}"[:63]


def fleet_engine(url: str, host: str | None = None) -> sa.Engine:
    """An engine for a fleet store URL, with :data:`PG_TIMEOUTS` on PostgreSQL and the
    sessions named after the host."""
    parsed = sa.engine.make_url(url)
    options: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql":
        options = {k: v for k, v in {**PG_TIMEOUTS,
                                     "application_name": application_name(host)}.items()
                   if k not in parsed.query}
    return sa.create_engine(parsed, pool_pre_ping=True, connect_args=options)


def schema_revision(conn: sa.Connection) -> str | None:
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: sa.Engine) -> None:
    """Bring the schema to the newest revision (a single query when it already is)."""
    with engine.begin() as conn:
        if schema_revision(conn) == HEAD_REVISION:
            return
        from alembic import command
        from alembic.config import Config as AlembicConfig

        cfg = AlembicConfig()
        cfg.set_main_option("script_location",
                            str(resources.files("mirrorkeeper.store") / "migrations"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def _writer_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    # The busy timeout first: switching a database at rest back to WAL waits for readers.
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _reader_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _translate_errors(engine: sa.Engine, db: Path, readonly: bool) -> None:
    """SQLite errors an admin must fix (a file left by root, a full disk) become
    :class:`StateUnavailable` naming the file, wherever in the code they happen."""

    def handle(context: sa.engine.ExceptionContext) -> None:
        problem = sqlite_problem(context.original_exception, db, db.parent, readonly)
        if problem is not None:
            raise problem from context.original_exception

    sa.event.listen(engine, "handle_error", handle)


def leave_at_rest(db: Path) -> bool:
    """Switch ``db`` to rollback-journal mode if no one else has it open (True if it is now).

    Never waits: another connection anywhere means it keeps WAL mode, and its ``-wal`` and
    ``-shm`` files, which readers can then use, stay. Errors (read-only, full disk) leave it
    as it is; the next writer's close tries again.
    """
    try:
        conn = sqlite3.connect(db, timeout=0)
    except sqlite3.Error:
        return False
    try:
        mode = conn.execute("PRAGMA journal_mode=DELETE").fetchone()
        return bool(mode) and str(mode[0]).lower() == "delete"
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def _stat_or_none(place: Place) -> os.stat_result | None:
    """``place`` for a reader: None if it does not exist, else its stat; unusable → raise."""
    try:
        return place.path.stat()
    except FileNotFoundError:
        return None
    except PermissionError:
        blocked = first_unreadable([Place(place.what, p, place.root)
                                    for p in (*reversed(place.path.parents), place.path)])
        raise read_denied(blocked or place) from None
    except OSError as exc:
        raise StateUnavailable(place.what, str(place.path), exc.strerror or str(exc)) from exc


def stage_to_json(stage: StageResult) -> dict[str, Any]:
    data = dataclasses.asdict(stage)
    data["argv"] = list(stage.argv)
    data["error_samples"] = list(stage.error_samples)
    data["duration_seconds"] = round(stage.duration_seconds, 3)
    data["bytes_transferred"] = stage.bytes_transferred
    return data


#: What a stored stage may set (older and newer stores carry other keys too).
STAGE_FIELDS = frozenset(f.name for f in dataclasses.fields(StageResult))


def stage_from_json(data: dict[str, Any]) -> StageResult:
    kwargs = {k: v for k, v in data.items() if k in STAGE_FIELDS}
    kwargs["argv"] = tuple(kwargs.get("argv", ()))
    kwargs["error_samples"] = tuple(kwargs.get("error_samples", ()))
    return StageResult(**kwargs)


def run_values(record: RunRecord) -> dict[str, Any]:
    """The ``runs`` columns a finished run sets (its figures and its stages as JSON)."""
    return dict(
        upstream=record.upstream,
        finished_at=record.finished_at, outcome=record.outcome,
        exit_code=record.exit_code, duration_seconds=record.duration_seconds,
        bytes_transferred=record.bytes_transferred, size_bytes=record.size_bytes,
        bitrate_bps=record.bitrate_bps, files_total=record.files_total,
        files_transferred=record.files_transferred,
        files_deleted=record.files_deleted, files_failed=record.files_failed,
        errors=record.errors,
        stages={"stages": [stage_to_json(s) for s in record.stages],
                "skipped": list(record.skipped),
                "attempts": [dataclasses.asdict(a) for a in record.attempts],
                "deletions": (dataclasses.asdict(record.deletions)
                              if record.deletions else None),
                "notices": [list(n) for n in record.notices],
                "downstreams": [dataclasses.asdict(d) for d in record.downstreams]},
        log_path=record.log_path)


def record_from_values(run_id: int, values: dict[str, Any]) -> RunRecord:
    """The record :func:`run_values` (plus ``mirror`` and ``started_at``) describes: a row
    of ``runs``, or a spool file's."""
    stages_json = values.get("stages") or {}
    return RunRecord(
        run_id=run_id, mirror=values["mirror"], upstream=values["upstream"],
        started_at=values["started_at"], finished_at=values["finished_at"],
        outcome=values["outcome"], log_path=values["log_path"],
        stages=tuple(stage_from_json(s) for s in stages_json.get("stages", [])),
        skipped=tuple(stages_json.get("skipped", [])),
        attempts=tuple(Attempt(**a) for a in stages_json.get("attempts", [])),
        deletions=Deletions(**stages_json["deletions"]) if stages_json.get("deletions")
        else None,
        notices=tuple((n[0], n[1], n[2]) for n in stages_json.get("notices", [])),
        downstreams=tuple(DownstreamResult(**{**d, "sent": tuple(d["sent"]),
                                              "exit_codes": tuple(d["exit_codes"])})
                          for d in stages_json.get("downstreams", [])),
    )


def advisory_key(mirror: str) -> int:
    """A stable signed 64-bit key for PostgreSQL's advisory locks, one per mirror name."""
    digest = hashlib.blake2b(f"mirrorkeeper.mirror:{mirror}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Store:
    def __init__(self, engine: sa.Engine, db: Path | None = None,
                 readonly: bool = False, host: str | None = None) -> None:
        self.engine = engine
        #: The SQLite file (None for other databases and the empty read-only store).
        self.db = db
        self.readonly = readonly
        #: The name runs are recorded under: the fleet host, or this machine's hostname.
        self.host = host or socket.gethostname()
        #: A connection of its own for :meth:`change_token` (opened on first use).
        self._watch: sqlite3.Connection | None = None
        self._watch_lock = threading.Lock()
        self._closed = False
        #: Records of finished runs, by id, kept between :meth:`summaries` reads.
        self._finished: dict[int, RunRecord] = {}

    @property
    def shared(self) -> bool:
        """A fleet store (PostgreSQL) that other hosts write too."""
        return self.engine.dialect.name == "postgresql"

    @classmethod
    def open(cls, state_dir: str | Path, *, readonly: bool = False) -> Store:
        """The SQLite store in ``state_dir``: read-write (created and migrated if needed), or
        ``readonly`` for commands that only look, which never write a byte.

        Raises :class:`~mirrorkeeper.errors.StateUnavailable` naming the file and the fix.
        """
        if readonly:
            return cls._open_readonly(Path(state_dir))
        state = Path(state_dir)
        db = state / DB_NAME
        try:
            state.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateUnavailable("state directory", str(state),
                                   exc.strerror or str(exc)) from exc
        require_writable([Place("state directory", state, state),
                          *(Place("store", Path(f"{db}{suffix}"), state)
                            for suffix in ("", "-wal", "-shm"))])
        engine = sa.create_engine(f"sqlite:///{db}")
        sa.event.listen(engine, "connect", _writer_pragmas)
        _translate_errors(engine, db, readonly=False)
        try:
            migrate(engine)
        except sa.exc.OperationalError as exc:
            engine.dispose()
            raise StateUnavailable("state directory", str(state),
                                   str(exc.orig) if exc.orig else str(exc)) from exc
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, db)

    @classmethod
    def _open_readonly(cls, state: Path) -> Store:
        """``mode=ro``: no journal switch, no migration, no file created. A state directory
        or database that does not exist yet is an empty store (nothing has synced)."""
        db = state / DB_NAME
        st = _stat_or_none(Place("state directory", state, state))
        if st is None:
            return cls.empty()
        if not state.is_dir():
            raise StateUnavailable("state directory", str(state), "Not a directory")
        if _stat_or_none(Place("store", db, state)) is None:
            return cls.empty()
        blocked = first_unreadable(Place("store", p, state) for p in (
            state, db, Path(f"{db}-wal"), Path(f"{db}-shm")))
        if blocked is not None:
            raise read_denied(blocked)
        uri = f"file:{urllib.parse.quote(str(db))}?mode=ro"
        engine = sa.create_engine(f"sqlite:///{db}", creator=lambda: sqlite3.connect(
            uri, uri=True, check_same_thread=False))
        sa.event.listen(engine, "connect", _reader_pragmas)
        _translate_errors(engine, db, readonly=True)
        try:
            with engine.connect() as conn:
                revision = schema_revision(conn)
        except BaseException:
            engine.dispose()
            raise
        if revision is None:
            # A writer is creating it right now: the first migration is one transaction, so
            # until it commits there is nothing to read yet.
            engine.dispose()
            return cls.empty()
        if revision != HEAD_REVISION:
            engine.dispose()
            raise StateUnavailable(
                "store", str(db),
                f"its schema is at revision {revision}, this Mirrorkeeper reads "
                f"{HEAD_REVISION}, and a read-only command does not migrate",
                "fix: let a writer migrate it — restart the daemon (systemctl restart "
                "mirrorkeeper) or run `mirrorkeeper alerts watchdog` as the state's owner")
        return cls(engine, db, readonly=True)

    @classmethod
    def empty(cls) -> Store:
        """A read-only view of a store that does not exist yet: every mirror never synced."""
        engine = sa.create_engine("sqlite://")
        metadata.create_all(engine)
        return cls(engine, readonly=True)

    @classmethod
    def from_url(cls, url: str, host: str | None = None) -> Store:
        """A store at a SQLAlchemy URL (the fleet's PostgreSQL), migrated to the newest
        schema. Raises :class:`StateUnavailable` naming the store when it cannot be reached."""
        engine = fleet_engine(url, host)
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _writer_pragmas)
        try:
            migrate(engine)
        except sa.exc.OperationalError as exc:
            engine.dispose()
            raise StateUnavailable("fleet store", engine.url.render_as_string(),
                                   str(exc.orig) if exc.orig else str(exc),
                                   "fix: start the database or correct [fleet] store") from exc
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, host=host)

    @classmethod
    def for_config(cls, config: Config, *, readonly: bool = False) -> Store:
        """The store ``config`` names: the fleet's shared one, else the state dir's SQLite.
        A reader of the fleet store never migrates it (a writer, the daemon, does)."""
        if config.fleet is None:
            return cls.open(config.settings.state_dir, readonly=readonly)
        if not readonly:  # a run's writes fall back to the host's spool (see .spooling)
            from .spooling import spooling

            return spooling(cls.from_url(config.fleet.store, host=config.fleet.host),
                            config.settings.state_dir)
        engine = fleet_engine(config.fleet.store, config.fleet.host)
        where = engine.url.render_as_string()
        try:
            with engine.connect() as conn:
                revision = schema_revision(conn)
        except sa.exc.OperationalError as exc:
            engine.dispose()
            raise StateUnavailable("fleet store", where,
                                   str(exc.orig) if exc.orig else str(exc),
                                   "fix: start the database or correct [fleet] store") from exc
        if revision is None:  # no daemon has created it yet: nothing has synced
            engine.dispose()
            return cls.empty()
        if revision != HEAD_REVISION:
            engine.dispose()
            raise StateUnavailable(
                "fleet store", where, f"its schema is at revision {revision}, this "
                f"Mirrorkeeper reads {HEAD_REVISION}, and a read-only command does not migrate",
                "fix: restart a fleet host's daemon (systemctl restart mirrorkeeper) to "
                "migrate it")
        return cls(engine, readonly=True, host=config.fleet.host)

    def close(self) -> None:
        """Close every connection; a writer that was the last one leaves the file readable
        without write access (see the module's docstring)."""
        with self._watch_lock:
            self._closed = True
            if self._watch is not None:
                self._watch.close()
                self._watch = None
        self.engine.dispose()
        if self.db is not None and not self.readonly:
            leave_at_rest(self.db)

    def change_token(self) -> object:
        """A value that changes whenever anyone commits to the store (a sync in another
        process, the daemon's own writes): SQLite's ``data_version`` seen by a connection that
        itself never writes; it reads no table and waits for no lock. None where there is no
        such value (other databases, the empty store); a fresh object if it cannot be read,
        so that the caller reads the store again and meets the error there."""
        if self.db is None:
            return None
        with self._watch_lock:
            if self._closed:  # a request that outlived the daemon's store
                return object()
            try:
                if self._watch is None:
                    self._watch = sqlite3.connect(
                        f"file:{urllib.parse.quote(str(self.db))}?mode=ro", uri=True,
                        timeout=0, check_same_thread=False)
                row = self._watch.execute("PRAGMA data_version").fetchone()
            except sqlite3.Error:
                return object()
            return int(row[0])

    # -- runs ---------------------------------------------------------------------------------
    def start_run(self, mirror: str, upstream: str, started_at: float,
                  uuid: str | None = None) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(runs.insert().values(
                mirror=mirror, upstream=upstream, started_at=started_at, outcome="running",
                host=self.host, pid=os.getpid(), uuid=uuid))
            key = result.inserted_primary_key
            assert key is not None
            refresh_summary(conn, mirror)
            return int(key[0])

    def set_log_path(self, run_id: int, log_path: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(runs.update().where(runs.c.id == run_id).values(log_path=log_path))

    def finish_run(self, record: RunRecord) -> None:
        with self.engine.begin() as conn:
            conn.execute(runs.update().where(runs.c.id == record.run_id).values(
                **run_values(record)))
            conn.execute(live.delete().where(live.c.mirror == record.mirror))
            refresh_summary(conn, record.mirror)

    def deferred(self, run_id: int) -> bool:
        """True while this run's end waits in a local spool instead of the store (a fleet
        host whose store was unreachable, see :mod:`.spooling`): what follows from a run
        (its alerts) happens when it is replayed. Never, here."""
        return False

    def replay_run(self, record: RunRecord, uuid: str, host: str,
                   pid: int | None) -> int | None:
        """Store a spooled run's end under its ``uuid``: the row its start wrote, or a new
        one for a run that started while the store was down. Returns its id, or None when it
        is already stored and judged (a replay twice is stored once)."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(runs.c.id, runs.c.outcome, runs.c.finished_at,
                                         runs.c.findings).where(runs.c.uuid == uuid)).first()
            if row is not None and row.outcome == record.outcome and \
                    row.finished_at == record.finished_at and row.findings is not None:
                return None
            if row is None:
                result = conn.execute(runs.insert().values(
                    mirror=record.mirror, upstream=record.upstream,
                    started_at=record.started_at, outcome="running", host=host, pid=pid,
                    uuid=uuid))
                key = result.inserted_primary_key
                assert key is not None
                run_id = int(key[0])
            else:
                run_id = int(row.id)
            conn.execute(runs.update().where(runs.c.id == run_id).values(
                **run_values(record)))
            conn.execute(live.delete().where(live.c.mirror == record.mirror,
                                             live.c.run_id == run_id))
            refresh_summary(conn, record.mirror)
            return run_id

    def _record(self, row: sa.Row[Any]) -> RunRecord:
        return record_from_values(row.id, dict(row._mapping))

    def run(self, run_id: int) -> RunRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(runs.select().where(runs.c.id == run_id)).first()
        return self._record(row) if row else None

    def history(self, mirror: str, limit: int = 20) -> list[RunRecord]:
        query = (runs.select().where(runs.c.mirror == mirror)
                 .order_by(runs.c.started_at.desc(), runs.c.id.desc()).limit(limit))
        with self.engine.connect() as conn:
            return [self._record(row) for row in conn.execute(query)]

    def last_run(self, mirror: str, outcome: str | None = None) -> RunRecord | None:
        query = runs.select().where(runs.c.mirror == mirror)
        if outcome:
            query = query.where(runs.c.outcome == outcome)
        query = query.order_by(runs.c.started_at.desc(), runs.c.id.desc()).limit(1)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return self._record(row) if row else None

    def findings(self, run_id: int) -> list[dict[str, Any]]:
        """The findings the classifier recorded for a run (empty before it judged it)."""
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(runs.c.findings).where(runs.c.id == run_id)).scalar()
        return list(value or [])

    def first_started(self, mirror: str) -> float | None:
        """When the mirror's first recorded run started (None: it never ran)."""
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(sa.func.min(runs.c.started_at)).where(
                runs.c.mirror == mirror)).scalar()
        return float(value) if value is not None else None

    def running_pid(self, run_id: int) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(runs.c.pid).where(runs.c.id == run_id)).scalar()

    def mark_abandoned(self, mirror: str, now: float | None = None) -> int:
        """Runs left ``running`` by a process that died (SIGKILL, power loss) become
        ``interrupted``. Only call this while holding the mirror's lock."""
        with self.engine.begin() as conn:
            result = conn.execute(runs.update().where(
                runs.c.mirror == mirror, runs.c.outcome == "running").values(
                outcome="interrupted", finished_at=now or time.time()))
            conn.execute(live.delete().where(live.c.mirror == mirror))
            refresh_summary(conn, mirror)
            return int(result.rowcount)

    # -- fleet: one run per mirror across hosts, heartbeats ------------------------------------
    @contextmanager
    def fleet_lock(self, mirror: str) -> Iterator[bool]:
        """Hold the mirror fleet-wide for the block: True if held, False if another host (or
        process) holds it. A PostgreSQL session advisory lock on a connection kept for the
        block: the server drops it when that connection dies, so a host that crashes or loses
        the network never leaves it behind. On SQLite (one host) the flock is enough: True.

        Only once the server sees that connection die, though: after a network partition it
        may keep the session of a run that ended meanwhile (until its own TCP keepalive, two
        hours by default). Such a session of *this* host is stale for sure — the caller holds
        the mirror's flock here, so no live process of this host runs it — and is ended."""
        if not self.shared:
            yield True
            return
        conn = self.engine.connect()
        try:
            key = advisory_key(mirror)
            held = self._try_lock(conn, key)
            if not held and self._end_stale_holder(conn, key):
                deadline = time.monotonic() + 5
                while not held and time.monotonic() < deadline:
                    time.sleep(0.1)
                    held = self._try_lock(conn, key)
            try:
                yield held
            finally:
                if held:
                    try:
                        conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                        conn.commit()
                    except STORE_DOWN:
                        pass  # the connection is gone, and the server let go with it
        finally:
            conn.close()

    @staticmethod
    def _try_lock(conn: sa.Connection, key: int) -> bool:
        held = bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"),
                                 {"k": key}).scalar())
        conn.commit()
        return held

    def _end_stale_holder(self, conn: sa.Connection, key: int) -> bool:
        """End the session of this host that holds ``key`` (see :meth:`fleet_lock`); True if
        there was one. Another host's holder is left alone: it runs the mirror."""
        unsigned = key & 0xFFFFFFFFFFFFFFFF
        rows = conn.execute(sa.text(
            "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid::bigint = :high AND l.objid::bigint = :low "
            "AND a.application_name = :name AND l.pid <> pg_backend_pid()"),
            {"high": unsigned >> 32, "low": unsigned & 0xFFFFFFFF,
             "name": application_name(self.host)}).all()
        ended = False
        for row in rows:
            ended = bool(conn.execute(sa.text("SELECT pg_terminate_backend(:p)"),
                                      {"p": row.pid}).scalar()) or ended
        conn.commit()
        if ended:
            from ..logs import event

            event("fleet.stale_lock_ended", level=logging.WARNING,
                  sessions=[row.pid for row in rows],
                  why="a session of this host held the mirror's lock after its run ended "
                      "(a network partition); the server had not noticed it die")
        return ended

    def holder(self, mirror: str) -> str:
        """``host:pid`` of the mirror's running run, for a "busy" message (empty: unknown)."""
        query = (sa.select(runs.c.host, runs.c.pid).where(
            runs.c.mirror == mirror, runs.c.outcome == "running")
            .order_by(runs.c.id.desc()).limit(1))
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return f"{row.host}:{row.pid}" if row else ""

    def beat(self, host: str, now: float | None = None,
             gap: float = float("inf")) -> tuple[bool, float]:
        """This host's heartbeat: (was it marked down, since when it has beaten without a gap
        longer than ``gap``). A host cut off from the store must not judge the others as soon
        as it is back: they may not have had a tick to beat yet."""
        now = now or time.time()
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(hosts.c.down_since, hosts.c.beat_at,
                                         hosts.c.started_at).where(hosts.c.name == host)).first()
            if row is None:
                conn.execute(hosts.insert().values(name=host, pid=os.getpid(),
                                                   started_at=now, beat_at=now))
                return False, now
            since = row.started_at if now - row.beat_at <= gap else now
            conn.execute(hosts.update().where(hosts.c.name == host).values(
                beat_at=now, started_at=since, pid=os.getpid(), down_since=None))
            return row.down_since is not None, since

    def leave(self, host: str) -> None:
        """A host's daemon stops on purpose: no longer watched (it beats again on start)."""
        with self.engine.begin() as conn:
            conn.execute(hosts.delete().where(hosts.c.name == host))

    def hosts(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(
                hosts.select().order_by(hosts.c.name))]

    def claim_down(self, host: str, silent_since: float, now: float) -> bool:
        """Mark ``host`` down if it has not beaten since ``silent_since``; True only for the
        one caller fleet-wide that marked it (an atomic UPDATE: one ``host.down`` alert)."""
        with self.engine.begin() as conn:
            result = conn.execute(hosts.update().where(
                hosts.c.name == host, hosts.c.beat_at < silent_since,
                hosts.c.down_since.is_(None)).values(down_since=now))
            return bool(result.rowcount)

    def close_host_runs(self, host: str, now: float | None = None) -> list[int]:
        """Runs ``host`` left ``running`` whose process is gone (the host died or restarted)
        become ``interrupted``; their ids. Call it on the host itself: it checks the pids."""
        with self.engine.begin() as conn:
            rows = conn.execute(sa.select(runs.c.id, runs.c.pid, runs.c.mirror).where(
                runs.c.host == host, runs.c.outcome == "running")).all()
            dead = [row for row in rows if not pid_alive(row.pid)]
            if dead:
                conn.execute(runs.update().where(runs.c.id.in_([r.id for r in dead])).values(
                    outcome="interrupted", finished_at=now or time.time()))
                conn.execute(live.delete().where(live.c.mirror.in_([r.mirror for r in dead])))
                for mirror in sorted({r.mirror for r in dead}):
                    refresh_summary(conn, mirror)
            return [row.id for row in dead]

    # -- deletions the mirror holds back -------------------------------------------------------
    def pending_deletions(self, mirror: str) -> dict[str, float]:
        """Path → when a run first saw the upstream without it."""
        query = sa.select(pending_table.c.path, pending_table.c.first_seen).where(
            pending_table.c.mirror == mirror)
        with self.engine.connect() as conn:
            return {row.path: row.first_seen for row in conn.execute(query)}

    def set_pending_deletions(self, mirror: str, keep: dict[str, float]) -> None:
        """Replace the mirror's pending deletions with ``keep`` (what this run left)."""
        with self.engine.begin() as conn:
            conn.execute(pending_table.delete().where(pending_table.c.mirror == mirror))
            if keep:
                conn.execute(pending_table.insert(), [
                    {"mirror": mirror, "path": path, "first_seen": seen}
                    for path, seen in keep.items()])
            refresh_summary(conn, mirror)

    def pending_summary(self, mirror: str) -> tuple[int, float | None]:
        """How many files wait for deletion, and since when the oldest has waited."""
        query = sa.select(sa.func.count(), sa.func.min(pending_table.c.first_seen)).where(
            pending_table.c.mirror == mirror)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None or not row[0]:
            return 0, None
        return int(row[0]), float(row[1])

    def next_deletion_due(self, mirror: str, grace: float, after: float) -> float | None:
        """When the first pending deletion whose grace ends after ``after`` becomes due."""
        query = sa.select(sa.func.min(pending_table.c.first_seen)).where(
            pending_table.c.mirror == mirror, pending_table.c.first_seen + grace > after)
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar()
        return float(value) + grace if value is not None else None

    # -- live progress ------------------------------------------------------------------------
    def update_live(self, mirror: str, run_id: int, progress: LiveProgress,
                    now: float | None = None) -> None:
        values = dict(
            run_id=run_id, pid=os.getpid(), stage=progress.stage,
            stage_index=progress.stage_index, stage_count=progress.stage_count,
            percent=progress.percent, bytes_done=progress.bytes_done, rate_bps=progress.rate_bps,
            eta_seconds=progress.eta_seconds, files_checked=progress.files_checked,
            files_expected=progress.files_expected, updated_at=now or time.time())
        with self.engine.begin() as conn:
            updated = conn.execute(live.update().where(live.c.mirror == mirror).values(**values))
            if updated.rowcount == 0:
                conn.execute(live.insert().values(mirror=mirror, **values))

    def live(self, mirror: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(live.select().where(live.c.mirror == mirror)).first()
        return dict(row._mapping) if row else None

    # -- update-signal polls ------------------------------------------------------------------
    def record_poll(self, mirror: str, upstream: str, polled_at: float, seconds: float,
                    exit_code: int | None, upstream_mtime: float | None,
                    local_mtime: float | None, error: str | None, triggered: bool) -> None:
        with self.engine.begin() as conn:
            conn.execute(polls.insert().values(
                mirror=mirror, upstream=upstream, polled_at=polled_at, seconds=seconds,
                exit_code=exit_code, upstream_mtime=upstream_mtime, local_mtime=local_mtime,
                error=error, triggered=triggered))

    def mark_last_poll_triggered(self, mirror: str) -> None:
        newest = (sa.select(sa.func.max(polls.c.id)).where(polls.c.mirror == mirror)
                  .scalar_subquery())
        with self.engine.begin() as conn:
            conn.execute(polls.update().where(polls.c.id == newest).values(triggered=True))

    def last_poll(self, mirror: str) -> dict[str, Any] | None:
        query = (polls.select().where(polls.c.mirror == mirror)
                 .order_by(polls.c.polled_at.desc(), polls.c.id.desc()).limit(1))
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return dict(row._mapping) if row else None

    def signal_seen(self, mirror: str) -> tuple[float, float, float] | None:
        """(upstream mtime, first seen, last seen) of the newest mtime any poll returned."""
        newest = (sa.select(polls.c.upstream_mtime).where(
            polls.c.mirror == mirror, polls.c.upstream_mtime.is_not(None))
            .order_by(polls.c.polled_at.desc(), polls.c.id.desc()).limit(1).scalar_subquery())
        query = sa.select(newest, sa.func.min(polls.c.polled_at),
                          sa.func.max(polls.c.polled_at)).where(
            polls.c.mirror == mirror, polls.c.upstream_mtime == newest)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None or row[0] is None:
            return None
        return float(row[0]), float(row[1]), float(row[2])

    def polls(self, mirror: str, limit: int = 50) -> list[dict[str, Any]]:
        query = (polls.select().where(polls.c.mirror == mirror)
                 .order_by(polls.c.polled_at.desc(), polls.c.id.desc()).limit(limit))
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def prune_polls(self, older_than: float) -> int:
        with self.engine.begin() as conn:
            return int(conn.execute(polls.delete().where(
                polls.c.polled_at < older_than)).rowcount)

    # -- read models for the dashboard ----------------------------------------------------------
    def summaries(self, names: Collection[str] | None = None) -> dict[str, MirrorSummary]:
        """Each mirror's summary (every mirror that ever ran or holds deletions, or ``names``):
        its newest, last finished and last successful runs and what waits; two queries."""
        with self.engine.connect() as conn:
            return read_summaries(conn, names, self._record, self._finished)

    def refresh_summary(self, mirror: str) -> None:
        """Recompute ``mirror``'s summary from its runs (the writers above keep it current;
        this is for runs written behind the store's back, as the benchmark does)."""
        with self.engine.begin() as conn:
            refresh_summary(conn, mirror)

    def series(self, mirror: str, since: float) -> list[dict[str, Any]]:
        """The figures of every finished run since ``since``, oldest first (no stage JSON)."""
        cols = (runs.c.id, runs.c.started_at, runs.c.finished_at, runs.c.outcome,
                runs.c.duration_seconds, runs.c.bytes_transferred, runs.c.bitrate_bps,
                runs.c.files_total, runs.c.files_transferred, runs.c.files_failed,
                runs.c.size_bytes)
        query = (sa.select(*cols).where(runs.c.mirror == mirror, runs.c.started_at >= since,
                                        runs.c.outcome != "running")
                 .order_by(runs.c.started_at))
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def run_rows(self, mirror: str, limit: int = 50, before_id: int | None = None,
                 ) -> list[dict[str, Any]]:
        """The run list of a mirror, newest first, figures only (fast on long histories)."""
        query = sa.select(runs.c.id, runs.c.started_at, runs.c.finished_at, runs.c.outcome,
                          runs.c.exit_code, runs.c.upstream, runs.c.duration_seconds,
                          runs.c.bytes_transferred, runs.c.files_transferred,
                          runs.c.files_failed, runs.c.size_bytes).where(runs.c.mirror == mirror)
        if before_id is not None:
            query = query.where(runs.c.id < before_id)
        query = query.order_by(runs.c.started_at.desc(), runs.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def all_live(self) -> dict[str, dict[str, Any]]:
        with self.engine.connect() as conn:
            return {row.mirror: dict(row._mapping) for row in conn.execute(live.select())}
