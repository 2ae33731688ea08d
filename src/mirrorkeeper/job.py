"""One sync and everything after it — the unit of work of ``sync``, ``trigger`` and the daemon.

sync → metrics (stream + Prometheus textfile) → alerts. What happens after the sync must never
undo it: a failure there is logged and reported, not raised.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from .config.spec import Config, MirrorSpec
from .logs import event
from .metrics.sink import MetricsSink
from .record import RunRecord
from .record.progress import LiveProgress
from .store import Store
from .sync.prefetch import ProbePrefetch
from .sync.run import LineCallback, ProgressCallback, sync_mirror


@dataclass
class JobResult:
    record: RunRecord
    #: Alert notices raised by this run ("new critical upstream.stale", ...).
    notices: list[str] = field(default_factory=list)
    #: Things after the sync that went wrong (a metrics file that cannot be written, ...).
    problems: list[str] = field(default_factory=list)


def write_textfile(config: Config, store: Store) -> str | None:
    """Rewrite the Prometheus textfile, if configured; return a problem or None."""
    path = config.metrics.prometheus_textfile
    if not path:
        return None
    from .metrics.prometheus import write_textfile as write

    try:
        write(config, store, path)
    except OSError as exc:
        event("metrics.textfile_failed", level=logging.ERROR, path=path, error=str(exc))
        return f"cannot write {path}: {exc.strerror}"
    return None


def after_run(config: Config, mirror: MirrorSpec, store: Store, record: RunRecord,
              sink: MetricsSink | None, result: JobResult, *, deliver: bool = True,
              stop: threading.Event | None = None) -> None:
    if store.deferred(record.run_id):
        # Spooled (the fleet store is unreachable): the figures go out now, without the
        # store's age; the store judges the run (alerts) when the daemon replays it.
        if sink is not None:
            from .metrics.wire import run_values

            sink.send(record.mirror, run_values(record))
        from .alerts.direct import notify_spooled_run
        from .store.spooling import SpoolingStore

        try:
            sent = notify_spooled_run(config, mirror, store, record, stop)
            if sent and isinstance(store, SpoolingStore):
                store.sent_directly(record.run_id, sent)
            result.notices += [f"alert sent directly: {mirror.name} {code} (critical)"
                               for code in sent]
        except Exception as exc:  # noqa: BLE001 - the run is done and spooled
            event("alert.failure", level=logging.ERROR, error=repr(exc))
            result.problems.append(f"alerting failed: {exc!r}")
        result.problems.append(
            f"run {record.run_id} is spooled in {config.settings.state_dir}/spool (the fleet "
            "store is unreachable, or runs spooled earlier wait to be stored first); the "
            "host's daemon stores it, and raises its alerts, when the store takes it")
        return
    if sink is not None:
        sink.run(record, store)
    problem = write_textfile(config, store)
    if problem:
        result.problems.append(problem)
    from .alerts.dispatch import deliver_pending, process_run

    try:
        for notice in process_run(config, mirror, store, record):
            result.notices.append(f"alert {notice.kind}: {notice.mirror} {notice.code} "
                                  f"({notice.severity})")
        if deliver:
            deliver_pending(config, store, stop=stop)
    except Exception as exc:  # noqa: BLE001 - the sync itself is done and recorded
        event("alert.failure", level=logging.ERROR, error=repr(exc))
        result.problems.append(f"alerting failed: {exc!r}")


def run_job(config: Config, mirror: MirrorSpec, store: Store, *, stop: threading.Event,
            sink: MetricsSink | None = None, on_progress: ProgressCallback | None = None,
            on_line: LineCallback | None = None, deliver: bool = True, scope: str = "all",
            trigger: str = "", mhop: bool = False,
            prefetch: ProbePrefetch | None = None) -> JobResult:
    """Sync ``mirror`` once, then stream its figures and raise its alerts.

    ``deliver``: send the queued notifications before returning (``sync``, ``trigger``); the
    daemon sends them from its own workers instead, so a job never waits for a plugin. The
    run record is final before any plugin runs: its duration never includes one.

    Raises :class:`~mirrorkeeper.sync.lock.MirrorLocked` when the mirror is already running.
    """

    def progress(live: LiveProgress) -> None:
        if on_progress is not None:
            on_progress(live)
        if sink is not None:
            sink.progress(mirror.name, live)

    record = sync_mirror(config, mirror, store, stop=stop, on_progress=progress, on_line=on_line,
                         scope=scope, trigger=trigger, prefetch=prefetch)
    if mirror.settings.downstreams:  # hub mode: after our lock and markers are gone
        from .sync.hub import push_after

        pushed = push_after(mirror, record, scope, mhop, stop)
        if pushed is not record:
            record = pushed
            store.finish_run(record)  # the same run, now with its downstreams
    result = JobResult(record)
    after_run(config, mirror, store, record, sink, result, deliver=deliver, stop=stop)
    return result
