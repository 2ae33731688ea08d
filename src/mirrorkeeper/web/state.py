"""What the web shows, read from the store and the daemon (one read shared by every client:
see :mod:`.snapshot`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Protocol

from ..classify.findings import Severity
from ..config.spec import Config
from ..overview import rows_from, running_mirrors, snapshot_summaries
from ..store import Store
from ..store.alerts import AlertStore
from ..store.summary import MirrorSummary
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


@dataclass(frozen=True)
class Overview:
    """Every mirror at one moment: what every page and document that shows them all needs."""

    #: Status rows, each with its queue state, open alerts, worst severity, sparkline, profile.
    rows: list[dict[str, Any]]
    #: The summaries the rows were built from (``/metrics`` needs the last runs' records).
    summaries: dict[str, MirrorSummary]
    #: Every open alert, oldest first.
    alerts: list[dict[str, Any]]
    #: When it was read (``time.time()``).
    taken: float

    def row(self, name: str) -> dict[str, Any] | None:
        return next((r for r in self.rows if r["mirror"] == name), None)


def read_overview(backend: Backend) -> Overview:
    """Every mirror: status row, queue state, worst open alert, sparkline: four queries and
    a look at each mirror's lock, however many runs the mirrors have."""
    config, store = backend.config, backend.store
    now = time.time()
    summaries = store.summaries()
    rows = rows_from(config, summaries, store.all_live(),
                     running_mirrors(config, summaries=summaries), now,
                     snapshots=snapshot_summaries(config, store))
    alerts = AlertStore(store.engine).open_alerts()
    queued = set(backend.queued)
    for row in rows:
        name = row["mirror"]
        mine = [a for a in alerts if a["mirror"] == name]
        row["open_alerts"] = len(mine)
        row["severity"] = worst_severity(mine)
        row["queued"] = name in queued
        row["sparkline"] = sparkline(row["recent_durations"])
        row["profile"] = config.mirrors[name].profile
    return Overview(rows, summaries, alerts, now)


def change_token(backend: Backend) -> Hashable:
    """What an :class:`Overview` depends on besides the clock: the store's commits, the queue,
    and the config (a reload replaces it)."""
    try:
        queued = frozenset(backend.queued)
    except RuntimeError:  # a worker changed the set while it was copied: read again
        return object()
    return backend.store.change_token(), queued, id(backend.config)


def mirror_states(backend: Backend, rows: list[dict[str, Any]]) -> list[MirrorState]:
    """The facts tunasync's ``/jobs`` and MirrorZ need, for every mirror (from its status row)."""
    config = backend.config
    return [MirrorState(
        name=row["mirror"], enabled=row["enabled"], running=row["state"] == "running",
        queued=row["queued"],
        upstream=row.get("upstream") or config.mirrors[row["mirror"]].settings.upstreams[0],
        last_outcome=row["outcome"], last_success_at=row["last_success_epoch"],
        last_started_at=row["last_started_epoch"], last_ended_at=row["last_ended_epoch"],
        next_run_at=row["next_run_epoch"], size_bytes=row["last_success_size_bytes"],
        host=row.get("host"))
        for row in rows]


def live_snapshot(overview: Overview) -> dict[str, Any]:
    """The live part of the overview, pushed every second over server-sent events."""
    return {"time": overview.taken, "mirrors": {r["mirror"]: {
        "state": r["state"], "percent": r["progress_percent"], "stage": r["stage"],
        "bytes_done": r["bytes_done"], "rate_bps": r["rate_bps"],
        "eta_seconds": r["eta_seconds"], "age_seconds": r["age_seconds"],
        "outcome": r.get("outcome"), "queued": r["queued"]}
        for r in overview.rows}}
