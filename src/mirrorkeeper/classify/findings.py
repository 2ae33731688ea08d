"""A finding: one thing a run says about the mirror, with a stable code and a severity."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class Severity(IntEnum):
    """Ordered, so ``max()`` and ``>=`` mean what they say. ``critical`` is sev0."""

    INFO = 1
    WARNING = 2
    ERROR = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"`{text}` is not a severity; use info, warning, error or "
                             "critical") from None

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Finding:
    mirror: str
    code: str
    severity: Severity
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    run_id: int | None = None
    upstream: str | None = None
    #: Set by the rules engine when a rule changed the severity (its index and name).
    rule: str | None = None
