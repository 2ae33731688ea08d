"""Smart update detection: poll one small file upstream, record what it saw and what it cost.

A poll is one ``rsync --list-only`` of the profile's update-signal file (the same probe the
sync's pre-flight guard uses): a connection and a few hundred bytes, where a no-change sync
walks the whole tree. Whether the answer makes a mirror due is the planner's call
(:func:`mirrorkeeper.plan.due.signal_changed`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..config.spec import Config, MirrorSpec
from ..logs import event
from ..plan.due import MirrorFacts, SignalSeen
from ..store import Store
from ..sync.preflight import local_mtime, probe


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


def poll_signal(config: Config, mirror: MirrorSpec, store: Store) -> PollResult:
    s = mirror.settings
    assert s.update_signal is not None
    upstream = poll_upstream(store, mirror)
    polled_at = time.time()
    result = probe(config.settings.rsync, upstream, s.update_signal, s)
    ours = local_mtime(mirror.dest, s.update_signal)
    error = None if result.exists else (result.message or result.error_kind or "unknown error")
    store.record_poll(mirror.name, upstream, polled_at, result.seconds, result.exit_code,
                      result.mtime, ours, error, triggered=False)
    event("poll.signal", mirror=mirror.name, upstream=upstream, path=s.update_signal,
          seconds=round(result.seconds, 3), upstream_mtime=result.mtime, local_mtime=ours,
          exit_code=result.exit_code, error=error)
    return PollResult(mirror.name, upstream, result.seconds, result.mtime, ours, error)


def gather_facts(config: Config, store: Store, running: set[str], queued: set[str],
                 ) -> list[MirrorFacts]:
    """Everything the planner needs about every enabled mirror, read from the store and disk."""
    from ..config.schedule import parse_schedule

    facts = []
    for mirror in config.enabled():
        s = mirror.settings
        rows = store.run_rows(mirror.name, limit=1)
        last_started = rows[0]["started_at"] if rows else None
        poll = store.last_poll(mirror.name) if s.update_signal else None
        seen = store.signal_seen(mirror.name) if s.update_signal else None
        facts.append(MirrorFacts(
            name=mirror.name, schedule=parse_schedule(s.schedule), last_started=last_started,
            running=mirror.name in running, queued=mirror.name in queued,
            has_signal=s.update_signal is not None,
            last_polled_at=poll["polled_at"] if poll else None,
            signal=SignalSeen(seen[0], seen[1], seen[2]) if seen else None,
            local_signal_mtime=local_mtime(mirror.dest, s.update_signal)
            if s.update_signal else None))
    return facts
