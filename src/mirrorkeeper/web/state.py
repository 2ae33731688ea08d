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

    @property
    def stop(self) -> threading.Event: ...

    def enqueue(self, mirror: str, reason: str) -> bool: ...


def worst_severity(alerts: list[dict[str, Any]]) -> str | None:
    if not alerts:
        return None
    return max(Severity.parse(a["severity"]) for a in alerts).name.lower()


def overview(backend: Backend, name: str | None = None) -> list[dict[str, Any]]:
    """Every mirror (or just ``name``): status row, queue state, worst open alert, sparkline."""
    config, store = backend.config, backend.store
    rows = status_rows(config, store, [name] if name else None)
    alerts = AlertStore(store.engine).open_alerts(name)
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
    """The facts tunasync's ``/jobs`` and MirrorZ need, for every mirror (from its status row)."""
    config = backend.config
    return [MirrorState(
        name=row["mirror"], enabled=row["enabled"], running=row["state"] == "running",
        queued=row["mirror"] in backend.queued,
        upstream=row.get("upstream") or config.mirrors[row["mirror"]].settings.upstreams[0],
        last_outcome=row["outcome"], last_success_at=row["last_success_epoch"],
        last_started_at=row["last_started_epoch"], last_ended_at=row["last_ended_epoch"],
        next_run_at=row["next_run_epoch"], size_bytes=row["last_success_size_bytes"])
        for row in status_rows(config, backend.store)]


def live_snapshot(backend: Backend) -> dict[str, Any]:
    """The live part of the overview, pushed every second over server-sent events."""
    rows = status_rows(backend.config, backend.store)
    return {"time": time.time(), "mirrors": {r["mirror"]: {
        "state": r["state"], "percent": r["progress_percent"], "stage": r["stage"],
        "bytes_done": r["bytes_done"], "rate_bps": r["rate_bps"],
        "eta_seconds": r["eta_seconds"], "age_seconds": r["age_seconds"],
        "outcome": r.get("outcome"), "queued": r["mirror"] in backend.queued}
        for r in rows}}
