"""Rules, alert life cycle and the shipped plugins, against real peers on this machine:
an SMTP server on 127.0.0.1 (aiosmtpd), a UNIX datagram socket (syslog), a FIFO (Nagios)."""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mirrorkeeper.alerts.payload import payload
from mirrorkeeper.alerts.plugins import run_plugin
from mirrorkeeper.classify.findings import Finding, Severity
from mirrorkeeper.classify.rules import apply_rules
from mirrorkeeper.config.load import load_config
from mirrorkeeper.config.spec import AlertRule, AlertSettings, PluginSpec
from mirrorkeeper.store.alerts import AlertStore

from .conftest import TEST_HOSTNAME, CliResult, SmtpServer, write_config

ALERT = {"id": 7, "mirror": "debian", "severity": "critical", "code": "local.disk_full",
         "summary": "no space left", "details": {"upstreams_tried": ["rsync://a/debian/"]},
         "run_id": 3, "upstream": "rsync://a/debian/", "first_seen": 1.0e9,
         "last_seen": 1.0e9 + 60, "occurrences": 2, "rule": None}


def finding(code: str, severity: Severity = Severity.ERROR, **details: Any) -> Finding:
    return Finding("debian", code, severity, "s", details, 1, "rsync://up/debian/")


# -- rules ---------------------------------------------------------------------------------------
def test_rules_match_precisely_and_fail_closed() -> None:
    rule = AlertRule(name="known perms", code="transfer.*", mirror="deb*", exit_code=23,
                     failure_ratio_max=0.01, set_severity="info")
    alerts = AlertSettings(rules=(rule,))
    hit = finding("transfer.failure_ratio", Severity.WARNING, exit_code=23, failure_ratio=0.005)
    miss_ratio = finding("transfer.failure_ratio", Severity.ERROR, exit_code=23,
                         failure_ratio=0.2)
    miss_code = finding("upstream.unreachable", exit_code=23, failure_ratio=0.001)
    no_ratio = finding("transfer.partial", Severity.WARNING, exit_code=23)
    out = apply_rules([hit, miss_ratio, miss_code, no_ratio], alerts, {})
    assert [(r.finding.code, r.finding.severity) for r in out] == [
        ("transfer.failure_ratio", Severity.INFO),
        ("transfer.failure_ratio", Severity.ERROR),
        ("upstream.unreachable", Severity.ERROR),
        ("transfer.partial", Severity.WARNING)]  # a ratio bound never matches a missing ratio
    assert out[0].finding.rule == "0:known perms" and out[1].finding.rule is None


def test_protected_codes_ignore_rules_and_errors_escalate() -> None:
    alerts = AlertSettings(escalate_after_runs=3, rules=(
        AlertRule(name="hush", code="*", set_severity="info", suppress_for=86400.0),))
    protected = [finding(c, Severity.CRITICAL) for c in
                 ("mirror.stale", "local.disk_full", "guard.mass_delete", "guard.upstream_empty")]
    out = apply_rules(protected, alerts, {})
    assert all(r.finding.severity == Severity.CRITICAL and r.suppress_for is None for r in out)
    plain = AlertSettings(escalate_after_runs=3)
    err = finding("upstream.unreachable")
    assert apply_rules([err], plain, {"upstream.unreachable": 2})[0].finding.severity == (
        Severity.ERROR)
    third = apply_rules([err], plain, {"upstream.unreachable": 3})[0]
    assert third.finding.severity == Severity.CRITICAL
    assert third.finding.details["escalated"] == "seen in 3 runs in a row"
    once = AlertRule(name="blips", code="upstream.unreachable", consecutive_min=2,
                     suppress_for=3600.0)
    assert apply_rules([err], AlertSettings(rules=(once,)), {"upstream.unreachable": 1}
                       )[0].suppress_for is None
    assert apply_rules([err], AlertSettings(rules=(once,)), {"upstream.unreachable": 2}
                       )[0].suppress_for == 3600.0


# -- plugins against real peers -------------------------------------------------------------------
def test_email_plugin_through_a_real_smtp_server(smtp: SmtpServer) -> None:
    spec = PluginSpec(name="mail", command=("mirrorkeeper-alert-email", "--to",
                                            "ops@example.org", "--smtp", f"127.0.0.1:{smtp.port}"))
    assert run_plugin(spec, payload(ALERT, host="mirror1")) is None
    received = smtp.received
    assert len(received) == 1 and received[0].rcpt_tos == ["ops@example.org"]
    text = received[0].content.decode()
    assert "Subject: [mirrorkeeper CRITICAL] debian: local.disk_full" in text
    assert "upstreams tried: rsync://a/debian/" in text and "Auto-Submitted: auto-generated" in text


def test_syslog_plugin_through_a_real_datagram_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "log.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        server.settimeout(10)
        spec = PluginSpec(name="syslog", command=("mirrorkeeper-alert-syslog", "--socket", path))
        assert run_plugin(spec, payload(ALERT, host="h")) is None
        message = server.recv(9000).decode()
        assert run_plugin(spec, payload(ALERT, host="h", resolved=True)) is None
        resolved = server.recv(9000).decode()
    assert message.startswith("<26>")  # daemon (3) * 8 + crit (2)
    assert "mirrorkeeper[" in message and "local.disk_full" in message
    assert resolved.startswith("<30>") and "RESOLVED" in resolved


def test_nagios_plugin_writes_a_passive_result_to_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "nagios.cmd"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        spec = PluginSpec(name="nagios", command=(
            "mirrorkeeper-alert-nagios", "--command-file", str(fifo), "--host", "mirror1"))
        assert run_plugin(spec, payload(ALERT, host="h")) is None
        line = os.read(reader, 4096).decode()
    finally:
        os.close(reader)
    assert line.endswith("\n") and ";PROCESS_SERVICE_CHECK_RESULT;mirror1;mirror debian;2;" in (
        ";" + line.split("] ", 1)[1])
    assert "MIRRORKEEPER CRITICAL - local.disk_full: no space left" in line
    # Nobody reading the FIFO: the plugin fails at once instead of hanging.
    error = run_plugin(spec, payload(ALERT, host="h"))
    assert error is not None and error.startswith("exit 1")


def test_a_hanging_plugin_times_out(tmp_path: Path) -> None:
    spec = PluginSpec(name="slow", command=("sleep", "30"), timeout=0.5)
    started = time.monotonic()
    assert run_plugin(spec, payload(ALERT, host="h")) == "timed out after 0s"
    assert time.monotonic() - started < 5


# -- the life cycle through real syncs ------------------------------------------------------------
def alerting_config(tmp_path: Path, upstreams: list[str], **extra: Any) -> Path:
    path = write_config(tmp_path / "mk.toml", {"deb": {
        "profile": "debian", "dest": str(tmp_path / "mirror"), "upstreams": upstreams,
        "retry_backoff": "0.1s", "attempts_per_upstream": 1, **extra}})
    text = path.read_text() + f"""
[alerts]
renotify_error = "1h"

[[alerts.plugins]]
name = "log"
command = ["mirrorkeeper-alert-jsonl", "{tmp_path / 'alerts.jsonl'}"]
min_severity = "warning"

[[alerts.plugins]]
name = "broken"
command = ["false"]
min_severity = "critical"
"""
    path.write_text(text)
    return path


def delivered(tmp_path: Path) -> list[dict[str, Any]]:
    log = tmp_path / "alerts.jsonl"
    return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


def test_alert_life_cycle(tmp_path: Path, served: str, mk: Callable[..., CliResult]) -> None:
    bad = str(alerting_config(tmp_path, ["rsync://127.0.0.1:9/debian/"]))
    first = mk("-c", bad, "sync", "deb", "--quiet")
    assert first.code == 1 and "alert new: deb upstream.unreachable (error)" in first.err
    sent = delivered(tmp_path)
    assert [(a["code"], a["severity"], a["resolved"]) for a in sent] == [
        ("upstream.unreachable", "error", False)]
    assert sent[0]["upstreams_tried"] == ["rsync://127.0.0.1:9/debian/"]
    mk("-c", bad, "sync", "deb", "--quiet")  # same problem again: deduplicated, not re-sent
    assert len(delivered(tmp_path)) == 1
    listed = mk("-c", bad, "alerts", "list", "--json").json()
    assert len(listed) == 1 and listed[0]["occurrences"] == 2
    third = mk("-c", bad, "sync", "deb", "--quiet")  # third in a row: escalated to critical
    assert "alert worse: deb upstream.unreachable (critical)" in third.err
    assert delivered(tmp_path)[-1]["severity"] == "critical"
    good = str(alerting_config(tmp_path, [served]))
    fixed = mk("-c", good, "sync", "deb", "--quiet")
    assert fixed.code == 0 and "alert resolved: deb upstream.unreachable" in fixed.err
    assert delivered(tmp_path)[-1]["resolved"] is True
    assert mk("-c", good, "alerts", "list", "--json").json() == []
    every = mk("-c", good, "alerts", "list", "--all", "--json").json()
    assert every[0]["resolved_at"] is not None
    # The broken plugin (`false`) failed each time it was due; the syncs went on regardless,
    # and its deliveries stay queued for a later try.
    events = [json.loads(x) for x in (tmp_path / "logs" / "events.jsonl").read_text().splitlines()]
    broken = [e for e in events if e["event"] == "alert.delivery" and e["plugin"] == "broken"]
    assert broken and not any(e["ok"] for e in broken)


def test_staleness_watchdog_stands_outside_the_rules(tmp_path: Path, served: str,
                                                     mk: Callable[..., CliResult]) -> None:
    path = alerting_config(tmp_path, [served], stale_after="1s")
    path.write_text(path.read_text() + """
[[alerts.rules]]
name = "try to hide everything"
code = "*"
suppress_for = "1w"
""")
    assert mk("-c", str(path), "sync", "deb", "--quiet").code == 0
    time.sleep(1.5)
    watchdog = mk("-c", str(path), "alerts", "watchdog")
    assert "alert new: deb mirror.stale (critical)" in watchdog.out
    assert delivered(tmp_path)[-1]["code"] == "mirror.stale"


def test_replay_refuses_rules_that_silence_a_true_alert(
        tmp_path: Path, mk: Callable[..., CliResult]) -> None:
    cfg = str(alerting_config(tmp_path, ["rsync://127.0.0.1:9/debian/"]))
    mk("-c", cfg, "sync", "deb", "--quiet")
    alert = mk("-c", cfg, "alerts", "list", "--json").json()[0]
    assert mk("-c", cfg, "alerts", "mark", str(alert["id"]), "--true").code == 0
    hush = tmp_path / "hush.toml"
    hush.write_text('[[alerts.rules]]\nname = "hush"\ncode = "upstream.*"\n'
                    'set_severity = "info"\n')
    refused = mk("-c", cfg, "alerts", "replay", "--rules", str(hush))
    assert refused.code == 1
    assert f"REFUSED: alert #{alert['id']} (deb upstream.unreachable" in refused.err
    assert "upstream.unreachable: changes (error → info)" in refused.out
    harmless = tmp_path / "harmless.toml"
    harmless.write_text('[[alerts.rules]]\nname = "quiet vanished"\ncode = "transfer.vanished"\n'
                        'suppress_for = "1d"\n')
    ok = mk("-c", cfg, "alerts", "replay", "--rules", str(harmless))
    assert ok.code == 0 and "0 change(s); 0 true alert(s) silenced" in ok.out


def test_alerts_test_and_ack(tmp_path: Path, mk: Callable[..., CliResult]) -> None:
    cfg = str(alerting_config(tmp_path, ["rsync://127.0.0.1:9/debian/"]))
    result = mk("-c", cfg, "alerts", "test")
    assert result.code == 1  # the `false` plugin fails, and says so
    assert "log: delivered" in result.out and "broken: exit 1" in result.out
    assert delivered(tmp_path)[0]["test"] is True
    mk("-c", cfg, "sync", "deb", "--quiet")
    alert = mk("-c", cfg, "alerts", "list", "--json").json()[0]
    assert mk("-c", cfg, "alerts", "ack", str(alert["id"])).code == 0
    assert mk("-c", cfg, "alerts", "list", "--json").json()[0]["acked_at"] is not None
    assert mk("-c", cfg, "alerts", "ack", "999").code == 64


def test_bad_alert_config_is_reported(tmp_path: Path, mk: Callable[..., CliResult]) -> None:
    path = write_config(tmp_path / "mk.toml", {})
    path.write_text(path.read_text() + '[[alerts.rules]]\nname = "x"\ncode = "a"\n'
                    'set_severity = "sev0"\n[[alerts.plugins]]\nname = "p"\ncommand = []\n'
                    'min_severity = "warn"\n')
    result = mk("-c", str(path), "config", "check")
    assert result.code == 78
    assert "alerts.rules.0.set_severity: `sev0` is not a severity" in result.err
    assert "alerts.plugins.0.command: is empty" in result.err
    assert "alerts.plugins.0.min_severity: `warn` is not a severity — did you mean `warning`?" in (
        result.err)



def test_email_digest_holds_lesser_alerts_and_sends_critical_at_once(
        tmp_path: Path, smtp: SmtpServer) -> None:
    from mirrorkeeper.alerts.dispatch import deliver_pending, update_alerts
    from mirrorkeeper.classify.rules import Ruled
    from mirrorkeeper.config.load import load_config
    from mirrorkeeper.store import Store

    def received() -> list[str]:
        return [envelope.content.decode() for envelope in smtp.received]

    path = write_config(tmp_path / "mk.toml", {"deb": {"profile": "debian",
                                                       "dest": str(tmp_path / "m")}})
    path.write_text(path.read_text() + f"""
[[alerts.plugins]]
name = "mail"
command = ["mirrorkeeper-alert-email", "--to", "ops@example.org", "--smtp", "127.0.0.1:{smtp.port}"]
min_severity = "warning"
digest = "1h"
""")
    config = load_config(path)
    store = Store.open(config.settings.state_dir)
    try:
        t0 = time.time()
        warn = Ruled(finding("upstream.unreachable", Severity.WARNING))
        update_alerts(config, store, "debian", [warn], complete=True, now=t0)
        assert deliver_pending(config, store, now=t0) == 1
        assert received() == []  # held for the digest
        crit = Ruled(finding("local.disk_full", Severity.CRITICAL))
        update_alerts(config, store, "debian", [warn, crit], complete=True, now=t0 + 1)
        assert deliver_pending(config, store, now=t0 + 1) == 1
        assert len(received()) == 1 and "[mirrorkeeper CRITICAL] debian: local.disk_full" in (
            received()[0])
        assert deliver_pending(config, store, now=t0 + 60) == 1  # not due yet
        assert deliver_pending(config, store, now=t0 + 3601) == 0
    finally:
        store.close()
    assert len(received()) == 2
    assert "[mirrorkeeper digest] 1 notification(s) for debian (worst: warning)" in received()[1]
    assert "- WARNING debian upstream.unreachable" in received()[1]


def test_graphite_plugin_posts_an_event_to_a_real_http_server() -> None:
    import http.server
    import threading

    bodies: list[dict[str, Any]] = []

    class Events(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Events)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/events/"
        spec = PluginSpec(name="g", command=("mirrorkeeper-alert-graphite", "--url", url))
        assert run_plugin(spec, payload(ALERT, host="h")) is None
    finally:
        server.shutdown()
        server.server_close()
    assert bodies[0]["tags"] == ["mirrorkeeper", "debian", "local.disk_full", "critical"]
    assert json.loads(bodies[0]["data"])["alert_id"] == 7


def test_upstream_order_strategies_and_cooldown() -> None:
    from mirrorkeeper.plan.upstreams import order_upstreams

    ups = ("a", "b", "c")
    assert order_upstreams(ups, "ordered") == ["a", "b", "c"]
    assert order_upstreams(ups, "round-robin", run_number=4) == ["b", "c", "a"]
    assert order_upstreams(ups, "fastest", latency={"a": 0.3, "b": None, "c": 0.1}) == [
        "c", "a", "b"]
    cooled = order_upstreams(ups, "ordered", failures={"a": 100.0, "c": 10.0}, now=200.0,
                             cooldown=150.0)
    assert cooled == ["b", "c", "a"]  # a failed 100 s ago: cooling; c's failure has expired


# -- delivery: exactly once, apart from syncs, bounded by each plugin ------------------------------
def script(path: Path, body: str) -> str:
    """A real plugin executable: a shell script."""
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def plugin_config(tmp_path: Path, plugins: list[dict[str, Any]]) -> Path:
    path = write_config(tmp_path / "mk.toml", {"deb": {"profile": "debian",
                                                       "dest": str(tmp_path / "m")}})
    text = path.read_text()
    for plugin in plugins:
        text += "\n[[alerts.plugins]]\n" + "".join(
            f"{k} = {json.dumps(v)}\n" for k, v in plugin.items())
    path.write_text(text)
    return path


def test_each_notice_goes_out_once_per_plugin_however_many_senders_run(tmp_path: Path) -> None:
    """Workers, the tick and other processes all send what is queued: each must claim a
    notification before its plugin runs (15 mails for 7 notices, before)."""
    import threading

    from mirrorkeeper.alerts.dispatch import deliver_pending, update_alerts
    from mirrorkeeper.classify.rules import Ruled
    from mirrorkeeper.config.load import load_config
    from mirrorkeeper.store import Store

    sent = tmp_path / "sent.jsonl"
    slow = script(tmp_path / "slow-jsonl", f"sleep 0.3\nexec mirrorkeeper-alert-jsonl {sent}\n")
    config = load_config(plugin_config(tmp_path, [
        {"name": "slow", "command": [slow], "min_severity": "info"}]))
    store = Store.open(config.settings.state_dir)
    try:
        codes = ["upstream.unreachable", "local.disk_full", "transfer.partial"]
        start = threading.Barrier(6)

        def record(code: str) -> None:
            start.wait(timeout=10)
            update_alerts(config, store, "debian", [Ruled(finding(code))], complete=False)

        # The same finding recorded by two senders at once (a run and the watchdog) is one
        # alert and one notice.
        threads = [threading.Thread(target=record, args=(code,)) for code in codes * 2]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        left: list[int] = []

        def send() -> None:
            start.wait(timeout=10)
            left.append(deliver_pending(config, store))

        threads = [threading.Thread(target=send) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        alerts = AlertStore(store.engine).open_alerts("debian")
    finally:
        store.close()
    lines = [json.loads(x) for x in sent.read_text().splitlines()]
    assert sorted(a["code"] for a in alerts) == sorted(codes)
    assert sorted(line["code"] for line in lines) == sorted(codes), lines
    assert left == [0] * 6


def test_a_failing_plugin_rests_and_does_not_hold_up_the_others(tmp_path: Path) -> None:
    from mirrorkeeper.alerts.dispatch import deliver_pending, update_alerts
    from mirrorkeeper.classify.rules import Ruled
    from mirrorkeeper.config.load import load_config
    from mirrorkeeper.store import Store

    calls = tmp_path / "calls"
    failing = script(tmp_path / "failing", f"echo call >> {calls}\necho 'smtp down' >&2\nexit 1\n")
    good = tmp_path / "good.jsonl"
    config = load_config(plugin_config(tmp_path, [
        {"name": "failing", "command": [failing], "min_severity": "info"},
        {"name": "good", "command": ["mirrorkeeper-alert-jsonl", str(good)],
         "min_severity": "info"}]))
    store = Store.open(config.settings.state_dir)
    try:
        t0 = time.time()
        for code in ("upstream.unreachable", "local.disk_full", "transfer.partial"):
            update_alerts(config, store, "debian", [Ruled(finding(code))], complete=False,
                          now=t0)

        def called() -> int:
            return len(calls.read_text().splitlines()) if calls.exists() else 0

        assert deliver_pending(config, store, now=t0) == 3
        assert called() == 1  # not once per notification
        assert len(good.read_text().splitlines()) == 3  # the other plugin was not held up
        assert deliver_pending(config, store, now=t0 + 10) == 3
        assert called() == 1  # resting: 30 s after the first failure
        assert deliver_pending(config, store, now=t0 + 31) == 3
        assert called() == 2
        assert deliver_pending(config, store, now=t0 + 31 + 45) == 3
        assert called() == 2  # 60 s after the second
        assert deliver_pending(config, store, now=t0 + 31 + 61) == 3
        assert called() == 3
    finally:
        store.close()


def hanging_plugin(tmp_path: Path, marker: str) -> str:
    """A plugin that starts a helper and then hangs; both carry ``marker`` on their command
    line, so a test can see whether they are gone."""
    sleep = f"{sys.executable} -c 'import time; time.sleep(60)'"
    return script(tmp_path / f"{marker}.sh",
                  f"{sleep} {marker}-helper &\nexec {sleep} {marker}-plugin\n")


def test_a_timed_out_or_stopped_plugin_s_whole_process_group_is_killed(tmp_path: Path) -> None:
    import threading

    from .conftest import processes_mentioning, wait_for

    marker = f"mk-hang-{os.getpid()}-{time.monotonic_ns()}"
    spec = PluginSpec(name="hang", command=(hanging_plugin(tmp_path, marker),), timeout=1.0)
    try:
        started = time.monotonic()
        assert run_plugin(spec, payload(ALERT, host="h")) == "timed out after 1s"
        assert time.monotonic() - started < 5
        # The helper it started goes too (it used to linger, re-parented to init).
        wait_for(lambda: processes_mentioning(marker) == [], timeout=3,
                 what="the plugin and its helper killed")
        # A stop (the daemon shutting down) ends a plugin at once, whatever its timeout.
        patient = PluginSpec(name="hang", command=spec.command, timeout=600.0)
        stop = threading.Event()
        threading.Timer(0.5, stop.set).start()
        started = time.monotonic()
        error = run_plugin(patient, payload(ALERT, host="h"), stop)
        assert error is not None and "stopping" in error
        assert time.monotonic() - started < 3
        wait_for(lambda: processes_mentioning(marker) == [], timeout=3,
                 what="the stopped plugin and its helper killed")
    finally:
        for pid in processes_mentioning(marker):  # only ours: the marker is unique
            os.kill(pid, 9)


def test_the_watchdog_never_reopens_an_alert_a_run_resolved_meanwhile(tmp_path: Path) -> None:
    """The watchdog carries a mirror's open alerts over; if a run resolves one between its
    read and its update, that alert stays resolved (it used to come back as `new`)."""
    from mirrorkeeper.alerts.dispatch import _open_except, update_alerts
    from mirrorkeeper.classify.rules import Ruled
    from mirrorkeeper.config.load import load_config
    from mirrorkeeper.store import Store

    config = load_config(plugin_config(tmp_path, [
        {"name": "log", "command": ["mirrorkeeper-alert-jsonl", str(tmp_path / "a.jsonl")],
         "min_severity": "info"}]))
    store = Store.open(config.settings.state_dir)
    try:
        update_alerts(config, store, "deb", [Ruled(finding("upstream.unreachable"))],
                      complete=True)
        others = _open_except(store, "deb", {"mirror.stale"})  # the watchdog reads ...
        update_alerts(config, store, "deb", [], complete=True)  # ... a good run resolves ...
        notices = update_alerts(config, store, "deb", others, complete=True,  # ... it writes
                                carried=frozenset(r.finding.code for r in others))
        assert notices == [] and AlertStore(store.engine).open_alerts("deb") == []
    finally:
        store.close()


def test_nagios_plugin_and_nagios_config_name_the_same_host_by_default(
        tmp_path: Path, mk: Callable[..., CliResult]) -> None:
    """Passive results must land on the service `nagios-config` defined: same host_name."""
    config = write_config(tmp_path / "mk.toml", {"debian": {
        "profile": "debian", "dest": str(tmp_path / "debian")}})
    generated = mk("-c", str(config), "nagios-config").out
    hosts = set(re.findall(r"host_name +(\S+)", generated))
    assert hosts == {TEST_HOSTNAME}
    fifo = tmp_path / "nagios.cmd"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        spec = PluginSpec(name="nagios", command=(
            "mirrorkeeper-alert-nagios", "--command-file", str(fifo)))
        host = load_config(config).settings.hostname  # what the dispatcher puts in `host`
        assert run_plugin(spec, payload(ALERT, host=host)) is None
        line = os.read(reader, 4096).decode()
    finally:
        os.close(reader)
    assert f";PROCESS_SERVICE_CHECK_RESULT;{TEST_HOSTNAME};mirror debian;2;" in (
        ";" + line.split("] ", 1)[1])
