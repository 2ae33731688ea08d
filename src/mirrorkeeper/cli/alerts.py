"""``mirrorkeeper alerts``: list, acknowledge and judge alerts, test the plugins, replay rules."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from ..config.problems import ConfigError, Problem
from ..exitcodes import Exit
from ..logs import event
from .common import UsageProblem, console, err_console, load, reader
from .signals import SignalStop


@click.group("alerts")
def alerts_group() -> None:
    """Alerts: list, acknowledge, judge, test plugins, replay rules."""


@alerts_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Resolved alerts too.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def alerts_list(ctx: click.Context, show_all: bool, as_json: bool) -> int:
    """Open alerts (or, with --all, recent ones too)."""
    from ..overview import alert_row
    from ..store.alerts import AlertStore

    config = load(ctx, events=False)
    store = reader(config)
    try:
        rows = [alert_row(a) for a in AlertStore(store.engine).recent(200, show_all)]
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return Exit.OK
    for r in rows:
        state = "resolved" if r["resolved_at"] else "acked" if r["acked_at"] else "open"
        console.print(f"#{r['id']} {r['severity']:8} {state:8} {r['mirror']} {r['code']} — "
                      f"{r['summary']} (x{r['occurrences']}, last {r['last_seen']})",
                      markup=False)
    if not rows:
        console.print("no alerts")
    return Exit.OK


def _set_alert(ctx: click.Context, alert_id: int, **values: Any) -> int:
    from ..store import Store
    from ..store.alerts import AlertStore

    config = load(ctx)
    store = Store.for_config(config)
    try:
        astore = AlertStore(store.engine)
        if astore.get(alert_id) is None:
            raise UsageProblem(f"no alert #{alert_id}; see `mirrorkeeper alerts list --all`")
        astore.update(alert_id, **values)
        event("alert.updated", alert_id=alert_id, **values)
    finally:
        store.close()
    return Exit.OK


@alerts_group.command("ack")
@click.argument("alert_id", type=int)
@click.pass_context
def alerts_ack(ctx: click.Context, alert_id: int) -> int:
    """Acknowledge an alert: no re-notifications while it stays the same."""
    return _set_alert(ctx, alert_id, acked_at=time.time())


@alerts_group.command("mark")
@click.argument("alert_id", type=int)
@click.option("--true", "verdict", flag_value=True, help="It was a real problem.")
@click.option("--false", "verdict", flag_value=False, help="A false positive.")
@click.pass_context
def alerts_mark(ctx: click.Context, alert_id: int, verdict: bool | None) -> int:
    """Record whether an alert was a real problem (replay keeps true ones loud)."""
    if verdict is None:
        raise UsageProblem("say --true or --false")
    return _set_alert(ctx, alert_id, marked_true=verdict)


@alerts_group.command("test")
@click.pass_context
def alerts_test(ctx: click.Context) -> int:
    """Send a test alert through every configured plugin; exit 1 if any failed."""
    from ..alerts.payload import payload
    from ..alerts.plugins import run_plugin

    config = load(ctx)
    now = time.time()
    data = payload({"mirror": "test", "severity": "critical", "code": "internal.test",
                    "summary": "a test alert from `mirrorkeeper alerts test`", "details": {},
                    "id": None, "first_seen": now, "last_seen": now},
                   host=config.settings.hostname, test=True)
    failed = 0
    for plugin in config.alerts.plugins:
        error = run_plugin(plugin, data)
        failed += error is not None
        console.print(f"{plugin.name}: {'delivered' if error is None else error}", markup=False)
    if not config.alerts.plugins:
        console.print("no plugins configured ([[alerts.plugins]])")
    return Exit.SYNC_FAILED if failed else Exit.OK


@alerts_group.command("watchdog")
@click.pass_context
def alerts_watchdog(ctx: click.Context) -> int:
    """Check every enabled mirror's age now (for cron, e.g. every 10 minutes)."""
    from ..alerts.dispatch import deliver_pending, watchdog
    from ..store import Store

    with SignalStop() as signals:
        config = load(ctx)
        store = Store.for_config(config)
        try:
            for notice in watchdog(config, store):
                console.print(f"alert {notice.kind}: {notice.mirror} {notice.code} "
                              f"({notice.severity})", markup=False)
            deliver_pending(config, store, stop=signals.stop)  # and earlier ones still due
        finally:
            store.close()
        return signals.exit_status or Exit.OK


@alerts_group.command("replay")
@click.option("--rules", "rules_path", required=True, type=click.Path(dir_okay=False),
              help="A TOML file with the new [alerts] table ([[alerts.rules]] ...).")
@click.option("--limit", default=1000, show_default=True, help="Runs per mirror.")
@click.pass_context
def alerts_replay(ctx: click.Context, rules_path: str, limit: int) -> int:
    """Re-classify stored runs under new rules; exit 1 if a true alert would be silenced."""
    from ..alerts.replay import replay, silenced
    from ..config.load import load_alerts, read_toml
    from ..store.alerts import AlertStore

    config = load(ctx, events=False)
    problems: list[Problem] = []
    new = load_alerts(read_toml(Path(rules_path)).get("alerts", {}), rules_path, problems)
    if problems:
        raise ConfigError(problems)
    store = reader(config)
    try:
        changes = [c for m in config.mirrors.values()
                   for c in replay(m, store.history(m.name, limit), config.alerts, new)]
        true_alerts = [a for a in AlertStore(store.engine).recent(10_000)
                       if a["marked_true"]]
    finally:
        store.close()
    for c in changes:
        what = ("appears" if c.before is None else "vanishes" if c.after is None
                else "changes")
        console.print(f"run {c.run_id} {c.mirror} {c.code}: {what} "
                      f"({c.before or '-'} → {c.after or '-'})", markup=False)
    broken = [a for a in true_alerts for c in changes
              if (c.mirror, c.run_id, c.code) == (a["mirror"], a["run_id"], a["code"])
              and silenced(c.before, c.after)]
    for a in broken:
        err_console.print(f"REFUSED: alert #{a['id']} ({a['mirror']} {a['code']}, run "
                          f"{a['run_id']}) was marked a real problem and would be silenced",
                          markup=False)
    console.print(f"{len(changes)} change(s); {len(broken)} true alert(s) silenced")
    return Exit.SYNC_FAILED if broken else Exit.OK
