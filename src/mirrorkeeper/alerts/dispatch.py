"""From a finished run to notifications (I/O): classify, apply rules, add the staleness
watchdog, keep one open alert per (mirror, code), notify new and worsened alerts at once,
re-notify open ones at an interval, send ``resolved`` when a condition clears."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..classify.codes import default_severity
from ..classify.findings import Finding, Severity
from ..classify.judge import classify_run, stale_finding
from ..classify.rules import Ruled, apply_rules
from ..config.spec import AlertSettings, BrokenMirror, Config, MirrorSpec
from ..logs import event
from ..record import RunRecord
from ..store import Store
from ..store.alerts import AlertStore
from .payload import payload
from .plugins import run_plugin


@dataclass(frozen=True)
class Notice:
    alert_id: int
    mirror: str
    code: str
    severity: str
    kind: str  # "new", "worse", "renotify", "resolved"


def renotify_after(alerts: AlertSettings, severity: str) -> float:
    return float(getattr(alerts, f"renotify_{severity}"))


def consecutive_runs(history: list[list[dict[str, Any]]], codes: set[str]) -> dict[str, int]:
    """How many of the newest runs in a row carried each code (history newest first)."""
    counts: dict[str, int] = {}
    for code in codes:
        n = 0
        for findings in history:
            if any(f.get("code") == code for f in findings):
                n += 1
            else:
                break
        counts[code] = n
    return counts


def finding_json(f: Finding, suppress_for: float | None = None) -> dict[str, Any]:
    return {"code": f.code, "severity": str(f.severity), "summary": f.summary,
            "details": f.details, "upstream": f.upstream, "rule": f.rule,
            "suppress_for": suppress_for}


def evaluate(config: Config, mirror: MirrorSpec, store: Store, record: RunRecord,
             now: float | None = None) -> list[Ruled]:
    """Findings of ``record`` after rules and escalation, plus the watchdog; stored with it."""
    now = now or time.time()
    history = store.history(mirror.name, limit=50)
    previous_ok = next((r for r in history if r.outcome == "success"
                        and r.run_id != record.run_id), None)
    findings = classify_run(record, mirror.settings,
                            previous_ok.files_total if previous_ok else None)
    astore = AlertStore(store.engine)
    past = astore.findings_history(mirror.name, 49)
    past = past[1:] if past and history and history[0].run_id == record.run_id else past
    codes = {f.code for f in findings}
    streak = consecutive_runs(past, codes)
    ruled = apply_rules(findings, config.alerts, {c: streak[c] + 1 for c in codes})
    last_ok = record if record.outcome == "success" else previous_ok
    stale = stale_finding(mirror.name, last_ok.finished_at if last_ok else None,
                          history[-1].started_at if history else record.started_at, now,
                          mirror.settings.stale_after)
    if stale is not None:
        ruled.append(Ruled(stale))
    astore.save_findings(record.run_id, [finding_json(r.finding, r.suppress_for)
                                         for r in ruled])
    return ruled


def update_alerts(config: Config, store: Store, mirror: str, ruled: list[Ruled],
                  complete: bool, now: float | None = None) -> list[Notice]:
    """Record ``ruled`` as alerts of ``mirror``; queue and send notifications.

    ``complete``: the run reached a verdict (not interrupted), so open alerts whose code did
    not come back are resolved.
    """
    now = now or time.time()
    astore = AlertStore(store.engine)
    notices: list[Notice] = []
    open_by_code = {a["code"]: a for a in astore.open_alerts(mirror)}
    seen = set()
    for r in ruled:
        f = r.finding
        seen.add(f.code)
        sev = str(f.severity)
        row = open_by_code.get(f.code)
        suppressed_until = now + r.suppress_for if r.suppress_for else None
        values = dict(severity=sev, summary=f.summary, details=f.details, upstream=f.upstream,
                      run_id=f.run_id, rule=f.rule, last_seen=now)
        if row is None:
            alert_id = astore.insert(dict(mirror=mirror, code=f.code, first_seen=now,
                                          suppressed_until=suppressed_until, **values))
            kind = "new"
        else:
            alert_id = row["id"]
            astore.update(alert_id, occurrences=row["occurrences"] + 1,
                          suppressed_until=suppressed_until or row["suppressed_until"],
                          **values)
            notified = row["notified_severity"]
            if notified is None or Severity.parse(sev) > Severity.parse(notified):
                kind = "new" if notified is None else "worse"
            else:
                interval = renotify_after(config.alerts, sev)
                due = interval > 0 and row["notified_at"] is not None and (
                    now - row["notified_at"] >= interval)
                kind = "renotify" if due and row["acked_at"] is None else ""
        silenced = suppressed_until is not None and suppressed_until > now
        if kind and not silenced:
            notices.append(Notice(alert_id, mirror, f.code, sev, kind))
    if complete:
        for code, row in open_by_code.items():
            if code not in seen:
                astore.update(row["id"], resolved_at=now)
                event("alert.resolved", mirror=mirror, code=code, alert_id=row["id"])
                if row["notified_at"] is not None:
                    notices.append(Notice(row["id"], mirror, code, row["severity"], "resolved"))
    _queue(config, astore, notices, now)
    deliver_pending(config, store, now)
    return notices


def _queue(config: Config, astore: AlertStore, notices: list[Notice], now: float) -> None:
    for notice in notices:
        alert = astore.get(notice.alert_id)
        assert alert is not None
        resolved = notice.kind == "resolved"
        data = payload(alert, host=config.settings.hostname, resolved=resolved)
        event("alert.notify", mirror=notice.mirror, code=notice.code,
              severity=notice.severity, kind=notice.kind, alert_id=notice.alert_id)
        for plugin in config.alerts.plugins:
            if Severity.parse(notice.severity) < Severity.parse(plugin.min_severity):
                continue
            if resolved and not plugin.resolved:
                continue
            held = plugin.digest is not None and (
                resolved or Severity.parse(notice.severity)
                < Severity.parse(plugin.immediate_severity))
            astore.queue(notice.alert_id, plugin.name + DIGEST if held else plugin.name,
                         data, now)
        if not resolved:
            astore.update(notice.alert_id, notified_at=now, notified_severity=notice.severity)


DIGEST = "#digest"


def digest_payload(items: list[dict[str, Any]], host: str) -> dict[str, Any]:
    worst = max((i["severity"] for i in items), key=Severity.parse)
    mirrors = sorted({i["mirror"] for i in items})
    return {"digest": True, "alerts": items, "mirror": ",".join(mirrors), "severity": worst,
            "code": "digest", "summary": f"{len(items)} notification(s) for "
            f"{', '.join(mirrors)}", "details": {}, "resolved": False, "test": False,
            "host": host, "alert_id": None, "run_id": None, "upstream": None}


def _deliver_digests(config: Config, astore: AlertStore, pending: list[dict[str, Any]],
                     now: float) -> int:
    left = 0
    for plugin in config.alerts.plugins:
        held = [d for d in pending if d["plugin"] == plugin.name + DIGEST]
        if not held or plugin.digest is None:
            continue
        if now - min(d["created_at"] for d in held) < plugin.digest:
            left += len(held)
            continue
        error = run_plugin(plugin, digest_payload([d["payload"] for d in held],
                                                  config.settings.hostname))
        for d in held:
            astore.delivered(d["id"], None if error else now, error)
        event("alert.digest", plugin=plugin.name, items=len(held), ok=error is None,
              error=error)
        left += len(held) if error else 0
    return left


def deliver_pending(config: Config, store: Store, now: float | None = None) -> int:
    """Try every undelivered notification once (digests when due); return how many wait."""
    astore = AlertStore(store.engine)
    plugins = {p.name: p for p in config.alerts.plugins}
    pending = astore.pending()
    left = _deliver_digests(config, astore, pending, now or time.time())
    for delivery in pending:
        if delivery["plugin"].endswith(DIGEST):
            continue
        spec = plugins.get(delivery["plugin"])
        if spec is None:
            astore.delivered(delivery["id"], now or time.time(), "plugin no longer configured")
            continue
        error = run_plugin(spec, delivery["payload"])
        astore.delivered(delivery["id"], None if error else (now or time.time()), error)
        event("alert.delivery", plugin=spec.name, alert_id=delivery["alert_id"],
              ok=error is None, error=error)
        left += error is not None
    return left


def process_run(config: Config, mirror: MirrorSpec, store: Store,
                record: RunRecord) -> list[Notice]:
    ruled = evaluate(config, mirror, store, record)
    return update_alerts(config, store, mirror.name, ruled,
                         complete=record.outcome != "interrupted")


PROFILE_INVALID = "config.profile_invalid"


def _open_except(store: Store, mirror: str, codes: set[str]) -> list[Ruled]:
    """A mirror's open alerts but ``codes``, as they stand (the watchdog decides those)."""
    return [Ruled(Finding(mirror, a["code"], Severity.parse(a["severity"]), a["summary"],
                          a["details"] or {}, a["run_id"], a["upstream"], a["rule"]))
            for a in AlertStore(store.engine).open_alerts(mirror) if a["code"] not in codes]


def profile_finding(mirror: BrokenMirror) -> Finding:
    """A mirror that cannot sync because its profile does not validate."""
    first = mirror.problems[0] if mirror.problems else None
    return Finding(mirror.name, PROFILE_INVALID, default_severity(PROFILE_INVALID),
                   f"profile `{mirror.profile}` does not validate, so the mirror is not synced"
                   + (f": {first}" if first else ""),
                   {"profile": mirror.profile, "problems": [str(p) for p in mirror.problems]})


def watchdog(config: Config, store: Store, now: float | None = None) -> list[Notice]:
    """What needs no sync to be known (for cron or the daemon): staleness, and mirrors whose
    profile does not validate (``config.profile_invalid``, resolved once it loads again)."""
    now = now or time.time()
    notices: list[Notice] = []
    for mirror in config.enabled():
        last_ok = store.last_run(mirror.name, outcome="success")
        first = store.first_started(mirror.name)
        stale = stale_finding(mirror.name, last_ok.finished_at if last_ok else None, first, now,
                              mirror.settings.stale_after)
        others = _open_except(store, mirror.name, {"mirror.stale", PROFILE_INVALID})
        ruled = others + ([Ruled(stale)] if stale else [])
        notices += update_alerts(config, store, mirror.name, ruled, complete=True, now=now)
    for broken in config.broken_enabled():
        # Without settings there is no staleness to judge: its other alerts stay as they are.
        ruled = _open_except(store, broken.name, {PROFILE_INVALID})
        ruled += apply_rules([profile_finding(broken)], config.alerts, {})
        notices += update_alerts(config, store, broken.name, ruled, complete=True, now=now)
    return notices
