"""What an import found: the mirror tables, admin profiles it needs, and for every source
setting where it went or why it went nowhere. Rendered as TOML that appends to a config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config.edit import toml_string


@dataclass
class Imported:
    #: name → the keys of its ``[mirrors.NAME]`` table (profile and dest first).
    mirrors: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: name → the keys of an admin profile file the mirrors need (``PROFILES_DIR/NAME.toml``).
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: (source setting, where it went), in source order.
    mapped: list[tuple[str, str]] = field(default_factory=list)
    #: (source setting, why it is not mapped), in source order.
    unmapped: list[tuple[str, str]] = field(default_factory=list)

    def map(self, source: str, target: str) -> None:
        self.mapped.append((source, target))

    def skip(self, source: str, why: str) -> None:
        self.unmapped.append((source, why))


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def _key(name: str) -> str:
    return name if name.replace("-", "").replace("_", "").isalnum() else toml_string(name)


def table_text(header: str, table: dict[str, Any]) -> str:
    lines = [f"[{header}]"] if header else []
    lines += [f"{key} = {toml_value(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


def mirrors_text(imported: Imported) -> str:
    """The ``[mirrors.NAME]`` tables, each after a blank line (appendable to any config)."""
    return "".join("\n" + table_text(f"mirrors.{_key(name)}", table)
                   for name, table in imported.mirrors.items())


def report_text(imported: Imported, source: str) -> str:
    """Every source setting and where it went, as TOML comments."""
    lines = [f"# Imported from {source} by `mirrorkeeper import`."]
    if imported.mapped:
        lines.append("# Mapped:")
        lines += [f"#   {src} -> {target}" for src, target in imported.mapped]
    if imported.unmapped:
        lines.append("# Not mapped:")
        lines += [f"#   {src}: {why}" for src, why in imported.unmapped]
    return "\n".join(lines) + "\n"
