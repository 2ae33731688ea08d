"""The mirror's own trace file, written after each successful sync (DESIGN §10).

Project checkers read it to judge a mirror's freshness: Debian's mirror checker parses
``project/trace/<hostname>`` in ftpsync's format; Arch's status page reads ``lastsync`` (epoch
seconds). The text is built by pure functions; only :func:`write_trace` touches the disk.
"""

from __future__ import annotations

import email.utils
import os
import time
from pathlib import Path

from .. import __version__
from ..record import RunRecord


def trace_path(style: str, hostname: str) -> str | None:
    """Where the trace goes, relative to the mirror root (None: no trace)."""
    if style == "debian":
        return f"project/trace/{hostname}"
    if style == "arch":
        return "lastsync"
    return None


def _serial(dest: Path) -> str:
    """The archive serial of the master trace we just mirrored (ftpsync copies it)."""
    try:
        text = (dest / "project/trace/master").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "unknown"
    for line in text.splitlines():
        if line.startswith("Archive serial:"):
            return line.split(":", 1)[1].strip() or "unknown"
    return "unknown"


def debian_trace(record: RunRecord, hostname: str, serial: str) -> str:
    """ftpsync's trace format: ``date -u`` first, then ``Key: value`` lines."""
    end = record.finished_at or time.time()
    stage_seconds = {s.name: int(s.duration_seconds) for s in record.final_stages}
    total = sum(stage_seconds.values())
    received = sum(s.bytes_received for s in record.final_stages)
    rate = int(received / total) if total else 0
    lines = [
        time.strftime("%a %b %e %H:%M:%S UTC %Y", time.gmtime(end)),  # `date -u`, POSIX locale
        f"Date: {email.utils.formatdate(end, usegmt=True)}",
        f"Date-Started: {email.utils.formatdate(record.started_at, usegmt=True)}",
        f"Archive serial: {serial}",
        f"Used ftpsync version: mirrorkeeper {__version__}",
        f"Creator: mirrorkeeper {__version__}",
        f"Running on host: {hostname}",
        f"Upstream-mirror: {record.upstream}",
        f"Total bytes received in rsync: {received}",
    ]
    if "stage1" in stage_seconds:
        lines.append(f"Total time spent in stage1 rsync: {stage_seconds['stage1']}")
    if "stage2" in stage_seconds:
        lines.append(f"Total time spent in stage2 rsync: {stage_seconds['stage2']}")
    lines += [f"Total time spent in rsync: {total}", f"Average rate: {rate} B/s"]
    return "\n".join(lines) + "\n"


def arch_trace(record: RunRecord) -> str:
    return f"{int(record.finished_at or time.time())}\n"


def write_trace(style: str, dest: str, hostname: str, record: RunRecord) -> Path | None:
    """Write the trace atomically (temporary file, then rename); return its path."""
    relative = trace_path(style, hostname)
    if relative is None:
        return None
    root = Path(dest)
    path = root / relative
    text = debian_trace(record, hostname, _serial(root)) if style == "debian" else arch_trace(
        record)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.mirrorkeeper-new")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
    return path
