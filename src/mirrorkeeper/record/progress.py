"""Best-estimate % done of a running sync (pure).

rsync's incremental recursion sends the file list in pieces, so ``ir-chk=LEFT/TOTAL`` only counts
the files seen so far and rsync's own percentage runs ahead. While the list is incomplete the
estimate uses the larger of that total and the last run's file count. Each stage gets a share of
the bar: by the last successful run's stage durations when known, else stage 1 gets 85%.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..rsync.parse import Progress


@dataclass(frozen=True)
class LiveProgress:
    stage: str
    stage_index: int  # 0-based
    stage_count: int
    percent: float | None
    bytes_done: int
    rate_bps: float  # bytes per second, as rsync reports it
    eta_seconds: float | None
    files_checked: int | None
    files_expected: int | None
    incremental: bool


def stage_weights(stage_count: int, last_durations: tuple[float, ...] | None) -> tuple[float, ...]:
    if stage_count == 1:
        return (1.0,)
    if last_durations and len(last_durations) == stage_count and sum(last_durations) > 0:
        total = sum(last_durations)
        # Keep every stage visible on the bar, however quick it was last time.
        raw = [max(d / total, 0.05) for d in last_durations]
        return tuple(w / sum(raw) for w in raw)
    first = 0.85
    rest = (1 - first) / (stage_count - 1)
    return (first, *([rest] * (stage_count - 1)))


def estimate(
    progress: Progress | None,
    *,
    stage: str,
    stage_index: int,
    stage_count: int,
    elapsed_seconds: float,
    last_files_total: int | None,
    weights: tuple[float, ...],
) -> LiveProgress:
    """Combine rsync's latest progress line with history into one overall percentage."""
    done_before = sum(weights[:stage_index])
    fraction: float | None = 0.0
    checked = expected = None
    incremental = False
    bytes_done, rate = 0, 0.0
    if progress is not None:
        bytes_done, rate, incremental = progress.bytes_done, progress.rate_bps, progress.incremental
        if progress.total_known is not None and progress.to_check is not None:
            checked = progress.total_known - progress.to_check
            expected = progress.total_known
            if incremental and last_files_total:
                expected = max(expected, last_files_total)
            fraction = checked / expected if expected else None
        else:
            fraction = progress.percent / 100
    fraction = None if fraction is None else min(max(fraction, 0.0), 1.0)
    percent = None
    eta = None
    if fraction is not None:
        overall = done_before + weights[stage_index] * fraction
        # Never claim to be done while rsync is still running.
        percent = round(min(overall * 100, 99.9), 1)
        if overall > 0.01 and elapsed_seconds > 0:
            eta = elapsed_seconds * (1 - overall) / overall
    return LiveProgress(stage=stage, stage_index=stage_index, stage_count=stage_count,
                        percent=percent, bytes_done=bytes_done, rate_bps=rate, eta_seconds=eta,
                        files_checked=checked, files_expected=expected, incremental=incremental)
