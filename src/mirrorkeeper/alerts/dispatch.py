"""From a finished run to notifications (I/O): classify, apply rules, add the staleness
watchdog, keep one open alert per (mirror, code), notify new and worsened alerts at once,
re-notify open ones at an interval, send ``resolved`` when a condition clears.

Recording an alert only *queues* its notifications; :func:`deliver_pending` sends them, apart
from any sync (the daemon's delivery workers; ``sync`` and ``alerts watchdog`` once they are
done), so a hung plugin never holds up a run.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..classify.codes import default_severity
from ..classify.findings import Finding, Severity
from ..classify.judge import classify_run, host_alert_name, host_down_finding, stale_finding
from ..classify.rules import Ruled, apply_rules
from ..config.spec import AlertSettings, BrokenMirror, Config, MirrorSpec, PluginSpec
from ..logs import event
from ..record import RunRecord
from ..store import Store
from ..store.alerts import AlertStore, AlertTx
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
                  complete: bool, now: float | None = None,
                  carried: frozenset[str] = frozenset()) -> list[Notice]:
    """Record ``ruled`` as alerts of ``mirror`` and queue their notifications (one per plugin
    per notice); :func:`deliver_pending` sends them.

    ``complete``: the run reached a verdict (not interrupted), so open alerts whose code did
    not come back are resolved. ``carried``: codes the caller read from the open alerts (the
    watchdog keeps them open); one that a run resolved meanwhile is not raised again. It all
    happens in one exclusive transaction: a run's update and the watchdog's (or another
    process's) for the same mirror never both notify.
    """
    now = now or time.time()
    notices: list[Notice] = []
    resolved: list[tuple[str, int]] = []
    with AlertStore(store.engine).exclusive() as tx:
        open_by_code = {a["code"]: a for a in tx.open_alerts(mirror)}
        seen = set()
        for r in ruled:
            f = r.finding
            seen.add(f.code)
            sev = str(f.severity)
            row = open_by_code.get(f.code)
            suppressed_until = now + r.suppress_for if r.suppress_for else None
            values = dict(severity=sev, summary=f.summary, details=f.details,
                          upstream=f.upstream, run_id=f.run_id, rule=f.rule, last_seen=now)
            if row is None and f.code in carried:
                continue  # resolved since the caller read it: stays resolved
            if row is None:
                alert_id = tx.insert(dict(mirror=mirror, code=f.code, first_seen=now,
                                          suppressed_until=suppressed_until, **values))
                kind = "new"
            else:
                alert_id = row["id"]
                tx.update(alert_id, occurrences=row["occurrences"] + 1,
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
                    tx.update(row["id"], resolved_at=now)
                    resolved.append((code, row["id"]))
                    if row["notified_at"] is not None:
                        notices.append(Notice(row["id"], mirror, code, row["severity"],
                                              "resolved"))
        _queue(config, tx, notices, now)
    for code, alert_id in resolved:  # logged once the transaction holds
        event("alert.resolved", mirror=mirror, code=code, alert_id=alert_id)
    for notice in notices:
        event("alert.notify", mirror=notice.mirror, code=notice.code,
              severity=notice.severity, kind=notice.kind, alert_id=notice.alert_id)
    return notices


def _queue(config: Config, tx: AlertTx, notices: list[Notice], now: float) -> None:
    for notice in notices:
        alert = tx.get(notice.alert_id)
        assert alert is not None
        resolved = notice.kind == "resolved"
        data = payload(alert, host=config.settings.hostname, resolved=resolved)
        for plugin in config.alerts.plugins:
            if Severity.parse(notice.severity) < Severity.parse(plugin.min_severity):
                continue
            if resolved and not plugin.resolved:
                continue
            held = plugin.digest is not None and (
                resolved or Severity.parse(notice.severity)
                < Severity.parse(plugin.immediate_severity))
            tx.queue(notice.alert_id, plugin.name + DIGEST if held else plugin.name, data, now)
        if not resolved:
            tx.update(notice.alert_id, notified_at=now, notified_severity=notice.severity)


DIGEST = "#digest"
#: A plugin that failed waits this long before its next try, doubling per failure in a row...
BACKOFF_FIRST_SECONDS = 30.0
#: ... up to this.
BACKOFF_MAX_SECONDS = 3600.0
#: A claim on a delivery lasts the plugin's timeout plus this (a sender that died lets go).
CLAIM_MARGIN_SECONDS = 60.0


def backoff_seconds(failures: int) -> float:
    """How long a plugin rests after ``failures`` failures in a row (pure)."""
    return min(BACKOFF_MAX_SECONDS, BACKOFF_FIRST_SECONDS * 2.0 ** max(0, failures - 1))


def digest_payload(items: list[dict[str, Any]], host: str) -> dict[str, Any]:
    worst = max((i["severity"] for i in items), key=Severity.parse)
    mirrors = sorted({i["mirror"] for i in items})
    return {"digest": True, "alerts": items, "mirror": ",".join(mirrors), "severity": worst,
            "code": "digest", "summary": f"{len(items)} notification(s) for "
            f"{', '.join(mirrors)}", "details": {}, "resolved": False, "test": False,
            "host": host, "alert_id": None, "run_id": None, "upstream": None}


def plugin_of(delivery: dict[str, Any]) -> str:
    """The configured plugin a delivery row belongs to (digest rows carry a suffix)."""
    name: str = delivery["plugin"]
    return name.removesuffix(DIGEST)


def deliver_pending(config: Config, store: Store, now: float | None = None, *,
                    stop: threading.Event | None = None,
                    only: str | None = None) -> int:
    """Send what is queued (digests when due), every plugin (or ``only`` one) in turn, and
    return how many notifications still wait.

    Each notification is claimed before its plugin runs, so however many senders run at once
    (workers, the tick, other processes), each is sent once. A plugin that fails rests (per-
    plugin backoff): its other notifications wait for the next try instead of each costing a
    timeout now. A set ``stop`` ends it at once, killing a running plugin.
    """
    now = now or time.time()
    astore = AlertStore(store.engine)
    specs = {p.name: p for p in config.alerts.plugins}
    by_plugin: dict[str, list[dict[str, Any]]] = {}
    for delivery in astore.pending(time.time()):
        by_plugin.setdefault(plugin_of(delivery), []).append(delivery)
    backoffs = astore.backoffs()
    left = 0
    for name, rows in by_plugin.items():
        spec = specs.get(name)
        if spec is None:  # closed by any sender: no plugin runs for it
            for row in rows:
                if astore.claim(row["id"], time.time(), time.time() + CLAIM_MARGIN_SECONDS):
                    astore.delivered(row["id"], now, "plugin no longer configured")
            continue
        if only is not None and name != only:
            continue
        rest = backoffs.get(name)
        if (stop is not None and stop.is_set()) or (rest is not None and rest.retry_at > now):
            left += len(rows)
            continue
        left += _deliver_plugin(config, astore, spec, rows, now, stop)
    return left


def _deliver_plugin(config: Config, astore: AlertStore, spec: PluginSpec,
                    rows: list[dict[str, Any]], now: float,
                    stop: threading.Event | None) -> int:
    """One plugin's queued notifications; the count still waiting."""
    held = [r for r in rows if r["plugin"].endswith(DIGEST)]
    single = [r for r in rows if not r["plugin"].endswith(DIGEST)]
    lease = spec.timeout + CLAIM_MARGIN_SECONDS
    for index, delivery in enumerate(single):
        if stop is not None and stop.is_set():
            return len(single) - index + len(held)
        if not astore.claim(delivery["id"], time.time(), time.time() + lease):
            continue  # another sender has it
        error = run_plugin(spec, delivery["payload"], stop)
        astore.delivered(delivery["id"], None if error else now, error)
        event("alert.delivery", plugin=spec.name, alert_id=delivery["alert_id"],
              ok=error is None, error=error)
        if error:
            _failed(astore, spec, now, error)
            return len(single) - index + len(held)  # the rest waits for the plugin's rest
        astore.plugin_ok(spec.name)
    if not held or spec.digest is None:
        return len(held)
    if now - min(d["created_at"] for d in held) < spec.digest:
        return len(held)
    claimed = [d for d in held if astore.claim(d["id"], time.time(), time.time() + lease)]
    if not claimed:
        return 0
    error = run_plugin(spec, digest_payload([d["payload"] for d in claimed],
                                            config.settings.hostname), stop)
    for d in claimed:
        astore.delivered(d["id"], None if error else now, error)
    event("alert.digest", plugin=spec.name, items=len(claimed), ok=error is None, error=error)
    if error:
        _failed(astore, spec, now, error)
        return len(claimed)
    astore.plugin_ok(spec.name)
    return 0


def _failed(astore: AlertStore, spec: PluginSpec, now: float, error: str) -> None:
    rest = astore.plugin_failed(spec.name, now, error, backoff_seconds)
    event("alert.plugin_backoff", level=logging.WARNING, plugin=spec.name,
          failures=rest.failures, retry_in=round(rest.retry_at - now, 1), error=error)


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
        notices += update_alerts(config, store, mirror.name, ruled, complete=True, now=now,
                                 carried=frozenset(r.finding.code for r in others))
    for broken in config.broken_enabled():
        # Without settings there is no staleness to judge: its other alerts stay as they are.
        ruled = _open_except(store, broken.name, {PROFILE_INVALID})
        carried = frozenset(r.finding.code for r in ruled)
        ruled += apply_rules([profile_finding(broken)], config.alerts, {})
        notices += update_alerts(config, store, broken.name, ruled, complete=True, now=now,
                                 carried=carried)
    return notices


def host_alerts(config: Config, store: Store, now: float | None = None) -> list[Notice]:
    """Fleet mode, once per daemon tick: beat for this host, raise ``host.down`` for each host
    that stopped beating (the store's claim lets exactly one host raise it), and resolve this
    host's own ``host.down`` when it beats again."""
    assert config.fleet is not None
    now = now or time.time()
    me, down_after = config.fleet.host, config.fleet.down_after
    notices: list[Notice] = []
    back, since = store.beat(me, now, gap=down_after)
    if back:
        event("fleet.host_back", host=me)
        notices += update_alerts(config, store, host_alert_name(me), [], complete=True, now=now)
    if now - since < down_after:
        # Just started, or back from being cut off (from the store, or all hosts at once
        # after a database restart): the others get as long to beat as they would be given.
        return notices
    for row in store.hosts():
        name = row["name"]
        if name == me or not store.claim_down(name, now - down_after, now):
            continue
        finding = host_down_finding(name, row["beat_at"], now, down_after, me)
        event("fleet.host_down", level=logging.CRITICAL, host=name, noticed_by=me)
        notices += update_alerts(config, store, finding.mirror, [Ruled(finding)],
                                 complete=True, now=now)
    return notices
