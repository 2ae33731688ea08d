"""What one run did, stage by stage, and the totals the seed asks for."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..rsync.parse import FILE_ERROR_KINDS

#: success: every stage completed (rsync 0 or 24); partial: a stage ended with 23 (some files
#: failed) and later stages were skipped; failed: any other failure; interrupted: stopped by a
#: signal or the no-output watchdog; running: not finished (or its process died — see status);
#: staged: a stage-1 push completed (new files in, indexes and deletions wait for the stage-2
#: push, so it does not make the mirror fresh); rolled_back: not a sync but a return to a
#: snapshot (``mirrorkeeper rollback``, ``auto_rollback``); it is no success, so the staleness
#: watchdog still counts from the last sync that succeeded.
OUTCOMES = ("success", "partial", "failed", "interrupted", "running", "staged", "rolled_back")


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


#: The step after the content stages that copies the upstream's update-signal file last.
SIGNAL_STAGE = "signal"
#: The step of a file-list run that fetches the lists; its counts are the whole tree's, as
#: the lists tell them.
FILELIST_STAGE = "filelist"


@dataclass(frozen=True)
class Deletions:
    """What became of the files the upstream dropped (see :mod:`mirrorkeeper.plan.deletions`)."""

    #: Files and directories the upstream no longer has that the mirror had.
    listed: int = 0
    deleted: int = 0
    #: Kept for now: waiting for ``delete_grace``, or under a path the upstream had errors for.
    waiting: int = 0
    protected: int = 0
    #: Could not be deleted here (permissions, a file in the way); retried next run.
    failed: int = 0
    #: Why no deletion ran at all (None: they ran, or there were none).
    skipped: str | None = None
    #: Runs in a row, this one included, whose deletions were skipped.
    skipped_runs: int = 0
    #: The candidates exceeded the max-delete bound.
    mass_delete: bool = False

    @property
    def kept(self) -> int:
        """Files the mirror still has that the upstream dropped."""
        return max(0, self.listed - self.deleted)


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
    #: rsync's own error line (or why nothing could start): what the exit status hides.
    detail: str = ""

    @property
    def duration_seconds(self) -> float:
        return max(0.0, self.finished_at - self.started_at)


@dataclass(frozen=True)
class DownstreamResult:
    """What pushing one downstream mirror after the run (hub mode) came to."""

    name: str
    host: str
    #: all, staged or mhop (the downstream's type in the mirror list).
    kind: str
    #: The words sent, one entry per ssh (``sync:archive: sync:stage1``, ...).
    sent: tuple[str, ...] = ()
    #: ssh's exit status per push (255: ssh itself failed; None: not started or timed out).
    exit_codes: tuple[int | None, ...] = ()
    #: Why the downstream could not be pushed; empty when every push reached it.
    error: str = ""
    seconds: float = 0.0


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
    #: The deletions of the final attempt, if it reached them.
    deletions: Deletions | None = None
    #: What the run noticed that is no failure but must be heard: (code, upstream, summary).
    notices: tuple[tuple[str, str, str], ...] = ()
    #: Hub mode: the downstream mirrors pushed after the run.
    downstreams: tuple[DownstreamResult, ...] = ()

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

    def _tree(self, figure: str) -> int:
        """The whole tree's figure: the content stage that saw the most (stage 2 sees every
        file but the update signal), plus the signal file, which comes in a step of its own."""
        content = max((getattr(s, figure) for s in self.stages if s.name != SIGNAL_STAGE),
                      default=0)
        signal = max((getattr(s, figure) for s in self.stages if s.name == SIGNAL_STAGE),
                     default=0)
        return int(content + signal)

    @property
    def size_bytes(self) -> int:
        """Size of the whole tree."""
        return self._tree("size_bytes")

    @property
    def files_total(self) -> int:
        return self._tree("files_total")

    @property
    def files_transferred(self) -> int:
        return sum(s.files_transferred for s in self.stages)

    @property
    def files_deleted(self) -> int:
        deleted = self.deletions.deleted if self.deletions else 0
        return deleted + sum(s.files_deleted for s in self.stages)

    @property
    def content_stages(self) -> tuple[StageResult, ...]:
        """The final attempt's stages that walk the tree (not the one-file signal copy)."""
        return tuple(s for s in self.final_stages if s.name != SIGNAL_STAGE)

    @property
    def files_failed(self) -> int:
        """Files that still failed at the end: the final attempt's last stage (stage 2 tries
        again whatever stage 1 could not transfer); a file-list run's stages each move their
        own paths, so there they add up."""
        content = self.content_stages
        if any(a.startswith("--files-from=") for s in content for a in s.argv):
            return sum(s.files_failed for s in content)  # a file-list run: disjoint stages
        return content[-1].files_failed if content else 0

    @property
    def errors(self) -> dict[str, int]:
        """Error kinds of the final attempt; earlier attempts are in ``attempts``.

        A file that fails in stage 1 fails again in stage 2, which retries everything: per-file
        kinds count files (the most any stage saw), the others count occurrences.
        """
        final = self.final_stages
        merged = merge_counts({k: v for k, v in s.errors.items() if k not in FILE_ERROR_KINDS}
                              for s in final)
        for stage in final:
            for kind, count in stage.errors.items():
                if kind in FILE_ERROR_KINDS:
                    merged[kind] = max(merged.get(kind, 0), count)
        return dict(sorted(merged.items()))
