"""Find, read and validate ``mirrorkeeper.toml``; raise :class:`ConfigError` with every problem."""

from __future__ import annotations

import dataclasses
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..profiles import SETTING_KEYS, Catalogue, load_catalogue
from ..web.hosts import valid_host_entry
from .checks import check_hostname, check_settings
from .problems import ConfigError, Problem, did_you_mean
from .spec import (
    LOGO_TYPES,
    AlertRule,
    AlertSettings,
    BrokenMirror,
    Config,
    DaemonSettings,
    FleetSettings,
    GlobalSettings,
    MetricsSettings,
    MirrorSpec,
    PluginSpec,
    SyncSettings,
    WebSettings,
)
from .tomlfile import read_toml_file
from .validate import field_names, validate_partial

T = TypeVar("T")
DEFAULT_PATH = "/etc/mirrorkeeper/mirrorkeeper.toml"
ENV_VAR = "MIRRORKEEPER_CONFIG"
TOP_KEYS = ("global", "mirrors", "alerts", "metrics", "daemon", "web", "fleet")
MIRROR_KEYS = frozenset({"profile", "dest", "enabled", "host"})
#: A fleet host's name: what ``[fleet] host`` and a mirror's ``host`` say.
HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
STORE_SCHEMES = ("postgresql", "postgresql+psycopg", "sqlite")
QUEUE_SCHEMES = ("redis", "rediss", "unix")
MIRROR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def find_config(explicit: str | None = None) -> Path:
    """``--config``, then ``$MIRRORKEEPER_CONFIG``, then the system path."""
    if explicit:
        return Path(explicit)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    return Path(DEFAULT_PATH)


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed file; :class:`ConfigError` for every way it cannot be read or parsed."""
    data, problem = read_toml_file(
        path, "create it with `mirrorkeeper init PROFILE --dest DIR`, or point --config or "
              f"${ENV_VAR} at your config")
    if problem is not None or data is None:
        raise ConfigError([problem] if problem else [])
    return data


def _absolute(value: str, base: Path) -> str:
    """Relative paths in the config are relative to the config file, not to the cwd."""
    return str((base / value).resolve()) if not os.path.isabs(value) else os.path.normpath(value)


def _section(raw: Any, name: str, file: str, problems: list[Problem]) -> dict[str, Any] | None:
    """A top-level ``[name]`` table: empty when absent, None (with a problem) when not a table."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append(Problem(file, name, f"should be a table ([{name}])"))
        return None
    return raw


def _table(cls: type[T], raw: Any, name: str, file: str, problems: list[Problem]) -> T | None:
    """An optional top-level table, validated as far as it goes: None when absent; its keys
    that did not validate keep their defaults (problems say why), so the checks of the other
    keys still run in the same pass."""
    raw = _section(raw, name, file, problems)
    if not raw:
        return None
    value, found, _bad = validate_partial(cls, raw, file, f"{name}.")
    problems.extend(found)
    return value


def _load_global(raw: Any, file: str, base: Path, problems: list[Problem]) -> GlobalSettings:
    raw = _section(raw, "global", file, problems)
    if raw is None:
        return GlobalSettings()
    settings, found, _bad = validate_partial(GlobalSettings, raw, file, "global.")
    problems.extend(found)
    settings = settings or GlobalSettings()
    hostname = settings.hostname or socket.getfqdn()
    why = check_hostname(hostname)
    if why:
        problems.append(Problem(file, "global.hostname", f"`{hostname}` {why}",
                                "it names this host's trace file in each mirror; e.g. "
                                "\"mirror.example.org\"" if settings.hostname else
                                "this is the machine's name; set [global] hostname"))
    return GlobalSettings(
        state_dir=_absolute(settings.state_dir, base),
        log_dir=_absolute(settings.log_dir, base),
        hostname=hostname,
        profiles_dir=_absolute(settings.profiles_dir, base),
        rsync=settings.rsync,
        keep_run_logs=settings.keep_run_logs,
        keep_run_logs_days=settings.keep_run_logs_days,
    )


@dataclass(frozen=True)
class _Mirror:
    """One ``[mirrors.NAME]`` table as far as it loads: problems in the config file (each
    blocks the load), and a spec, or a mirror whose profile does not validate."""

    problems: list[Problem]
    spec: MirrorSpec | None = None
    broken: BrokenMirror | None = None
    #: The destination, when it is a path (for the overlap checks, whatever else is wrong).
    dest: str | None = None


def _table_problems(name: str, table: dict[str, Any], file: str,
                    catalogue: Catalogue) -> list[Problem]:
    """What is wrong with the table's own keys: name, unknown keys, profile, dest, enabled."""
    prefix = f"mirrors.{name}."
    problems: list[Problem] = []
    if not MIRROR_NAME.match(name):
        problems.append(Problem(file, f"mirrors.{name}", "a mirror name may hold letters, digits, "
                                "'.', '_' and '-' only, and starts with a letter or digit"))
    for key in table:
        if key not in MIRROR_KEYS and key not in SETTING_KEYS:
            problems.append(Problem(file, prefix + key, "unknown key",
                                    did_you_mean(key, MIRROR_KEYS | SETTING_KEYS)))
    profile_name, dest = table.get("profile"), table.get("dest")
    if not isinstance(profile_name, str):
        problems.append(Problem(file, prefix + "profile", "is required (a string)",
                                "see `mirrorkeeper profiles` for the catalogue"))
    elif catalogue.get(profile_name) is None and profile_name not in catalogue.broken:
        problems.append(Problem(file, prefix + "profile", f"no profile `{profile_name}`",
                                did_you_mean(profile_name, catalogue.profiles)
                                or "see `mirrorkeeper profiles`"))
    if not isinstance(dest, str) or not dest.strip():
        problems.append(Problem(file, prefix + "dest",
                                "is required (the directory to mirror into)"))
    if not isinstance(table.get("enabled", True), bool):
        problems.append(Problem(file, prefix + "enabled", "should be true or false"))
    host = table.get("host", "")
    if not isinstance(host, str) or (host and not HOST_NAME.match(host)):
        problems.append(Problem(file, prefix + "host", f"`{host}` is not a fleet host name",
                                "the `host` of one [fleet] host, e.g. \"node-a\""))
    return problems


def _settings_problems(name: str, table: dict[str, Any], file: str, catalogue: Catalogue,
                       ) -> tuple[SyncSettings | None, list[Problem]]:
    """The mirror's settings (profile, then its overrides) and the problems in what the config
    file says. Without a usable profile only the overrides are checked: a problem that comes
    from the profile's own file belongs to the profile, which reports it."""
    prefix = f"mirrors.{name}."
    profile_name = table.get("profile")
    usable = isinstance(profile_name, str) and catalogue.get(profile_name) is not None
    base_raw = catalogue.raw.get(profile_name, {}) if isinstance(profile_name, str) else {}
    base_origin = catalogue.origin.get(profile_name, {}) if isinstance(profile_name, str) else {}
    overrides = {k: v for k, v in table.items() if k in SETTING_KEYS}
    raw = {**{k: v for k, v in base_raw.items() if k in SETTING_KEYS}, **overrides}
    origin = {k: (src, "") for k, src in base_origin.items()}
    origin.update({k: (file, prefix) for k in overrides})
    settings, problems, bad = validate_partial(SyncSettings, raw, file, prefix, origin)
    if settings is not None:
        for key, message, hint in check_settings(settings, bad):
            where_file, where_prefix = origin.get(key.split(".")[0], (file, prefix))
            problems.append(Problem(where_file, where_prefix + key, message, hint))
    if not usable:
        problems = [p for p in problems if p.file == file and p.key.startswith(prefix)
                    and p.key[len(prefix):].split(".")[0] in overrides]
    return settings, problems


def _password_file(settings: SyncSettings, table: dict[str, Any], file: str,
                   profile_origin: dict[str, str]) -> SyncSettings:
    """A relative ``password_file`` is relative to the file that names it (the config or the
    profile), like every other path, not to the directory the daemon was started in."""
    path = settings.password_file
    if not path or os.path.isabs(path):
        return settings
    source = file if "password_file" in table else profile_origin.get("password_file", file)
    return dataclasses.replace(settings,
                               password_file=_absolute(path, Path(source).resolve().parent))


def _load_mirror(name: str, table: Any, file: str, base: Path,
                 catalogue: Catalogue) -> _Mirror:
    if not isinstance(table, dict):
        return _Mirror([Problem(file, f"mirrors.{name}", "should be a table ([mirrors.NAME])")])
    problems = _table_problems(name, table, file, catalogue)
    dest = table.get("dest")
    dest = _absolute(dest, base) if isinstance(dest, str) and dest.strip() else None
    settings, found = _settings_problems(name, table, file, catalogue)
    problems += found
    profile_name, enabled = table.get("profile"), table.get("enabled", True)
    if problems or dest is None or not isinstance(profile_name, str):
        return _Mirror(problems, dest=dest)
    if profile_name in catalogue.broken:
        return _Mirror([], broken=BrokenMirror(name, profile_name, bool(enabled),
                                               catalogue.broken[profile_name].problems),
                       dest=dest)
    assert settings is not None
    settings = _password_file(settings, table, file, catalogue.origin.get(profile_name, {}))
    publish = settings.publish_path
    if publish and (Path(publish).is_relative_to(dest) or Path(dest).is_relative_to(publish)):
        return _Mirror([Problem(file, f"mirrors.{name}.publish_path",
                                f"overlaps dest ({dest}); the published link must be outside "
                                "the tree a sync writes", "e.g. dest = \"/srv/work/debian\" and "
                                "publish_path = \"/srv/mirror/debian\"")], dest=dest)
    return _Mirror([], MirrorSpec(name=name, profile=profile_name, dest=dest,
                                  enabled=bool(enabled), settings=settings,
                                  info=catalogue.profiles[profile_name].info,
                                  host=str(table.get("host", ""))), dest=dest)


SEVERITIES = ("info", "warning", "error", "critical")


def load_alerts(raw: Any, file: str, problems: list[Problem]) -> AlertSettings:
    raw = _section(raw, "alerts", file, problems)
    if not raw:
        return AlertSettings()
    lists: dict[str, tuple[Any, ...]] = {}
    #: Per item, the keys that did not validate: their checks would only see defaults.
    bad_keys: dict[str, list[frozenset[str]]] = {}
    for key, cls in (("rules", AlertRule), ("plugins", PluginSpec)):
        items = raw.get(key, [])
        if not isinstance(items, list):
            problems.append(Problem(file, f"alerts.{key}", f"should be [[alerts.{key}]] tables"))
            continue
        parsed = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                problems.append(Problem(file, f"alerts.{key}.{i}", "should be a table"))
                continue
            value, found, bad = validate_partial(cls, item, file, f"alerts.{key}.{i}.")
            problems.extend(found)
            if value is not None:
                parsed.append(value)
                bad_keys.setdefault(key, []).append(bad)
        lists[key] = tuple(parsed)
    top = {k: v for k, v in raw.items() if k not in ("rules", "plugins")}
    settings, found, _bad = validate_partial(AlertSettings, top, file, "alerts.")
    problems.extend(found)
    settings = settings or AlertSettings()
    for i, rule in enumerate(lists.get("rules", ())):
        where = f"alerts.rules.{i}."
        unknown = bad_keys["rules"][i]
        if (rule.set_severity is None and rule.suppress_for is None
                and not unknown & {"set_severity", "suppress_for"}):
            problems.append(Problem(file, where + "set_severity", "a rule needs an action",
                                    "set_severity = \"info\" or suppress_for = \"1d\""))
        if rule.set_severity is not None and rule.set_severity not in SEVERITIES:
            problems.append(Problem(file, where + "set_severity",
                                    f"`{rule.set_severity}` is not a severity",
                                    did_you_mean(rule.set_severity, SEVERITIES)))
    for i, plugin in enumerate(lists.get("plugins", ())):
        if not plugin.command:
            problems.append(Problem(file, f"alerts.plugins.{i}.command", "is empty",
                                    "the plugin's argv, e.g. [\"mirrorkeeper-alert-jsonl\", "
                                    "\"/var/log/mirrorkeeper/alerts.jsonl\"]"))
        if plugin.immediate_severity not in SEVERITIES:
            problems.append(Problem(file, f"alerts.plugins.{i}.immediate_severity",
                                    f"`{plugin.immediate_severity}` is not a severity",
                                    did_you_mean(plugin.immediate_severity, SEVERITIES)))
        if plugin.min_severity not in SEVERITIES:
            problems.append(Problem(file, f"alerts.plugins.{i}.min_severity",
                                    f"`{plugin.min_severity}` is not a severity",
                                    did_you_mean(plugin.min_severity, SEVERITIES)))
    return AlertSettings(**{**{k: getattr(settings, k) for k in
                               ("renotify_critical", "renotify_error", "renotify_warning",
                                "renotify_info", "escalate_after_runs")},
                            "rules": lists.get("rules", ()), "plugins": lists.get("plugins", ())})


@dataclass(frozen=True)
class Inspection:
    """A config as far as it loads, and every problem its own file has (each of them blocks
    :func:`load_config`). Problems of profile files are in ``config.profile_problems``: they
    stop only the mirrors that use those profiles (``config.broken``)."""

    config: Config
    problems: list[Problem]


def inspect_config(path: Path | str) -> Inspection:
    """Read and check the whole config in one pass. Raises :class:`ConfigError` only when the
    file cannot be read or parsed at all."""
    path = Path(path)
    file = str(path)
    base = path.resolve().parent
    data = read_toml(path)
    problems: list[Problem] = []
    for key in data:
        if key not in TOP_KEYS:
            problems.append(Problem(file, key, "unknown section", did_you_mean(key, TOP_KEYS)
                                    or "the top level holds [global] and [mirrors.NAME] tables"))
    settings = _load_global(data.get("global"), file, base, problems)
    catalogue = load_catalogue(settings.profiles_dir)
    raw_mirrors = data.get("mirrors", {})
    mirrors: dict[str, MirrorSpec] = {}
    broken: dict[str, BrokenMirror] = {}
    dests: dict[str, str] = {}
    if not isinstance(raw_mirrors, dict):
        problems.append(Problem(file, "mirrors", "should hold tables: [mirrors.NAME]"))
        raw_mirrors = {}
    for name, table in raw_mirrors.items():
        loaded = _load_mirror(name, table, file, base, catalogue)
        problems.extend(loaded.problems)
        if loaded.spec:
            mirrors[name] = loaded.spec
        if loaded.broken:
            broken[name] = loaded.broken
        if loaded.dest:
            problems.extend(_dest_problems(name, loaded.dest, dests, settings, file))
            dests[loaded.dest] = name
    alerts = load_alerts(data.get("alerts"), file, problems)
    metrics = _load_metrics(data.get("metrics"), file, problems)
    daemon = _load_daemon(data.get("daemon"), file, problems)
    web = _load_web(data.get("web"), file, base, problems)
    fleet = _load_fleet(data.get("fleet"), file, problems)
    if fleet is not None and fleet.down_after < 3 * daemon.tick:
        problems.append(Problem(file, "fleet.down_after",
                                f"is shorter than three [daemon] ticks ({3 * daemon.tick:g}s)",
                                "a host beats once per tick; a busy tick must not look like "
                                "a dead host"))
    problems.extend(_host_problems(raw_mirrors, fleet, file))
    config = Config(path=file, settings=settings, mirrors=mirrors, alerts=alerts,
                    metrics=metrics, daemon=daemon, web=web, fleet=fleet, broken=broken,
                    profile_problems=tuple(catalogue.problems))
    return Inspection(config, problems)


def load_config(path: Path | str) -> Config:
    """Read and validate the whole config; raise :class:`ConfigError` listing every problem.

    A profile file that does not validate is no problem of the config file: the mirrors that
    use it are in ``broken`` and every other mirror works (``config check`` still fails).
    """
    inspection = inspect_config(path)
    if inspection.problems:
        raise ConfigError(inspection.problems + list(inspection.config.profile_problems))
    return inspection.config


def _dest_problems(name: str, dest: str, others: dict[str, str], settings: GlobalSettings,
                   file: str) -> list[Problem]:
    """Two mirrors may not share or nest destinations, nor hold the state or the logs."""
    problems: list[Problem] = []
    for other_dest, other in others.items():
        if Path(dest).is_relative_to(other_dest) or Path(other_dest).is_relative_to(dest):
            problems.append(Problem(
                file, f"mirrors.{name}.dest",
                f"overlaps mirror `{other}` ({other_dest}); one mirror's deletions "
                "would remove the other's files", "give each mirror its own directory"))
    for state in (settings.state_dir, settings.log_dir):
        if Path(state).is_relative_to(dest):
            problems.append(Problem(file, f"mirrors.{name}.dest",
                                    f"contains {state}; stage 2 would delete it",
                                    "keep state and logs outside mirrored trees"))
    return problems


def _load_daemon(raw: Any, file: str, problems: list[Problem]) -> DaemonSettings:
    daemon = _table(DaemonSettings, raw, "daemon", file, problems)
    if daemon is None:
        return DaemonSettings()
    if daemon.max_parallel < 1:
        problems.append(Problem(file, "daemon.max_parallel", "must be at least 1"))
    if daemon.tick < 1:
        problems.append(Problem(file, "daemon.tick", "must be at least 1s"))
    if daemon.poll_interval and daemon.poll_interval < 30:
        problems.append(Problem(file, "daemon.poll_interval", "is shorter than 30s",
                                "upstreams would see a poll as abuse; use 0 to turn polling off"))
    if daemon.jitter < 0:
        problems.append(Problem(file, "daemon.jitter", "cannot be negative"))
    return daemon


def _load_fleet(raw: Any, file: str, problems: list[Problem]) -> FleetSettings | None:
    """``[fleet]``: absent, a single host; present, all three keys, each checked here (the
    store and the queue are only reached when a command needs them)."""
    raw = _section(raw, "fleet", file, problems)
    if not raw:
        return None
    fleet, found, bad = validate_partial(FleetSettings, raw, file, "fleet.")
    problems.extend(found)
    if fleet is None:
        return None
    scheme = fleet.store.partition("://")[0]
    if "store" not in bad and (scheme not in STORE_SCHEMES or "://" not in fleet.store):
        problems.append(Problem(file, "fleet.store", f"`{fleet.store}` is not a store URL",
                                "e.g. \"postgresql+psycopg://mirrorkeeper@db.example.org/"
                                "mirrorkeeper\" (the psycopg driver: pip install "
                                "'mirrorkeeper[fleet]')"))
    if "queue" not in bad and (fleet.queue.partition("://")[0] not in QUEUE_SCHEMES
                               or "://" not in fleet.queue):
        problems.append(Problem(file, "fleet.queue", f"`{fleet.queue}` is not a Redis URL",
                                "e.g. \"redis://queue.example.org:6379/0\" or "
                                "\"unix:///run/redis/redis.sock\""))
    if "host" not in bad and not HOST_NAME.match(fleet.host):
        problems.append(Problem(file, "fleet.host", f"`{fleet.host}` is not a fleet host name",
                                "letters, digits, '.', '_' and '-', e.g. \"node-a\""))
    return fleet


def _host_problems(raw_mirrors: Any, fleet: FleetSettings | None,
                   file: str) -> list[Problem]:
    """A mirror's ``host`` means something only in a fleet."""
    if fleet is not None or not isinstance(raw_mirrors, dict):
        return []
    return [Problem(file, f"mirrors.{name}.host", "is set, but there is no [fleet] table",
                    "add [fleet] (store, queue, host) or remove the key")
            for name, table in raw_mirrors.items()
            if isinstance(table, dict) and table.get("host")]


def _load_web(raw: Any, file: str, base: Path, problems: list[Problem]) -> WebSettings:
    web = _table(WebSettings, raw, "web", file, problems)
    if web is None:
        return WebSettings()
    host, _, port = web.listen.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        problems.append(Problem(file, "web.listen", f"`{web.listen}` is not HOST:PORT",
                                "e.g. \"127.0.0.1:8118\""))
    if web.site_url.endswith("/"):
        problems.append(Problem(file, "web.site_url", "must not end with '/'",
                                "MirrorZ appends mirror paths to it"))
    for index, name in enumerate(web.allowed_hosts):
        if not valid_host_entry(name):
            problems.append(Problem(file, f"web.allowed_hosts.{index}",
                                    f"`{name}` is not a host name",
                                    "a name or address without scheme or port, or \"*\""))
    if web.public_url and (not re.match(r"^https?://[^/\s]+(/\S*)?$", web.public_url)
                           or web.public_url.endswith("/")):
        problems.append(Problem(file, "web.public_url",
                                f"`{web.public_url}` is not an http(s) URL without a final '/'",
                                "e.g. \"https://mirror.example.org\"; help pages append "
                                "/MIRROR to it"))
    if web.public and not web.files_url():
        problems.append(Problem(file, "web.public_url", "is needed with `public = true`",
                                "the help pages tell users this URL; set public_url or "
                                "site_url"))
    token_file = _absolute(web.token_file, base) if web.token_file else None
    logo = _absolute(web.logo, base) if web.logo else None
    if logo is not None:
        if Path(logo).suffix.lower() not in LOGO_TYPES:
            problems.append(Problem(file, "web.logo", f"`{logo}` is not an image the pages "
                                    "can serve", f"use a {', '.join(sorted(LOGO_TYPES))} file"))
        elif not Path(logo).is_file():
            problems.append(Problem(file, "web.logo", f"no file `{logo}`",
                                    "give the path of a local image (no URL: the public "
                                    "page loads nothing from another site)"))
    return dataclasses.replace(web, token_file=token_file, logo=logo)


def _load_metrics(raw: Any, file: str, problems: list[Problem]) -> MetricsSettings:
    metrics = _table(MetricsSettings, raw, "metrics", file, problems)
    if metrics is None:
        return MetricsSettings()
    for key, schemes in (("graphite", ("tcp", "udp")), ("statsd", ("udp",))):
        url = getattr(metrics, key)
        if url is not None and not re.match(rf"^({'|'.join(schemes)})://[^/:]+:\d+/?$", url):
            problems.append(Problem(file, f"metrics.{key}", f"`{url}` is not an endpoint",
                                    f"use {' or '.join(s + '://HOST:PORT' for s in schemes)}"))
    if metrics.interval < 1:
        problems.append(Problem(file, "metrics.interval", "must be at least 1s"))
    return metrics


__all__ = ["Inspection", "field_names", "find_config", "inspect_config", "load_config",
           "read_toml"]
