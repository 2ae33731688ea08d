"""Run several rsyncs at once and fold them into one stage (I/O, with a pure fold).

Each stream is one :func:`~mirrorkeeper.rsync.process.run_process` in a thread of its own (so
each is registered with this process's guardian), started only once it holds a slot of the
upstream host's connection budget. The streams share the run's stop request: a SIGTERM stops
every one. When one stream fails the others are stopped too — the stage has failed, and the
retry loop decides what comes next — and the folded stage reports the failure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..errors import StateUnavailable
from ..rsync.parse import Progress
from ..rsync.process import ProcessResult, run_process
from ..rsync.tally import SAMPLE_LIMIT, StageTally
from .budget import ConnectionBudget

#: What a stream's line handler receives: (stream number from 1, pipe name, lines).
StreamLines = Callable[[int, str, list[str]], None]


@dataclass(frozen=True)
class StreamRun:
    number: int
    argv: tuple[str, ...]
    result: ProcessResult
    tally: StageTally
    started: float
    finished: float


def _failed(result: ProcessResult) -> bool:
    return result.exit_code not in (0, 24) or result.stopped_by is not None


class Streams:
    """``Streams(argvs, ...).run()`` — every stream's outcome, in stream order."""

    def __init__(self, argvs: Sequence[tuple[str, ...]], *, upstream: str,
                 budget: ConnectionBudget, stop: threading.Event, env: Mapping[str, str],
                 no_output_timeout: float, on_lines: StreamLines | None = None,
                 on_wait: Callable[[int, int], None] | None = None) -> None:
        self.argvs = list(argvs)
        self.upstream, self.budget, self.env = upstream, budget, env
        self.parent_stop = stop
        #: Set by the run's stop request or by a failed stream: every stream watches it.
        self.stop = threading.Event()
        self.no_output_timeout = no_output_timeout
        self.on_lines = on_lines
        self.on_wait = on_wait
        self.tallies = [StageTally() for _ in self.argvs]
        self.lock = threading.Lock()
        self._runs: dict[int, StreamRun] = {}

    def progress(self) -> Progress | None:
        """The streams' progress summed: bytes done, rate, files transferred."""
        updates = [p for t in self.tallies if (p := t.last_progress) is not None]
        if not updates:
            return None
        return Progress(bytes_done=sum(p.bytes_done for p in updates), percent=0,
                        rate_bps=sum(p.rate_bps for p in updates),
                        transferred=sum(p.transferred or 0 for p in updates), to_check=None,
                        total_known=None, incremental=False)

    def _one(self, index: int) -> None:
        number, argv, tally = index + 1, self.argvs[index], self.tallies[index]

        def handle(stream: str, lines: list[str]) -> None:
            with self.lock:
                for line in lines:
                    tally.feed(line)
                if self.on_lines is not None:
                    self.on_lines(number, stream, lines)

        started = time.time()
        report = self.on_wait

        def waited(limit: int) -> None:
            if report is not None:
                report(number, limit)

        try:
            with self.budget.slot(self.upstream, self.stop, waited) as held:
                if not held:
                    result = ProcessResult(None, "signal")
                else:
                    result = run_process(argv, None, on_lines=handle, env=self.env,
                                         no_output_timeout=self.no_output_timeout,
                                         stop=self.stop)
        except StateUnavailable as exc:  # the slot files: the stage fails, saying why
            result = ProcessResult(None, None, start_error=str(exc))
        with self.lock:
            self._runs[index] = StreamRun(number, argv, result, tally, started, time.time())
        if _failed(result):
            self.stop.set()

    def run(self, on_tick: Callable[[], None] | None = None,
            tick_seconds: float = 0.25) -> list[StreamRun]:
        """Start every stream, call ``on_tick`` every ``tick_seconds`` while any runs."""
        threads = [threading.Thread(target=self._one, args=(i,), name=f"stream-{i + 1}",
                                    daemon=True) for i in range(len(self.argvs))]
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            if self.parent_stop.wait(tick_seconds):
                self.stop.set()
            if on_tick is not None:
                on_tick()
        for thread in threads:
            thread.join()
        if on_tick is not None:
            on_tick()  # the streams' last progress lines
        return [self._runs[i] for i in range(len(self.argvs))]


def _worst(runs: Sequence[StreamRun]) -> StreamRun:
    """The stream that speaks for the stage: the first to fail on its own (not stopped
    because another failed), else the first stopped, else the last."""
    failed = sorted((r for r in runs if _failed(r.result)), key=lambda r: r.finished)
    own = [r for r in failed if r.result.stopped_by is None]
    return (own or failed or list(runs))[0 if own or failed else -1]


def fold(runs: Sequence[StreamRun]) -> tuple[ProcessResult, StageTally]:
    """One process result and one tally for the stage (pure): counts and stats summed, error
    kinds merged, samples kept up to the tally's limit (each marked with its stream), the
    exit status and stop reason of the stream that failed first."""
    total = StageTally()
    for run in runs:
        t = run.tally
        for name, value in t.stats.items():
            total.stats[name] = total.stats.get(name, 0) + value
        total.items.update(t.items)
        total.errors.update(t.errors)
        total.items_received += t.items_received
        total.files_failed += t.files_failed
        total.unparsed += t.unparsed
        for sample in t.error_samples:
            if len(total.error_samples) < SAMPLE_LIMIT:
                total.error_samples.append(f"[stream {run.number}] {sample}")
        total.dry_run = total.dry_run or t.dry_run
    if any(r.tally.stats_files_transferred is None for r in runs):
        total.stats.pop("files_transferred", None)  # a stream without a stats block
    worst = _worst(runs)
    total.exit_line = worst.tally.exit_line
    return worst.result, total
