"""The profile catalogue: shipped project profiles plus the admin's own.

A profile is one TOML file named after it. Its keys are the fields of ``ProfileInfo``
(description, docs, approx_size, notes, extends, checked_against, unverified, restricted,
help) and
of ``SyncSettings`` (see
:mod:`mirrorkeeper.config.spec`). A file in the admin's profiles directory with the same name
replaces the shipped one; ``extends = "debian"`` starts from another profile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..config.checks import check_settings
from ..config.problems import Problem, did_you_mean
from ..config.spec import Profile, ProfileInfo, SyncSettings
from ..config.tomlfile import read_toml_file
from ..config.validate import field_names, validate_partial, validate_table

INFO_KEYS = frozenset(field_names(ProfileInfo))
SETTING_KEYS = frozenset(field_names(SyncSettings))
#: What a profile that ``extends`` another takes from it unless it says otherwise: the
#: project's documentation, size and its users' snippets. Not what the base's own sources
#: vouch for (``checked_against``, ``unverified``), nor its description.
INHERITED_INFO = ("docs", "approx_size", "help", "restricted")


@dataclass(frozen=True)
class BrokenProfile:
    """A profile file that does not validate (or extends one that does not)."""

    name: str
    source: str
    problems: tuple[Problem, ...]


@dataclass
class Catalogue:
    profiles: dict[str, Profile] = field(default_factory=dict)
    #: Raw settings per profile after ``extends`` was applied, with each key's origin file;
    #: mirrors merge their overrides into these before validation.
    raw: dict[str, dict[str, Any]] = field(default_factory=dict)
    origin: dict[str, dict[str, str]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    #: Profiles that exist as files but do not validate. A broken file in the admin's
    #: directory is never replaced by the shipped profile of the same name: the admin meant
    #: to override it, so the mirrors of that profile wait for the fix.
    broken: dict[str, BrokenProfile] = field(default_factory=dict)

    def get(self, name: str) -> Profile | None:
        return self.profiles.get(name)


def shipped_dir() -> Path:
    return Path(str(resources.files("mirrorkeeper.profiles") / "catalogue"))


Files = dict[str, tuple[str, dict[str, Any]]]


def _read_files(directory: Path) -> tuple[Files, dict[str, BrokenProfile]]:
    """Every ``*.toml`` of ``directory``: the ones that parse, and the ones that do not."""
    found: Files = {}
    unreadable: dict[str, BrokenProfile] = {}
    for path in sorted(directory.glob("*.toml")):
        table, problem = read_toml_file(path)
        if problem is not None or table is None:
            unreadable[path.stem] = BrokenProfile(path.stem, str(path),
                                                  (problem,) if problem else ())
        else:
            found[path.stem] = (str(path), table)
    return found, unreadable


def _gather(admin_dir: str | None) -> tuple[Files, dict[str, BrokenProfile]]:
    """Shipped files, then the admin's, which replace them by name (a broken one too)."""
    files, unreadable = _read_files(shipped_dir())
    if admin_dir and Path(admin_dir).is_dir():
        admin, admin_unreadable = _read_files(Path(admin_dir))
        for name in admin:
            unreadable.pop(name, None)
        for name in admin_unreadable:
            files.pop(name, None)
        files.update(admin)
        unreadable.update(admin_unreadable)
    return files, unreadable


def _dedup(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


def load_catalogue(admin_dir: str | None = None) -> Catalogue:
    """Load every profile; problems are collected, not raised, so one bad file hides nothing
    and breaks nothing but the profiles (and mirrors) that use it."""
    cat = Catalogue()
    files, unreadable = _gather(admin_dir)
    own: dict[str, list[Problem]] = {name: [] for name in files}
    bases: dict[str, str] = {}
    resolving: set[str] = set()

    def resolve(name: str) -> tuple[dict[str, Any], dict[str, str]]:
        if name in cat.raw:
            return cat.raw[name], cat.origin[name]
        source, table = files[name]
        if name in resolving:
            own[name].append(Problem(source, "extends", "profiles extend each other in a loop"))
            return {}, {}
        resolving.add(name)
        settings: dict[str, Any] = {}
        origin: dict[str, str] = {}
        base = table.get("extends")
        if isinstance(base, str):
            if base in unreadable:
                own[name].append(Problem(source, "extends", f"profile `{base}` does not "
                                         "validate", f"see {unreadable[base].source}"))
            elif base not in files:
                own[name].append(Problem(source, "extends", f"no profile `{base}`",
                                         did_you_mean(base, files)))
            else:
                bases[name] = base
                inherited = resolve(base)
                settings.update(inherited[0])
                origin.update(inherited[1])
        for key, value in table.items():
            if key not in INFO_KEYS:
                settings[key] = value
                origin[key] = source
        resolving.discard(name)
        cat.raw[name], cat.origin[name] = settings, origin
        return settings, origin

    built: dict[str, tuple[ProfileInfo | None, SyncSettings | None]] = {}
    for name, (source, table) in files.items():
        raw, origin = resolve(name)
        info_raw = {k: v for k, v in table.items() if k in INFO_KEYS}
        for key in INHERITED_INFO:  # what the project's users need follows the settings
            seen, ancestor = {name}, bases.get(name)
            while key not in info_raw and ancestor in files and ancestor not in seen:
                seen.add(ancestor)
                if key in files[ancestor][1]:
                    info_raw[key] = files[ancestor][1][key]
                ancestor = bases.get(ancestor)
        info, info_problems = validate_table(ProfileInfo, info_raw, source, "")
        own[name] += info_problems
        for key in (k for k in raw if k not in SETTING_KEYS):
            own[name].append(Problem(origin[key], key, "unknown key",
                                     did_you_mean(key, SETTING_KEYS | INFO_KEYS)))
        settings, problems, bad = validate_partial(
            SyncSettings, {k: v for k, v in raw.items() if k in SETTING_KEYS}, source, "",
            {k: (origin[k], "") for k in raw},
        )
        own[name] += problems
        if settings is not None:
            for key, message, hint in check_settings(settings, bad):
                own[name].append(Problem(origin.get(key.split(".")[0], source), key, message,
                                         hint))
        built[name] = (info, settings)

    def everything(name: str, seen: frozenset[str] = frozenset()) -> list[Problem]:
        """A profile's own problems and those of every profile it extends."""
        base = bases.get(name)
        inherited = everything(base, seen | {name}) if base and base not in seen else []
        return _dedup(own[name] + inherited)

    for name, (source, _table) in files.items():
        problems = everything(name)
        info, settings = built[name]
        if problems or info is None or settings is None:
            cat.broken[name] = BrokenProfile(name, source, tuple(problems))
        else:
            cat.profiles[name] = Profile(name=name, info=info, settings=settings, source=source)
    cat.broken.update(unreadable)
    cat.problems = _dedup([p for b in sorted(unreadable.values(), key=lambda b: b.source)
                           for p in b.problems] + [p for name in files for p in own[name]])
    return cat
