"""Shipped alert plugins. Each is an executable (console script) that reads one alert as JSON
on stdin and exits 0 once delivered — the same contract any admin-written plugin follows."""

from __future__ import annotations

import json
import sys
from typing import Any


def read_alert() -> dict[str, Any]:
    data = json.load(sys.stdin)
    if not isinstance(data, dict) or "code" not in data:
        raise SystemExit("expected one alert as a JSON object on stdin")
    return data


def subject(alert: dict[str, Any]) -> str:
    if alert.get("digest"):
        return f"[mirrorkeeper digest] {alert['summary']} (worst: {alert['severity']})"
    state = "RESOLVED" if alert.get("resolved") else str(alert["severity"]).upper()
    test = "[test] " if alert.get("test") else ""
    return f"{test}[mirrorkeeper {state}] {alert['mirror']}: {alert['code']} — {alert['summary']}"
