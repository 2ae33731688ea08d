"""Every mirror's state at a glance — one read model for ``status``, the web and the API."""

from __future__ import annotations

import time
from typing import Any

from .clock import local_zone
from .config.schedule import parse_schedule
from .config.spec import Config
from .logs import iso
from .plan.due import next_run
from .record.present import run_json
from .store import Store
from .store.snapshots import summary as snapshot_summary
from .sync.lock import is_locked
from .sync.run import lock_dir

#: Fields the readers compute with, not part of the JSON documents (see :func:`public_row`).
INTERNAL_KEYS = frozenset({"last_success_epoch", "next_run_epoch", "last_started_epoch",
                           "last_ended_epoch", "last_success_size_bytes", "sparkline"})


def public_row(row: dict[str, Any]) -> dict[str, Any]:
    """A status row as ``status --json`` and the API publish it."""
    return {k: v for k, v in row.items() if k not in INTERNAL_KEYS}


def status_rows(config: Config, store: Store,
                names: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per mirror (all of them, or ``names``): state, live progress, the last finished
    run's figures, last success, next scheduled run."""
    rows = []
    now, zone = time.time(), local_zone()
    for mirror in (config.mirrors[n] for n in names or config.mirrors):
        recent = store.history(mirror.name, limit=2)
        pending, pending_since = store.pending_summary(mirror.name)
        last_ok = store.last_run(mirror.name, outcome="success")
        unfinished = recent[0] if recent and recent[0].outcome == "running" else None
        host = config.host_of(mirror)
        # Another fleet host's lock is not ours to see: its run row says (and is closed as
        # interrupted when that host comes back from a crash).
        running = (unfinished is not None if host != config.host
                   else is_locked(lock_dir(config), mirror.name))
        live = store.live(mirror.name) if running else None
        # A row still 'running' is the current run, or, with no lock held, one whose process
        # died; the figures shown are those of the last run that finished.
        last_done = next((r for r in recent if r.outcome != "running"), None)
        row: dict[str, Any] = run_json(last_done) if last_done else {
            "mirror": mirror.name, "run_id": None, "outcome": None}
        row["current_run_id"] = unfinished.run_id if unfinished and running else None
        state = "running" if running else (
            "crashed" if unfinished else
            "never synced" if last_done is None else
            "idle" if mirror.enabled else "disabled")
        upcoming = next_run(parse_schedule(mirror.settings.schedule),
                            recent[0].started_at if recent else None, mirror.name,
                            config.daemon.jitter, now, zone) if mirror.enabled else None
        if config.fleet is not None:
            row["host"] = host
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
            "last_started_epoch": recent[0].started_at if recent else None,
            "last_ended_epoch": last_done.finished_at if last_done else None,
            "last_success_size_bytes": last_ok.size_bytes if last_ok else None,
            # Files the upstream dropped that the mirror keeps for now (delete_grace,
            # upstream errors, skipped deletions).
            "pending_deletions": pending,
            "pending_deletions_since": iso(pending_since),
            # Count, bytes only they hold, newest and published (None: no snapshots).
            "snapshots": snapshot_summary(store, mirror.name)
            if mirror.settings.snapshots != "none" else None,
        })
        rows.append(row)
    return rows


def alert_row(a: dict[str, Any]) -> dict[str, Any]:
    """An alert as JSON (``alerts list --json`` and the web API)."""
    return {"id": a["id"], "mirror": a["mirror"], "code": a["code"], "severity": a["severity"],
            "summary": a["summary"], "first_seen": iso(a["first_seen"]),
            "last_seen": iso(a["last_seen"]), "occurrences": a["occurrences"],
            "resolved_at": iso(a["resolved_at"]), "acked_at": iso(a["acked_at"]),
            "marked_true": a["marked_true"], "rule": a["rule"], "run_id": a["run_id"]}
