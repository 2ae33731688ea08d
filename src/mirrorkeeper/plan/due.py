"""What is due now: the scheduler's whole decision as a pure function (DESIGN §8).

The daemon's tick (and ``sync --due`` from a timer) gathers each mirror's facts — schedule, last
run, whether it runs or waits in the queue, the latest poll of its update-signal file — and asks
:func:`plan_tick` which mirrors to start, which signals to poll and when each mirror runs next.
Nothing here reads a clock, a file or the store, so every rule is a unit test.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import tzinfo

from ..config.schedule import Schedule
from .cron import Cron

#: Two signal mtimes closer than this count as equal (clocks, filesystem granularity): for the
#: planner's "newer upstream" and for the pre-flight guard's "older upstream" alike.
SIGNAL_SLACK_SECONDS = 2.0


@dataclass(frozen=True)
class SignalSeen:
    """The latest successful poll of a mirror's update-signal file upstream."""

    upstream_mtime: float
    #: When this mtime was first seen (the earliest poll that returned it).
    first_seen_at: float
    polled_at: float


@dataclass(frozen=True)
class MirrorFacts:
    name: str
    schedule: Schedule
    #: Start of the newest run, whatever its outcome (None: never ran).
    last_started: float | None
    running: bool = False
    queued: bool = False
    has_signal: bool = False
    #: When the signal was last polled, successfully or not (None: never).
    last_polled_at: float | None = None
    signal: SignalSeen | None = None
    #: mtime of our own copy of the signal file (None: we have none yet).
    local_signal_mtime: float | None = None
    #: When files held back by ``delete_grace`` since the last run started become deletable.
    deletions_due_at: float | None = None
    #: ``skip_unchanged``: a scheduled run is skipped while the upstream's signal says nothing
    #: was published since our copy, and a successful run is younger than ``verify_every``.
    skip_unchanged: bool = False
    last_success: float | None = None
    verify_every: float = 86400.0
    #: The upstream host (``host:port``) its next run will most likely talk to, for the
    #: connection budget (None: a local path).
    host: str | None = None


@dataclass(frozen=True)
class Due:
    mirror: str
    reason: str  #: "first run", "schedule", "update signal" or "deletions due"


@dataclass(frozen=True)
class TickPlan:
    due: tuple[Due, ...]
    polls: tuple[str, ...]
    #: Each mirror's next scheduled start (epoch seconds), for the dashboard and tunasync's
    #: ``next_schedule``.
    next_run: dict[str, float]
    #: Due, but not started: every connection slot of its upstream host is taken (by runs
    #: here or in other processes, or by mirrors started or queued before it). They stay due.
    held: tuple[str, ...] = ()


def jitter_offset(name: str, anchor: float, jitter: float) -> float:
    """A fixed share of ``jitter`` for this mirror and cycle: spread, yet reproducible."""
    if jitter <= 0:
        return 0.0
    digest = zlib.crc32(f"{name}:{int(anchor)}".encode())
    return jitter * (digest / 0xFFFFFFFF)


def next_run(schedule: Schedule, last_started: float | None, name: str, jitter: float,
             now: float, tz: tzinfo) -> float:
    """When the mirror should next start. A mirror that never ran is due now.

    An interval counts from the start of the last run (so a long run does not push every
    later run back); jitter is capped at a quarter of the interval.
    """
    if last_started is None:
        return now
    if schedule.interval_seconds is not None:
        base = last_started + schedule.interval_seconds
        return base + jitter_offset(name, last_started, min(jitter,
                                                            schedule.interval_seconds / 4))
    assert schedule.cron is not None
    base = Cron.parse(schedule.cron).next_after(last_started, tz)
    return base + jitter_offset(name, base, jitter)


def signal_changed(facts: MirrorFacts) -> bool:
    """The upstream published since our copy, and no run has started since we noticed.

    The second half keeps a failing mirror from being restarted on every poll: once a run has
    started after the change was seen, retries belong to the run and the schedule.
    """
    seen = facts.signal
    if seen is None:
        return False
    return upstream_newer(seen, facts.local_signal_mtime) and (
        facts.last_started is None or facts.last_started < seen.first_seen_at)


def upstream_newer(seen: SignalSeen, local_signal_mtime: float | None) -> bool:
    """The upstream's signal is newer than our copy (or we have none), beyond the slack."""
    return (local_signal_mtime is None
            or seen.upstream_mtime > local_signal_mtime + SIGNAL_SLACK_SECONDS)


def unchanged_since(facts: MirrorFacts, when: float, now: float) -> bool:
    """A scheduled run may be skipped: ``skip_unchanged`` is on, a poll since the run fell due
    saw the upstream's signal no newer than our copy, and the last success is recent enough
    (``verify_every`` forces a full run now and then, whatever the signal says)."""
    seen = facts.signal
    return (facts.skip_unchanged and seen is not None
            and facts.last_success is not None and now - facts.last_success < facts.verify_every
            and seen.polled_at >= when and facts.last_polled_at is not None
            and seen.polled_at >= facts.last_polled_at
            and not upstream_newer(seen, facts.local_signal_mtime))


def plan_tick(mirrors: list[MirrorFacts], now: float, *, jitter: float, poll_interval: float,
              tz: tzinfo, free_slots: Mapping[str, int] | None = None) -> TickPlan:
    """Decide one tick. Mirrors running or already queued are never started twice.

    ``free_slots``: connection slots free per upstream host that has a budget. A due mirror
    of a host with none left is held back, so that queue workers go to other hosts' mirrors
    instead of waiting for that host (each start takes one)."""
    due = _planned(mirrors, now, jitter=jitter, poll_interval=poll_interval, tz=tz)
    if free_slots is None:
        return due
    free = dict(free_slots)
    host = {f.name: f.host for f in mirrors}
    started: list[Due] = []
    held: list[str] = []
    for one in due.due:
        key = host.get(one.mirror)
        if key is not None and key in free:
            if free[key] <= 0:
                held.append(one.mirror)
                continue
            free[key] -= 1
        started.append(one)
    return TickPlan(tuple(started), due.polls, due.next_run, tuple(held))


def _planned(mirrors: list[MirrorFacts], now: float, *, jitter: float, poll_interval: float,
             tz: tzinfo) -> TickPlan:
    due: list[Due] = []
    polls: list[str] = []
    upcoming: dict[str, float] = {}
    for facts in mirrors:
        when = next_run(facts.schedule, facts.last_started, facts.name, jitter, now, tz)
        upcoming[facts.name] = when
        if facts.running or facts.queued:
            continue
        if facts.last_started is None:
            due.append(Due(facts.name, "first run"))
        elif now >= when and facts.skip_unchanged and facts.has_signal and poll_interval > 0 \
                and (facts.last_polled_at is None or facts.last_polled_at < when):
            polls.append(facts.name)  # one signal probe decides whether the run is needed
        elif now >= when and unchanged_since(facts, when, now):
            upcoming[facts.name] = max(when, (facts.last_success or now) + facts.verify_every)
            if now - (facts.last_polled_at or 0.0) >= poll_interval > 0:
                polls.append(facts.name)  # keep watching for a publish
        elif now >= when:
            due.append(Due(facts.name, "schedule"))
        elif facts.has_signal and signal_changed(facts):
            due.append(Due(facts.name, "update signal"))
        elif facts.deletions_due_at is not None and now >= facts.deletions_due_at:
            # Files the upstream dropped have served out their grace; a run deletes them.
            due.append(Due(facts.name, "deletions due"))
        elif facts.has_signal and poll_interval > 0 and (
                facts.last_polled_at is None or now - facts.last_polled_at >= poll_interval):
            polls.append(facts.name)
    return TickPlan(tuple(due), tuple(polls), upcoming)
