"""Before a sync touches the mirror: ask the upstream for its update-signal file (I/O).

One ``rsync --list-only`` of one small file costs a connection and a few hundred bytes, not a
tree walk. It tells whether the upstream is reachable, whether it has the signal at all, and
whether its copy is older than ours — an upstream that would roll the mirror back.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..config.spec import SyncSettings
from ..plan.argv import connection_options
from ..plan.due import SIGNAL_SLACK_SECONDS
from ..plan.signals import MAX_SIGNAL_BYTES, content_parses, signal_time
from ..rsync.parse import Error, parse_line, parse_list_line
from ..rsync.process import run_process

#: An upstream's signal may lag ours by this much (clock and filesystem granularity); the same
#: slack that decides whether a polled signal is newer than ours.
MTIME_SLACK_SECONDS = SIGNAL_SLACK_SECONDS


@dataclass(frozen=True)
class Probe:
    upstream: str
    seconds: float
    exit_code: int | None
    exists: bool = False
    mtime: float | None = None
    error_kind: str | None = None
    message: str = ""
    #: For the content kinds: whether the content carried a time (else the mtime stood in).
    parsed: bool = True


def run_short(argv: list[str], timeout: float, stop: threading.Event | None = None,
              ) -> subprocess.CompletedProcess[str] | tuple[str, str]:
    """Run a short rsync (a listing, one file) in the C locale and UTC; (error kind, message)
    when it could not run, was silent for ``timeout`` or was stopped by ``stop``. It runs as
    every rsync does (:func:`~mirrorkeeper.rsync.process.run_process`): in a group of its
    own that dies with us, and stopped at once on request — an upstream that accepts the
    connection and never answers would otherwise hold a stop for ``timeout`` (ten minutes)."""
    out: list[str] = []
    err: list[str] = []

    def collect(stream: str, lines: list[str]) -> None:
        (out if stream == "out" else err).extend(lines)

    result = run_process(argv, None, on_lines=collect, env={"LC_ALL": "C", "TZ": "UTC"},
                         no_output_timeout=timeout, stop=stop)
    if result.start_error is not None:
        return "rsync_missing", result.start_error
    if result.stopped_by == "watchdog":
        return "timeout", f"no answer within {timeout:.0f}s"
    if result.stopped_by is not None or result.exit_code is None:
        return "stopped", "stopped before the upstream answered"
    return subprocess.CompletedProcess(argv, result.exit_code, "".join(f"{x}\n" for x in out),
                                       "".join(f"{x}\n" for x in err))


def probe(rsync: str, upstream: str, path: str, settings: SyncSettings,
          stop: threading.Event | None = None) -> Probe:
    """Ask ``upstream`` for its signal ``path``: listed (``mtime`` kind) or fetched and read
    (the kinds whose content carries the time). Never raises for upstream trouble.

    ``Probe.mtime`` is the publish time the signal says, comparable with
    :func:`local_mtime` of the same kind.
    """
    source = upstream.rstrip("/") + "/" + path.lstrip("/")
    kind = settings.signal_kind
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mk-signal-") as scratch:
        copy = Path(scratch, "signal")
        argv = ([rsync, "--list-only"] if kind == "mtime" else [rsync, "--times", "--copy-links"])
        argv += ["--no-motd", "--no-human-readable", *connection_options(settings, upstream),
                 source]
        if kind != "mtime":
            argv.append(str(copy))
        proc = run_short(argv, settings.contimeout + settings.timeout, stop)
        seconds = time.monotonic() - started
        if isinstance(proc, tuple):
            return Probe(upstream, seconds, None, error_kind=proc[0], message=proc[1])
        if proc.returncode == 0 and kind != "mtime" and copy.is_file():
            with copy.open("rb") as handle:
                content = handle.read(MAX_SIGNAL_BYTES)
            return Probe(upstream, seconds, 0, exists=True,
                         mtime=signal_time(kind, content, copy.stat().st_mtime),
                         parsed=content_parses(kind, content))
    for line in proc.stdout.splitlines():
        entry = parse_list_line(line)
        if entry is not None and proc.returncode == 0:
            return Probe(upstream, seconds, 0, exists=True, mtime=entry.mtime)
    kinds = [e.kind for e in map(parse_line, proc.stderr.splitlines()) if isinstance(e, Error)]
    message = proc.stderr.strip().splitlines()[0] if proc.stderr.strip() else ""
    if "not_found" in kinds or proc.returncode == 23:
        return Probe(upstream, seconds, proc.returncode, exists=False, error_kind="not_found",
                     message=message or f"{path} not found")
    return Probe(upstream, seconds, proc.returncode,
                 error_kind=next((k for k in kinds if k != "other"), "other"), message=message)


def local_mtime(dest: str, path: str, kind: str = "mtime") -> float | None:
    """The publish time our copy of the signal says (None: we have none)."""
    return signal_file_time(Path(dest, path), kind)


def signal_file_time(path: Path, kind: str = "mtime") -> float | None:
    try:
        mtime = path.stat().st_mtime
        if kind == "mtime":
            return mtime
        with path.open("rb") as handle:
            return signal_time(kind, handle.read(MAX_SIGNAL_BYTES), mtime)
    except OSError:
        return None


def has_content(rsync: str, upstream: str, settings: SyncSettings,
                stop: threading.Event | None = None) -> bool | None:
    """Whether the upstream's top level lists anything but itself (None: could not tell).
    One non-recursive listing: cheap, and enough to tell an empty module from one that only
    lacks the signal file."""
    argv = [rsync, "--list-only", "--no-motd", "--no-human-readable",
            *connection_options(settings, upstream), upstream.rstrip("/") + "/"]
    proc = run_short(argv, settings.contimeout + settings.timeout, stop)
    if isinstance(proc, tuple) or proc.returncode != 0:
        return None
    entries = [e for e in map(parse_list_line, proc.stdout.splitlines()) if e is not None]
    return any(e.name not in (".", "..") for e in entries)
