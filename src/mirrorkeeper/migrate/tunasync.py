"""tunasync's ``worker.conf`` (TOML) to ``[mirrors.NAME]`` tables.

Mirrors of the ``rsync`` and ``two-stage-rsync`` providers map; a mirror whose name or
upstream matches a catalogue profile takes that profile, any other gets an admin profile of
its own (``PROFILES_DIR/NAME.toml``) holding its upstream. ``command`` mirrors run a script
of their own and are listed as not mapped, as is everything about containers, cgroups and
tunasync's manager.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from ..config.options import check_rsync_options
from ..config.spec import Profile
from .result import Imported

#: tunasync's stage-1 profiles (worker/provider two-stage-rsync): what stage 1 leaves out.
STAGE1_PROFILES = {
    "debian": ["dists/", "Packages*", "Sources*", "Release*", "InRelease", "i18n/*", "ls-lR*",
               "dep11/*"],
    "debian-oldstyle": ["Packages*", "Sources*", "Release*", "InRelease", "i18n/*", "ls-lR*",
                        "dep11/*"],
}
RSYNC_PROVIDERS = ("rsync", "two-stage-rsync")
_NAME = re.compile(r"[^A-Za-z0-9_.-]")

WHY = {
    "memory_limit": "Mirrorkeeper runs rsync without cgroups; limit the service (systemd "
                    "MemoryMax=) instead",
    "docker_image": "no containers: Mirrorkeeper runs rsync itself",
    "docker_volumes": "no containers: Mirrorkeeper runs rsync itself",
    "docker_options": "no containers: Mirrorkeeper runs rsync itself",
    "success_exit_codes": "Mirrorkeeper judges rsync's exit codes itself (23/24 become "
                          "findings with a severity); tune them with [[alerts.rules]]",
    "rsync_success_exit_codes": "Mirrorkeeper judges rsync's exit codes itself (23/24 become "
                                "findings with a severity); tune them with [[alerts.rules]]",
    "exec_on_success": "no hooks: alert plugins receive every finding and recovery",
    "exec_on_failure": "no hooks: alert plugins receive every finding and recovery",
    "exec_on_success_extra": "no hooks: alert plugins receive every finding and recovery",
    "exec_on_failure_extra": "no hooks: alert plugins receive every finding and recovery",
    "size_pattern": "the size comes from rsync's own stats",
    "fail_on_match": "rsync's output is parsed line by line; unknown lines become findings",
    "log_dir": "[global] log_dir holds every mirror's logs",
    "rsync_override": "Mirrorkeeper builds rsync's options itself; add allowed extras with "
                      "rsync_options",
    "rsync_override_only": "Mirrorkeeper builds rsync's options itself",
    "rsync_no_timeout": "an rsync timeout always applies (timeout); a long one is fine",
    "password": "a secret stays out of the config: write it to a file of mode 0600 and set "
                "password_file",
    "snapshot_path": "no snapshots in Mirrorkeeper yet",
    "role": "one kind of mirror: the worker's role does not apply",
    "env": "rsync runs with a clean environment (LC_ALL=C); a password goes in password_file",
    "mirrors": "child mirrors are not imported; import each as a mirror of its own",
    "mirror_dir": "dest is set from it",
    "mirror_subdir": "dest is set from it",
}
GLOBAL_WHY = {
    "name": "the worker's name: Mirrorkeeper uses [global] hostname",
    "log_dir": "set [global] log_dir",
    "mirror_dir": "each mirror's dest is under it",
    "concurrent": "set [daemon] max_parallel",
    "interval": "the default schedule of the imported mirrors",
    "retry": "attempts_per_upstream of each mirror",
    "timeout": "run_budget of each mirror",
    "exec_on_success": "no hooks: alert plugins receive every finding and recovery",
    "exec_on_failure": "no hooks: alert plugins receive every finding and recovery",
    "dangerous_global_success_exit_codes": "Mirrorkeeper judges exit codes itself; tune with "
                                           "[[alerts.rules]]",
}
SECTION_WHY = {
    "manager": "no separate manager: `mirrorkeeper daemon` schedules, and its web serves "
               "a tunasync-compatible job list ([web])",
    "server": "no worker API: `mirrorkeeper daemon` serves the dashboard and API ([web])",
    "cgroup": "Mirrorkeeper runs rsync without cgroups",
    "docker": "no containers: Mirrorkeeper runs rsync itself",
    "zfs": "no ZFS datasets per mirror in Mirrorkeeper",
    "btrfs_snapshot": "no snapshots in Mirrorkeeper yet",
    "include": "included mirror files are not followed; import each file",
}


def _host_module(url: str) -> str:
    url = url.lower().rstrip("/")
    url = re.sub(r"^rsync://([^@/]*@)?", "", url)
    return url.replace("::", "/").replace(":873/", "/")


def match_profile(name: str, upstream: str, profiles: Mapping[str, Profile]) -> str | None:
    """The catalogue profile for a mirror: by name, else by one of its upstreams."""
    lowered = {p.lower(): p for p in profiles}
    if name.lower() in lowered:
        return lowered[name.lower()]
    target = _host_module(upstream)
    for profile in profiles.values():
        if any(_host_module(u) == target for u in profile.settings.upstreams):
            return profile.name
    return None


def _minutes(value: Any) -> str | None:
    return f"every {value}m" if isinstance(value, int) and value > 0 else None


def from_tunasync(data: Mapping[str, Any], profiles: Mapping[str, Profile],
                  source: str) -> Imported:
    imported = Imported()
    global_ = data.get("global", {}) if isinstance(data.get("global"), dict) else {}
    for key in global_:
        if key in ("mirror_dir", "interval", "retry", "timeout"):
            imported.map(f"global.{key}", GLOBAL_WHY[key])
        else:
            imported.skip(f"global.{key}", GLOBAL_WHY.get(
                key, "not a worker setting Mirrorkeeper knows"))
    for section in data:
        if section not in ("global", "mirrors"):
            imported.skip(f"[{section}]", SECTION_WHY.get(section, "not a section Mirrorkeeper "
                                                                   "knows"))
    mirror_dir = global_.get("mirror_dir", "/srv/tunasync")
    mirrors = data.get("mirrors", [])
    for index, mirror in enumerate(mirrors if isinstance(mirrors, list) else []):
        if isinstance(mirror, dict):
            _one(mirror, index, global_, str(mirror_dir), profiles, imported, source)
    return imported


def _one(mirror: dict[str, Any], index: int, global_: Mapping[str, Any], mirror_dir: str,
         profiles: Mapping[str, Profile], imported: Imported, source: str) -> None:
    raw_name = str(mirror.get("name", f"mirror{index}"))
    name = _NAME.sub("-", raw_name).lstrip("-._") or f"mirror{index}"
    where = f"mirrors.{raw_name}"
    provider = mirror.get("provider", "")
    upstream = str(mirror.get("upstream", ""))
    if provider not in RSYNC_PROVIDERS:
        imported.skip(where, f"provider `{provider}` runs a program of its own "
                             f"({str(mirror.get('command', ''))[:60] or 'no command'}); "
                             "Mirrorkeeper syncs with rsync only")
        return
    if not (upstream.startswith("rsync://") or "::" in upstream):
        imported.skip(where, f"upstream `{upstream}` is not an rsync daemon (rsync:// or "
                             "host::module); rsync over ssh is not supported")
        return
    if name in imported.mirrors:
        imported.skip(where, f"a second mirror named `{name}`")
        return
    user = mirror.get("username")
    if user and upstream.startswith("rsync://") and "@" not in upstream.split("/")[2]:
        upstream = f"rsync://{user}@{upstream[len('rsync://'):]}"
        imported.map(f"{where}.username", "the user in the upstream URL")
    subdir = mirror.get("mirror_subdir")
    base = str(mirror.get("mirror_dir", mirror_dir))
    dest = os.path.join(base, str(subdir), raw_name) if subdir else os.path.join(base, raw_name)
    profile = match_profile(raw_name, upstream, profiles)
    table: dict[str, Any] = {"profile": profile or name, "dest": dest, "upstreams": [upstream]}
    if profile is None:
        schedule = _minutes(mirror.get("interval")) or _minutes(global_.get("interval"))
        imported.profiles[name] = {
            "description": f"{raw_name}, imported from tunasync",
            "notes": f"Imported from {source} by `mirrorkeeper import tunasync`: a plain rsync "
                     "tree. No update signal is known, so every scheduled run syncs; set "
                     "update_signal if the project publishes one.",
            "upstreams": [upstream],
            **({"schedule": schedule} if schedule else {}),
        }
        imported.map(where, f"mirror `{name}` with an admin profile of its own "
                            f"(PROFILES_DIR/{name}.toml)")
    else:
        imported.map(where, f"mirror `{name}` of the `{profile}` profile")
    interval = _minutes(mirror.get("interval")) or _minutes(global_.get("interval"))
    if interval and profile is not None:
        table["schedule"] = interval
    if "interval" in mirror:
        imported.map(f"{where}.interval", f"schedule = {interval!r}")
    if provider == "two-stage-rsync":
        stage1 = str(mirror.get("stage1_profile", "debian"))
        if stage1 in STAGE1_PROFILES:
            table["stage2"] = STAGE1_PROFILES[stage1]
            imported.map(f"{where}.stage1_profile", f"stage2 = tunasync's `{stage1}` list")
        else:
            imported.skip(f"{where}.stage1_profile", f"`{stage1}` is not a tunasync stage-1 "
                                                     "profile; the profile's stages stand")
    elif "stage1_profile" in mirror:
        imported.skip(f"{where}.stage1_profile", "only used by the two-stage-rsync provider")
    options: list[str] = []
    for option in mirror.get("rsync_options", []) or []:
        problems = check_rsync_options([*options, str(option)])
        if problems:
            imported.skip(f"{where}.rsync_options {option}",
                          f"{problems[0][1]}; {problems[0][2]}".strip("; "))
        else:
            options.append(str(option))
    for flag, option in (("use_ipv6", "--ipv6"), ("use_ipv4", "--ipv4")):
        if mirror.get(flag) is True:
            if check_rsync_options([*options, option]):
                imported.skip(f"{where}.{flag}", f"{option} is not an allowed rsync option")
            else:
                options.append(option)
                imported.map(f"{where}.{flag}", f"rsync_options {option}")
    if options:
        table["rsync_options"] = options
        imported.map(f"{where}.rsync_options", f"rsync_options = {options!r}")
    exclude_file = mirror.get("exclude_file")
    if exclude_file:
        try:
            with open(exclude_file, encoding="utf-8") as handle:
                patterns = [line.strip() for line in handle
                            if line.strip() and not line.lstrip().startswith(("#", ";"))]
            table["excludes"] = patterns
            imported.map(f"{where}.exclude_file", f"excludes ({len(patterns)} patterns)")
        except OSError as exc:
            imported.skip(f"{where}.exclude_file", f"cannot read {exclude_file} here "
                                                   f"({exc.strerror}); list its patterns in "
                                                   "excludes")
    retry = mirror.get("retry", global_.get("retry"))
    if isinstance(retry, int) and retry > 0:
        table["attempts_per_upstream"] = retry
    timeout = mirror.get("timeout", global_.get("timeout"))
    if isinstance(timeout, int) and timeout > 0:
        table["run_budget"] = f"{timeout}s"
    rsync_timeout = mirror.get("rsync_timeout")
    if isinstance(rsync_timeout, int) and rsync_timeout > 0:
        table["timeout"] = f"{rsync_timeout}s"
        imported.map(f"{where}.rsync_timeout", "timeout")
    handled = {"name", "provider", "upstream", "interval", "stage1_profile", "rsync_options",
               "use_ipv6", "use_ipv4", "exclude_file", "retry", "timeout", "rsync_timeout",
               "username", "command"}
    for key in mirror:
        if key not in handled:
            imported.skip(f"{where}.{key}", WHY.get(key, "not a mirror setting Mirrorkeeper "
                                                         "knows"))
    imported.mirrors[name] = table
