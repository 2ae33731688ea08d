"""History graphs on the server: downsampled series for uPlot, and inline SVG sparklines (pure).

A year of hourly runs is 8,760 points per series; a graph needs a few hundred. Runs are put in
equal time buckets; each bucket reports the *maximum* of durations and failures (a spike must
never be averaged away) and the mean of the rest.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

RANGES = {"day": 86400.0, "week": 7 * 86400.0, "month": 31 * 86400.0, "year": 366 * 86400.0}
SERIES = ("duration_seconds", "bytes_transferred", "bitrate_bps", "files_transferred",
          "files_failed")
PEAK_SERIES = frozenset({"duration_seconds", "files_failed"})


def downsample(rows: list[dict[str, Any]], start: float, end: float,
               points: int) -> dict[str, list[float | None]]:
    """Columns ``time`` plus one per :data:`SERIES`, at most ``points`` long, oldest first."""
    columns: dict[str, list[float | None]] = {"time": [], **{k: [] for k in SERIES}}
    if not rows:
        return columns
    if len(rows) <= points:
        for row in rows:
            columns["time"].append(round(row["started_at"]))
            for key in SERIES:
                columns[key].append(row[key])
        return columns
    width = max((end - start) / points, 1.0)
    buckets: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        buckets.setdefault(int((row["started_at"] - start) // width), []).append(row)
    for index in sorted(buckets):
        bucket = buckets[index]
        columns["time"].append(round(sum(r["started_at"] for r in bucket) / len(bucket)))
        for key in SERIES:
            values = [r[key] for r in bucket if r[key] is not None]
            if not values:
                columns[key].append(None)
            elif key in PEAK_SERIES:
                columns[key].append(max(values))
            else:
                columns[key].append(sum(values) / len(values))
    return columns


def sparkline(values: Sequence[float], width: int = 120, height: int = 24) -> str:
    """An inline SVG polyline of ``values`` (oldest first); empty string for no data."""
    return _sparkline(tuple(values), width, height)


@functools.lru_cache(maxsize=1024)  # the overview draws the same 50 lines every second
def _sparkline(values: tuple[float, ...], width: int, height: int) -> str:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if len(finite) < 2:
        return ""
    low, high = min(finite), max(finite)
    span = (high - low) or 1.0
    step = (width - 2) / (len(finite) - 1)
    points = " ".join(f"{1 + i * step:.1f},{height - 2 - (v - low) / span * (height - 4):.1f}"
                      for i, v in enumerate(finite))
    return (f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} '
            f'{height}" role="img" aria-label="recent durations, {len(finite)} runs">'
            f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" '
            f'points="{points}"/></svg>')
