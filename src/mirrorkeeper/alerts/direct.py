"""Notices sent straight through the alert plugins, without the store (I/O).

For what concerns the store itself (``store.unreachable``): a notice that needs the store to
be queued, deduplicated and retried could never be sent while the store is down. So it is sent
once, at once, by the host that sees it, and only logged when a plugin fails.

And for a run whose record waits in the spool: its critical findings (a full disk, a tripped
guard) cannot wait for the store to return, so they go out the same way; the replay raises them
in the store without sending them again (:func:`mirrorkeeper.daemon.replay.replay_spool`).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ..classify.codes import default_severity
from ..classify.findings import Severity
from ..classify.judge import classify_run
from ..classify.rules import apply_rules
from ..config.spec import Config, MirrorSpec
from ..logs import event
from ..record import RunRecord
from ..store import Store
from .payload import payload
from .plugins import run_plugin


def notify_directly(config: Config, mirror: str, code: str, summary: str,
                    details: dict[str, Any], *, resolved: bool = False,
                    first_seen: float | None = None, severity: str | None = None,
                    run_id: int | None = None, stop: threading.Event | None = None) -> int:
    """Send one notice to every plugin that takes it; how many took it."""
    now = time.time()
    severity = severity or str(default_severity(code))
    data = payload({"mirror": mirror, "code": code, "severity": severity, "summary": summary,
                    "details": details, "first_seen": first_seen or now, "last_seen": now,
                    "run_id": run_id},
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


def notify_spooled_run(config: Config, mirror: MirrorSpec, store: Store, record: RunRecord,
                       stop: threading.Event | None = None) -> list[str]:
    """Send the critical findings of a run whose record was spooled (the store is unreachable)
    straight through the plugins; the codes some plugin took. Judged as far as the host can
    alone: the rules, without escalation (the store keeps the streaks), against the history
    last read from the store."""
    history = store.history(mirror.name, limit=50)
    previous_ok = next((r for r in history if r.outcome == "success"
                        and r.run_id != record.run_id), None)
    findings = classify_run(record, mirror.settings,
                            previous_ok.files_total if previous_ok else None)
    sent = []
    for ruled in apply_rules(findings, config.alerts, {f.code: 1 for f in findings}):
        f = ruled.finding
        if f.severity < Severity.CRITICAL or ruled.suppress_for:
            continue
        if notify_directly(config, mirror.name, f.code, f.summary,
                           {**f.details, "spooled": True}, severity=str(f.severity),
                           run_id=record.run_id, stop=stop):
            sent.append(f.code)
    return sent
