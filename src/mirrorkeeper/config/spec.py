"""The validated configuration as plain frozen values — what the pure core works with.

The field lists here are the single source of truth: :mod:`mirrorkeeper.config.load` derives its
strict validators from these dataclasses, so a new setting is added in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .problems import Problem

#: Keys whose values are durations ("6h") in the TOML and seconds in the dataclasses.
DURATION_KEYS = frozenset({"tick", "poll_interval", "jitter", "down_after",
                           "stale_after", "timeout", "contimeout", "no_output_timeout",
                           "retry_backoff", "run_budget", "upstream_cooldown", "suppress_for",
                           "digest", "renotify_critical", "renotify_error", "renotify_warning",
                           "renotify_info", "interval", "delete_grace", "upstream_busy_wait",
                           "verify_every", "push_delay", "full_every"})
UPSTREAM_STRATEGIES = ("ordered", "round-robin", "fastest")
TRACE_STYLES = ("", "debian", "arch", "ubuntu")
SNAPSHOT_BACKENDS = ("none", "zfs", "btrfs")
PUBLISH_MODES = ("direct", "snapshot")
#: How a mirror is synced: ``rsync`` (two-stage rsync of the tree) or ``filelist`` (from the
#: upstream's published file lists, Fedora's ``fullfiletimelist-*``; see docs/configuration.md).
SYNC_METHODS = ("rsync", "filelist")


@dataclass(frozen=True)
class SyncSettings:
    """How one mirror is synced. Durations are seconds."""

    #: rsync sources, tried in order: ``rsync://host/module/path/``, ``host::module/path/``, or
    #: a local directory (for tests and staging).
    upstreams: tuple[str, ...] = ()
    #: Patterns (rsync filter syntax) that are held back to stage 2: the index files.
    #: Empty means a single-stage sync.
    stage2: tuple[str, ...] = ()
    #: Patterns that stay in stage 1 although a ``stage2`` pattern would hold them back
    #: (e.g. ``by-hash/`` blobs that indexes refer to).
    stage1_include: tuple[str, ...] = ()
    #: Patterns never mirrored (and never deleted locally because of that).
    excludes: tuple[str, ...] = ()
    #: Extra rsync options, each checked against the allow-list in ``config/options.py``.
    rsync_options: tuple[str, ...] = ()
    #: Path (relative to the upstream root) of the file the project touches when it publishes.
    update_signal: str | None = None
    #: How the signal says when the upstream published: ``mtime`` (of the file), ``epoch``,
    #: ``date``, ``trace`` (Debian) or ``keyvalue`` (``date=``); see plan/signals.py.
    signal_kind: str = "mtime"
    schedule: str = "every 6h"
    #: Skip a scheduled run while the update signal says the upstream has not published since
    #: our copy (one probe instead of two tree walks); pushes always run, and a full run comes
    #: at least every ``verify_every``.
    skip_unchanged: bool = False
    verify_every: float = 86400.0
    stale_after: float = 2 * 86400.0
    #: rsync ``--timeout``: I/O silence before rsync gives up.
    timeout: float = 600.0
    #: rsync ``--contimeout`` for daemon connections.
    contimeout: float = 60.0
    #: Mirrorkeeper's own watchdog: no line at all from rsync for this long stops the run.
    no_output_timeout: float = 1800.0
    #: KiB/s, as rsync's ``--bwlimit``.
    bwlimit: int | None = None
    #: For daemons that require a login: the file holding the password (mode 0600), as
    #: rsync's ``--password-file``; the user goes in the URL (``rsync://USER@HOST/MODULE/``).
    password_file: str | None = None
    #: Stage 2 may delete at most this share of the last run's file count ...
    max_delete_fraction: float = 0.10
    #: ... but never fewer than this many files (small trees, first runs).
    max_delete_min: int = 1000
    #: Files the upstream dropped stay this long after the mirror first saw them gone, so a
    #: client holding the previous index still finds them (0: delete at once).
    delete_grace: float = 0.0
    #: Deletions that could not run (upstream errors, failure ratio) are a warning at once and
    #: critical once this many runs in a row could not delete.
    deletions_skipped_critical_after: int = 3
    #: After stage 1, an upstream whose update signal changed meanwhile published again: stage 1
    #: runs again (at most this many times) so stage 2 never brings a newer publish's indexes.
    stage1_reruns: int = 3
    #: An upstream with a foreign ``Archive-Update-in-Progress-*`` marker is mid-update: wait
    #: this long and run stage 1 again, at most ``upstream_busy_retries`` times, then give up
    #: on that upstream (ftpsync's UIPSLEEP / UIPRETRIES).
    upstream_busy_wait: float = 300.0
    upstream_busy_retries: int = 3
    #: Attempts per upstream for transient network failures before moving to the next one.
    attempts_per_upstream: int = 2
    #: Wait before a retry; doubles with each further retry of the same upstream.
    retry_backoff: float = 30.0
    #: No new attempt starts once a run has taken this long.
    run_budget: float = 6 * 3600.0
    #: Connections this machine opens to one upstream host at once, shared by every mirror,
    #: stream, probe and process that talks to it (0: no limit). Mirrors of one host share the
    #: smallest value any of them sets; each waits for a free slot instead of being refused by
    #: the upstream's own ``max connections``.
    max_connections: int = 2
    #: rsync streams that seed a mirror (no successful run yet, and the destination holds fewer
    #: than ``seed_below`` of the upstream's files), each one share of the tree balanced by
    #: size; an ordinary two-stage pass follows. 1 never seeds: the first run is an ordinary
    #: one, without the upstream listing that seeding costs.
    seed_parallel: int = 4
    seed_below: float = 0.5
    #: Seed only an upstream at least this large (GiB, from the listing): below it one
    #: stream's transfer is short next to the listing and the second walk that seeding adds.
    seed_min_gib: float = 1.0
    #: ordered (primary first), round-robin (rotate per run), fastest (probe each first).
    upstream_strategy: str = "ordered"
    #: An upstream that failed is tried last for this long.
    upstream_cooldown: float = 3600.0
    #: Failure ratio (files failed / files in the tree) at or below which a partial transfer is
    #: only info, warning, error; above the last it is critical.
    failure_ratio_info: float = 0.001
    failure_ratio_warning: float = 0.01
    failure_ratio_error: float = 0.1
    #: ``rsync`` or ``filelist`` (see :data:`SYNC_METHODS`).
    method: str = "rsync"
    #: For ``method = "filelist"``: the lists' paths relative to the upstream root, one per
    #: module mirrored together (``fedora/fullfiletimelist-fedora``); each names paths relative
    #: to its own directory.
    filelist: tuple[str, ...] = ()
    #: A ``filelist`` mirror still runs a full two-stage rsync this often (it checks what the
    #: lists cannot: a file changed in place with the same size, a stray local file).
    full_every: float = 7 * 86400.0
    #: The mirror's own trace file, written after each successful sync: ``debian``
    #: (``project/trace/<hostname>``, ftpsync's format, with ``_hierarchy``, ``_traces`` and
    #: ftpsync's ``Archive-Update-*`` markers), ``arch`` (``lastsync``: epoch seconds),
    #: ``ubuntu`` (``.trace/<hostname>``: ``date -u``), or empty for none.
    trace: str = ""
    #: Snapshots of ``dest`` after each successful run: ``zfs`` (``dest`` is a dataset's
    #: mountpoint), ``btrfs`` (``dest`` is a subvolume) or ``none``; see docs/snapshots.md.
    snapshots: str = "none"
    #: Also a snapshot before each run starts (named ``...-pre``).
    snapshot_before: bool = False
    #: Retention, pruned after each success: the newest snapshot of each of this many hours,
    #: days and ISO weeks (UTC) is kept; the newest and those in use always are.
    snapshot_keep_hourly: int = 24
    snapshot_keep_daily: int = 14
    snapshot_keep_weekly: int = 8
    #: When a guard trips after stage 1 wrote, return the mirror to the last good snapshot.
    auto_rollback: bool = False
    #: ``direct``: clients are served ``dest`` itself. ``snapshot``: ``publish_path`` is a
    #: symlink switched, in one rename, to the newest successful snapshot after each run.
    publish: str = "direct"
    #: The path the web server serves when ``publish = "snapshot"`` (a symlink Mirrorkeeper
    #: owns; it never replaces a real directory there).
    publish_path: str | None = None
    #: What a ``debian`` trace says about the site (ftpsync's ``INFO_MAINTAINER``,
    #: ``INFO_SPONSOR``, ``INFO_COUNTRY``, ``INFO_LOCATION``, ``INFO_THROUGHPUT``); empty: not
    #: said.
    trace_maintainer: str = ""
    trace_sponsor: str = ""
    trace_country: str = ""
    trace_location: str = ""
    trace_throughput: str = ""
    #: Hub mode: downstream mirrors pushed after each good run, as ``runmirrors`` does, one
    #: line of its mirror list each (``staged NAME HOST USER -p 2222``; see
    #: ``plan/downstreams.py``). Empty: no pushes.
    downstreams: tuple[str, ...] = ()
    #: The ssh key the pushes log in with (runmirrors' KEYFILE); None: ssh's default keys.
    push_key: str | None = None
    #: How long staged downstreams wait for each other's stage 1 before stage 2 goes out
    #: anyway (runmirrors' PUSHDELAY).
    push_delay: float = 600.0


@dataclass(frozen=True)
class ProfileInfo:
    """What a profile says about its project, beside the settings."""

    description: str = ""
    docs: str = ""
    approx_size: str = ""
    notes: str = ""
    #: Name of another profile whose settings this one starts from.
    extends: str | None = None
    #: URLs of the pages and configurations the profile's values were checked against.
    checked_against: tuple[str, ...] = ()
    #: Names of the profile's fields that no source backs (e.g. ``update_signal``): a value
    #: there is a best guess, or the field is left unset because nothing better is known.
    unverified: tuple[str, ...] = ()
    #: Access limits an admin should know before relying on the profile, e.g. "the master
    #: needs registration" or "takes no new public mirrors" (empty: none known). Any upstream
    #: host named here is one that needs registration; it is never listed first when the
    #: profile has a public one.
    restricted: str = ""
    #: What a user of the mirror pastes, one snippet per file (its first line a comment
    #: naming the file); ``{url}`` stands for the mirror's public URL, ``{name}`` for its
    #: name, and nothing else is expanded (dnf's ``$releasever`` stays as it is).
    help: tuple[str, ...] = ()


@dataclass(frozen=True)
class Profile:
    name: str
    info: ProfileInfo
    settings: SyncSettings
    #: Where it was read from (a package file or the admin's profiles directory).
    source: str


@dataclass(frozen=True)
class MirrorSpec:
    name: str
    profile: str
    dest: str
    enabled: bool
    settings: SyncSettings
    #: What its profile says about the project (the public pages show it).
    info: ProfileInfo = field(default_factory=ProfileInfo)
    #: The fleet host that syncs it (``[fleet] host`` names each one); empty: this host.
    host: str = ""


@dataclass(frozen=True)
class BrokenMirror:
    """A mirror whose profile does not validate: it is not synced, but the rest of the config
    still works (one bad file in ``profiles_dir`` must not stop every mirror)."""

    name: str
    profile: str
    enabled: bool
    #: What is wrong with the profile (its own file and any file it extends).
    problems: tuple[Problem, ...]


@dataclass(frozen=True)
class GlobalSettings:
    state_dir: str = "/var/lib/mirrorkeeper"
    log_dir: str = "/var/log/mirrorkeeper"
    #: Used in trace files and metric names; defaults to the machine's FQDN.
    hostname: str = ""
    #: The admin's own profiles, which extend or override the shipped catalogue.
    profiles_dir: str = "/etc/mirrorkeeper/profiles"
    #: The rsync binary.
    rsync: str = "rsync"
    #: Per-run rsync logs kept per mirror ...
    keep_run_logs: int = 200
    #: ... and for at most this many days (0: no age limit).
    keep_run_logs_days: float = 90.0


@dataclass(frozen=True)
class AlertRule:
    """Match a finding precisely, then change its severity or silence it for a while.

    Every match key that is set must match; unset keys match anything. A rule never touches a
    protected code (the staleness watchdog, a full disk, a tripped guard, ...).
    """

    name: str
    #: A code, or a family with a trailing ``*`` ("transfer.*").
    code: str
    mirror: str = "*"  # a glob
    upstream: str = "*"  # a glob
    exit_code: int | None = None
    failure_ratio_min: float | None = None
    failure_ratio_max: float | None = None
    #: Bounds on the finding's count: files failed, files vanished, ...
    count_min: int | None = None
    count_max: int | None = None
    #: Only once the same code has come this many runs in a row.
    consecutive_min: int | None = None
    set_severity: str | None = None
    suppress_for: float | None = None  # seconds


@dataclass(frozen=True)
class PluginSpec:
    """An alert plugin: any executable, given one alert as JSON on stdin."""

    name: str
    command: tuple[str, ...]
    min_severity: str = "warning"
    timeout: float = 30.0
    #: Send ``resolved`` notices too.
    resolved: bool = True
    #: Hold notifications below ``immediate_severity`` and send them together, as one digest,
    #: once the oldest has waited this long (seconds; None: send each at once).
    digest: float | None = None
    immediate_severity: str = "critical"


@dataclass(frozen=True)
class AlertSettings:
    #: Re-notify an open alert after this long, per severity (0: never again).
    renotify_critical: float = 3600.0
    renotify_error: float = 6 * 3600.0
    renotify_warning: float = 86400.0
    renotify_info: float = 0.0
    #: An error seen in this many runs in a row becomes critical.
    escalate_after_runs: int = 3
    rules: tuple[AlertRule, ...] = ()
    plugins: tuple[PluginSpec, ...] = ()


@dataclass(frozen=True)
class MetricsSettings:
    prefix: str = "mirrorkeeper"
    #: tcp://HOST:2003 or udp://HOST:2003 (Graphite plaintext).
    graphite: str | None = None
    #: udp://HOST:8125
    statsd: str | None = None
    #: Path of collectd's unixsock plugin socket.
    collectd_socket: str | None = None
    #: Seconds between progress updates of a running sync.
    interval: float = 5.0
    #: A ``.prom`` file for node_exporter's textfile collector, rewritten after every run.
    prometheus_textfile: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.graphite or self.statsd or self.collectd_socket)


@dataclass(frozen=True)
class DaemonSettings:
    """``[daemon]``: how ``mirrorkeeper daemon`` (and ``sync --due``) schedules runs."""

    #: At most this many syncs run at once.
    max_parallel: int = 2
    #: How often the planner looks at what is due.
    tick: float = 60.0
    #: How often each mirror's update-signal file is polled upstream (0: never).
    poll_interval: float = 300.0
    #: Scheduled starts are spread by up to this much (a fixed share per mirror and cycle), so
    #: that mirrors do not all hit their upstreams on the hour.
    jitter: float = 600.0


#: The image types ``[web] logo`` may be, and the media type each is served as.
LOGO_TYPES = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg",
              ".jpeg": "image/jpeg", ".webp": "image/webp", ".gif": "image/gif"}


@dataclass(frozen=True)
class WebSettings:
    """``[web]``: the dashboard and JSON API served by the daemon."""

    enabled: bool = True
    #: Where to listen; loopback by default (put a reverse proxy in front to publish it).
    listen: str = "127.0.0.1:8118"
    #: A file holding the token that actions (sync now, acknowledge) need. No file: read-only.
    token_file: str | None = None
    #: For ``mirrorz.json``: the public base URL of the mirror site and its short name.
    site_url: str = ""
    site_abbr: str = ""
    site_name: str = ""
    #: Further names the web answers to (the ``Host`` header), beside the ``listen`` host,
    #: ``site_url``'s host and loopback; ``*`` turns the check off (DNS rebinding protection).
    allowed_hosts: tuple[str, ...] = ()
    #: Serve the public status and help pages at ``/`` (the dashboard moves to ``/admin``).
    public: bool = False
    #: Where users fetch the mirrored files (``{public_url}/{mirror}/``): the base of every
    #: help snippet; ``site_url`` when empty.
    public_url: str = ""
    #: A local image file shown on the public pages (served from ``/logo``; no other origin).
    logo: str | None = None
    #: How users reach the admin (an address or URL), and who sponsors the mirror: ``/about``.
    contact: str = ""
    sponsor: str = ""

    def files_url(self) -> str:
        """The base URL of the mirrored files, as help snippets name it."""
        return self.public_url or self.site_url


@dataclass(frozen=True)
class FleetSettings:
    """``[fleet]``: several sync hosts sharing one store and one set of queues (docs/fleet.md).
    Without the table a host keeps its SQLite store and queue in its state directory."""

    #: The shared store, a SQLAlchemy URL: ``postgresql+psycopg://USER@HOST/DB``.
    store: str
    #: The shared queues (one per host): ``redis://HOST:6379/0`` or ``unix:///run/redis.sock``.
    queue: str
    #: This host's name in the fleet; mirrors whose ``host`` is this name run here.
    host: str
    #: A host whose daemon has not beaten (once per ``[daemon] tick``) for this long is down:
    #: ``host.down``, raised once by another host. At least three ticks.
    down_after: float = 180.0


@dataclass(frozen=True)
class Config:
    path: str
    settings: GlobalSettings
    mirrors: dict[str, MirrorSpec] = field(default_factory=dict)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    web: WebSettings = field(default_factory=WebSettings)
    #: None: a single host (SQLite store and queue in the state directory).
    fleet: FleetSettings | None = None
    #: Mirrors that cannot run because their profile does not validate.
    broken: dict[str, BrokenMirror] = field(default_factory=dict)
    #: Every problem in the profile catalogue, used by a mirror or not (``config check`` and
    #: ``profiles`` report them; the rest of the program works around them).
    profile_problems: tuple[Problem, ...] = ()

    def enabled(self) -> list[MirrorSpec]:
        return [m for m in self.mirrors.values() if m.enabled]

    @property
    def host(self) -> str:
        """This host's name in the fleet (the hostname outside one)."""
        return self.fleet.host if self.fleet else self.settings.hostname

    def host_of(self, mirror: MirrorSpec) -> str:
        """The host that syncs ``mirror``."""
        return mirror.host or self.host

    def local(self) -> Config:
        """This config as this host's daemon sees it: only the mirrors it syncs. Every other
        command (status, the dashboard, ``trigger``) keeps the whole fleet."""
        if self.fleet is None:
            return self
        mine = {name: m for name, m in self.mirrors.items() if self.host_of(m) == self.host}
        return replace(self, mirrors=mine)

    def broken_enabled(self) -> list[BrokenMirror]:
        return [b for b in self.broken.values() if b.enabled]
