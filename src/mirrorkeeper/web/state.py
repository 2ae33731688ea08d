"""What the web shows, read from the store and the daemon (one read per request)."""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

from ..classify.findings import Severity
from ..config.spec import Config
from ..overview import status_rows
from ..store import Store
from ..store.alerts import AlertStore
from .compat import MirrorState
from .graphs import sparkline


class Backend(Protocol):
    """What the web needs from the daemon (:class:`mirrorkeeper.daemon.service.Daemon`)."""

    config: Config
    store: Store
    queued: set[str]
    stop: threading.Event

    def enqueue(self, mirror: str, reason: str) -> bool: ...


def worst_severity(alerts: list[dict[str, Any]]) -> str | None:
    if not alerts:
        return None
    return max(Severity.parse(a["severity"]) for a in alerts).name.lower()


def overview(backend: Backend) -> list[dict[str, Any]]:
    """Every mirror: status row, queue state, worst open alert, sparkline."""
    config, store = backend.config, backend.store
    rows = status_rows(config, store)
    astore = AlertStore(store.engine)
    alerts = astore.open_alerts()
    queued = set(backend.queued)
    for row in rows:
        name = row["mirror"]
        mine = [a for a in alerts if a["mirror"] == name]
        row["open_alerts"] = len(mine)
        row["severity"] = worst_severity(mine)
        row["queued"] = name in queued
        recent = store.run_rows(name, limit=30)
        durations = [r["duration_seconds"] for r in reversed(recent)
                     if r["outcome"] != "running" and r["duration_seconds"] is not None]
        row["sparkline"] = sparkline(durations)
        row["profile"] = config.mirrors[name].profile
    return rows


def mirror_states(backend: Backend) -> list[MirrorState]:
    """The facts tunasync's ``/jobs`` and MirrorZ need, for every mirror."""
    config, store = backend.config, backend.store
    states = []
    running_rows = {r["mirror"]: r for r in status_rows(config, store)}
    for mirror in config.mirrors.values():
        newest = store.run_rows(mirror.name, limit=5)
        finished = next((r for r in newest if r["outcome"] != "running"), None)
        last_ok = store.last_run(mirror.name, outcome="success")
        row = running_rows[mirror.name]
        states.append(MirrorState(
            name=mirror.name, enabled=mirror.enabled, running=row["state"] == "running",
            queued=mirror.name in backend.queued,
            upstream=(finished or {}).get("upstream") or mirror.settings.upstreams[0],
            last_outcome=finished["outcome"] if finished else None,
            last_success_at=last_ok.finished_at if last_ok else None,
            last_started_at=newest[0]["started_at"] if newest else None,
            last_ended_at=finished["finished_at"] if finished else None,
            next_run_at=row["next_run_epoch"],
            size_bytes=last_ok.size_bytes if last_ok else None))
    return states


def live_snapshot(backend: Backend) -> dict[str, Any]:
    """The live part of the overview, pushed every second over server-sent events."""
    rows = status_rows(backend.config, backend.store)
    return {"time": time.time(), "mirrors": {r["mirror"]: {
        "state": r["state"], "percent": r["progress_percent"], "stage": r["stage"],
        "bytes_done": r["bytes_done"], "rate_bps": r["rate_bps"],
        "eta_seconds": r["eta_seconds"], "age_seconds": r["age_seconds"],
        "outcome": r.get("outcome"), "queued": r["mirror"] in backend.queued}
        for r in rows}}
