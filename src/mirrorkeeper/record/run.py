"""What one run did, stage by stage, and the totals the seed asks for."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

#: success: every stage completed (rsync 0 or 24); partial: a stage ended with 23 (some files
#: failed) and later stages were skipped; failed: any other failure; interrupted: stopped by a
#: signal or the no-output watchdog; running: not finished (or its process died — see status).
OUTCOMES = ("success", "partial", "failed", "interrupted", "running")


def merge_counts(counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for one in counts:
        for key, value in one.items():
            merged[key] = merged.get(key, 0) + value
    return dict(sorted(merged.items()))


@dataclass(frozen=True)
class StageResult:
    name: str
    argv: tuple[str, ...]
    started_at: float
    finished_at: float
    #: rsync's exit status; negative for a signal; None if it could not be started.
    exit_code: int | None
    bytes_sent: int = 0
    bytes_received: int = 0
    size_bytes: int = 0
    files_total: int = 0
    files_transferred: int = 0
    files_deleted: int = 0
    files_failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    error_samples: tuple[str, ...] = ()
    unparsed_lines: int = 0
    #: "signal" or "watchdog" when Mirrorkeeper stopped rsync; else None.
    stopped_by: str | None = None
    #: Why the stage could not start (e.g. rsync missing), if it could not.
    start_error: str | None = None
    #: Which attempt of the run (1, 2, ...) and from which upstream.
    attempt: int = 1
    upstream: str = ""
    #: "DRY RUN" or "BATCH ONLY" when rsync's summary said it changed nothing.
    dry_run: str | None = None
    #: Itemized regular files received (``>f`` lines); None when the stage's output was not
    #: read line by line (a probe, or a record stored before this was kept).
    items_received: int | None = None
    #: ``Number of regular files transferred`` from rsync's stats block; None without one.
    stats_files_transferred: int | None = None

    @property
    def duration_seconds(self) -> float:
        return max(0.0, self.finished_at - self.started_at)

    @property
    def bytes_transferred(self) -> int:
        """Bytes on the wire in both directions, as rsync's ``sent ... received ...`` line."""
        return self.bytes_sent + self.bytes_received


@dataclass(frozen=True)
class Attempt:
    """One try of one upstream: the pre-flight check and the stages it ran."""

    number: int
    upstream: str
    category: str  # ok, transient, upstream, local, guard, interrupted, internal
    code: str | None  # the finding code of the judgement, if any
    reason: str
    stage: str  # the last stage it reached ("preflight" if none ran)
    exit_code: int | None
    started_at: float
    finished_at: float
    failure_ratio: float = 0.0

    @property
    def duration_seconds(self) -> float:
        return max(0.0, self.finished_at - self.started_at)


@dataclass(frozen=True)
class RunRecord:
    run_id: int
    mirror: str
    upstream: str
    started_at: float
    finished_at: float | None
    outcome: str
    stages: tuple[StageResult, ...] = ()
    log_path: str = ""
    #: A stage that was planned but not run, and why (e.g. stage 2 after a failed stage 1).
    skipped: tuple[str, ...] = ()
    attempts: tuple[Attempt, ...] = ()

    @property
    def upstreams_tried(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a.upstream for a in self.attempts))

    @property
    def final_stages(self) -> tuple[StageResult, ...]:
        """The stages of the last attempt: what the mirror is left with."""
        if not self.stages:
            return ()
        last = self.stages[-1].attempt
        return tuple(s for s in self.stages if s.attempt == last)

    @property
    def duration_seconds(self) -> float:
        end = self.finished_at if self.finished_at is not None else self.started_at
        return max(0.0, end - self.started_at)

    @property
    def exit_code(self) -> int | None:
        """The final attempt's first exit status that was not clean, else its last stage's."""
        final = self.final_stages
        if self.attempts and (not final or final[-1].attempt != self.attempts[-1].number):
            return self.attempts[-1].exit_code  # the last attempt ended before any stage
        for stage in final:
            if stage.exit_code != 0:
                return stage.exit_code
        return final[-1].exit_code if final else None

    @property
    def bytes_transferred(self) -> int:
        return sum(s.bytes_transferred for s in self.stages)

    @property
    def bitrate_bps(self) -> float:
        """Bits per second over the whole run, wall-clock."""
        duration = self.duration_seconds
        return self.bytes_transferred * 8 / duration if duration > 0 else 0.0

    @property
    def size_bytes(self) -> int:
        """Size of the whole tree; the last stage sees every file."""
        return max((s.size_bytes for s in self.stages), default=0)

    @property
    def files_total(self) -> int:
        return max((s.files_total for s in self.stages), default=0)

    @property
    def files_transferred(self) -> int:
        return sum(s.files_transferred for s in self.stages)

    @property
    def files_deleted(self) -> int:
        return sum(s.files_deleted for s in self.stages)

    @property
    def files_failed(self) -> int:
        """Files that still failed at the end: the final attempt's last stage (stage 2 tries
        again whatever stage 1 could not transfer)."""
        final = self.final_stages
        return final[-1].files_failed if final else 0

    @property
    def errors(self) -> dict[str, int]:
        """Error kinds of the final attempt; earlier attempts are in ``attempts``."""
        return merge_counts(s.errors for s in self.final_stages)
