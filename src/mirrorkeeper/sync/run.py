"""One sync run of one mirror, start to finish (I/O, the spine of DESIGN §2).

lock → plan → for each stage: rsync process → parse → tally (+ live progress) → stage result
→ run record → store. Errors come back as values in the record; only "cannot even start"
conditions (the lock, a state or log file this user may not write, a full state disk) raise.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from ..access import Place, denied, first_unwritable, require_writable
from ..classify.judge import Verdict, failure_ratio, judge_stage
from ..config.spec import Config, MirrorSpec, SyncSettings
from ..errors import StateUnavailable
from ..logs import (
    EVENT_LOG,
    RunLog,
    current_mirror,
    current_run,
    current_stage,
    event,
    prune_run_logs,
    setup_event_log,
)
from ..plan.argv import RSYNC_ENV, StagePlan, SyncPlan, build_plan
from ..plan.budget import host_limits
from ..plan.deletions import plan_deletions
from ..plan.seed import SEED_STAGE, wants_seed
from ..plan.upstreams import order_upstreams, recent_failures
from ..record import SIGNAL_STAGE, Attempt, Deletions, RunRecord, StageResult
from ..record.progress import LiveProgress, estimate, stage_weights
from ..record.run import FILELIST_STAGE
from ..rsync.exitcodes import meaning
from ..rsync.parse import Progress
from ..rsync.process import ProcessResult, run_process
from ..rsync.tally import StageTally
from ..safetext import printable
from ..stop import stopped_by
from ..store import Store
from ..store.store import DB_NAME
from .budget import ConnectionBudget, unlimited
from .deletions import delete_paths
from .lock import MirrorLock, MirrorLocked
from .prefetch import ProbePrefetch
from .preflight import (
    MTIME_SLACK_SECONDS,
    Probe,
    has_content,
    local_mtime,
    probe,
    signal_file_time,
)
from .seed import plan_seed, run_seed
from .snapshots import SnapshotHooks
from .trace import (
    IN_PROGRESS_PREFIX,
    REQUIRED_PREFIX,
    TraceInfo,
    arch_configuration,
    own_files,
    protected_files,
    trace_path,
    uses_markers,
    write_trace,
)

ProgressCallback = Callable[[LiveProgress], None]
LineCallback = Callable[[str, str, str], None]  # stage, stream, line
StageCallback = Callable[[StageResult], None]  # after a stage ends, before the next starts


def lock_dir(config: Config) -> Path:
    return Path(config.settings.state_dir) / "locks"


def writer_places(config: Config, mirror: MirrorSpec) -> list[Place]:
    """Every state and log file or directory a run of ``mirror`` writes, parents first."""
    state, logs = Path(config.settings.state_dir), Path(config.settings.log_dir)
    db = state / DB_NAME
    staging = signal_staging(config, mirror).parent
    return [
        Place("state directory", state, state),
        *(Place("store", Path(f"{db}{suffix}"), state) for suffix in ("", "-wal", "-shm")),
        Place("lock directory", lock_dir(config), state),
        Place("lock file", lock_dir(config) / f"{mirror.name}.lock", state),
        Place("connection slot directory", state / "connections", state),
        Place("seed share directory", state / "seed", state),
        Place("signal staging directory", staging.parent, state),
        Place("signal staging directory", staging, state),
        Place("signal staging file", signal_staging(config, mirror), state),
        Place("log directory", logs, logs),
        Place("event log", logs / EVENT_LOG, logs),
        Place("run log directory", logs / "runs", logs),
        Place("run log directory", logs / "runs" / mirror.name, logs),
    ]


def signal_staging(config: Config, mirror: MirrorSpec) -> Path:
    """Where the upstream's update signal waits between stage 1 and the end of stage 2: ours,
    outside the mirror (never served, never deleted by a stage)."""
    name = Path(mirror.settings.update_signal or "signal").name
    return Path(config.settings.state_dir) / "signals" / mirror.name / name


def outcome_of(attempts: list[Attempt], stages: list[StageResult]) -> str:
    """The run's outcome from its last attempt (pure)."""
    if not attempts:
        return "failed"
    last = attempts[-1]
    if last.category == "ok":
        return "success"
    if last.category == "interrupted":
        return "interrupted"
    final = [s for s in stages if s.attempt == last.number]
    if final and final[-1].exit_code == 23:
        return "partial"
    return "failed"


def _stage_result(name: str, argv: tuple[str, ...], started: float, finished: float,
                  proc: ProcessResult, tally: StageTally, attempt: int,
                  upstream: str) -> StageResult:
    errors = dict(tally.errors)
    if proc.stopped_by == "watchdog":
        errors["stalled"] = errors.get("stalled", 0) + 1
    exit_code = proc.exit_code
    if tally.listing and exit_code == 25 and tally.exit_line and tally.exit_line.code == 25:
        exit_code = 0  # the --max-delete=0 that makes rsync list deletions instead of doing them
    # A dry run's counts are what rsync *would* have done: the record must not claim them.
    done = tally.dry_run is None
    return StageResult(
        name=name, argv=argv, started_at=started, finished_at=finished,
        exit_code=exit_code, bytes_sent=tally.stat("bytes_sent"),
        bytes_received=tally.stat("bytes_received"), size_bytes=tally.stat("size_bytes"),
        files_total=tally.stat("files_total"),
        files_transferred=tally.files_transferred if done else 0,
        files_deleted=tally.files_deleted if done else 0, files_failed=tally.files_failed,
        errors=errors, error_samples=tuple(tally.error_samples),
        unparsed_lines=tally.unparsed, stopped_by=proc.stopped_by, start_error=proc.start_error,
        attempt=attempt, upstream=upstream, dry_run=tally.dry_run,
        items_received=tally.items_received,
        stats_files_transferred=tally.stats_files_transferred,
    )


def _dest_problem(dest: str) -> str | None:
    path = Path(dest)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create destination {dest}: {exc.strerror}"
    if first_unwritable([Place("destination", path, path)]) is not None:
        # The same words as for the state: whose it is, and the chown that fixes it.
        problem = denied(Place("destination", path, path))
        return f"destination {dest}: {problem.reason}; {problem.fix}"
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
    scope: str = "all",
    trigger: str = "",
    prefetch: ProbePrefetch | None = None,
) -> RunRecord:
    """Run ``mirror`` once. Raises :class:`~.lock.MirrorLocked` if it is already running, and
    :class:`~mirrorkeeper.errors.StateUnavailable` before anything starts if a state or log
    file cannot be written (left by a run as another user, or a full disk).

    ``scope``: ``all``, or one half of a staged push (``stage1``: no indexes, no deletions,
    outcome ``staged``; ``stage2``: the rest). ``trigger``: why it runs, for the trace
    (``ssh`` for a push, ``cron`` for a schedule).

    ``prefetch``: signal probes started earlier (see :mod:`.prefetch`), used in place of the
    run's own first probes."""
    stop = stop or threading.Event()
    setup_event_log(config.settings.log_dir)
    require_writable(writer_places(config, mirror))
    with (MirrorLock(lock_dir(config), mirror.name, root=config.settings.state_dir),
          store.fleet_lock(mirror.name) as held):
        if not held:  # another fleet host runs it (a shared store only)
            raise MirrorLocked(mirror.name, store.holder(mirror.name))
        abandoned = store.mark_abandoned(mirror.name)
        hooks = _Hooks(on_progress, on_line, on_stage)
        with _InProgress(config, mirror):
            return _run_locked(config, mirror, store, stop, hooks, live_interval, abandoned,
                               scope, trigger, prefetch)


def required_marker(config: Config, mirror: MirrorSpec) -> Path | None:
    """ftpsync's ``Archive-Update-Required-<host>`` of the mirror (None: no markers)."""
    if not uses_markers(mirror.settings.trace):
        return None
    return Path(mirror.dest, REQUIRED_PREFIX + config.settings.hostname)


def request_update(config: Config, mirror: MirrorSpec) -> Path | None:
    """A push arrived: touch the mirror's ``Archive-Update-Required`` marker (before anything
    else, as ftpsync does), so that a run going on now goes round once more. Returns the
    marker, or None when the mirror has no markers or no destination yet."""
    marker = required_marker(config, mirror)
    if marker is None or not marker.parent.is_dir():
        return None
    marker.touch()
    return marker


class _InProgress:
    """ftpsync's ``Archive-Update-in-Progress-<host>`` in the published tree while we run
    (holding our PID): a downstream ftpsync that pulls it postpones its stage 2, and mirror
    checkers see the mirror is mid-update. Removed however the run ends."""

    def __init__(self, config: Config, mirror: MirrorSpec) -> None:
        self.path = (Path(mirror.dest, IN_PROGRESS_PREFIX + config.settings.hostname)
                     if uses_markers(mirror.settings.trace) else None)

    def __enter__(self) -> _InProgress:
        if self.path is not None and self.path.parent.is_dir():
            try:
                self.path.write_text(f"{os.getpid()}\n")
            except OSError as exc:  # the run itself says why the destination is unusable
                event("marker.failed", level=logging.ERROR, path=str(self.path),
                      error=exc.strerror or str(exc))
                self.path = None
        else:
            self.path = None
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class _Hooks:
    on_progress: ProgressCallback | None = None
    on_line: LineCallback | None = None
    on_stage: StageCallback | None = None


def _run_locked(
    config: Config, mirror: MirrorSpec, store: Store, stop: threading.Event, hooks: _Hooks,
    live_interval: float, abandoned: int, scope: str = "all", trigger: str = "",
    prefetch: ProbePrefetch | None = None,
) -> RunRecord:
    settings, s = config.settings, mirror.settings
    history = store.history(mirror.name, limit=50)
    last_ok = next((r for r in history if r.outcome == "success"), None)
    last_total = last_ok.files_total if last_ok else None
    started = time.time()
    latency = None
    probes: dict[str, Probe] = {}
    if prefetch is not None and prefetch.mirror == mirror.name:
        probes = {u: p for u in prefetch.upstreams() if (p := prefetch.take(u)) is not None}
    budget = ConnectionBudget(settings.state_dir, host_limits(config.mirrors.values()))
    if s.upstream_strategy == "fastest" and s.update_signal:
        probes = {u: probes.get(u) or _probe(budget, stop, settings.rsync, u, s.update_signal, s)
                  for u in s.upstreams}
        latency = {u: (p.seconds if p.exit_code == 0 else None) for u, p in probes.items()}
    candidates = order_upstreams(s.upstreams, s.upstream_strategy, run_number=len(history),
                                 failures=recent_failures(history), now=started,
                                 cooldown=s.upstream_cooldown, latency=latency)
    run_id = store.start_run(mirror.name, candidates[0], started)
    tokens = (current_mirror.set(mirror.name), current_run.set(run_id))
    runlog = RunLog(settings.log_dir, mirror.name, run_id, started).open()
    store.set_log_path(run_id, str(runlog.path))
    stages: list[StageResult] = []
    attempts: list[Attempt] = []
    skipped: list[str] = []
    try:
        if abandoned:
            event("run.abandoned_found", count=abandoned)
        event("run.start", upstreams=candidates, strategy=s.upstream_strategy,
              log_path=str(runlog.path))
        runlog.note(f"mirrorkeeper run {run_id} of {mirror.name} (profile {mirror.profile}), "
                    f"upstreams in order: {', '.join(candidates)}")
        last_durations = (tuple({x.name: x.duration_seconds for x in last_ok.content_stages
                                 }.values()) if last_ok else None)
        weights_for = {n: stage_weights(n, last_durations if last_durations and
                                        len(last_durations) == n else None) for n in (1, 2)}
        previous = next((r.deletions for r in history if r.deletions is not None), None)
        context = _RunContext(mirror, run_id, store, runlog, stop, hooks, live_interval,
                              last_total, weights_for[2 if s.stage2 else 1], settings.rsync,
                              settings.hostname, previous.skipped_runs if previous else 0,
                              probes, scope=scope, required=required_marker(config, mirror),
                              budget=budget, last_size=last_ok.size_bytes if last_ok else None)
        dest_problem = _dest_problem(mirror.dest)
        if dest_problem:
            runlog.note(dest_problem)
            event("run.dest_unusable", reason=dest_problem)
            now = time.time()
            stages.append(StageResult(name="stage1" if s.stage2 else "single", argv=(),
                                      started_at=now, finished_at=now, exit_code=None,
                                      start_error=dest_problem, upstream=candidates[0]))
            attempts.append(Attempt(1, candidates[0], "local", "local.not_writable",
                                    dest_problem, "preflight", None, now, now,
                                    detail=dest_problem))
        snapshots = SnapshotHooks.of(config, mirror, store, runlog.note)
        if not dest_problem:
            if snapshots:
                snapshots.before(run_id)
            _attempt_all(config, mirror, candidates, context, started, last_total,
                         stages, attempts, skipped)
        final_upstream = attempts[-1].upstream if attempts else candidates[0]
        outcome = outcome_of(attempts, stages)
        if outcome == "success" and scope == "stage1" and s.stage2:
            outcome = "staged"  # the indexes wait for the stage-2 push: not fresh yet
        record = RunRecord(run_id=run_id, mirror=mirror.name, upstream=final_upstream,
                           started_at=started, finished_at=time.time(),
                           outcome=outcome, stages=tuple(stages),
                           log_path=str(runlog.path), skipped=tuple(skipped),
                           attempts=tuple(attempts), deletions=context.deletions
                           if not dest_problem else None, notices=tuple(context.notices))
        runlog.note(f"outcome {record.outcome} after {len(attempts)} attempt(s): "
                    f"{record.files_transferred} files transferred, {record.files_deleted} "
                    f"deleted, {record.files_failed} failed, {record.bytes_transferred} bytes "
                    f"in {record.duration_seconds:.1f}s"
                    + (f"; {record.deletions.kept} dropped upstream, kept for now"
                       if record.deletions and record.deletions.kept else ""))
        if record.outcome in ("success", "staged") and s.trace:
            _write_trace(config, mirror, record, runlog,
                         "stage1" if record.outcome == "staged" else scope, trigger)
        if record.outcome == "success" and context.full_run:
            from .filelist import record_full

            try:
                record_full(config, mirror, started)
            except OSError as exc:
                runlog.note(f"cannot record the full rsync's time: {exc}")
        if snapshots and not dest_problem:  # after the trace: it is inside what is published
            record = snapshots.after(record)
        store.finish_run(record)
        event("run.end", outcome=record.outcome, exit_code=record.exit_code,
              upstream=record.upstream, attempts=len(attempts),
              duration_seconds=round(record.duration_seconds, 3),
              bytes_transferred=record.bytes_transferred, files_total=record.files_total,
              files_transferred=record.files_transferred, files_deleted=record.files_deleted,
              files_failed=record.files_failed, errors=record.errors)
        if snapshots:
            snapshots.record_rollback()
        return record
    finally:
        runlog.close()
        try:
            prune_run_logs(settings.log_dir, mirror.name, settings.keep_run_logs,
                           settings.keep_run_logs_days)
        except OSError as exc:  # no room to gzip: the logs wait for the next run
            event("runlog.prune_failed", level=logging.ERROR, error=exc.strerror or str(exc))
        current_run.reset(tokens[1])
        current_mirror.reset(tokens[0])


def _write_trace(config: Config, mirror: MirrorSpec, record: RunRecord, runlog: RunLog,
                 scope: str, trigger: str) -> None:
    """A trace that cannot be written is logged loudly but does not undo a good sync."""
    s = mirror.settings
    info = TraceInfo(maintainer=s.trace_maintainer, sponsor=s.trace_sponsor,
                     country=s.trace_country, location=s.trace_location,
                     throughput=s.trace_throughput, trigger=trigger,
                     arch_config=arch_configuration(s.excludes))
    try:
        path = write_trace(s.trace, mirror.dest, config.settings.hostname, record, info, scope)
    except OSError as exc:
        runlog.note(f"cannot write the trace file: {exc}")
        event("trace.failed", level=logging.ERROR, error=str(exc))
        return
    runlog.note(f"trace written: {path}")
    event("trace.written", path=str(path))


_STOP_CATEGORIES = frozenset({"local", "guard", "interrupted", "internal"})


def _attempt_all(
    config: Config, mirror: MirrorSpec, candidates: list[str], run: _RunContext,
    started: float, last_total: int | None, stages: list[StageResult],
    attempts: list[Attempt], skipped: list[str],
) -> None:
    """Try upstreams in order: transient failures retry the same one with backoff, upstream
    failures move on, local and guard failures stop at once (retrying cannot help)."""
    s = mirror.settings
    number = 0
    for upstream in candidates:
        for retry in range(s.attempts_per_upstream):
            if run.stop.is_set():  # a stop between attempts is an interruption, not a failure
                now = time.time()
                attempts.append(Attempt(number + 1, upstream, "interrupted", "run.interrupted",
                                        f"{stopped_by(run.stop)} before the attempt began",
                                        "preflight", None, now, now))
                return
            if time.time() - started > s.run_budget:
                run.runlog.note("the run's time budget is spent; no further attempt")
                now = time.time()
                attempts.append(Attempt(number + 1, upstream, "internal", "run.budget",
                                        "time budget spent", "preflight", None, now, now))
                return
            if retry:
                wait = s.retry_backoff * 2 ** (retry - 1)
                run.runlog.note(f"retrying {upstream} in {wait:.0f}s")
                event("attempt.backoff", upstream=upstream, seconds=wait)
                if run.stop.wait(wait):
                    now = time.time()
                    attempts.append(Attempt(number + 1, upstream, "interrupted",
                                            "run.interrupted",
                                            f"{stopped_by(run.stop)} during backoff",
                                            "preflight", None, now, now))
                    return
            number += 1
            attempt = _one_attempt(config, mirror, upstream, number, run, last_total, stages,
                                   skipped)
            attempts.append(attempt)
            event("attempt.end", number=number, upstream=upstream, category=attempt.category,
                  code=attempt.code, reason=attempt.reason, stage=attempt.stage,
                  exit_code=attempt.exit_code, detail=attempt.detail)
            run.runlog.note(f"attempt {number} from {upstream}: {attempt.category}"
                            + (f" ({attempt.code})" if attempt.code else "")
                            + f" — {attempt.reason}")
            if attempt.category == "ok" or attempt.category in _STOP_CATEGORIES:
                return
            if attempt.category == "upstream":
                break  # next upstream


def _one_attempt(
    config: Config, mirror: MirrorSpec, upstream: str, number: int, run: _RunContext,
    last_total: int | None, stages: list[StageResult], skipped: list[str],
) -> Attempt:
    s = mirror.settings
    begun = time.time()
    skipped.clear()

    def done(verdict: Verdict, stage: str, exit_code: int | None) -> Attempt:
        return Attempt(number, upstream, verdict.category, verdict.code, verdict.reason, stage,
                       exit_code, begun, time.time(), verdict.failure_ratio, verdict.detail)

    run.deletions = None
    run.full_run = False
    signal_mtime = None
    planned = mirror
    if s.method == "filelist":
        # The lists are fetched first: their fetch is the probe (an unchanged list costs one
        # connection), and the update signal is checked only for a full rsync.
        from .filelist import filelist_attempt, full_reason

        fallback = full_reason(config, mirror, begun)
        if fallback is None:
            outcome = filelist_attempt(config, mirror, upstream, number, run, last_total,
                                       stages, skipped, done)
            if isinstance(outcome, Attempt):
                return outcome
            fallback = outcome
        run.notice(fallback[0], upstream, fallback[1])
        run.runlog.note(f"a full two-stage rsync instead of the file lists: {fallback[1]}")
        event("filelist.fallback", code=fallback[0], reason=fallback[1])
        run.full_run = True
    if s.update_signal:
        refusal, signal_mtime, absent = _check_signal(config, mirror, upstream, run)
        if refusal is not None:
            skipped.extend(["stage1", "stage2"] if s.stage2 else ["single"])
            return done(refusal[0], "preflight", refusal[1])
        if absent:  # sync without it: nothing to hold back, fetch or compare
            planned = dataclasses.replace(
                mirror, settings=dataclasses.replace(s, update_signal=None))
    plan = build_plan(planned, upstream, rsync=config.settings.rsync,
                      last_files_total=last_total,
                      own_trace=trace_path(s.trace, config.settings.hostname),
                      signal_staging=str(signal_staging(config, mirror)),
                      own_files=own_files(s.trace, config.settings.hostname), scope=run.scope,
                      protect=protected_files(s.trace))
    run.runlog.note(f"attempt {number} from {upstream} (max-delete {plan.max_delete})")
    if wants_seed(s.seed_parallel, had_success=last_total is not None):
        seeded = _seed(plan, number, run, stages,
                       Path(config.settings.state_dir) / "seed" / mirror.name)
        if seeded is not None and seeded[0].category != "ok":
            skipped.extend(x.name for x in plan.stages)
            return done(seeded[0], SEED_STAGE, seeded[1])
    return _run_stages(plan, number, run, last_total, stages, skipped, done, signal_mtime)


def _check_signal(config: Config, mirror: MirrorSpec, upstream: str, run: _RunContext,
                  ) -> tuple[tuple[Verdict, int | None] | None, float | None, bool]:
    """(None, the publish time its signal says, False) when the upstream may be synced from;
    (None, None, True) when it lacks the signal file but has content (a wrong signal path
    must not disable a mirror: the file-count and max-delete guards still hold); else (why
    not, with the probe's exit), None, False)."""
    s = mirror.settings
    assert s.update_signal is not None
    result = run.probes.pop(upstream, None) or _probe(run.budget, run.stop, config.settings.rsync,
                                                      upstream, s.update_signal, s)
    if run.stop.is_set():
        return ((Verdict("interrupted", "run.interrupted", stopped_by(run.stop)), None), None,
                False)
    ours = local_mtime(mirror.dest, s.update_signal, s.signal_kind)
    event("guard.signal", upstream=upstream, exists=result.exists, upstream_mtime=result.mtime,
          local_mtime=ours, exit_code=result.exit_code, seconds=round(result.seconds, 3))
    if result.exists:
        assert result.mtime is not None
        if ours is not None and result.mtime + MTIME_SLACK_SECONDS < ours:
            reason = (f"its {s.update_signal} is older than ours "
                      f"({time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(result.mtime))} < "
                      f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(ours))} UTC); "
                      "syncing would roll the mirror back")
            run.runlog.note(f"guard: {upstream}: {reason}")
            return (Verdict("upstream", "upstream.stale", reason), result.exit_code), None, False
        if not result.parsed:
            run.notice("profile.signal_unparsable", upstream,
                       f"{upstream}: {s.update_signal} does not read as signal_kind "
                       f"`{s.signal_kind}`; its mtime stands in — check the profile")
        return None, result.mtime, False
    if result.error_kind == "not_found":
        with run.budget.slot(upstream, run.stop) as held:
            content = has_content(config.settings.rsync, upstream, s, run.stop) if held \
                else None
        if content:
            run.notice("profile.signal_missing", upstream,
                       f"{upstream} has no {s.update_signal}, but has content: synced without "
                       "it (guarded by the file-count and max-delete bounds); the profile's "
                       "update_signal is probably wrong for this upstream")
            run.runlog.note(f"{upstream} has no {s.update_signal} but is not empty: syncing "
                            "without the signal")
            return None, None, True
        reason = f"it has no {s.update_signal}: empty, incomplete or mid-update"
        run.runlog.note(f"guard: {upstream}: {reason}")
        return (Verdict("upstream", "upstream.empty", reason, detail=printable(result.message)),
                result.exit_code), None, False
    run.runlog.note(f"probe of {upstream} failed: {result.message}")
    if result.error_kind == "rsync_missing":
        return (Verdict("local", "local.rsync_missing", result.message), None), None, False
    stage = StageResult("preflight", (), 0.0, 0.0, result.exit_code,
                        errors={result.error_kind: 1} if result.error_kind else {},
                        error_samples=(result.message,))
    verdict = judge_stage(stage, s, None)
    if verdict.category == "ok":
        verdict = Verdict("internal", "internal.error", "the probe failed",
                          detail=printable(result.message))
    return (verdict, result.exit_code), None, False


def _run_stages(plan: SyncPlan, number: int, run: _RunContext, last_total: int | None,
                stages: list[StageResult], skipped: list[str],
                done: Callable[[Verdict, str, int | None], Attempt],
                signal_mtime: float | None) -> Attempt:
    """The stages of one attempt, in order; stage 1 again while the upstream is mid-update or
    published meanwhile; then the deletions; then the update-signal file, last of all."""
    s = run.mirror.settings
    count = len(plan.stages)
    verdict = Verdict("ok", None, "complete")
    last_stage, last_exit = "preflight", None
    index = reruns = busy = pushes = 0
    _pushed_meanwhile(run)  # this run covers every push before it
    while index < count:
        stage = plan.stages[index]
        if run.stop.is_set():
            skipped.extend(x.name for x in plan.stages[index:])
            return done(Verdict("interrupted", "run.interrupted", stopped_by(run.stop)),
                        last_stage, last_exit)
        if index == 0 and stage.name == "stage2" and plan.signal is not None:
            # A stage-2 push: the signal before the stage, as a whole run fetches it between
            # the stages, so it never claims a publish that came during stage 2.
            assert plan.signal_staging is not None
            Path(plan.signal_staging).parent.mkdir(parents=True, exist_ok=True)
            fetched, verdict, _ = _run_stage(plan, plan.signal, index, count, number, run,
                                             last_total, stages)
            if verdict.category != "ok":
                skipped.extend(x.name for x in plan.stages)
                return done(verdict, SIGNAL_STAGE, fetched.exit_code)
        result, verdict, tally = _run_stage(plan, stage, index, count, number, run, last_total,
                                            stages)
        last_stage, last_exit = stage.name, result.exit_code
        if verdict.category == "ok" and stage.deletes:
            verdict = _apply_deletions(plan, result, tally, run, last_total)
        if verdict.category != "ok":
            rest = [x.name for x in plan.stages[index + 1:]]
            if rest:
                run.runlog.note(f"not running {', '.join(rest)}: {stage.name} did not "
                                "complete, and indexes must never point at files the mirror "
                                "lacks")
            skipped.extend(rest)
            return done(verdict, stage.name, result.exit_code)
        if stage.name == "stage1":
            markers = _foreign_markers(plan.dest, run.hostname)
            if markers:
                busy += 1
                why = (f"the upstream is mid-update ({', '.join(markers)} arrived in stage 1)")
                if busy > s.upstream_busy_retries:
                    skipped.extend(x.name for x in plan.stages[index + 1:])
                    return done(Verdict("upstream", "upstream.busy",
                                        f"{why}; still after {s.upstream_busy_retries} "
                                        "retries"), stage.name, result.exit_code)
                run.runlog.note(f"{why}: not running stage 2; stage 1 again in "
                                f"{s.upstream_busy_wait:.0f}s (retry {busy} of "
                                f"{s.upstream_busy_retries})")
                event("upstream.busy", markers=markers, retry=busy)
                _remove_markers(plan.dest, markers, run)
                if run.stop.wait(s.upstream_busy_wait):
                    skipped.extend(x.name for x in plan.stages[index + 1:])
                    return done(Verdict("interrupted", "run.interrupted",
                                        f"{stopped_by(run.stop)} while the upstream was busy"),
                                stage.name, result.exit_code)
                continue
            if pushes < MAX_PUSH_ROUNDS and _pushed_meanwhile(run):
                pushes += 1
                run.runlog.note("a push arrived during stage 1 (Archive-Update-Required); "
                                "stage 1 again, as ftpsync does")
                event("stage1.rerun", reason="pushed", rerun=pushes)
                continue
        if index == 0 and plan.signal is not None and stage.name != "stage2":
            # The signal now, into staging: did the upstream publish during stage 1?
            assert plan.signal_staging is not None
            Path(plan.signal_staging).parent.mkdir(parents=True, exist_ok=True)
            fetched, verdict, _ = _run_stage(plan, plan.signal, index, count, number, run,
                                             last_total, stages)
            if verdict.category != "ok":
                skipped.extend(x.name for x in plan.stages[index + 1:])
                return done(verdict, SIGNAL_STAGE, fetched.exit_code)
            newer = signal_file_time(Path(plan.signal_staging), s.signal_kind)
            if (stage.name == "stage1" and newer is not None and signal_mtime is not None
                    and newer > signal_mtime + MTIME_SLACK_SECONDS):
                signal_mtime = newer
                if reruns < s.stage1_reruns:
                    reruns += 1
                    run.runlog.note(
                        f"the upstream published again during stage 1 (its "
                        f"{s.update_signal} changed); stage 1 again ({reruns} of "
                        f"{s.stage1_reruns}) so that stage 2 brings no index whose files "
                        "the mirror lacks")
                    event("stage1.rerun", reason="published", rerun=reruns)
                    continue
                run.runlog.note(f"the upstream published again during each of "
                                f"{reruns + 1} stage-1 runs; going on with stage 2")
        index += 1
        if index == count and pushes < MAX_PUSH_ROUNDS and _pushed_meanwhile(run):
            pushes += 1
            index = 0
            run.runlog.note("a push arrived during the run (Archive-Update-Required); every "
                            "stage again, as ftpsync does")
            event("run.again", reason="pushed", round=pushes)
    if plan.signal is not None:
        problem = _install_signal(plan)
        if problem:
            run.runlog.note(problem)
            return done(Verdict("local", "local.not_writable", problem), SIGNAL_STAGE, None)
        run.runlog.note(f"{plan.signal_path} put in place, last of all")
    return done(verdict, last_stage, last_exit)


def _run_stage(plan: SyncPlan, stage: StagePlan, index: int, count: int, number: int,
               run: _RunContext, last_total: int | None, stages: list[StageResult],
               ) -> tuple[StageResult, Verdict, StageTally]:
    """Run one rsync of the plan; its result joins ``stages``."""
    s = run.mirror.settings
    stage_token = current_stage.set(stage.name)
    live = _LiveStage(stage, index, count, run, plan.max_delete)
    run.runlog.note(f"{stage.name}: {shlex.join(stage.argv)}")
    event("stage.start", argv=list(stage.argv), deletes=stage.deletes, attempt=number)
    live.publish(None, force=True)
    with run.budget.slot(plan.upstream, run.stop, partial(_waiting, run, stage.name,
                                                          plan.upstream)) as held:
        proc = run_process(stage.argv, None, on_lines=live.handle, env=RSYNC_ENV,
                           no_output_timeout=plan.no_output_timeout,
                           stop=run.stop) if held else ProcessResult(None, "signal")
    live.show_progress()
    result = _stage_result(stage.name, stage.argv, live.started, time.time(), proc,
                           live.tally, number, plan.upstream)
    stages.append(result)
    verdict = judge_stage(result, s, last_total)
    if verdict.category == "interrupted":  # the judge cannot know which signal it was
        verdict = Verdict("interrupted", "run.interrupted", stopped_by(run.stop))
    if verdict.category == "ok" and stage.name == "stage1" and last_total \
            and not stage.files_from:
        floor = last_total * (1 - s.max_delete_fraction)
        if result.files_total < floor:
            verdict = Verdict("upstream", "upstream.empty",
                              f"it lists {result.files_total} files where the mirror had "
                              f"{last_total}; stage 2 would delete the difference")
    run.runlog.note(f"{stage.name}: exit {result.exit_code} ({meaning(result.exit_code)})"
                    + (f", stopped by {result.stopped_by}" if result.stopped_by else "")
                    + (f": {result.start_error}" if result.start_error else "")
                    + f" — {verdict.category}: {verdict.reason}")
    event("stage.end", exit_code=result.exit_code, meaning=meaning(result.exit_code),
          stopped_by=result.stopped_by, duration_seconds=round(result.duration_seconds, 3),
          files_transferred=result.files_transferred, files_deleted=result.files_deleted,
          files_failed=result.files_failed, errors=result.errors,
          category=verdict.category, code=verdict.code)
    current_stage.reset(stage_token)
    if run.hooks.on_stage:
        run.hooks.on_stage(result)
    return result, verdict, live.tally


def _probe(budget: ConnectionBudget, stop: threading.Event, rsync: str, upstream: str,
           path: str, settings: SyncSettings) -> Probe:
    """The signal probe, within the upstream host's connection budget."""
    with budget.slot(upstream, stop) as held:
        if held:
            return probe(rsync, upstream, path, settings, stop)
    return Probe(upstream, 0.0, None, error_kind="other",
                 message="stopped while waiting for a connection slot")


def _waiting(run: _RunContext, stage: str, upstream: str, limit: int) -> None:
    run.runlog.note(f"{stage} waits for a connection to {upstream}: all {limit} this machine "
                    "may open to its host are in use")
    event("budget.wait", upstream=upstream, limit=limit)


def _seed(plan: SyncPlan, number: int, run: _RunContext, stages: list[StageResult],
          scratch: Path) -> tuple[Verdict, int | None] | None:
    """A new mirror's first copy in parallel streams (see :mod:`.seed`); None when it is not
    far behind the upstream, else the stage's verdict and exit status."""
    s = run.mirror.settings
    token = current_stage.set(SEED_STAGE)
    try:
        shares, size = plan_seed(plan, run.mirror.dest, s.seed_parallel, s.seed_below,
                                 run.budget, run.stop, run.runlog.note, s.seed_min_gib, scratch)
        if len(shares) < 2:
            shutil.rmtree(scratch, ignore_errors=True)
            return None
        live = _LiveStage(StagePlan(SEED_STAGE, (), deletes=False), 0, len(plan.stages), run,
                          plan.max_delete)
        event("stage.start", streams=len(shares), bytes=size, attempt=number)
        live.publish(None, force=True)

        def lines(number: int, stream: str, got: list[str]) -> None:
            run.runlog.write_lines(f"{stream}{number}", got)
            if run.hooks.on_line:
                for line in got:
                    run.hooks.on_line(SEED_STAGE, stream, line)

        seeded = run_seed(plan, shares, scratch, budget=run.budget, stop=run.stop,
                          on_lines=lines, total_size=size, on_progress=live.publish,
                          note=run.runlog.note)
        result = _stage_result(SEED_STAGE, seeded.argv, seeded.started, time.time(),
                               seeded.result, seeded.tally, number, plan.upstream)
        stages.append(result)
        verdict = judge_stage(result, s, None)
        if verdict.category == "interrupted":
            verdict = Verdict("interrupted", "run.interrupted", stopped_by(run.stop))
        run.runlog.note(f"seed: exit {result.exit_code} ({meaning(result.exit_code)}) — "
                        f"{verdict.category}: {verdict.reason}")
        event("stage.end", exit_code=result.exit_code, stopped_by=result.stopped_by,
              duration_seconds=round(result.duration_seconds, 3),
              files_transferred=result.files_transferred, errors=result.errors,
              category=verdict.category, code=verdict.code)
    finally:
        current_stage.reset(token)
    if run.hooks.on_stage:
        run.hooks.on_stage(result)
    return verdict, result.exit_code


def _apply_deletions(plan: SyncPlan, result: StageResult, tally: StageTally, run: _RunContext,
                     last_total: int | None) -> Verdict:
    """Delete what the upstream dropped, as far as it is safe; record what stays."""
    s = run.mirror.settings
    now = time.time()
    try:
        pending = run.store.pending_deletions(run.mirror.name)
    except StateUnavailable as exc:  # a fleet store cut off mid-run: delete nothing now
        why = "the store cannot be read (their grace times are kept there)"
        run.runlog.note(f"deletions: none this run, {why}: {exc}")
        run.deletions = Deletions(listed=tally.candidates_total, skipped=why,
                                  skipped_runs=run.previous_skipped_runs + 1)
        event("deletions.skipped", candidates=tally.candidates_total, why=why, error=str(exc))
        return Verdict("ok", None, "complete")
    decided = plan_deletions(
        tally.candidates, tally.candidates_total, settings=s, bound=plan.max_delete,
        pending=pending, now=now, error_paths=tally.error_paths,
        error_paths_complete=tally.error_paths_complete,
        unattributed_errors=tally.unattributed_errors,
        failure_ratio=failure_ratio(result.files_failed, result.files_total, last_total))
    if decided.mass_delete:
        run.runlog.note(f"deletions: the upstream dropped {decided.candidates} files, more than "
                        f"the bound of {plan.max_delete}; deleting none")
        run.deletions = Deletions(listed=decided.candidates, mass_delete=True)
        run.store.set_pending_deletions(run.mirror.name, dict(decided.keep))
        event("deletions.mass", candidates=decided.candidates, bound=plan.max_delete)
        return Verdict("guard", "guard.mass_delete",
                       f"the upstream dropped {decided.candidates} files, more than the "
                       f"max-delete bound of {plan.max_delete}; none deleted")
    gone = delete_paths(plan.dest, decided.delete, run.runlog.note)
    keep = dict(decided.keep)
    keep.update((path, pending.get(path, now)) for path, _why in gone.failed)
    run.store.set_pending_deletions(run.mirror.name, keep)
    skipped_runs = run.previous_skipped_runs + 1 if decided.skipped else 0
    run.deletions = Deletions(listed=decided.candidates, deleted=gone.deleted,
                              waiting=decided.waiting, protected=decided.protected,
                              failed=len(gone.failed), skipped=decided.skipped,
                              skipped_runs=skipped_runs)
    if decided.candidates:
        run.runlog.note(
            f"deletions: the upstream dropped {decided.candidates}; deleted {gone.deleted}"
            + (f", {decided.waiting} wait for delete_grace" if decided.waiting else "")
            + (f", {decided.protected} kept: the upstream reported errors for their paths"
               if decided.protected else "")
            + (f", {len(gone.failed)} could not be deleted" if gone.failed else "")
            + (f"; none deleted: {decided.skipped}" if decided.skipped else ""))
    event("deletions", candidates=decided.candidates, deleted=gone.deleted,
          waiting=decided.waiting, protected=decided.protected, failed=len(gone.failed),
          skipped=decided.skipped)
    return Verdict("ok", None, "complete")


#: ftpsync's lock file in the published tree: the upstream is mid-update while it is there.
MARKER_PREFIX = IN_PROGRESS_PREFIX


def _foreign_markers(dest: str, hostname: str) -> list[str]:
    """The upstreams' in-progress markers that stage 1 brought (ours excluded)."""
    try:
        names = os.listdir(dest)
    except OSError:
        return []
    return sorted(n for n in names
                  if n.startswith(MARKER_PREFIX) and n != MARKER_PREFIX + hostname)


def _remove_markers(dest: str, markers: list[str], run: _RunContext) -> None:
    """ftpsync removes a foreign marker it pulled: the mirror must not look mid-update."""
    for name in markers:
        try:
            os.unlink(os.path.join(dest, name))
        except OSError as exc:
            run.runlog.note(f"cannot remove {name}: {exc.strerror}")


#: A run goes round again for pushes that came meanwhile at most this often; a marker still
#: there after that stays for the next run.
MAX_PUSH_ROUNDS = 10


def _pushed_meanwhile(run: _RunContext) -> bool:
    """Consume the ``Archive-Update-Required`` marker a push left: True if there was one."""
    if run.required is None or not run.required.exists():
        return False
    try:
        run.required.unlink()
    except FileNotFoundError:
        return False
    return True


def _install_signal(plan: SyncPlan) -> str | None:
    """Put the fetched update signal into the mirror (atomically, its mtime kept); None when
    done, else why not."""
    assert plan.signal_staging and plan.signal_path
    target = Path(plan.dest, plan.signal_path)
    temporary = target.with_name(f".{target.name}.mirrorkeeper-new")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(plan.signal_staging, temporary)
        os.replace(temporary, target)
    except OSError as exc:
        return f"cannot put {plan.signal_path} in place: {exc.strerror or exc}"
    return None


#: How often a running stage's progress reaches the display and the estimate (the store is
#: written less often still, every ``live_interval``).
PROGRESS_EVERY = 0.25


class _LiveStage:
    """The line handler of one running stage: log, parse, tally, publish progress."""

    def __init__(self, stage: StagePlan, index: int, count: int, run: _RunContext,
                 max_delete: int) -> None:
        self.stage, self.index, self.count, self.run = stage, index, count, run
        self.tally = StageTally(listing=stage.deletes, candidate_limit=max_delete + 1)
        self.started = time.time()
        self._published = 0.0
        self._shown = 0.0
        self._unshown = False
        self._live_failed = False

    def publish(self, progress: Progress | None, force: bool = False) -> None:
        if self.stage.name in (SIGNAL_STAGE, FILELIST_STAGE):
            return  # one small file between the stages: no place on the progress bar
        run = self.run
        now = time.time()
        live = estimate(progress, stage=self.stage.name, stage_index=self.index,
                        stage_count=self.count, elapsed_seconds=now - self.started,
                        last_files_total=run.last_total, weights=run.weights)
        if run.hooks.on_progress:
            run.hooks.on_progress(live)
        if force or now - self._published >= run.live_interval:
            self._published = now
            try:
                run.store.update_live(run.mirror.name, run.run_id, live, now)
            except StateUnavailable as exc:
                # Live progress is for watching; the state disk filling up mid-run must not
                # stop the transfer. Said once per stage; the run's end reports what is lost.
                if not self._live_failed:
                    self._live_failed = True
                    event("live.write_failed", level=logging.ERROR, error=str(exc))

    def handle(self, stream: str, lines: list[str]) -> None:
        """The lines of one read of rsync's pipe: logged together, counted one by one, and
        progress shown at most every ``PROGRESS_EVERY`` seconds (rsync prints it per file)."""
        self.run.runlog.write_lines(stream, lines)
        feed = self.tally.feed
        progressed = False
        for line in lines:
            progressed = feed(line) or progressed
        if progressed:
            self._unshown = True
            now = time.monotonic()
            if now - self._shown >= PROGRESS_EVERY:
                self.show_progress(now)
        if self.run.hooks.on_line:
            for line in lines:
                self.run.hooks.on_line(self.stage.name, stream, line)

    def show_progress(self, now: float | None = None) -> None:
        """Publish the newest progress update (at a stage's end: the one the throttle held)."""
        if self._unshown:
            self._shown, self._unshown = now or time.monotonic(), False
            self.publish(self.tally.last_progress)


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
    rsync: str
    hostname: str
    #: Runs in a row before this one whose deletions were skipped.
    previous_skipped_runs: int
    #: Update-signal probes already made (to rank upstreams), used once by the first check.
    probes: dict[str, Probe] = field(default_factory=dict)
    #: What the final attempt's deleting stage did with the files the upstream dropped.
    deletions: Deletions | None = None
    #: Things the run noticed that become findings: (code, upstream, summary).
    notices: list[tuple[str, str, str]] = field(default_factory=list)
    #: ``all``, ``stage1`` or ``stage2`` (a staged push).
    scope: str = "all"
    #: ftpsync's ``Archive-Update-Required-<host>`` (None: the mirror has no markers).
    required: Path | None = None
    #: Connection slots per upstream host, shared with every process on this machine.
    budget: ConnectionBudget = field(default_factory=unlimited)
    #: The last successful run's tree size (a no-change file-list run keeps it).
    last_size: int | None = None
    #: This attempt of a file-list mirror is a full two-stage rsync.
    full_run: bool = False

    def notice(self, code: str, upstream: str, summary: str) -> None:
        if (code, upstream, summary) not in self.notices:
            self.notices.append((code, upstream, summary))
            event("run.notice", code=code, upstream=upstream, summary=summary)


