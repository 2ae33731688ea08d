"""Notices sent straight through the alert plugins, without the store (I/O).

For what concerns the store itself (``store.unreachable``): a notice that needs the store to
be queued, deduplicated and retried could never be sent while the store is down. So it is sent
once, at once, by the host that sees it, and only logged when a plugin fails.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ..classify.codes import default_severity
from ..classify.findings import Severity
from ..config.spec import Config
from ..logs import event
from .payload import payload
from .plugins import run_plugin


def notify_directly(config: Config, mirror: str, code: str, summary: str,
                    details: dict[str, Any], *, resolved: bool = False,
                    first_seen: float | None = None,
                    stop: threading.Event | None = None) -> int:
    """Send one notice to every plugin that takes it; how many took it."""
    now = time.time()
    severity = str(default_severity(code))
    data = payload({"mirror": mirror, "code": code, "severity": severity, "summary": summary,
                    "details": details, "first_seen": first_seen or now, "last_seen": now},
                   host=config.settings.hostname, resolved=resolved)
    sent = 0
    for plugin in config.alerts.plugins:
        if Severity.parse(severity) < Severity.parse(plugin.min_severity):
            continue
        if resolved and not plugin.resolved:
            continue
        error = run_plugin(plugin, data, stop)
        event("alert.direct", level=logging.ERROR if error else logging.INFO,
              plugin=plugin.name, mirror=mirror, code=code, resolved=resolved, ok=error is None,
              error=error)
        sent += error is None
    return sent
