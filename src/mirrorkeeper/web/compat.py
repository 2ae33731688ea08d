"""The two formats existing mirror front pages read, built from our status rows (pure).

- tunasync's manager ``GET /jobs`` (what ``tuna/mirror-web`` and many site front ends poll):
  the same fields, status words and time formats; a time never set is Go's zero time.
- MirrorZ's ``mirrorz.json`` v1.7: one status token per mirror, and a failed or running mirror
  carries ``O<last success>`` so its staleness shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

#: Go's zero time, as tunasync writes a time that was never set.
GO_ZERO_TEXT = "0001-01-01 00:00:00 +0000"
GO_ZERO_TS = -62135596800
#: MirrorZ's converter writes this for "never succeeded".
MIRRORZ_NEVER = "0000000001"


@dataclass(frozen=True)
class MirrorState:
    """What both formats need to know about one mirror."""

    name: str
    enabled: bool
    running: bool
    queued: bool
    upstream: str
    last_outcome: str | None  # of the last finished run; None: never finished one
    last_success_at: float | None  # end of the last successful run
    last_started_at: float | None  # start of the newest run (running or finished)
    last_ended_at: float | None  # end of the last finished run
    next_run_at: float | None
    size_bytes: int | None
    #: The fleet host that syncs it (None outside a fleet: the formats stay as they are).
    host: str | None = None


def tunasync_time(epoch: float | None) -> tuple[str, int]:
    """``2006-01-02 15:04:05 -0700`` in the server's zone, and the Unix time."""
    if epoch is None:
        return GO_ZERO_TEXT, GO_ZERO_TS
    moment = datetime.fromtimestamp(epoch, UTC).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S %z"), int(epoch)


def size_text(size: int | None) -> str:
    """tunasync's style: ``55.61G``; ``unknown`` when no run measured it."""
    if size is None:
        return "unknown"
    value = float(size)
    for unit in ("B", "K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.2f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")


def tunasync_status(state: MirrorState) -> str:
    if not state.enabled:
        return "disabled"
    if state.running or state.last_outcome == "staged":  # stage 2 of the push is to come
        return "syncing"
    if state.queued:
        return "pre-syncing"
    if state.last_outcome is None:
        return "none"
    # A partial transfer is not a complete mirror; only the last-success time tells freshness.
    return "success" if state.last_outcome == "success" else "failed"


def tunasync_job(state: MirrorState) -> dict[str, Any]:
    job: dict[str, Any] = {"name": state.name, "is_master": True,
                           "status": tunasync_status(state)}
    for key, epoch in (("last_update", state.last_success_at),
                       ("last_started", state.last_started_at),
                       ("last_ended", state.last_ended_at),
                       ("next_schedule", state.next_run_at if state.enabled else None)):
        job[key], job[f"{key}_ts"] = tunasync_time(epoch)
    job["upstream"] = state.upstream
    job["size"] = size_text(state.size_bytes)
    if state.host is not None:  # tunasync names a job's worker; front pages ignore it
        job["host"] = state.host
    return job


def mirrorz_status(state: MirrorState, now: float) -> str:
    old = f"O{int(state.last_success_at)}" if state.last_success_at else f"O{MIRRORZ_NEVER}"
    if not state.enabled:
        main = f"P{int(state.last_success_at)}" if state.last_success_at else "U"
    elif state.running or state.last_outcome == "staged":  # stage 2 of the push is to come
        main = f"Y{int(state.last_started_at or now)}{old}"
    elif state.queued:
        main = f"D{int(now)}"
    elif state.last_outcome is None:
        main = "U"
    elif state.last_outcome == "success" and state.last_success_at:
        main = f"S{int(state.last_success_at)}"
    else:
        main = f"F{int(state.last_ended_at or now)}{old}"
    if state.enabled and state.next_run_at:
        main += f"X{int(state.next_run_at)}"
    return main


def mirrorz(states: list[MirrorState], site: dict[str, str], now: float) -> dict[str, Any]:
    return {
        "version": 1.7,
        "site": {k: v for k, v in site.items() if v},
        "info": [],
        "mirrors": [{
            "cname": s.name,
            "url": f"/{s.name}",
            "status": mirrorz_status(s, now),
            "upstream": s.upstream,
            "size": size_text(s.size_bytes) if s.size_bytes is not None else "",
            **({"disable": True} if not s.enabled else {}),
            **({"host": s.host} if s.host is not None else {}),
        } for s in states],
    }
