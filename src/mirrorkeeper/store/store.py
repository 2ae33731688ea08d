"""Run history and live state. One SQLite file in the state dir (WAL, so ``status`` can read
while a sync writes); the same code takes a PostgreSQL URL for a fleet."""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from importlib import resources
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..record import Attempt, RunRecord, StageResult
from ..record.progress import LiveProgress
from .schema import live, runs

DB_NAME = "mirrorkeeper.db"
#: The newest migration in ``migrations/versions``; a test keeps the two in step. Knowing it
#: here lets every command skip importing Alembic (~170 ms) when the schema is current.
HEAD_REVISION = "0002"


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


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def stage_to_json(stage: StageResult) -> dict[str, Any]:
    data = dataclasses.asdict(stage)
    data["argv"] = list(stage.argv)
    data["error_samples"] = list(stage.error_samples)
    data["duration_seconds"] = round(stage.duration_seconds, 3)
    data["bytes_transferred"] = stage.bytes_transferred
    return data


def stage_from_json(data: dict[str, Any]) -> StageResult:
    fields = {f.name for f in dataclasses.fields(StageResult)}
    kwargs = {k: v for k, v in data.items() if k in fields}
    kwargs["argv"] = tuple(kwargs.get("argv", ()))
    kwargs["error_samples"] = tuple(kwargs.get("error_samples", ()))
    return StageResult(**kwargs)


class Store:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, state_dir: str | Path) -> Store:
        """Open (creating and migrating if needed) the SQLite store in ``state_dir``."""
        Path(state_dir).mkdir(parents=True, exist_ok=True)
        return cls.from_url(f"sqlite:///{Path(state_dir) / DB_NAME}")

    @classmethod
    def from_url(cls, url: str) -> Store:
        engine = sa.create_engine(url)
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        migrate(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- runs ---------------------------------------------------------------------------------
    def start_run(self, mirror: str, upstream: str, started_at: float) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(runs.insert().values(
                mirror=mirror, upstream=upstream, started_at=started_at, outcome="running",
                host=socket.gethostname(), pid=os.getpid()))
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def set_log_path(self, run_id: int, log_path: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(runs.update().where(runs.c.id == run_id).values(log_path=log_path))

    def finish_run(self, record: RunRecord) -> None:
        with self.engine.begin() as conn:
            conn.execute(runs.update().where(runs.c.id == record.run_id).values(
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
                        "attempts": [dataclasses.asdict(a) for a in record.attempts]},
                log_path=record.log_path))
            conn.execute(live.delete().where(live.c.mirror == record.mirror))

    def _record(self, row: sa.Row[Any]) -> RunRecord:
        stages_json = row.stages or {}
        return RunRecord(
            run_id=row.id, mirror=row.mirror, upstream=row.upstream, started_at=row.started_at,
            finished_at=row.finished_at, outcome=row.outcome, log_path=row.log_path,
            stages=tuple(stage_from_json(s) for s in stages_json.get("stages", [])),
            skipped=tuple(stages_json.get("skipped", [])),
            attempts=tuple(Attempt(**a) for a in stages_json.get("attempts", [])),
        )

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
            return int(result.rowcount)

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
