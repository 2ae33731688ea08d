"""Schedules: an interval (``every 6h`` or ``6h``) or a five-field cron expression.

Only parsing and validation live here; deciding *when* a mirror is due belongs to the scheduler.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .durations import parse_duration

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
           ("day of week", 0, 7))
_ALIASES = {"hourly": "every 1h", "daily": "every 1d", "weekly": "every 1w"}


@dataclass(frozen=True)
class Schedule:
    """Either ``interval_seconds`` or ``cron`` (the five fields, validated) is set."""

    text: str
    interval_seconds: float | None = None
    cron: tuple[str, ...] | None = None


def _check_cron_field(field: str, name: str, low: int, high: int) -> None:
    for item in field.split(","):
        base, _, step = item.partition("/")
        if step and not step.isdigit():
            raise ValueError(f"cron {name} step '{step}' is not a number")
        if base == "*":
            continue
        lo, _, hi = base.partition("-")
        for number in (lo, hi) if hi else (lo,):
            if not number.isdigit() or not low <= int(number) <= high:
                raise ValueError(f"cron {name} '{item}' is outside {low}-{high}")


def parse_schedule(text: str) -> Schedule:
    """Parse a schedule; raise ValueError naming the accepted forms."""
    raw = _ALIASES.get(text.strip().lower(), text.strip())
    interval = re.sub(r"^every\s+", "", raw, flags=re.IGNORECASE)
    fields = raw.split()
    if len(fields) == 5:
        for field, (name, low, high) in zip(fields, _FIELDS, strict=True):
            _check_cron_field(field, name, low, high)
        return Schedule(text=text, cron=tuple(fields))
    try:
        seconds = parse_duration(interval)
    except ValueError:
        raise ValueError(
            f"'{text}' is not a schedule; use an interval ('every 6h', '30m', 'hourly', 'daily') "
            "or a cron expression with five fields ('15 */6 * * *')"
        ) from None
    if seconds < 60:
        raise ValueError(f"schedule '{text}' is shorter than a minute; upstreams would ban you")
    return Schedule(text=text, interval_seconds=seconds)
