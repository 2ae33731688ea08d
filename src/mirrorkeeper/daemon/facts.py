"""The planner's facts about every enabled mirror, read from the store and the disk (I/O).

:func:`mirrorkeeper.plan.due.plan_tick` decides from these alone; gathering them is the only
part of a tick that reads anything.
"""

from __future__ import annotations

import dataclasses

from ..config.schedule import parse_schedule
from ..config.spec import Config
from ..plan.budget import host_key, host_limits
from ..plan.due import MirrorFacts, SignalSeen
from ..store import Store
from ..sync.budget import ConnectionBudget
from ..sync.preflight import local_mtime


def gather_facts(config: Config, store: Store, running: set[str], queued: set[str],
                 ) -> list[MirrorFacts]:
    """Everything the planner needs about every enabled mirror."""
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
            local_signal_mtime=local_mtime(mirror.dest, s.update_signal, s.signal_kind)
            if s.update_signal else None,
            deletions_due_at=store.next_deletion_due(mirror.name, s.delete_grace, last_started)
            if s.delete_grace > 0 and last_started is not None else None,
            skip_unchanged=s.skip_unchanged, verify_every=s.verify_every,
            last_success=_last_success(store, mirror.name) if s.skip_unchanged else None,
            host=host_key(s.upstreams[0]) if s.upstreams else None))
    return facts


def free_slots(config: Config, queued: set[str]) -> dict[str, int]:
    """Connection slots free per upstream host with a budget: its limit, less the slots held
    now (by any process) and one per mirror of the host waiting in the queue."""
    limits = host_limits(config.mirrors.values())
    budget = ConnectionBudget(config.settings.state_dir, limits)
    free = {}
    for key, limit in limits.items():
        if limit > 0:
            waiting = sum(1 for name in queued if (m := config.mirrors.get(name)) is not None
                          and m.settings.upstreams and host_key(m.settings.upstreams[0]) == key)
            free[key] = limit - budget.in_use(f"rsync://{key}/") - waiting
    return free


def _last_success(store: Store, mirror: str) -> float | None:
    last = store.last_run(mirror, outcome="success")
    return last.finished_at if last else None


def offline_facts(known: list[MirrorFacts], started: dict[str, float], running: set[str],
                  queued: set[str]) -> list[MirrorFacts]:
    """The facts while the fleet store is unreachable: the last ones read from it, with the
    runs this daemon started since. The schedule goes on; update signals wait for the store
    (their polls are stored there, and a stale copy would start the same run again and
    again), and so do deletions held back by ``delete_grace``."""
    return [dataclasses.replace(
        facts, running=facts.name in running, queued=facts.name in queued,
        last_started=max(filter(None, (facts.last_started, started.get(facts.name))),
                         default=None),
        has_signal=False, signal=None, last_polled_at=None, deletions_due_at=None)
        for facts in known]
