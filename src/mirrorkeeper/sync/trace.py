"""The mirror's own trace files, written after each successful sync (DESIGN §10).

Project checkers read them to judge a mirror's freshness: Debian's mirror checker parses
``project/trace/<hostname>`` in ftpsync's format (first line ``date -u``, then the fields
ftpsync 20180513 writes, in its order), and downstream ftpsyncs chain ``_hierarchy``; Arch's
status page reads ``lastsync`` (epoch seconds); Ubuntu's release mirrors carry
``.trace/<hostname>`` (``date -u``). The texts are built by pure functions; only the
``write_*`` functions touch the disk, and each file is replaced atomically.
"""

from __future__ import annotations

import email.utils
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .. import __version__
from ..record import RunRecord

TRACE_DIR = "project/trace"
HIERARCHY = f"{TRACE_DIR}/_hierarchy"
TRACELIST = f"{TRACE_DIR}/_traces"
#: ftpsync's lock in the published tree: a downstream that pulls it waits for our stage 2.
IN_PROGRESS_PREFIX = "Archive-Update-in-Progress-"
#: Touched by a push that arrives mid-run: the running sync goes round once more.
REQUIRED_PREFIX = "Archive-Update-Required-"


def trace_path(style: str, hostname: str) -> str | None:
    """Where the trace goes, relative to the mirror root (None: no trace)."""
    if style == "debian":
        return f"{TRACE_DIR}/{hostname}"
    if style == "arch":
        return "lastsync"
    if style == "ubuntu":
        return f".trace/{hostname}"
    return None


def stage1_trace_path(hostname: str) -> str:
    return f"{TRACE_DIR}/{hostname}-stage1"


def uses_markers(style: str) -> bool:
    """ftpsync's marker files go with ftpsync's trace: a mirror that speaks its trace format
    sits in a push tree whose other members read its markers."""
    return style == "debian"


def own_files(style: str, hostname: str) -> tuple[str, ...]:
    """Every file of the mirror that this host writes and no upstream may overwrite or stage 2
    delete (ftpsync's ``_TRACE_FILES``), relative to the mirror root."""
    main = trace_path(style, hostname)
    if style != "debian":
        return (main,) if main else ()
    assert main is not None
    return (f"{IN_PROGRESS_PREFIX}{hostname}", f"{REQUIRED_PREFIX}{hostname}", main,
            stage1_trace_path(hostname), HIERARCHY, TRACELIST)


def protected_files(style: str) -> tuple[str, ...]:
    """Files an upstream may bring but stage 2 must not delete when it does not: ftpsync's
    ``_hierarchy.mirror`` is the upstream's chain when it has one, and ours (for our
    downstreams) when it has none."""
    return (f"{HIERARCHY}.mirror",) if style == "debian" else ()


def upstream_host(upstream: str) -> str:
    """ftpsync's ``RSYNC_HOST``: the host of an rsync URL or ``host::module``; ``unknown`` for
    a local directory (as ftpsync says when only ``RSYNC_SOURCE`` is set)."""
    if upstream.startswith("rsync://"):
        return urlsplit(upstream).hostname or "unknown"
    if "::" in upstream:
        return upstream.split("::", 1)[0].rsplit("@", 1)[-1] or "unknown"
    return "unknown"


@dataclass(frozen=True)
class TraceInfo:
    """What the trace says beyond the run record (ftpsync's ``INFO_*`` and ``-T``)."""

    maintainer: str = ""
    sponsor: str = ""
    country: str = ""
    location: str = ""
    throughput: str = ""
    #: Why the run ran: ``ssh`` for a push, ``cron`` for a schedule, as ftpsync's ``-T``.
    trigger: str = ""
    #: ``Architectures-Configuration``: ``ALL``, or ``EXCLUDE a b`` (see
    #: :func:`arch_configuration`).
    arch_config: str = "ALL"


_ARCH_RULE = re.compile(r"^/dists/\*\*/(?:binary-([^/*]+)|(source))/$")


def arch_configuration(excludes: Iterable[str]) -> str:
    """ftpsync's ``Architectures-Configuration`` from the mirror's excludes: the
    architectures whose ``/dists/**/binary-ARCH/`` (or ``/dists/**/source/``) rule is there —
    the rules ``ARCH_EXCLUDE`` stands for, as ``import ftpsync`` writes them."""
    arches = sorted({m.group(1) or m.group(2) for m in map(_ARCH_RULE.match, excludes) if m})
    return f"EXCLUDE {' '.join(arches)}" if arches else "ALL"


_BINARY = re.compile(r"(?:^|/)binary-([^/]+)/Packages\.")
_SOURCE = re.compile(r"(?:^|/)source/Sources\.")


def architectures(paths: Iterable[str]) -> list[str]:
    """ftpsync's ``Architectures``: the ``binary-ARCH`` of every ``Packages.*`` under dists/
    and ``source`` for ``Sources.*``, sorted, each once."""
    found: set[str] = set()
    for path in paths:
        binary = _BINARY.search(path)
        if binary:
            found.add(binary.group(1))
        elif _SOURCE.search(path):
            found.add("source")
    return sorted(found)


def _rfc2822(when: float) -> str:
    """``date -u -R``: ``+0000``, not ``GMT``."""
    return email.utils.formatdate(when, usegmt=False).replace("-0000", "+0000")


def stage_seconds(record: RunRecord) -> tuple[int, int]:
    """Seconds spent in stage 1 and in the deleting stage of the final attempt, counted as
    ftpsync counts them (``date +%s`` after minus before, every round summed)."""
    first = second = 0
    for stage in record.final_stages:
        seconds = max(0, int(stage.finished_at) - int(stage.started_at))
        if stage.name == "stage1":
            first += seconds
        elif stage.name in ("stage2", "single"):
            second += seconds
    return first, second


def debian_trace(record: RunRecord, hostname: str, serial: str | None,
                 info: TraceInfo | None = None, arches: Iterable[str] = (),
                 stage1_before: int | None = None) -> str:
    """ftpsync's trace: ``date -u`` first, then ``Key: value`` lines in ftpsync's order.

    ``serial`` None: no master trace (ftpsync then omits the line). ``stage1_before``: a
    stage-2 push reads the stage-1 time from the ``-stage1`` trace of the push before."""
    info = info or TraceInfo()
    end = record.finished_at or time.time()
    first, second = stage_seconds(record)
    if stage1_before is not None and not any(s.name == "stage1" for s in record.final_stages):
        first = stage1_before
    total_time = first + second
    received = sum(s.bytes_received for s in record.final_stages)
    lines = [
        time.strftime("%a %b %e %H:%M:%S UTC %Y", time.gmtime(end)),  # `date -u`, POSIX locale
        f"Date: {_rfc2822(end)}",
        f"Date-Started: {_rfc2822(record.started_at)}",
    ]
    if serial is not None:
        lines.append(f"Archive serial: {serial}")
    lines += [
        f"Used ftpsync version: mirrorkeeper {__version__}",
        f"Creator: mirrorkeeper {__version__}",
        f"Running on host: {hostname}",
    ]
    for key, value in (("Maintainer", info.maintainer), ("Sponsor", info.sponsor),
                       ("Country", info.country), ("Location", info.location),
                       ("Throughput", info.throughput), ("Trigger", info.trigger)):
        if value:
            lines.append(f"{key}: {value}")
    arch_list = list(arches)
    if arch_list:
        lines.append(f"Architectures: {' '.join(arch_list)}")
    lines += [
        f"Architectures-Configuration: {info.arch_config}",
        f"Upstream-mirror: {upstream_host(record.upstream)}",
        "Rsync-Transport: undefined",
    ]
    if received > 0:
        lines.append(f"Total bytes received in rsync: {received}")
    lines += [f"Total time spent in stage1 rsync: {first}",
              f"Total time spent in stage2 rsync: {second}",
              f"Total time spent in rsync: {total_time}"]
    if total_time:
        lines.append(f"Average rate: {received // total_time} B/s")
    return "\n".join(lines) + "\n"


def hierarchy(upstream_hierarchy: str, tracefile: str, hostname: str, upstream: str) -> str:
    """``_hierarchy``: the upstream's chain (its ``_hierarchy.mirror``), then our line
    ``TRACEFILE MIRRORNAME TRACEHOST UPSTREAM``. Lines of our own are dropped from the chain:
    a copy of ours that stage 2 kept (delete grace) must not make the chain grow every run."""
    chain = "".join(f"{line}\n" for line in upstream_hierarchy.splitlines()
                    if line.strip() and line.split()[1:2] != [hostname])
    return f"{chain}{tracefile} {hostname} {hostname} {upstream_host(upstream)}\n"


def tracelist(entries: Iterable[tuple[str, float]]) -> str:
    """``_traces``: the trace files (paths under project/trace, no ``_*``), oldest first."""
    ordered = sorted(entries, key=lambda e: (e[1], e[0]))
    return "".join(f"{name}\n" for name, _mtime in ordered)


def arch_trace(record: RunRecord) -> str:
    return f"{int(record.finished_at or time.time())}\n"


def date_trace(record: RunRecord) -> str:
    """Ubuntu's ``date -u > .trace/$(hostname -f)``."""
    end = record.finished_at or time.time()
    return time.strftime("%a %b %e %H:%M:%S UTC %Y", time.gmtime(end)) + "\n"


# -- the disk ---------------------------------------------------------------------------------
def read_field(path: Path, key: str) -> str | None:
    """One ``Key: value`` of a trace file; None when the file or the key is missing."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name == key:
            return value.strip()
    return None


def _serial(dest: Path) -> str | None:
    """The archive serial of the master trace we just mirrored (ftpsync copies it)."""
    master = dest / TRACE_DIR / "master"
    if not master.exists():
        return None
    return read_field(master, "Archive serial") or "unknown"


def _dist_files(root: Path) -> list[str]:
    found: list[str] = []
    for folder, dirs, files in os.walk(root / "dists"):
        rel = os.path.relpath(folder, root)
        found.extend(f"{rel}/{name}" for name in (*dirs, *files)
                     if name.startswith(("Packages.", "Sources.")))
    return found


def _replace(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.mirrorkeeper-new")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _trace_entries(trace_dir: Path) -> list[tuple[str, float]]:
    entries: list[tuple[str, float]] = []
    for folder, _dirs, files in os.walk(trace_dir):
        for name in files:
            path = Path(folder, name)
            rel = str(path.relative_to(trace_dir))
            if name.startswith(("_", ".")):
                continue
            try:
                entries.append((rel, path.stat().st_mtime))
            except OSError:
                continue
    return entries


def write_trace(style: str, dest: str, hostname: str, record: RunRecord,
                info: TraceInfo | None = None, scope: str = "all") -> Path | None:
    """Write the trace (after a stage-1 push: ``<hostname>-stage1``) and, for ftpsync's
    style, ``_hierarchy``, ``_hierarchy.mirror`` and ``_traces``; return the trace's path."""
    relative = trace_path(style, hostname)
    if relative is None:
        return None
    root = Path(dest)
    if style == "arch":
        path = root / relative
        _replace(path, arch_trace(record))
        return path
    if style == "ubuntu":
        path = root / relative
        _replace(path, date_trace(record))
        return path
    stage1_file = root / stage1_trace_path(hostname)
    path = stage1_file if scope == "stage1" else root / relative
    before = read_field(stage1_file, "Total time spent in stage1 rsync")
    text = debian_trace(record, hostname, _serial(root), info, architectures(_dist_files(root)),
                        stage1_before=int(before) if before and before.isdigit() else None)
    _replace(path, text)
    try:
        upstream_chain = (root / f"{HIERARCHY}.mirror").read_text(encoding="utf-8",
                                                                  errors="replace")
    except OSError:
        upstream_chain = ""
    chain = hierarchy(upstream_chain, path.name, hostname, record.upstream)
    _replace(root / HIERARCHY, chain)
    _replace(root / f"{HIERARCHY}.mirror", chain)
    if scope == "all":
        stage1_file.unlink(missing_ok=True)
    _replace(root / TRACELIST, tracelist(_trace_entries(root / TRACE_DIR)))
    return path
