"""``mirrorkeeper doctor``: is this mirror ready to enable? (I/O, read-only)

What an admin runs before enabling a mirror, and what tells a wrong profile from a broken
upstream. For each upstream: the name resolves, the port answers within ``contimeout``, the
module exists and lets us in, its top level lists something, the update-signal file exists and
reads as the profile's ``signal_kind`` (and how old it is), each stage-2 pattern matches
something near the top of the tree. Here: the destination's filesystem has room for the
profile's size, and rsync is new enough for every option Mirrorkeeper passes.

Nothing is written anywhere; every rsync is a listing.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .config.spec import MirrorSpec, ProfileInfo, SyncSettings
from .plan.argv import connection_options
from .rsync.parse import Error, parse_line, parse_list_line
from .sync.preflight import probe, run_short

#: rsync 3.1 brought --info=progress2 and --debug=DEL2, which every sync uses.
MIN_RSYNC = (3, 1, 0)
#: How deep the stage-2 patterns are looked for (Debian: dists/S/C/binary-A/Packages.diff/Index).
PATTERN_DEPTH = 6
STATUS_ORDER = {"ok": 0, "skipped": 0, "warning": 1, "error": 2}


@dataclass(frozen=True)
class Check:
    name: str
    status: str  #: ok, warning, error or skipped
    detail: str


@dataclass(frozen=True)
class UpstreamReport:
    upstream: str
    checks: tuple[Check, ...]

    @property
    def status(self) -> str:
        return worst(c.status for c in self.checks)


@dataclass(frozen=True)
class MirrorReport:
    mirror: str
    upstreams: tuple[UpstreamReport, ...]
    local: tuple[Check, ...]

    @property
    def status(self) -> str:
        """An error on every upstream, or here, is an error; one good upstream makes the
        others' errors warnings (the run falls back to it)."""
        local = worst(c.status for c in self.local)
        ups = [u.status for u in self.upstreams]
        if ups and all(s == "error" for s in ups):
            upstream = "error"
        else:
            upstream = "warning" if any(s != "ok" for s in ups) else "ok"
        return worst([local, upstream])

    def to_json(self) -> dict[str, Any]:
        return {"mirror": self.mirror, "status": self.status,
                "upstreams": [{"upstream": u.upstream, "status": u.status,
                               "checks": [asdict(c) for c in u.checks]} for u in self.upstreams],
                "local": [asdict(c) for c in self.local]}


def worst(statuses: Any) -> str:
    return max(statuses, key=lambda s: STATUS_ORDER[s], default="ok")


def exit_status(reports: list[MirrorReport]) -> int:
    """0 every mirror ready, 1 warnings, 2 an error somewhere."""
    return STATUS_ORDER[worst(r.status for r in reports)]


# -- pure helpers ---------------------------------------------------------------------------------
_SIZE = re.compile(r"([\d.]+)\s*([KMGTP]i?B)", re.IGNORECASE)
_UNITS = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}


def size_bytes(approx: str) -> int | None:
    """The largest size named in a profile's ``approx_size`` ("350-390 GB", "5 TiB")."""
    sizes = []
    for number, unit in _SIZE.findall(approx.replace(",", "")):
        base = 1024 ** ("kmgtp".index(unit[0].lower()) + 1) if "i" in unit.lower() else \
            _UNITS[unit[0].lower()]
        sizes.append(int(float(number) * base))
    return max(sizes) if sizes else None  # "350-390 GB": only 390 carries the unit


def pattern_matches(pattern: str, path: str, is_dir: bool) -> bool:
    """Whether an rsync filter pattern matches a path (relative, no leading slash), closely
    enough for a diagnosis: anchored or not, with or without a slash, directory-only."""
    dir_only = pattern.endswith("/")
    pat = pattern.rstrip("/")
    if dir_only and not is_dir:
        return False
    parts = path.split("/")
    if pat.startswith("/"):
        return fnmatch.fnmatchcase(path, pat[1:]) or fnmatch.fnmatchcase(
            "/".join(parts[:pat.count("/")]), pat[1:])
    if "/" in pat:
        depth = pat.count("/") + 1
        return any(fnmatch.fnmatchcase("/".join(parts[i:i + depth]), pat)
                   for i in range(len(parts) - depth + 1))
    return fnmatch.fnmatchcase(parts[-1], pat)


def rsync_version(text: str) -> tuple[int, ...] | None:
    m = re.search(r"version\s+(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(x) for x in m.groups()) if m else None


# -- the checks -----------------------------------------------------------------------------------
def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str] | str:
    """The probe's runner; why it could not run, as text, for the table."""
    proc = run_short(argv, timeout)
    return proc[1] if isinstance(proc, tuple) else proc


def _endpoint(upstream: str) -> tuple[str, int] | None:
    if upstream.startswith("rsync://"):
        parts = urlsplit(upstream)
        return parts.hostname or "", parts.port or 873
    if "::" in upstream:
        return upstream.split("::", 1)[0].rsplit("@", 1)[-1], 873
    return None


def _network(upstream: str, settings: SyncSettings) -> list[Check]:
    endpoint = _endpoint(upstream)
    if endpoint is None:
        exists = Path(upstream).is_dir()
        return [Check("path", "ok" if exists else "error",
                      "a local directory" if exists else f"{upstream} is not a directory")]
    host, port = endpoint
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return [Check("resolves", "error", f"{host}: {exc.strerror}"),
                Check("connects", "skipped", "")]
    checks = [Check("resolves", "ok", f"{host} → {addresses[0][4][0]}")]
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=settings.contimeout):
            pass
    except OSError as exc:
        return [*checks, Check("connects", "error", f"port {port}: {exc.strerror or exc}")]
    return [*checks, Check("connects", "ok",
                           f"port {port} in {1000 * (time.monotonic() - started):.0f} ms")]


def _listing(rsync: str, upstream: str, settings: SyncSettings) -> list[Check]:
    argv = [rsync, "--list-only", "--no-motd", "--no-human-readable",
            *connection_options(settings, upstream), upstream.rstrip("/") + "/"]
    proc = _run(argv, settings.contimeout + settings.timeout)
    if isinstance(proc, str):
        return [Check("module", "error", proc)]
    errors = [e for e in map(parse_line, proc.stderr.splitlines()) if isinstance(e, Error)]
    kinds = {e.kind for e in errors}
    if "module_missing" in kinds:
        return [Check("module", "error", "the daemon has no such module: check the URL")]
    if "auth" in kinds:
        return [Check("module", "ok", "exists"),
                Check("auth", "error", "the daemon refused our login: check the user in the "
                      "URL and password_file")]
    if proc.returncode != 0:
        first = errors[0].message if errors else proc.stderr.strip()[:200]
        return [Check("module", "error", f"rsync exit {proc.returncode}: {first}")]
    entries = [e for e in map(parse_list_line, proc.stdout.splitlines())
               if e is not None and e.name not in (".", "..")]
    return [Check("module", "ok", "exists"), Check("auth", "ok", "in"),
            Check("listing", "ok" if entries else "error",
                  f"{len(entries)} entries at the top" if entries else
                  "the module lists nothing: empty, or not published yet")]


def _signal(rsync: str, upstream: str, settings: SyncSettings, now: float) -> Check:
    if not settings.update_signal:
        return Check("signal", "skipped", "the profile has no update_signal: no update "
                     "detection, the schedule alone")
    found = probe(rsync, upstream, settings.update_signal, settings)
    if found.exists and found.mtime is not None:
        age = max(0.0, now - found.mtime)
        if not found.parsed:
            return Check("signal", "warning", f"{settings.update_signal} is there but does not "
                         f"read as `{settings.signal_kind}`; its mtime stands in")
        return Check("signal", "ok", f"{settings.update_signal} ({settings.signal_kind}): "
                     f"published {age / 3600:.1f} h ago")
    if found.error_kind == "not_found":
        return Check("signal", "warning", f"no {settings.update_signal} on this upstream: "
                     "syncs run without update detection (profile.signal_missing)")
    return Check("signal", "error", found.message or found.error_kind or "probe failed")


def _patterns(rsync: str, upstream: str, settings: SyncSettings) -> Check:
    if not settings.stage2:
        return Check("stage2", "skipped", "one stage: no index patterns")
    depth = "/" + "/".join(["*"] * (PATTERN_DEPTH + 1))
    argv = [rsync, "--list-only", "--recursive", "--prune-empty-dirs", "--no-motd",
            "--no-human-readable", *connection_options(settings, upstream),
            f"--exclude={depth}", "--include=*/",
            *(f"--include={p.rstrip('/')}{'/***' if p.endswith('/') else ''}"
              for p in settings.stage2), "--exclude=*", upstream.rstrip("/") + "/"]
    proc = _run(argv, settings.contimeout + settings.timeout)
    if isinstance(proc, str) or proc.returncode not in (0, 23, 24):
        return Check("stage2", "warning", "could not list the tree to look for the patterns")
    entries = [e for e in map(parse_list_line, proc.stdout.splitlines()) if e is not None]
    missing = [p for p in settings.stage2
               if not any(pattern_matches(p, e.name, e.mode.startswith("d")) for e in entries)]
    if missing:
        return Check("stage2", "warning", f"within {PATTERN_DEPTH} levels nothing matches "
                     f"{', '.join(missing)}: a wrong pattern lets an index arrive in stage 1")
    return Check("stage2", "ok", f"each of {len(settings.stage2)} patterns matches")


def _local(rsync: str, mirror: MirrorSpec, info: ProfileInfo | None) -> list[Check]:
    checks = []
    proc = _run([rsync, "--version"], 10)
    version = rsync_version(proc.stdout) if not isinstance(proc, str) else None
    if version is None:
        checks.append(Check("rsync", "error", proc if isinstance(proc, str) else
                            "cannot tell the rsync version"))
    elif version < MIN_RSYNC:
        checks.append(Check("rsync", "error", f"{'.'.join(map(str, version))} is older than "
                            f"{'.'.join(map(str, MIN_RSYNC))} (--info=progress2, --debug=DEL2)"))
    else:
        checks.append(Check("rsync", "ok", ".".join(map(str, version))))
    place = Path(mirror.dest)
    while not place.exists() and place != place.parent:
        place = place.parent
    free = shutil.disk_usage(place).free
    need = size_bytes(info.approx_size) if info and info.approx_size else None
    seeded = place == Path(mirror.dest) and any(place.iterdir())
    if need is None or seeded:
        checks.append(Check("space", "skipped", f"{free / 1e9:.1f} GB free; " + (
            "the mirror is already seeded" if seeded else "the profile names no size")))
    elif free < need:
        checks.append(Check("space", "error", f"{free / 1e9:.1f} GB free at {place}, the "
                            f"profile says {info.approx_size if info else '?'}"))
    else:
        checks.append(Check("space", "ok", f"{free / 1e9:.1f} GB free for "
                            f"{info.approx_size if info else '?'}"))
    if mirror.settings.snapshots != "none":
        checks.append(_snapshots(mirror))
    return checks


def _snapshots(mirror: MirrorSpec) -> Check:
    """``dest`` must be a ZFS dataset or btrfs subvolume when the mirror takes snapshots."""
    from .snapshots import backend_for

    backend = backend_for(mirror.settings.snapshots, mirror.dest)
    assert backend is not None
    why = backend.check()
    if why:
        return Check("snapshots", "error", why)
    return Check("snapshots", "ok", f"{mirror.dest} can be snapshotted ({backend.kind})")


def diagnose(rsync: str, mirror: MirrorSpec, info: ProfileInfo | None,
             now: float | None = None) -> MirrorReport:
    """Every check of one mirror; never raises for upstream trouble."""
    s = mirror.settings
    now = time.time() if now is None else now
    reports = []
    for upstream in s.upstreams:
        checks = _network(upstream, s)
        if all(c.status == "ok" for c in checks):
            checks += _listing(rsync, upstream, s)
        if all(c.status == "ok" for c in checks):
            checks += [_signal(rsync, upstream, s, now), _patterns(rsync, upstream, s)]
        reports.append(UpstreamReport(upstream, tuple(checks)))
    return MirrorReport(mirror.name, tuple(reports), tuple(_local(rsync, mirror, info)))
