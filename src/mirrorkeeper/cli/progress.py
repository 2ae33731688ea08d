"""What ``sync`` shows while rsync runs: a rich bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from ..config.durations import format_duration
from ..record.present import human_bytes
from ..record.progress import LiveProgress

PLAIN_INTERVAL = 10.0


def describe(live: LiveProgress) -> str:
    pct = f"{live.percent:5.1f}%" if live.percent is not None else "  ?  %"
    parts = [f"{live.stage} {pct}", human_bytes(live.bytes_done),
             f"{human_bytes(live.rate_bps)}/s"]
    if live.files_checked is not None and live.files_expected:
        parts.append(f"{live.files_checked}/{live.files_expected} files"
                     + (" (list growing)" if live.incremental else ""))
    if live.eta_seconds is not None:
        parts.append(f"ETA {format_duration(live.eta_seconds)}")
    return "  ".join(parts)


class ProgressDisplay:
    def __init__(self, mirror: str, console: Console, enabled: bool = True) -> None:
        self.mirror = mirror
        self.console = console
        self.enabled = enabled
        self.tty = console.is_terminal
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._last_plain = 0.0

    def __enter__(self) -> ProgressDisplay:
        if self.enabled and self.tty:
            self._progress = Progress(
                TextColumn("[bold]{task.fields[mirror]}"), BarColumn(),
                TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                console=self.console, transient=True)
            self._progress.start()
            self._task = self._progress.add_task("sync", total=100, mirror=self.mirror,
                                                 detail="starting")
        elif self.enabled:
            self.console.print(f"{self.mirror}: starting", markup=False)
        return self

    def update(self, live: LiveProgress) -> None:
        if not self.enabled:
            return
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=live.percent or 0, detail=describe(live))
            return
        now = time.monotonic()
        if now - self._last_plain >= PLAIN_INTERVAL:
            self._last_plain = now
            self.console.print(f"{self.mirror}: {describe(live)}", markup=False)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()
