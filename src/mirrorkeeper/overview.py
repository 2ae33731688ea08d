"""Every mirror's state at a glance — one read model for ``status``, the web and the API."""

from __future__ import annotations

import time
from datetime import tzinfo
from typing import Any

from .clock import local_zone
from .config.schedule import parse_schedule
from .config.spec import Config, MirrorSpec
from .logs import iso
from .plan.due import next_run
from .record import RunRecord
from .record.present import run_json
from .store import Store
from .store.snapshots import summary as snapshot_summary
from .store.summary import MirrorSummary
from .sync.lock import is_locked
from .sync.run import lock_dir

#: Fields the readers compute with, not part of the JSON documents (see :func:`public_row`).
INTERNAL_KEYS = frozenset({"last_success_epoch", "next_run_epoch", "last_started_epoch",
                           "last_ended_epoch", "last_success_size_bytes", "sparkline",
                           "recent_durations"})


def public_row(row: dict[str, Any]) -> dict[str, Any]:
    """A status row as ``status --json`` and the API publish it."""
    return {k: v for k, v in row.items() if k not in INTERNAL_KEYS}


def status_rows(config: Config, store: Store,
                names: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per mirror (all of them, or ``names``): state, live progress, the last finished
    run's figures, last success, next scheduled run. Three reads however long the histories:
    the summaries, live progress, and each mirror's lock."""
    summaries = store.summaries(names)
    return rows_from(config, summaries, store.all_live(),
                     running_mirrors(config, names, summaries), time.time(), names,
                     snapshot_summaries(config, store, names))


def snapshot_summaries(config: Config, store: Store, names: list[str] | None = None,
                       ) -> dict[str, dict[str, Any]]:
    """Count, bytes only they hold, newest and published snapshot of each mirror (all, or
    ``names``) that takes snapshots; one small read each."""
    return {name: snapshot_summary(store, name) for name in names or config.mirrors
            if config.mirrors[name].settings.snapshots != "none"}


def running_mirrors(config: Config, names: list[str] | None = None,
                    summaries: dict[str, MirrorSummary] | None = None) -> set[str]:
    """The mirrors (all, or ``names``) that are syncing: this host's hold their lock; another
    fleet host's lock is not ours to see, so its newest run row says (a crashed host's is
    closed as interrupted when it comes back)."""
    locks = lock_dir(config)
    running = set()
    for name in names or config.mirrors:
        if config.host_of(config.mirrors[name]) == config.host:
            if is_locked(locks, name):
                running.add(name)
        else:
            newest = (summaries or {}).get(name)
            if newest is not None and newest.newest is not None \
                    and newest.newest.outcome == "running":
                running.add(name)
    return running


def rows_from(config: Config, summaries: dict[str, MirrorSummary],
              live: dict[str, dict[str, Any]], running: set[str], now: float,
              names: list[str] | None = None,
              snapshots: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The status rows of :func:`status_rows`, from what it read (no I/O)."""
    zone = local_zone()
    snapshots = snapshots or {}
    return [status_row(config, config.mirrors[name],
                       summaries.get(name) or MirrorSummary(name),
                       live.get(name) if name in running else None, name in running, now, zone,
                       snapshots.get(name))
            for name in names or config.mirrors]


#: Run documents already made, by run id, with the record each was made from. The store hands
#: out the same record for a finished run on every read, and the web reads every second.
_DOCUMENTS: dict[int, tuple[RunRecord, dict[str, Any]]] = {}


def run_document(record: RunRecord) -> dict[str, Any]:
    """``run_json(record)``, made once per record (a copy: rows add their own keys)."""
    kept = _DOCUMENTS.get(record.run_id)
    if kept is None or kept[0] is not record:
        if len(_DOCUMENTS) >= 4096:
            _DOCUMENTS.clear()
        kept = _DOCUMENTS[record.run_id] = (record, run_json(record))
    return dict(kept[1])


def status_row(config: Config, mirror: MirrorSpec, summary: MirrorSummary,
               live: dict[str, Any] | None, running: bool, now: float,
               zone: tzinfo, snapshots: dict[str, Any] | None = None) -> dict[str, Any]:
    """One mirror's status row (no I/O). ``snapshots``: its snapshot figures, None when it
    takes none."""
    newest, last_done, last_ok = summary.newest, summary.last_done, summary.last_success
    # A row still 'running' is the current run, or, with no lock held, one whose process
    # died; the figures shown are those of the last run that finished.
    unfinished = newest if newest and newest.outcome == "running" else None
    row: dict[str, Any] = run_document(last_done) if last_done else {
        "mirror": mirror.name, "run_id": None, "outcome": None}
    row["current_run_id"] = unfinished.run_id if unfinished and running else None
    state = "running" if running else (
        "crashed" if unfinished else
        "never synced" if last_done is None else
        "idle" if mirror.enabled else "disabled")
    upcoming = next_run(parse_schedule(mirror.settings.schedule),
                        newest.started_at if newest else None, mirror.name,
                        config.daemon.jitter, now, zone) if mirror.enabled else None
    if config.fleet is not None:
        row["host"] = config.host_of(mirror)
    row.update({
        "mirror": mirror.name,
        "state": state,
        "enabled": mirror.enabled,
        "progress_percent": live["percent"] if live else None,
        "stage": live["stage"] if live else None,
        "bytes_done": live["bytes_done"] if live else None,
        "rate_bps": live["rate_bps"] if live else None,
        "eta_seconds": live["eta_seconds"] if live else None,
        "progress_updated_at": iso(live["updated_at"]) if live else None,
        "last_success_at": iso(last_ok.finished_at) if last_ok else None,
        "last_success_epoch": last_ok.finished_at if last_ok else None,
        "age_seconds": round(now - last_ok.finished_at, 1)
        if last_ok and last_ok.finished_at else None,
        # By the schedule alone; a changed update signal or a push can come first.
        "next_run_at": iso(upcoming),
        "next_run_epoch": upcoming,
        "last_started_epoch": newest.started_at if newest else None,
        "last_ended_epoch": last_done.finished_at if last_done else None,
        "last_success_size_bytes": last_ok.size_bytes if last_ok else None,
        # Files the upstream dropped that the mirror keeps for now (delete_grace,
        # upstream errors, skipped deletions).
        "pending_deletions": summary.pending_deletions,
        "pending_deletions_since": iso(summary.pending_since),
        "recent_durations": summary.recent_durations,
        # Count, bytes only they hold, newest and published (None: no snapshots).
        "snapshots": snapshots,
    })
    return row


def alert_row(a: dict[str, Any]) -> dict[str, Any]:
    """An alert as JSON (``alerts list --json`` and the web API)."""
    return {"id": a["id"], "mirror": a["mirror"], "code": a["code"], "severity": a["severity"],
            "summary": a["summary"], "first_seen": iso(a["first_seen"]),
            "last_seen": iso(a["last_seen"]), "occurrences": a["occurrences"],
            "resolved_at": iso(a["resolved_at"]), "acked_at": iso(a["acked_at"]),
            "marked_true": a["marked_true"], "rule": a["rule"], "run_id": a["run_id"]}
