"""One sync run of one mirror, start to finish (I/O, the spine of DESIGN §2).

lock → plan → for each stage: rsync process → parse → tally (+ live progress) → stage result
→ run record → store. Errors come back as values in the record; only "cannot even start"
conditions (the lock) raise.
"""

from __future__ import annotations

import os
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..config.spec import Config, MirrorSpec
from ..logs import (
    RunLog,
    current_mirror,
    current_run,
    current_stage,
    event,
    prune_run_logs,
    setup_event_log,
)
from ..plan.argv import RSYNC_ENV, StagePlan, build_plan
from ..record import RunRecord, StageResult
from ..record.progress import LiveProgress, estimate, stage_weights
from ..rsync.exitcodes import COMPLETE, PARTIAL, meaning
from ..rsync.parse import Progress, parse_output
from ..rsync.process import ProcessResult, run_process
from ..rsync.tally import StageTally
from ..store import Store
from .lock import MirrorLock

ProgressCallback = Callable[[LiveProgress], None]
LineCallback = Callable[[str, str, str], None]  # stage, stream, line
StageCallback = Callable[[StageResult], None]  # after a stage ends, before the next starts


def lock_dir(config: Config) -> Path:
    return Path(config.settings.state_dir) / "locks"


def outcome_of(stages: list[StageResult]) -> str:
    """The run's outcome from its stages (pure)."""
    if not stages:
        return "failed"
    last = stages[-1]
    if last.stopped_by == "signal":
        return "interrupted"
    if last.start_error or last.stopped_by == "watchdog":
        return "failed"
    if all(s.exit_code in COMPLETE for s in stages):
        return "success"
    if last.exit_code in PARTIAL:
        return "partial"
    return "failed"


def _stage_result(name: str, argv: tuple[str, ...], started: float, finished: float,
                  proc: ProcessResult, tally: StageTally) -> StageResult:
    errors = dict(tally.errors)
    if proc.stopped_by == "watchdog":
        errors["stalled"] = errors.get("stalled", 0) + 1
    return StageResult(
        name=name, argv=argv, started_at=started, finished_at=finished,
        exit_code=proc.exit_code, bytes_sent=tally.stat("bytes_sent"),
        bytes_received=tally.stat("bytes_received"), size_bytes=tally.stat("size_bytes"),
        files_total=tally.stat("files_total"), files_transferred=tally.files_transferred,
        files_deleted=tally.files_deleted, files_failed=tally.files_failed,
        errors=errors, error_samples=tuple(tally.error_samples),
        unparsed_lines=tally.unparsed, stopped_by=proc.stopped_by, start_error=proc.start_error,
    )


def _dest_problem(dest: str) -> str | None:
    path = Path(dest)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create destination {dest}: {exc.strerror}"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"destination {dest} is not writable by uid {os.getuid()}"
    return None


def sync_mirror(
    config: Config,
    mirror: MirrorSpec,
    store: Store,
    *,
    stop: threading.Event | None = None,
    on_progress: ProgressCallback | None = None,
    on_line: LineCallback | None = None,
    on_stage: StageCallback | None = None,
    live_interval: float = 2.0,
) -> RunRecord:
    """Run ``mirror`` once. Raises :class:`~.lock.MirrorLocked` if it is already running."""
    stop = stop or threading.Event()
    setup_event_log(config.settings.log_dir)
    with MirrorLock(lock_dir(config), mirror.name):
        abandoned = store.mark_abandoned(mirror.name)
        hooks = _Hooks(on_progress, on_line, on_stage)
        return _run_locked(config, mirror, store, stop, hooks, live_interval, abandoned)


@dataclass(frozen=True)
class _Hooks:
    on_progress: ProgressCallback | None = None
    on_line: LineCallback | None = None
    on_stage: StageCallback | None = None


def _run_locked(
    config: Config, mirror: MirrorSpec, store: Store, stop: threading.Event, hooks: _Hooks,
    live_interval: float, abandoned: int,
) -> RunRecord:
    settings = config.settings
    last_ok = store.last_run(mirror.name, outcome="success")
    last_total = last_ok.files_total if last_ok else None
    upstream = mirror.settings.upstreams[0]
    plan = build_plan(mirror, upstream, rsync=settings.rsync, last_files_total=last_total)
    last_durations = (tuple(s.duration_seconds for s in last_ok.stages)
                      if last_ok and len(last_ok.stages) == len(plan.stages) else None)
    weights = stage_weights(len(plan.stages), last_durations)

    started = time.time()
    run_id = store.start_run(mirror.name, upstream, started)
    tokens = (current_mirror.set(mirror.name), current_run.set(run_id))
    runlog = RunLog(settings.log_dir, mirror.name, run_id, started).open()
    store.set_log_path(run_id, str(runlog.path))
    stages: list[StageResult] = []
    skipped: list[str] = []
    try:
        if abandoned:
            event("run.abandoned_found", count=abandoned)
        event("run.start", upstream=upstream, stages=[s.name for s in plan.stages],
              max_delete=plan.max_delete, log_path=str(runlog.path))
        runlog.note(f"mirrorkeeper run {run_id} of {mirror.name} from {upstream} "
                    f"(profile {mirror.profile}, max-delete {plan.max_delete})")
        dest_problem = _dest_problem(mirror.dest)
        if dest_problem:
            runlog.note(dest_problem)
            event("run.dest_unusable", reason=dest_problem)
            now = time.time()
            stages.append(StageResult(name=plan.stages[0].name, argv=plan.stages[0].argv,
                                      started_at=now, finished_at=now, exit_code=None,
                                      start_error=dest_problem))
            skipped = [s.name for s in plan.stages[1:]]
        else:
            context = _RunContext(mirror, run_id, store, runlog, stop, hooks, live_interval,
                                  last_total, weights)
            stages, skipped = _run_stages(plan.stages, plan.no_output_timeout, context)
        record = RunRecord(run_id=run_id, mirror=mirror.name, upstream=upstream,
                           started_at=started, finished_at=time.time(),
                           outcome=outcome_of(stages), stages=tuple(stages),
                           log_path=str(runlog.path), skipped=tuple(skipped))
        runlog.note(f"outcome {record.outcome}: {record.files_transferred} files transferred, "
                    f"{record.files_deleted} deleted, {record.files_failed} failed, "
                    f"{record.bytes_transferred} bytes in {record.duration_seconds:.1f}s")
        store.finish_run(record)
        event("run.end", outcome=record.outcome, exit_code=record.exit_code,
              duration_seconds=round(record.duration_seconds, 3),
              bytes_transferred=record.bytes_transferred, files_total=record.files_total,
              files_transferred=record.files_transferred, files_deleted=record.files_deleted,
              files_failed=record.files_failed, errors=record.errors)
        return record
    finally:
        runlog.close()
        prune_run_logs(settings.log_dir, mirror.name, settings.keep_run_logs)
        current_run.reset(tokens[1])
        current_mirror.reset(tokens[0])


class _LiveStage:
    """The line handler of one running stage: log, parse, tally, publish progress."""

    def __init__(self, stage: StagePlan, index: int, count: int, run: _RunContext) -> None:
        self.stage, self.index, self.count, self.run = stage, index, count, run
        self.tally = StageTally()
        self.started = time.time()
        self._published = 0.0

    def publish(self, progress: Progress | None, force: bool = False) -> None:
        run = self.run
        now = time.time()
        live = estimate(progress, stage=self.stage.name, stage_index=self.index,
                        stage_count=self.count, elapsed_seconds=now - self.started,
                        last_files_total=run.last_total, weights=run.weights)
        if run.hooks.on_progress:
            run.hooks.on_progress(live)
        if force or now - self._published >= run.live_interval:
            self._published = now
            run.store.update_live(run.mirror.name, run.run_id, live, now)

    def handle(self, stream: str, line: str) -> None:
        self.run.runlog.write(stream, line)
        for parsed in parse_output(line):
            self.tally.add(parsed)
            if isinstance(parsed, Progress):
                self.publish(parsed)
        if self.run.hooks.on_line:
            self.run.hooks.on_line(self.stage.name, stream, line)


@dataclass
class _RunContext:
    mirror: MirrorSpec
    run_id: int
    store: Store
    runlog: RunLog
    stop: threading.Event
    hooks: _Hooks
    live_interval: float
    last_total: int | None
    weights: tuple[float, ...]


def _run_stages(stage_plans: tuple[StagePlan, ...], no_output_timeout: float,
                run: _RunContext) -> tuple[list[StageResult], list[str]]:
    stages: list[StageResult] = []
    for index, stage in enumerate(stage_plans):
        if run.stop.is_set():
            return stages, [s.name for s in stage_plans[index:]]
        stage_token = current_stage.set(stage.name)
        live = _LiveStage(stage, index, len(stage_plans), run)
        run.runlog.note(f"{stage.name}: {shlex.join(stage.argv)}")
        event("stage.start", argv=list(stage.argv), deletes=stage.deletes)
        live.publish(None, force=True)
        proc = run_process(stage.argv, live.handle, env=RSYNC_ENV,
                           no_output_timeout=no_output_timeout, stop=run.stop)
        result = _stage_result(stage.name, stage.argv, live.started, time.time(), proc,
                               live.tally)
        stages.append(result)
        run.runlog.note(f"{stage.name}: exit {result.exit_code} ({meaning(result.exit_code)})"
                        + (f", stopped by {result.stopped_by}" if result.stopped_by else "")
                        + (f": {result.start_error}" if result.start_error else ""))
        event("stage.end", exit_code=result.exit_code, meaning=meaning(result.exit_code),
              stopped_by=result.stopped_by, duration_seconds=round(result.duration_seconds, 3),
              files_transferred=result.files_transferred, files_deleted=result.files_deleted,
              files_failed=result.files_failed, errors=result.errors)
        current_stage.reset(stage_token)
        if run.hooks.on_stage:
            run.hooks.on_stage(result)
        if result.exit_code not in COMPLETE or result.stopped_by or result.start_error:
            rest = [s.name for s in stage_plans[index + 1:]]
            if rest:
                run.runlog.note(f"not running {', '.join(rest)}: {stage.name} did not complete,"
                                " and indexes must never point at files the mirror lacks")
            return stages, rest
    return stages, []
