"""Which snapshots to keep and which to prune (pure; no I/O).

Buckets as in zfs-auto-snapshot and sanoid: ``keep_hourly = 24`` keeps the newest snapshot of
each of the 24 newest hours that have one, and likewise per day and per ISO week (UTC). A
snapshot any bucket keeps stays. On top of the buckets some snapshots are never pruned:

- the newest (the last good state, and what a rollback goes back to first);
- those in use: published now, published just before (a reader may still be walking it), or
  held by the admin;
- those Mirrorkeeper did not make (their names are not ours).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from .naming import parse_name


@dataclass(frozen=True)
class Keep:
    hourly: int = 24
    daily: int = 14
    weekly: int = 8


@dataclass(frozen=True)
class RetentionPlan:
    #: Each kept snapshot of ours, with why ("newest", "hourly", "in use", ...).
    keep: dict[str, tuple[str, ...]]
    #: Snapshots of ours to remove, oldest first.
    prune: tuple[str, ...]


def _period(created_at: float, bucket: str) -> tuple[int, ...]:
    t = time.gmtime(created_at)
    if bucket == "hourly":
        return (t.tm_year, t.tm_yday, t.tm_hour)
    if bucket == "daily":
        return (t.tm_year, t.tm_yday)
    iso = time.strftime("%G %V", t)
    year, week = iso.split()
    return (int(year), int(week))


def plan_retention(names: Iterable[str], keep: Keep, in_use: frozenset[str] = frozenset(),
                   ) -> RetentionPlan:
    """Decide over ``names`` (the snapshots the filesystem lists). Names that are not ours
    are left out of both lists."""
    ours = []
    for name in names:
        parsed = parse_name(name)
        if parsed is not None:
            # A run's pre-run snapshot is older than the one after it, even in one minute.
            ours.append((parsed.created_at, parsed.run_id, not parsed.pre, name))
    ours.sort(reverse=True)  # newest first: the first of each period is the one kept
    reasons: dict[str, list[str]] = {name: [] for *_, name in ours}
    if ours:
        reasons[ours[0][-1]].append("newest")
    for name in reasons:
        if name in in_use:
            reasons[name].append("in use")
    for bucket, count in (("hourly", keep.hourly), ("daily", keep.daily),
                          ("weekly", keep.weekly)):
        seen: set[tuple[int, ...]] = set()
        for created, _run, _after, name in ours:
            if len(seen) >= count:
                break
            period = _period(created, bucket)
            if period not in seen:
                seen.add(period)
                reasons[name].append(bucket)
    kept = {name: tuple(why) for name, why in reasons.items() if why}
    prune = tuple(name for *_, name in reversed(ours) if name not in kept)
    return RetentionPlan(kept, prune)
