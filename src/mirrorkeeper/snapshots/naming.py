"""Snapshot names (pure): ``mk-20261129T2015Z-r42`` after run 42's success, with ``-pre``
for the one taken before a run. The time and run are in the name, so a listing sorts by
time and says which run made each one, whatever the store remembers."""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass

PREFIX = "mk-"
_NAME = re.compile(r"^mk-(\d{8}T\d{4})Z-r(\d+)(-pre)?$")


@dataclass(frozen=True)
class ParsedName:
    created_at: float
    run_id: int
    pre: bool


def snapshot_name(created_at: float, run_id: int, *, pre: bool = False) -> str:
    stamp = time.strftime("%Y%m%dT%H%M", time.gmtime(created_at))
    return f"{PREFIX}{stamp}Z-r{run_id}" + ("-pre" if pre else "")


def parse_name(name: str) -> ParsedName | None:
    """What a name of ours says; None for a snapshot someone else made (never pruned)."""
    m = _NAME.match(name)
    if not m:
        return None
    created = float(calendar.timegm(time.strptime(m.group(1), "%Y%m%dT%H%M")))
    return ParsedName(created_at=created, run_id=int(m.group(2)), pre=bool(m.group(3)))
