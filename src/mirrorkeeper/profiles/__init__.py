"""The profile catalogue: shipped project profiles plus the admin's own.

A profile is one TOML file named after it. Its keys are the fields of ``ProfileInfo``
(description, docs, approx_size, notes, extends, checked_against, unverified, restricted) and
of ``SyncSettings`` (see
:mod:`mirrorkeeper.config.spec`). A file in the admin's profiles directory with the same name
replaces the shipped one; ``extends = "debian"`` starts from another profile.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..config.checks import check_settings
from ..config.problems import Problem, did_you_mean
from ..config.spec import Profile, ProfileInfo, SyncSettings
from ..config.validate import field_names, validate_table

INFO_KEYS = frozenset(field_names(ProfileInfo))
SETTING_KEYS = frozenset(field_names(SyncSettings))


@dataclass
class Catalogue:
    profiles: dict[str, Profile] = field(default_factory=dict)
    #: Raw settings per profile after ``extends`` was applied, with each key's origin file;
    #: mirrors merge their overrides into these before validation.
    raw: dict[str, dict[str, Any]] = field(default_factory=dict)
    origin: dict[str, dict[str, str]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def get(self, name: str) -> Profile | None:
        return self.profiles.get(name)


def shipped_dir() -> Path:
    return Path(str(resources.files("mirrorkeeper.profiles") / "catalogue"))


def _read_files(directory: Path, problems: list[Problem]) -> dict[str, tuple[str, dict[str, Any]]]:
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for path in sorted(directory.glob("*.toml")):
        try:
            found[path.stem] = (str(path), tomllib.loads(path.read_text(encoding="utf-8")))
        except tomllib.TOMLDecodeError as exc:
            problems.append(Problem(str(path), "", f"not valid TOML: {exc}"))
        except OSError as exc:
            problems.append(Problem(str(path), "", f"cannot be read: {exc.strerror}"))
    return found


def load_catalogue(admin_dir: str | None = None) -> Catalogue:
    """Load every profile; problems are collected, not raised, so one bad file hides nothing."""
    cat = Catalogue()
    files = _read_files(shipped_dir(), cat.problems)
    if admin_dir and Path(admin_dir).is_dir():
        files.update(_read_files(Path(admin_dir), cat.problems))

    resolving: set[str] = set()

    def resolve(name: str) -> tuple[dict[str, Any], dict[str, str]] | None:
        if name in cat.raw:
            return cat.raw[name], cat.origin[name]
        source, table = files[name]
        if name in resolving:
            cat.problems.append(Problem(source, "extends", "profiles extend each other in a loop"))
            return None
        resolving.add(name)
        settings: dict[str, Any] = {}
        origin: dict[str, str] = {}
        base = table.get("extends")
        if isinstance(base, str):
            if base not in files:
                cat.problems.append(Problem(source, "extends", f"no profile `{base}`",
                                            did_you_mean(base, files)))
            else:
                inherited = resolve(base)
                if inherited is not None:
                    settings.update(inherited[0])
                    origin.update(inherited[1])
        for key, value in table.items():
            if key not in INFO_KEYS:
                settings[key] = value
                origin[key] = source
        resolving.discard(name)
        cat.raw[name], cat.origin[name] = settings, origin
        return settings, origin

    for name, (source, table) in files.items():
        resolved = resolve(name)
        info_raw = {k: v for k, v in table.items() if k in INFO_KEYS}
        info, info_problems = validate_table(ProfileInfo, info_raw, source, "")
        cat.problems.extend(info_problems)
        if resolved is None or info is None:
            continue
        raw, origin = resolved
        unknown = [k for k in raw if k not in SETTING_KEYS]
        for key in unknown:
            cat.problems.append(Problem(origin[key], key, "unknown key",
                                        did_you_mean(key, SETTING_KEYS | INFO_KEYS)))
        settings, problems = validate_table(
            SyncSettings, {k: v for k, v in raw.items() if k in SETTING_KEYS}, source, "",
            {k: (origin[k], "") for k in raw},
        )
        cat.problems.extend(problems)
        if settings is None or unknown:
            continue
        checks = check_settings(settings)
        for key, message, hint in checks:
            cat.problems.append(Problem(origin.get(key.split(".")[0], source), key, message, hint))
        if not checks:
            cat.profiles[name] = Profile(name=name, info=info, settings=settings, source=source)
    return cat
