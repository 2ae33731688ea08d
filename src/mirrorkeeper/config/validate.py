"""Strict validation of raw TOML tables into the frozen dataclasses of :mod:`.spec`.

pydantic lives here, at the edge, and nowhere in the core: a strict model is derived from each
dataclass's fields, so the field list is written once.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, TypeVar, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from .durations import parse_duration
from .problems import Problem, did_you_mean
from .spec import DURATION_KEYS

T = TypeVar("T")

_FRIENDLY_TYPES = {
    "tuple_type": "should be a list",
    "string_type": "should be a string (in quotes)",
    "int_type": "should be a whole number",
    "float_type": "should be a number",
    "bool_type": "should be true or false",
    "missing": "is required",
}


@functools.cache
def _strict_model(cls: type[Any]) -> type[BaseModel]:
    hints = get_type_hints(cls)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = ...
        fields[f.name] = (hints[f.name], default)
    model: type[BaseModel] = create_model(
        f"{cls.__name__}Table", __config__=ConfigDict(strict=True, extra="forbid"), **fields
    )
    return model


def field_names(cls: type[Any]) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def normalise(raw: dict[str, Any], file: str, prefix: str,
              origin: dict[str, tuple[str, str]] | None = None,
              ) -> tuple[dict[str, Any], list[Problem]]:
    """TOML arrays become tuples; durations ('6h') become seconds. A duration that does not
    parse is left out (and reported), so the other keys can still be checked."""
    origin = origin or {}
    out: dict[str, Any] = {}
    problems: list[Problem] = []
    for key, value in raw.items():
        if isinstance(value, list):
            value = tuple(value)
        if key in DURATION_KEYS and isinstance(value, str | int | float):
            try:
                value = parse_duration(value)
            except ValueError as exc:
                where_file, where_prefix = origin.get(key, (file, prefix))
                problems.append(Problem(where_file, f"{where_prefix}{key}", str(exc)))
                continue
        out[key] = value
    return out, problems


def _problems_of(exc: ValidationError, names: list[str], file: str, prefix: str,
                 origin: dict[str, tuple[str, str]]) -> tuple[list[Problem], set[str]]:
    """pydantic's errors as problems at the key the admin wrote, and the keys they concern."""
    problems: list[Problem] = []
    bad: set[str] = set()
    for err in exc.errors():
        loc = [str(part) for part in err["loc"]]
        top = loc[0] if loc else ""
        bad.add(top)
        where_file, where_prefix = origin.get(top, (file, prefix))
        key = where_prefix + ".".join(loc)
        if err["type"] == "extra_forbidden":
            problems.append(Problem(where_file, key, "unknown key", did_you_mean(top, names)))
        else:
            message = _FRIENDLY_TYPES.get(err["type"], err["msg"])
            got = "" if err["type"] == "missing" else f" (got {err['input']!r})"
            problems.append(Problem(where_file, key, message + got))
    return problems, bad


def validate_partial(
    cls: type[T],
    raw: dict[str, Any],
    file: str,
    prefix: str,
    origin: dict[str, tuple[str, str]] | None = None,
) -> tuple[T | None, list[Problem], frozenset[str]]:
    """Validate ``raw`` into ``cls`` as far as it goes: every problem, the keys they concern,
    and a value built from the keys that are fine (defaults for the rest), so that the checks
    that come after types can run in the same pass. The value is None only when a required key
    is missing or wrong.

    ``origin`` maps a key to the (file, prefix) it came from when ``raw`` merges several tables
    (a profile and a mirror's overrides), so an error points at the line the admin wrote.
    """
    origin = origin or {}
    data, problems = normalise(raw, file, prefix, origin)
    bad = {key for key in raw if key not in data}
    model_cls = _strict_model(cls)  # type: ignore[arg-type]
    names = field_names(cls)
    try:
        model = model_cls.model_validate(data)
    except ValidationError as exc:
        found, keys = _problems_of(exc, names, file, prefix, origin)
        problems += found
        bad |= keys
        try:
            model = model_cls.model_validate({k: v for k, v in data.items() if k not in bad})
        except ValidationError:
            return None, problems, frozenset(bad)
    return cls(**{name: getattr(model, name) for name in names}), problems, frozenset(bad)


def validate_table(
    cls: type[T],
    raw: dict[str, Any],
    file: str,
    prefix: str,
    origin: dict[str, tuple[str, str]] | None = None,
) -> tuple[T | None, list[Problem]]:
    """Validate ``raw`` into ``cls``; problems carry the file and dotted key path. None unless
    every key is fine (see :func:`validate_partial` for a value in spite of problems)."""
    value, problems, _bad = validate_partial(cls, raw, file, prefix, origin)
    return (None if problems else value), problems
