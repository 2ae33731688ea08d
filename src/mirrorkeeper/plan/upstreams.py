"""Which upstream to try first (pure): a strategy, then failed upstreams to the back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..record import RunRecord

FAILED_CATEGORIES = frozenset({"transient", "upstream"})
#: Refusals that say the upstream is busy, not broken: they never send it to the back.
BUSY_CODES = frozenset({"upstream.max_connections"})


def recent_failures(history: Iterable[RunRecord]) -> dict[str, float]:
    """Each upstream whose latest attempt failed, with when. ``history`` is newest first."""
    latest: dict[str, tuple[float, bool]] = {}
    for record in history:
        for attempt in record.attempts:
            if attempt.code in BUSY_CODES:
                continue
            seen = latest.get(attempt.upstream)
            if seen is None or attempt.finished_at > seen[0]:
                latest[attempt.upstream] = (attempt.finished_at,
                                            attempt.category in FAILED_CATEGORIES)
    return {up: when for up, (when, failed) in latest.items() if failed}


def order_upstreams(
    upstreams: tuple[str, ...],
    strategy: str,
    *,
    run_number: int = 0,
    failures: Mapping[str, float] | None = None,
    now: float = 0.0,
    cooldown: float = 0.0,
    latency: Mapping[str, float | None] | None = None,
) -> list[str]:
    """The order to try ``upstreams`` in.

    ``ordered`` keeps the configured order, ``round-robin`` rotates it by ``run_number``,
    ``fastest`` sorts by probed ``latency`` (unreachable last). Then every upstream that failed
    within ``cooldown`` moves behind the others, keeping its relative place: it is still tried,
    only last.
    """
    order = list(upstreams)
    if strategy == "round-robin" and order:
        shift = run_number % len(order)
        order = order[shift:] + order[:shift]
    elif strategy == "fastest" and latency is not None:
        order.sort(key=lambda u: (latency.get(u) is None, latency.get(u) or 0.0))
    failures = failures or {}
    cooling = {u for u, when in failures.items() if now - when < cooldown}
    return [u for u in order if u not in cooling] + [u for u in order if u in cooling]
