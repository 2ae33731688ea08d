"""Checks on validated settings that types alone cannot express (pure; no I/O)."""

from __future__ import annotations

import re
from datetime import UTC

from ..plan.downstreams import parse_downstream
from ..plan.signals import SIGNAL_KINDS
from .options import check_rsync_options
from .schedule import parse_schedule
from .spec import (
    PUBLISH_MODES,
    SNAPSHOT_BACKENDS,
    SYNC_METHODS,
    TRACE_STYLES,
    UPSTREAM_STRATEGIES,
    SyncSettings,
)

_RSYNC_URL = re.compile(r"^rsync://(?:[^@/]+@)?[A-Za-z0-9.\-\[\]:]+(?::\d+)?/[^/\s]+(?:/\S*)?$")
_DAEMON = re.compile(r"^(?:[^@/:\s]+@)?[A-Za-z0-9.\-]+::[^/\s]+(?:/\S*)?$")


def check_upstream(url: str) -> str | None:
    """Return why ``url`` is not a usable rsync source, or None."""
    if url.startswith("rsync://"):
        return None if _RSYNC_URL.match(url) else "is not a valid rsync://HOST[:PORT]/MODULE/ URL"
    if "::" in url:
        return None if _DAEMON.match(url) else "is not a valid HOST::MODULE/ source"
    if url.startswith("/"):
        return None
    if re.match(r"^[^/]+:", url):
        return "uses rsync over ssh, which Mirrorkeeper does not run; use an rsync:// URL"
    return "is neither an rsync:// URL, HOST::MODULE nor an absolute local path"


#: Checks that read more than the key they report under: skipped when any of these is unknown.
_ALSO_READS = {"failure_ratio_info": ("failure_ratio_warning", "failure_ratio_error")}


def check_settings(s: SyncSettings,
                   unknown: frozenset[str] = frozenset()) -> list[tuple[str, str, str]]:
    """Return (key, message, hint) for every problem in ``s``.

    ``unknown``: keys whose value did not validate (``s`` holds a default there); their
    problems are already reported, and a check of the default would only add false ones.
    """
    found = _checks(s)
    return [f for f in found if not ({f[0].split(".")[0], *_ALSO_READS.get(f[0], ())}
                                     & unknown)]


def _checks(s: SyncSettings) -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []
    if not s.upstreams:
        found.append(("upstreams", "no upstream is set",
                      "add at least one, e.g. upstreams = [\"rsync://mirror.example.org/debian/\"]"))
    for i, url in enumerate(s.upstreams):
        why = check_upstream(url)
        if why:
            found.append((f"upstreams.{i}", f"`{url}` {why}", ""))
    for key in ("stage2", "stage1_include", "excludes"):
        for i, pattern in enumerate(getattr(s, key)):
            if not pattern.strip():
                found.append((f"{key}.{i}", "an empty pattern matches nothing useful", "remove it"))
    for i, message, hint in check_rsync_options(s.rsync_options):
        found.append((f"rsync_options.{i}", message, hint))
    try:
        schedule = parse_schedule(s.schedule)
        if schedule.cron is not None:

            from ..plan.cron import Cron

            try:
                Cron.parse(schedule.cron).next_after(0.0, UTC)
            except ValueError:
                found.append(("schedule", f"`{s.schedule}` names a day that never comes",
                              "check the day-of-month and month fields"))
    except ValueError as exc:
        found.append(("schedule", str(exc), ""))
    if not 0 < s.max_delete_fraction <= 1:
        found.append(("max_delete_fraction", "must be above 0 and at most 1",
                      "0.1 lets stage 2 delete up to a tenth of the last run's files"))
    if s.max_delete_min < 0:
        found.append(("max_delete_min", "cannot be negative", ""))
    if s.skip_unchanged and not s.update_signal:
        found.append(("skip_unchanged", "needs an update_signal to tell that nothing changed",
                      "set update_signal, or remove skip_unchanged"))
    for key in ("timeout", "contimeout", "no_output_timeout", "stale_after", "verify_every"):
        if getattr(s, key) <= 0:
            found.append((key, "must be longer than zero", ""))
    if s.upstream_strategy not in UPSTREAM_STRATEGIES:
        found.append(("upstream_strategy", f"`{s.upstream_strategy}` is not a strategy",
                      "use one of " + ", ".join(UPSTREAM_STRATEGIES)))
    if s.max_connections < 0:
        found.append(("max_connections", "cannot be negative",
                      "0 means no limit; most upstreams allow 2 to 5 per host"))
    if s.seed_parallel < 1:
        found.append(("seed_parallel", "must be at least 1", "1 seeds with one stream"))
    if s.seed_min_gib < 0:
        found.append(("seed_min_gib", "cannot be negative", "0 seeds an upstream of any size"))
    if not 0 < s.seed_below <= 1:
        found.append(("seed_below", "must be above 0 and at most 1",
                      "0.5 seeds a mirror that holds fewer than half the upstream's files"))
    if s.attempts_per_upstream < 1:
        found.append(("attempts_per_upstream", "must be at least 1", ""))
    ratios = (s.failure_ratio_info, s.failure_ratio_warning, s.failure_ratio_error)
    if not all(0 <= r <= 1 for r in ratios) or list(ratios) != sorted(ratios):
        found.append(("failure_ratio_info", "failure_ratio_info <= failure_ratio_warning <= "
                      "failure_ratio_error, each between 0 and 1", ""))
    for key in ("retry_backoff", "run_budget", "upstream_cooldown"):
        if getattr(s, key) < 0:
            found.append((key, "cannot be negative", ""))
    for key in ("delete_grace", "upstream_busy_wait"):
        if getattr(s, key) < 0:
            found.append((key, "cannot be negative", "0 turns it off"))
    for key in ("deletions_skipped_critical_after", "stage1_reruns", "upstream_busy_retries"):
        if getattr(s, key) < 0:
            found.append((key, "cannot be negative", ""))
    if s.bwlimit is not None and s.bwlimit <= 0:
        found.append(("bwlimit", "must be a positive number of KiB/s", "remove it for no limit"))
    if s.update_signal is not None and (s.update_signal.startswith("/") or ".." in s.update_signal):
        found.append(("update_signal", "must be a path relative to the upstream's root",
                      "e.g. \"project/trace/master\""))
    if s.signal_kind not in SIGNAL_KINDS:
        found.append(("signal_kind", f"`{s.signal_kind}` is not a signal kind",
                      "use one of " + ", ".join(SIGNAL_KINDS)))
    if s.method not in SYNC_METHODS:
        found.append(("method", f"`{s.method}` is not a sync method",
                      "use one of " + ", ".join(SYNC_METHODS)))
    elif s.method == "filelist" and not s.filelist:
        found.append(("filelist", "method \"filelist\" needs the file lists to read",
                      "e.g. filelist = [\"fullfiletimelist-fedora\"]"))
    for i, path in enumerate(s.filelist):
        if not path or path.startswith("/") or path.endswith("/") \
                or any(part in ("", ".", "..") for part in path.split("/")):
            found.append((f"filelist.{i}", f"`{path}` must be a file's path relative to the "
                          "upstream's root", "e.g. \"fedora/fullfiletimelist-fedora\""))
    if s.full_every <= 0:
        found.append(("full_every", "must be longer than zero",
                      "\"7d\" runs a full rsync weekly"))
    if s.trace not in TRACE_STYLES:
        found.append(("trace", f"`{s.trace}` is not a trace style",
                      "use \"debian\" (project/trace/HOSTNAME), \"arch\" (lastsync), "
                      "\"ubuntu\" (.trace/HOSTNAME) or \"\""))
    names: set[str] = set()
    for index, line in enumerate(s.downstreams):
        down = parse_downstream(line)
        if isinstance(down, str):
            found.append((f"downstreams.{index}", f"`{line}` {down}",
                          "e.g. \"staged eu.mirror mirror.example.org archvsync -p 2222\""))
        elif down.name in names:
            found.append((f"downstreams.{index}", f"a second downstream named `{down.name}`",
                          "give each downstream its own name"))
        else:
            names.add(down.name)
    if s.push_delay < 0:
        found.append(("push_delay", "cannot be negative", ""))
    for key in ("trace_maintainer", "trace_sponsor", "trace_country", "trace_location",
                "trace_throughput"):
        if any(c in getattr(s, key) for c in "\n\r"):
            found.append((key, "must be one line", "the trace file holds one field a line"))
    found += _snapshot_checks(s)
    return found


def _snapshot_checks(s: SyncSettings) -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []
    if s.snapshots not in SNAPSHOT_BACKENDS:
        found.append(("snapshots", f"`{s.snapshots}` is not a snapshot backend",
                      "use one of " + ", ".join(f'"{b}"' for b in SNAPSHOT_BACKENDS)))
    off = s.snapshots == "none"
    for key in ("snapshot_before", "auto_rollback"):
        if getattr(s, key) and off:
            found.append((key, "needs snapshots", 'set snapshots = "zfs" or "btrfs"'))
    for key in ("snapshot_keep_hourly", "snapshot_keep_daily", "snapshot_keep_weekly"):
        if getattr(s, key) < 0:
            found.append((key, "cannot be negative", "0 keeps none of that period"))
    if s.publish not in PUBLISH_MODES:
        found.append(("publish", f"`{s.publish}` is not a publish mode",
                      'use "direct" (serve dest) or "snapshot" (serve publish_path)'))
    elif s.publish == "snapshot":
        if off:
            found.append(("publish", "\"snapshot\" needs snapshots",
                          'set snapshots = "zfs" or "btrfs"'))
        if not s.publish_path:
            found.append(("publish_path", "is required with publish = \"snapshot\"",
                          "the path your web server serves, e.g. \"/srv/mirror/debian\""))
    if s.publish_path is not None and not s.publish_path.startswith("/"):
        found.append(("publish_path", "must be an absolute path", ""))
    return found


_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def check_hostname(name: str) -> str | None:
    """Why ``name`` is not a host name (RFC 1123: dot-separated labels of letters, digits and
    inner hyphens), or None. It becomes a path in the mirror (``project/trace/HOSTNAME``), so
    a ``/`` or ``..`` would write the trace anywhere."""
    if not name or len(name) > 253:
        return "is not a host name (1 to 253 characters)"
    if not all(_LABEL.match(label) for label in name.split(".")):
        return ("is not a host name: letters, digits and '-' in dot-separated labels, "
                "no '/' or '..'")
    return None


def check_secret_mode(mode: int, owner: int, euid: int, *, for_rsync: bool) -> str | None:
    """Why a file holding a secret is too open, or None. Others may have no access (rsync's own
    rule for ``--password-file``; the web token is no less secret); rsync run by root also
    wants root to own it."""
    if mode & 0o006:
        return (f"can be read or written by others (mode {mode & 0o7777:04o})"
                + ("; rsync refuses such a password file" if for_rsync else ""))
    if for_rsync and euid == 0 and owner != 0:
        return (f"is owned by uid {owner}; rsync run by root refuses a password file that "
                "root does not own")
    return None
