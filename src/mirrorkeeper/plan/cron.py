"""When a five-field cron expression next fires (pure; Vixie cron's rules).

Minute, hour, day of month, month, day of week (0 and 7 are Sunday); ``*``, lists, ranges and
steps. As in cron, when both day fields are restricted a day matches if *either* does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

_LIMITS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


def _expand(field: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for item in field.split(","):
        base, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            start, end = low, high
        elif "-" in base:
            start_text, end_text = base.split("-", 1)
            start, end = int(start_text), int(end_text)
        else:
            start = int(base)
            end = high if step_text else start
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, fields: tuple[str, ...]) -> Cron:
        """Fields already validated by :func:`mirrorkeeper.config.schedule.parse_schedule`."""
        sets = [_expand(f, lo, hi) for f, (lo, hi) in zip(fields, _LIMITS, strict=True)]
        weekdays = frozenset(d % 7 for d in sets[4])
        return cls(sets[0], sets[1], sets[2], sets[3], weekdays,
                   days_restricted=not fields[2].startswith("*"),
                   weekdays_restricted=not fields[4].startswith("*"))

    def day_matches(self, moment: datetime) -> bool:
        if moment.month not in self.months:
            return False
        day_ok = moment.day in self.days
        weekday_ok = (moment.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return day_ok or weekday_ok
        return day_ok and weekday_ok

    def next_after(self, after: float, tz: tzinfo) -> float:
        """The first firing strictly after the epoch time ``after``, in zone ``tz``."""
        moment = datetime.fromtimestamp(after, tz).replace(second=0, microsecond=0)
        moment += timedelta(minutes=1)
        # Each pass skips a whole day, hour or minute: four years of days (29 February) plus
        # one day's hours and minutes bound the search; an impossible date (30 February) ends it.
        for _ in range(4 * 366 + 24 + 60):
            if not self.day_matches(moment):
                moment = (moment + timedelta(days=1)).replace(hour=0, minute=0)
                continue
            if moment.hour not in self.hours:
                moment = (moment + timedelta(hours=1)).replace(minute=0)
                continue
            if moment.minute not in self.minutes:
                moment += timedelta(minutes=1)
                continue
            return moment.timestamp()
        raise ValueError("the cron expression never fires")
