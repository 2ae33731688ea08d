"""What a plugin receives (pure): one alert as JSON, and its key fields as environment."""

from __future__ import annotations

from typing import Any

from ..logs import iso


def payload(alert: dict[str, Any], *, host: str, resolved: bool = False,
            test: bool = False) -> dict[str, Any]:
    details = alert.get("details") or {}
    return {
        "mirror": alert["mirror"],
        "severity": alert["severity"],
        "code": alert["code"],
        "summary": alert["summary"],
        "details": details,
        "alert_id": alert.get("id"),
        "run_id": alert.get("run_id"),
        "upstream": alert.get("upstream"),
        "upstreams_tried": details.get("upstreams_tried", []),
        "first_seen": iso(alert.get("first_seen")),
        "last_seen": iso(alert.get("last_seen")),
        "occurrences": alert.get("occurrences", 1),
        "rule": alert.get("rule"),
        "resolved": resolved,
        "test": test,
        "host": host,
    }


def environment(data: dict[str, Any]) -> dict[str, str]:
    keys = ("mirror", "severity", "code", "summary", "alert_id", "run_id", "upstream",
            "first_seen", "last_seen", "resolved", "test", "host")
    env = {}
    for key in keys:
        value = data.get(key)
        env[f"MIRRORKEEPER_{key.upper()}"] = (
            "" if value is None else str(value).lower() if isinstance(value, bool) else str(value))
    return env
