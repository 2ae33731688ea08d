"""The rsync argv of each stage (DESIGN §3). Pure: same inputs, same argv; never a shell string.

Stage 1 copies everything except the profile's ``stage2`` patterns (the index files) and deletes
nothing. Stage 2 copies the rest with ``--delay-updates`` (new files appear together at the end)
and *lists* what the upstream dropped (``--delete-after --max-delete=0 --debug=DEL2``): rsync
deletes nothing itself; :mod:`mirrorkeeper.plan.deletions` decides (grace, guards, upstream
errors). Clients therefore never see an index that names a file the mirror does not have yet.

The upstream's update-signal file is held back from both stages. After stage 1 a one-file step
fetches it into a staging file outside the mirror — which also tells whether the upstream
published again meanwhile — and it is put into the mirror after stage 2, last of all, so a
downstream that polls it never sees a publish before the mirror serves it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config.spec import MirrorSpec, SyncSettings

#: Options every stage uses. The output options are what the parser expects: one itemized line
#: per changed item (``%i %n%L``), whole-transfer progress lines, the stats block, and plain
#: numbers (no thousands separators).
COMMON_OPTIONS: tuple[str, ...] = (
    "--recursive", "--links", "--perms", "--times", "--hard-links",
    "--safe-links",          # never create links that point outside the tree
    "--numeric-ids",         # ids as numbers: the mirror host need not know upstream's users
    "--no-motd",
    # The whole file list first: exact totals for progress, and far less memory on pools of
    # many small directories (rsync 3.2.7, 10,000 package dirs: 9 MiB instead of 260 MiB;
    # bench/bench_sync.py). Stage 2's --delete-after needs the whole list anyway.
    "--no-inc-recursive",
    "--out-format=%i %n%L",  # itemized changes, one line per item, deletions included
    "--info=progress2",      # whole-transfer progress for the live % estimate
    "--stats",
    "--no-human-readable",
    "--exclude=.~tmp~/",     # rsync's own --delay-updates scratch dirs, never mirrored
)

#: The modes files get in the mirror, whatever the upstream sends (``--perms`` copies them):
#: directories 0755, files 0644, or 0755 when the upstream made them executable (installer
#: scripts, ``setup.exe`` downloads: a downstream rsync of us keeps them runnable). No setuid,
#: setgid or sticky bit, nothing writable by group or others: an upstream must not plant a
#: setuid file or a world-writable directory on the mirror host. ftpsync's ``D755,F644``
#: would also drop the executable bits. A ``--chmod=`` in ``rsync_options`` replaces this.
DEFAULT_CHMOD = "--chmod=D755,Fu=rwX,Fgo=rX,Fa-st"

#: What the rsync child sees in its environment: plain C messages, which the parser reads.
RSYNC_ENV = {"LC_ALL": "C", "LANG": "C"}


@dataclass(frozen=True)
class StagePlan:
    name: str  #: "stage1", "stage2" or "single"
    argv: tuple[str, ...]
    deletes: bool
    #: Moves only the paths named by ``--files-from`` (a file-list run): its file count says
    #: nothing about the size of the upstream's tree.
    files_from: bool = False


#: How the deleting stage asks rsync to name, not delete, what the upstream dropped; with
#: ``--ignore-errors`` it names them even when the upstream had I/O errors (the planner then
#: protects every path an error named).
LIST_DELETIONS = ("--delete-after", "--max-delete=0", "--ignore-errors", "--debug=DEL2")


@dataclass(frozen=True)
class SyncPlan:
    mirror: str
    upstream: str
    dest: str
    stages: tuple[StagePlan, ...]
    max_delete: int
    #: Seconds of total silence from rsync before the runner's watchdog stops it.
    no_output_timeout: float
    #: Fetches the update-signal file to ``signal_staging`` after stage 1 (None: no signal).
    signal: StagePlan | None = None
    #: Where the fetched signal waits until stage 2 is done; then it goes to the mirror.
    signal_staging: str | None = None
    #: The signal's path relative to the mirror root.
    signal_path: str | None = None


def max_delete_bound(settings: SyncSettings, last_files_total: int | None) -> int:
    """How many deletions stage 2 may make: a share of the last known tree, with a floor."""
    if not last_files_total:
        return settings.max_delete_min
    return max(settings.max_delete_min, math.ceil(last_files_total * settings.max_delete_fraction))


def _source(upstream: str) -> str:
    """rsync copies a directory's *contents* only with a trailing slash."""
    return upstream if upstream.endswith("/") else upstream + "/"


def is_daemon(upstream: str) -> bool:
    return upstream.startswith("rsync://") or "::" in upstream


def connection_options(settings: SyncSettings, upstream: str) -> list[str]:
    """Timeouts and credentials for talking to ``upstream``: every rsync we start (the stages
    and the update-signal probe) passes the same ones."""
    args = [f"--timeout={math.ceil(settings.timeout)}"]
    if is_daemon(upstream):
        args.append(f"--contimeout={math.ceil(settings.contimeout)}")
        # The protocol's small request/answer packets otherwise wait on Nagle and delayed
        # ACKs: a one-file probe took 156 ms on loopback, 114 ms with it (bench notes).
        args.append("--sockopts=TCP_NODELAY")
        if settings.password_file:
            args.append(f"--password-file={settings.password_file}")
    return args


def chmod_options(settings: SyncSettings) -> list[str]:
    """Mirrorkeeper's modes, unless the profile or mirror says its own ``--chmod=``: rsync
    applies every ``--chmod`` in turn, so ours could not be undone — an override meant to keep
    the upstream's group-write bits would find them already gone. The admin's list replaces
    ours, as a mirror's ``rsync_options`` replace its profile's."""
    if any(o.startswith("--chmod=") for o in settings.rsync_options):
        return []
    return [DEFAULT_CHMOD]


def _shared(settings: SyncSettings, upstream: str) -> list[str]:
    args = list(COMMON_OPTIONS)
    args.extend(connection_options(settings, upstream))
    if settings.bwlimit:
        args.append(f"--bwlimit={settings.bwlimit}")
    args.extend(chmod_options(settings))
    args.extend(settings.rsync_options)
    args.extend(f"--exclude={pattern}" for pattern in settings.excludes)
    return args


def build_plan(
    mirror: MirrorSpec,
    upstream: str,
    *,
    rsync: str = "rsync",
    last_files_total: int | None = None,
    own_trace: str | None = None,
    signal_staging: str | None = None,
    own_files: tuple[str, ...] = (),
    scope: str = "all",
    protect: tuple[str, ...] = (),
) -> SyncPlan:
    """Plan one run of ``mirror`` from ``upstream``.

    ``own_trace`` and ``own_files`` are paths (relative to the mirror root) of files this host
    writes (its trace, ftpsync's markers); they exist only here, so they are excluded, which
    also keeps stage 2 from deleting them. ``scope`` is what a staged push asks for: ``stage1``
    (no indexes, no deletions, no update signal) or ``stage2`` (the rest); a single-stage
    mirror has nothing to split and runs whole. ``protect``: paths an upstream may update
    but that are never deletion candidates (rsync's receiver-side ``P`` rule).
    """
    s = mirror.settings
    source, dest = _source(upstream), mirror.dest.rstrip("/") + "/"
    bound = max_delete_bound(s, last_files_total)
    shared = _shared(s, upstream)
    for own in dict.fromkeys((own_trace, *own_files) if own_trace else own_files):
        shared.append(f"--exclude=/{own}")
    shared.extend(f"--filter=P /{path}" for path in protect)
    signal = path = None
    if s.update_signal:
        path = s.update_signal.strip("/")
        staging = signal_staging or dest + path
        signal = StagePlan("signal", (rsync, *shared, source + path, staging), deletes=False)
        shared.append(f"--exclude=/{path}")
    deleting = ["--delay-updates", *LIST_DELETIONS]
    stages: tuple[StagePlan, ...]
    if s.stage2:
        stage1 = [rsync, *shared]
        stage1 += [f"--include={pattern}" for pattern in s.stage1_include]
        stage1 += [f"--exclude={pattern}" for pattern in s.stage2]
        stages = (
            StagePlan("stage1", (*stage1, source, dest), deletes=False),
            StagePlan("stage2", (rsync, *shared, *deleting, source, dest), deletes=True),
        )
        if scope == "stage1":
            stages, signal = stages[:1], None
        elif scope == "stage2":
            stages = stages[1:]
    else:
        stages = (StagePlan("single", (rsync, *shared, *deleting, source, dest), deletes=True),)
    return SyncPlan(mirror=mirror.name, upstream=upstream, dest=dest, stages=stages,
                    max_delete=bound, no_output_timeout=s.no_output_timeout, signal=signal,
                    signal_staging=signal.argv[-1] if signal else None, signal_path=path)
