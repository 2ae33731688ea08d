"""A JSON Schema of ``mirrorkeeper.toml``, derived from the config dataclasses (pure).

Editors that read JSON Schema for TOML (taplo, Even Better TOML) then complete and check keys.
Like the strict validators, it is derived from :mod:`.spec`, so a new setting needs no second
list; each field's ``#:`` comment becomes its description.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
from typing import Any, Union, get_args, get_origin, get_type_hints

from .spec import (
    DURATION_KEYS,
    AlertRule,
    AlertSettings,
    DaemonSettings,
    FleetSettings,
    GlobalSettings,
    MetricsSettings,
    PluginSpec,
    SyncSettings,
    WebSettings,
)

_DURATION = {"anyOf": [{"type": "number", "minimum": 0},
                       {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?\s*[smhdw]?\s*)+$"}],
             "description": "seconds, or a number with a unit: 90s, 30m, 6h, 2d, 1w"}
_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _comments(cls: type[Any]) -> dict[str, str]:
    """Each field's ``#:`` comment lines, from the class source (empty when unavailable)."""
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    found: dict[str, str] = {}
    pending: list[str] = []
    for line in lines:
        text = line.strip()
        if text.startswith("#:"):
            pending.append(text[2:].strip())
            continue
        m = re.match(r"^(\w+)\s*:", text)
        if m and pending:
            found[m.group(1)] = " ".join(pending)
        pending = [] if not text.startswith("#") else pending
    return found


def _type(hint: Any) -> dict[str, Any]:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(hint) if a is not type(None)]
        return _type(inner[0]) if len(inner) == 1 else {"anyOf": [_type(a) for a in inner]}
    if origin is tuple:
        return {"type": "array", "items": _type(get_args(hint)[0])}
    if hint in _SCALARS:
        return {"type": _SCALARS[hint]}
    return {}


def table(cls: type[Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The schema of one TOML table holding ``cls``'s fields."""
    hints = get_type_hints(cls)
    notes = _comments(cls)
    properties: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        prop = dict(_DURATION) if f.name in DURATION_KEYS else _type(hints[f.name])
        if f.name in notes:
            prop["description"] = notes[f.name] + (
                f" ({_DURATION['description']})" if f.name in DURATION_KEYS else "")
        properties[f.name] = prop
    properties.update(extra or {})
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False,
                              "properties": properties}
    if required:
        schema["required"] = required
    return schema


def config_schema() -> dict[str, Any]:
    mirror = table(SyncSettings, {
        "profile": {"type": "string", "description": "the profile (see `mirrorkeeper profiles`)"},
        "dest": {"type": "string", "description": "the directory to mirror into"},
        "enabled": {"type": "boolean", "description": "false: configured, but not synced"},
        "host": {"type": "string", "description": "the [fleet] host that syncs it "
                 "(empty: this host)"},
    })
    mirror["required"] = ["profile", "dest"]
    alerts = table(AlertSettings)
    alerts["properties"]["rules"] = {"type": "array", "items": table(AlertRule)}
    alerts["properties"]["plugins"] = {"type": "array", "items": table(PluginSpec)}
    global_ = table(GlobalSettings)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "mirrorkeeper.toml",
        "description": "Mirrorkeeper's configuration; see docs/configuration.md.",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "global": global_,
            "mirrors": {"type": "object", "additionalProperties": mirror,
                        "propertyNames": {"pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"}},
            "alerts": alerts,
            "metrics": table(MetricsSettings),
            "daemon": table(DaemonSettings),
            "web": table(WebSettings),
            "fleet": table(FleetSettings),
        },
    }
