"""Before a sync touches the mirror: ask the upstream for its update-signal file (I/O).

One ``rsync --list-only`` of one small file costs a connection and a few hundred bytes, not a
tree walk. It tells whether the upstream is reachable, whether it has the signal at all, and
whether its copy is older than ours — an upstream that would roll the mirror back.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..config.spec import SyncSettings
from ..plan.argv import connection_options
from ..plan.due import SIGNAL_SLACK_SECONDS
from ..rsync.parse import Error, parse_line, parse_list_line

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


def probe(rsync: str, upstream: str, path: str, settings: SyncSettings) -> Probe:
    """List ``path`` on ``upstream``; never raises for upstream trouble."""
    source = upstream.rstrip("/") + "/" + path.lstrip("/")
    argv = [rsync, "--list-only", "--no-motd", "--no-human-readable",
            *connection_options(settings, upstream), source]
    started = time.monotonic()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, errors="backslashreplace",
                              env={**os.environ, "LC_ALL": "C", "TZ": "UTC"},
                              timeout=settings.contimeout + settings.timeout, check=False)
    except subprocess.TimeoutExpired:
        return Probe(upstream, time.monotonic() - started, None, error_kind="timeout",
                     message="the probe timed out")
    except OSError as exc:
        return Probe(upstream, time.monotonic() - started, None, error_kind="rsync_missing",
                     message=f"cannot run {rsync}: {exc.strerror}")
    seconds = time.monotonic() - started
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


def local_mtime(dest: str, path: str) -> float | None:
    try:
        return Path(dest, path).stat().st_mtime
    except OSError:
        return None
