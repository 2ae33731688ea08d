"""Smart update detection: poll one small file upstream, record what it saw and what it cost.

A poll is one ``rsync --list-only`` of the profile's update-signal file (the same probe the
sync's pre-flight guard uses): a connection and a few hundred bytes, where a no-change sync
walks the whole tree. Whether the answer makes a mirror due is the planner's call
(:func:`mirrorkeeper.plan.due.signal_changed`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from ..config.spec import Config, MirrorSpec
from ..logs import event
from ..plan.budget import host_limits
from ..store import Store
from ..sync.budget import ConnectionBudget
from ..sync.preflight import Probe, local_mtime, probe

#: A poll waits this long for one of the host's connection slots (syncs may hold them all
#: for hours); then it is recorded as not made, and the next poll comes at its interval.
POLL_SLOT_WAIT = 30.0


@dataclass(frozen=True)
class PollResult:
    mirror: str
    upstream: str
    seconds: float
    upstream_mtime: float | None
    local_mtime: float | None
    error: str | None


def poll_upstream(store: Store, mirror: MirrorSpec) -> str:
    """The upstream the last good run used (what the next run will most likely use)."""
    last_ok = store.last_run(mirror.name, outcome="success")
    if last_ok and last_ok.upstream in mirror.settings.upstreams:
        return last_ok.upstream
    return mirror.settings.upstreams[0]


def poll_signal(config: Config, mirror: MirrorSpec, store: Store,
                stop: threading.Event | None = None) -> PollResult | None:
    """Poll ``mirror``'s update signal and record what it saw; None when ``stop`` ended it
    first (a daemon shutting down does not wait for an upstream that does not answer)."""
    s = mirror.settings
    assert s.update_signal is not None
    upstream = poll_upstream(store, mirror)
    polled_at = time.time()
    budget = ConnectionBudget(config.settings.state_dir, host_limits(config.mirrors.values()))
    with budget.slot(upstream, stop, timeout=POLL_SLOT_WAIT) as held:
        result = (probe(config.settings.rsync, upstream, s.update_signal, s, stop) if held else
                  Probe(upstream, 0.0, None, error_kind="budget",
                        message=f"not polled: all {budget.limit(upstream)} connections this "
                                "machine may open to the upstream's host are in use"))
    if stop is not None and stop.is_set():
        return None  # not an answer from the upstream: nothing to record
    ours = local_mtime(mirror.dest, s.update_signal, s.signal_kind)
    error = None if result.exists else (result.message or result.error_kind or "unknown error")
    store.record_poll(mirror.name, upstream, polled_at, result.seconds, result.exit_code,
                      result.mtime, ours, error, triggered=False)
    event("poll.signal", mirror=mirror.name, upstream=upstream, path=s.update_signal,
          seconds=round(result.seconds, 3), upstream_mtime=result.mtime, local_mtime=ours,
          exit_code=result.exit_code, error=error)
    return PollResult(mirror.name, upstream, result.seconds, result.mtime, ours, error)
