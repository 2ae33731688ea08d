"""Snapshots in the run loop (I/O): before a run, after a success (snapshot, publish, prune),
after a guard trip (name the last good snapshot, or roll back to it), and rollback itself.

A snapshot step that fails never undoes a good sync: it becomes a ``snapshot.failed`` notice
on the run. A rollback is recorded as a run of its own (outcome ``rolled_back``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..config.spec import Config, MirrorSpec
from ..logs import event
from ..record import Attempt, RunRecord, StageResult
from ..snapshots import SnapshotBackend, SnapshotError, backend_for
from ..snapshots.naming import parse_name, snapshot_name
from ..snapshots.publish import published, switch
from ..snapshots.retention import Keep, plan_retention
from ..store import Store
from ..store import snapshots as rows

Note = Callable[[str], None]
Notice = tuple[str, str, str]

#: A failed run whose final attempt stopped with one of these after writing into the mirror
#: left it neither the old state nor the new one: the last good snapshot is the way back.
GUARD_CODES = frozenset({"upstream.empty", "transfer.failure_ratio", "guard.mass_delete"})


def keep_of(mirror: MirrorSpec) -> Keep:
    s = mirror.settings
    return Keep(s.snapshot_keep_hourly, s.snapshot_keep_daily, s.snapshot_keep_weekly)


def in_use(mirror: MirrorSpec, store: Store) -> frozenset[str]:
    """Snapshots that must not go: published now, published just before (a reader that
    resolved the link before the last switch may still be walking it), and held ones."""
    live = rows.rows(store, mirror.name)
    names = {r.name for r in live if r.held}
    shown = sorted((r for r in live if r.published_at is not None),
                   key=lambda r: r.published_at or 0.0)
    names.update(r.name for r in shown[-2:])
    if mirror.settings.publish_path:
        current = published(mirror.settings.publish_path)
        if current:
            names.add(current)
    return frozenset(names)


def last_good(mirror: MirrorSpec, store: Store, existing: list[str]) -> str | None:
    """The newest snapshot taken after a successful run that still exists."""
    made = [r for r in rows.rows(store, mirror.name) if not r.pre and r.name in existing]
    return made[-1].name if made else None


@dataclass
class SnapshotHooks:
    """The snapshot steps of one sync run of one mirror; built only when it takes
    snapshots."""

    config: Config
    mirror: MirrorSpec
    store: Store
    backend: SnapshotBackend
    note: Note
    #: A rollback this run made (after a guard trip), recorded once the run itself is.
    rollback: RollbackDone | None = None
    notices: list[Notice] = field(default_factory=list)

    @classmethod
    def of(cls, config: Config, mirror: MirrorSpec, store: Store,
           note: Note) -> SnapshotHooks | None:
        backend = backend_for(mirror.settings.snapshots, mirror.dest)
        return cls(config, mirror, store, backend, note) if backend is not None else None

    def _failed(self, what: str, exc: SnapshotError) -> None:
        summary = f"{what}: {exc}"
        self.note(f"snapshot: {summary}")
        event("snapshot.failed", level=logging.ERROR, step=what, error=str(exc))
        self.notices.append(("snapshot.failed", "", summary))

    def before(self, run_id: int) -> None:
        """``snapshot_before``: the tree as it was before this run, named ``...-pre``."""
        if not self.mirror.settings.snapshot_before:
            return
        now = time.time()
        name = snapshot_name(now, run_id, pre=True)
        try:
            self.backend.create(name)
        except SnapshotError as exc:
            self._failed("the pre-run snapshot could not be made", exc)
            return
        rows.add(self.store, self.mirror.name, name, self.backend.kind, run_id, pre=True,
                 created_at=now)
        self.note(f"snapshot {name} taken before the run")
        event("snapshot.created", snapshot=name, pre=True)

    def after(self, record: RunRecord) -> RunRecord:
        """After the run (trace written, record not yet stored): on success snapshot,
        publish, prune; after a guard trip that wrote, name or go back to the last good
        state. The notices join the record."""
        if record.outcome == "success":
            self._after_success(record)
        else:
            self._after_failure(record)
        if not self.notices:
            return record
        return dataclasses.replace(record, notices=record.notices + tuple(self.notices))

    def _after_success(self, record: RunRecord) -> None:
        assert record.finished_at is not None
        name = snapshot_name(record.finished_at, record.run_id)
        try:
            self.backend.create(name)
        except SnapshotError as exc:
            self._failed("the snapshot after the successful run could not be made", exc)
            return
        rows.add(self.store, self.mirror.name, name, self.backend.kind, record.run_id,
                 pre=False, created_at=record.finished_at)
        self.note(f"snapshot {name} taken")
        event("snapshot.created", snapshot=name, pre=False)
        if self.mirror.settings.publish == "snapshot":
            try:
                self._publish(name)
            except SnapshotError as exc:
                self._failed(f"snapshot {name} could not be published", exc)
        self.prune()
        rows.set_space_used(self.store, self.mirror.name, name, self.backend.space_used())

    def _publish(self, name: str) -> None:
        path = self.mirror.settings.publish_path
        assert path is not None
        switch(path, self.backend.view(name))
        rows.mark_published(self.store, self.mirror.name, name, time.time())
        self.note(f"published {name} at {path}")
        event("snapshot.published", snapshot=name, path=path)

    def prune(self) -> list[str]:
        """Retention: remove what no bucket keeps and nothing uses; logged and recorded."""
        try:
            names = [s.name for s in self.backend.listed()]
        except SnapshotError as exc:
            self._failed("the snapshots could not be listed for pruning", exc)
            return []
        used = in_use(self.mirror, self.store)
        plan = plan_retention(names, keep_of(self.mirror), used)
        for name in plan.keep:
            if name not in used:
                try:
                    self.backend.drop_view(name)
                except SnapshotError as exc:  # a reader still in it: next run tries again
                    event("snapshot.view_busy", snapshot=name, error=str(exc))
        pruned = []
        for name in plan.prune:
            try:
                self.backend.destroy(name)
            except SnapshotError as exc:
                self._failed(f"snapshot {name} could not be pruned", exc)
                continue
            rows.mark_pruned(self.store, self.mirror.name, name, time.time())
            pruned.append(name)
            self.note(f"snapshot {name} pruned (no retention bucket keeps it)")
            event("snapshot.pruned", snapshot=name)
        return pruned

    def _after_failure(self, record: RunRecord) -> None:
        final = record.attempts[-1] if record.attempts else None
        if final is None or final.code not in GUARD_CODES:
            return
        try:
            existing = [s.name for s in self.backend.listed()]
        except SnapshotError as exc:
            self._failed("the snapshots could not be listed", exc)
            return
        good = last_good(self.mirror, self.store, existing)
        if not self._written_since(record, good):
            return
        name = self.mirror.name
        if good is None:
            self.notices.append(("snapshot.last_good", "",
                                 f"{final.code} after the run wrote into the mirror, and no "
                                 "snapshot of a good state exists to go back to"))
            return
        if not self.mirror.settings.auto_rollback:
            self.notices.append(("snapshot.last_good", "",
                                 f"{final.code} after the run wrote into the mirror; the last "
                                 f"good state is snapshot {good}: `mirrorkeeper rollback "
                                 f"{name} {good}`"))
            return
        done = rollback_to(self.config, self.mirror, self.store, self.backend, good,
                           self.note, existing)
        if done.error:
            self.notices.append(("snapshot.failed", "", f"{final.code} after the run wrote "
                                 f"into the mirror; the rollback to {good} failed: "
                                 f"{done.error}"))
        else:
            self.notices.append(("snapshot.rolled_back", "",
                                 f"{final.code} after the run wrote into the mirror: rolled "
                                 f"back to snapshot {good} (auto_rollback)"))
        self.rollback = done

    def _written_since(self, record: RunRecord, good: str | None) -> bool:
        """Did this run, or a failed one since the good snapshot (and since the last
        rollback), write into the mirror? A second trip in a row may copy nothing new, yet
        the first one's files are still there."""
        parsed = parse_name(good) if good else None
        since = parsed.run_id if parsed else 0
        for run in [record, *self.store.history(self.mirror.name, limit=50)]:
            if run.run_id <= since or run.outcome == "rolled_back":
                return False
            if run.outcome != "running" and run.files_transferred + run.files_deleted > 0:
                return True
        return False

    def record_rollback(self) -> RunRecord | None:
        """The rollback this run made, as a run of its own (after the run's own record)."""
        if self.rollback is None:
            return None
        return record_rollback(self.store, self.mirror, self.rollback)


@dataclass(frozen=True)
class RollbackDone:
    """What a rollback did to the filesystem, before it is recorded."""

    snapshot: str
    started_at: float
    finished_at: float
    #: Snapshots the filesystem destroyed on the way (ZFS: the newer ones).
    destroyed: tuple[str, ...] = ()
    error: str | None = None


def rollback_to(config: Config, mirror: MirrorSpec, store: Store, backend: SnapshotBackend,
                snapshot: str, note: Note, existing: list[str]) -> RollbackDone:
    """Return ``dest`` to ``snapshot`` (the caller holds the mirror's lock). Publishing
    moves to the snapshot first, so no client is left on a tree about to go."""
    started = time.time()
    newer = existing[existing.index(snapshot) + 1:]
    try:
        if mirror.settings.publish == "snapshot" and mirror.settings.publish_path:
            switch(mirror.settings.publish_path, backend.view(snapshot))
            rows.mark_published(store, mirror.name, snapshot, time.time())
        destroyed = backend.rollback(snapshot, newer)
    except SnapshotError as exc:
        note(f"rollback to {snapshot} failed: {exc}")
        event("snapshot.rollback_failed", level=logging.ERROR, snapshot=snapshot, error=str(exc))
        return RollbackDone(snapshot, started, time.time(), error=str(exc))
    for name in destroyed:
        rows.mark_pruned(store, mirror.name, name, time.time())
    note(f"rolled back to snapshot {snapshot}"
         + (f"; the newer snapshots {', '.join(destroyed)} went with it" if destroyed else ""))
    event("snapshot.rolled_back", snapshot=snapshot, destroyed=list(destroyed))
    return RollbackDone(snapshot, started, time.time(), tuple(destroyed))


def record_rollback(store: Store, mirror: MirrorSpec, done: RollbackDone) -> RunRecord:
    """The rollback as a run: outcome ``rolled_back`` (or ``failed``); its file count is the
    snapshot's run's, so the next run's truncation guard compares with the tree it finds."""
    source = f"snapshot:{done.snapshot}"
    parsed = parse_name(done.snapshot)
    made_by = store.run(parsed.run_id) if parsed else None
    run_id = store.start_run(mirror.name, source, done.started_at)
    stage = StageResult("rollback", (), done.started_at, done.finished_at,
                        None if done.error else 0,
                        files_total=made_by.files_total if made_by else 0,
                        size_bytes=made_by.size_bytes if made_by else 0,
                        start_error=done.error, upstream=source)
    if done.error:
        attempt = Attempt(1, source, "local", "snapshot.failed",
                          f"the rollback to {done.snapshot} failed", "rollback", None,
                          done.started_at, done.finished_at, detail=done.error)
        notices: tuple[Notice, ...] = ()
    else:
        attempt = Attempt(1, source, "ok", None, f"rolled back to {done.snapshot}", "rollback",
                          0, done.started_at, done.finished_at)
        notices = (("snapshot.rolled_back", "", f"the mirror was rolled back to snapshot "
                    f"{done.snapshot}" + (f" (run {parsed.run_id})" if parsed else "")),)
    record = RunRecord(run_id=run_id, mirror=mirror.name, upstream=source,
                       started_at=done.started_at, finished_at=done.finished_at,
                       outcome="failed" if done.error else "rolled_back", stages=(stage,),
                       attempts=(attempt,), notices=notices)
    store.finish_run(record)
    return record
