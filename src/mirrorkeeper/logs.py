"""Logs (I/O): a JSON-lines event log for machines, and one plain log per run with every line
rsync printed, for humans. Context (mirror, run id, stage) rides on contextvars so every record
carries it without threading it through calls."""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import gzip
import json
import logging
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from .access import Place, os_problem, require_writable
from .errors import StateUnavailable

EVENT_LOG = "events.jsonl"
logger = logging.getLogger("mirrorkeeper")

current_mirror: contextvars.ContextVar[str | None] = contextvars.ContextVar("mirror", default=None)
current_run: contextvars.ContextVar[int | None] = contextvars.ContextVar("run_id", default=None)
current_stage: contextvars.ContextVar[str | None] = contextvars.ContextVar("stage", default=None)


def iso(ts: float | None) -> str | None:
    """UTC ISO 8601 with a Z, the one time format of every JSON output."""
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": iso(record.created),
            "level": record.levelname.lower(),
            "mirror": current_mirror.get(),
            "run_id": current_run.get(),
            "stage": current_stage.get(),
            "event": getattr(record, "event", record.getMessage()),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


#: One event-log switch at a time: the daemon's workers may each start a run at once, and
#: two switches at once could both add a handler.
_SETUP = threading.Lock()


def setup_event_log(log_dir: str | Path) -> None:
    """Send events to ``LOG_DIR/events.jsonl``; a previous event log of this process (another
    config) is closed and replaced, so events never go to a stale file.

    Only commands that act open it: a reader must work for a user who may not write here. A
    file this user may not write (left by a run as root) is exit 73 naming it and its owner.
    """
    root = Path(log_dir)
    path = root / EVENT_LOG
    with _SETUP:
        for handler in list(logger.handlers):
            if isinstance(handler, _EventFileHandler):
                if handler.baseFilename == str(path.absolute()):
                    return
                logger.removeHandler(handler)
                handler.close()
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateUnavailable("log directory", str(log_dir),
                                   exc.strerror or str(exc)) from exc
        require_writable([Place("log directory", root, root), Place("event log", path, root)])
        try:
            handler = _EventFileHandler(path, encoding="utf-8")
        except OSError as exc:
            raise os_problem(exc, Place("event log", path, root)) from exc
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


class LineFormatter(logging.Formatter):
    """One readable line per event, for a terminal or journald: ``event mirror=… key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [record.levelname.lower(), getattr(record, "event", record.getMessage())]
        context = (("mirror", current_mirror.get()), ("run", current_run.get()))
        fields = {**{k: v for k, v in context if v is not None},
                  **getattr(record, "fields", {})}
        parts += [f"{key}={json.dumps(value, default=str)}" for key, value in fields.items()
                  if value is not None]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


#: The same warning or error (same logger, event and mirror) at most once per this many
#: seconds on stderr; the next one that gets through says how many were held back.
REPEAT_WINDOW_SECONDS = 300.0


class Repeats(logging.Filter):
    """Rate-limits repeated warnings and errors, so that a condition that lasts (a full disk,
    an unreachable queue) is one line every few minutes in the journal, not thousands."""

    def __init__(self, window: float = REPEAT_WINDOW_SECONDS) -> None:
        super().__init__()
        self.window = window
        self._seen: dict[tuple[str, str, str], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        fields = getattr(record, "fields", {})
        key = (record.name, str(getattr(record, "event", record.msg)),
               str(fields.get("mirror") or current_mirror.get() or ""))
        now = time.monotonic()
        with self._lock:
            last, held = self._seen.get(key, (-self.window, 0))
            if now - last < self.window:
                self._seen[key] = (last, held + 1)
                return False
            self._seen[key] = (now, 0)
        if held:
            if hasattr(record, "fields"):
                record.fields = {**fields, "repeated": held}
            else:
                record.msg = f"{record.msg} (and {held} more like it)"
        return True


def log_to_stderr() -> None:
    """The daemon's events (and its libraries' warnings) on stderr, where systemd collects
    them, repeated warnings and errors rate-limited; the JSON event log stays the complete
    record."""
    handler = logging.StreamHandler()
    handler.setFormatter(LineFormatter())
    handler.addFilter(Repeats())
    logger.addHandler(handler)
    for name in ("huey", "uvicorn.error"):
        library = logging.getLogger(name)
        library.addHandler(handler)
        library.setLevel(logging.WARNING)


#: How often a failing event log (full disk) may say so on stderr.
COMPLAINT_INTERVAL_SECONDS = 300.0


class _EventFileHandler(logging.FileHandler):
    """The handler this module owns. A write that fails (a full disk) prints one line on
    stderr at most every few minutes, never logging's traceback per event, and the next
    event that fits is written as usual."""

    _last_complaint = -COMPLAINT_INTERVAL_SECONDS
    _lost = 0

    def emit(self, record: logging.LogRecord) -> None:
        """Once replaced (:func:`setup_event_log` for another config), an event a thread was
        still sending here goes to the log that replaced it: logging's FileHandler would
        reopen its closed file instead, and that file would be left open."""
        if getattr(self, "_closed", False):
            for handler in list(logger.handlers):
                if isinstance(handler, _EventFileHandler) and handler is not self \
                        and not getattr(handler, "_closed", False):
                    handler.handle(record)
            return
        super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        self._lost += 1
        now = time.monotonic()
        if now - self._last_complaint < COMPLAINT_INTERVAL_SECONDS:
            return
        self._last_complaint = now
        reason = (error.strerror or str(error)) if isinstance(error, OSError) else repr(error)
        sys.stderr.write(f"mirrorkeeper: cannot write the event log {self.baseFilename}: "
                         f"{reason}; {self._lost} event(s) lost so far\n")


def event(name: str, level: int = logging.INFO, **fields: Any) -> None:
    logger.log(level, name, extra={"event": name, "fields": fields})


class RunLog:
    """``LOG_DIR/runs/MIRROR/YYYYmmddTHHMMSSZ-RUNID.log``: a header per stage, then every rsync
    line with a timestamp and the stream it came on."""

    def __init__(self, log_dir: str | Path, mirror: str, run_id: int, started_at: float) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started_at))
        self.dir = Path(log_dir) / "runs" / mirror
        self.path = self.dir / f"{stamp}-{run_id}.log"
        self._file: TextIO | None = None
        self._second = -1
        self._clock = ""
        self._flushed = 0.0

    def open(self) -> RunLog:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise os_problem(exc, Place("run log", self.path, self.dir.parent.parent)) from exc
        return self

    def note(self, text: str) -> None:
        self.write("--", f"# {text}")
        if self._file is not None:
            try:
                self._file.flush()
            except OSError as exc:
                self._failed(exc)

    def write(self, stream: str, line: str) -> None:
        """One line with its time (see :meth:`write_lines`)."""
        self.write_lines(stream, [line])

    def write_lines(self, stream: str, lines: list[str]) -> None:
        """Lines that arrived together (one read of rsync's pipe), with one time for all.

        Buffered, and flushed at least every 0.2 s, so that ``logs --follow`` keeps up without
        a write per line (100,000 on a large sync). Once a write fails (a full disk), the log
        stops, says so in the event log, and the sync goes on: the log must not be what stops
        a mirror."""
        if self._file is not None:
            now = time.time()
            second = int(now)
            if second != self._second:
                self._second, self._clock = second, time.strftime("%H:%M:%S",
                                                                  time.gmtime(second))
            prefix = f"{self._clock}.{int(now % 1 * 1000):03d} {stream} "
            try:
                self._file.write(prefix + f"\n{prefix}".join(lines) + "\n")
                if now - self._flushed >= 0.2:
                    self._flushed = now
                    self._file.flush()
            except OSError as exc:
                self._failed(exc)

    def _failed(self, exc: OSError) -> None:
        event("runlog.write_failed", level=logging.ERROR, path=str(self.path),
              error=exc.strerror or str(exc))
        self.close()

    def close(self) -> None:
        if self._file is not None:
            handle, self._file = self._file, None
            try:
                handle.flush()
            except OSError as exc:  # the buffered last lines did not fit
                event("runlog.write_failed", level=logging.ERROR, path=str(self.path),
                      error=exc.strerror or str(exc))
            with contextlib.suppress(OSError):
                handle.close()

    def __enter__(self) -> RunLog:
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


#: The newest run logs of a mirror stay plain text; older ones are gzipped.
KEEP_PLAIN = 5


def prune_run_logs(log_dir: str | Path, mirror: str, keep: int, max_age_days: float = 0,
                   now: float | None = None) -> list[Path]:
    """Keep the newest ``keep`` run logs of ``mirror`` (and none older than ``max_age_days``,
    if set); gzip all but the newest few. Return what was deleted."""
    directory = Path(log_dir) / "runs" / mirror
    if not directory.is_dir() or keep <= 0:
        return []
    logs = sorted((p for p in directory.iterdir() if p.name.endswith((".log", ".log.gz"))),
                  key=lambda p: (p.stat().st_mtime, p.name))
    now = now or time.time()
    doomed = logs[: max(0, len(logs) - keep)]
    if max_age_days > 0:
        doomed += [p for p in logs[len(doomed):-1]
                   if now - p.stat().st_mtime > max_age_days * 86400]
    for path in doomed:
        os.unlink(path)
    kept = [p for p in logs if p not in doomed]
    for path in kept[: max(0, len(kept) - KEEP_PLAIN)]:
        if path.name.endswith(".log"):
            _gzip(path)
    return doomed


def _gzip(path: Path) -> None:
    target = path.with_name(path.name + ".gz")
    with open(path, "rb") as src, gzip.open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)
    stat = path.stat()
    os.utime(target, (stat.st_atime, stat.st_mtime))  # keep its place in the order
    os.unlink(path)


def open_run_log(path: str | Path) -> TextIO:
    """A run log, plain or already compressed."""
    p = Path(path)
    if not p.exists() and Path(str(p) + ".gz").exists():
        p = Path(str(p) + ".gz")
    if p.name.endswith(".gz"):
        return gzip.open(p, "rt", encoding="utf-8", errors="replace")
    return open(p, encoding="utf-8", errors="replace")
