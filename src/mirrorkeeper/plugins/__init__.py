"""Shipped alert plugins. Each is an executable (console script) that reads one alert as JSON
on stdin and exits 0 once delivered — the same contract any admin-written plugin follows.

An alert carries words from untrusted upstreams (rsync's error lines, a daemon's messages), so
:func:`read_alert` hands every plugin a copy with each control character shown as an escape
(:func:`mirrorkeeper.safetext.printable`): no forged syslog line, no injected e-mail header or
second Nagios command, and no message that fails to send and is retried for ever.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from ..safetext import printable_tree


def read_alert() -> dict[str, Any]:
    """The alert on stdin, every string in it made printable."""
    try:
        data = json.load(sys.stdin)
    except ValueError as exc:
        raise SystemExit(f"expected one alert as a JSON object on stdin: {exc}") from None
    if not isinstance(data, dict) or "code" not in data:
        raise SystemExit("expected one alert as a JSON object on stdin")
    cleaned: dict[str, Any] = printable_tree(data)
    return cleaned


def subject(alert: dict[str, Any]) -> str:
    if alert.get("digest"):
        return f"[mirrorkeeper digest] {alert['summary']} (worst: {alert['severity']})"
    state = "RESOLVED" if alert.get("resolved") else str(alert["severity"]).upper()
    test = "[test] " if alert.get("test") else ""
    return f"{test}[mirrorkeeper {state}] {alert['mirror']}: {alert['code']} — {alert['summary']}"
