"""``mirrorkeeper check``: a Monitoring Plugins-style check of one or every mirror (I/O).

nagiosplugin does the plumbing (ranges, perfdata, exit status, UNKNOWN on any exception); this
module says what is measured:

- ``age``: seconds since the last successful sync — WARNING past twice the schedule's interval
  (a day for cron schedules), CRITICAL past ``stale_after``; ``--warning/--critical`` override
  both with Nagios ranges;
- ``alert``: the worst open alert — ``critical`` is CRITICAL, ``error`` is WARNING (DESIGN §4);
- ``running``: a sync running more than 3 times its usual duration (and over 10 min) is WARNING;
- ``free``: free space on the mirror's filesystem, WARNING under 10 %, CRITICAL under 5 %;
- perfdata also carries the last run's failure ratio, duration and bytes.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nagiosplugin

from .classify.findings import Severity
from .config.durations import format_duration
from .config.schedule import parse_schedule
from .config.spec import Config, MirrorSpec
from .store import Store
from .store.alerts import AlertStore
from .sync.lock import is_locked
from .sync.preflight import local_mtime
from .sync.run import lock_dir

_ALERT_STATE = {Severity.CRITICAL: nagiosplugin.Critical, Severity.ERROR: nagiosplugin.Warn}


@dataclass(frozen=True)
class MirrorFacts:
    name: str
    age: float | None  # None: never synced
    stale_after: float
    warn_age: float
    worst_alert: Severity | None
    alert_text: str
    running_for: float | None
    usual_duration: float | None
    free_ratio: float | None
    free_bytes: int | None
    failure_ratio: float
    last_duration: float | None
    last_bytes: int | None
    #: From the newest poll of the update-signal file (None: not polled, or no signal):
    #: how old the upstream's last publish is, and how far our copy lags behind it.
    upstream_age: float | None = None
    behind_upstream: float | None = None
    #: The fleet host that syncs it (None: not a fleet).
    host: str | None = None


def gather(config: Config, store: Store, mirror: MirrorSpec, now: float) -> MirrorFacts:
    """One mirror's facts. Another fleet host's mirror is judged from the shared store alone:
    its lock, its disk and its copy of the update signal are on that host, not here."""
    host = config.host_of(mirror) if config.fleet is not None else None
    here = host is None or host == config.host
    last_ok = store.last_run(mirror.name, outcome="success")
    history = [r for r in store.history(mirror.name, 11) if r.outcome != "running"]
    schedule = parse_schedule(mirror.settings.schedule)
    interval = schedule.interval_seconds or 86400.0
    alerts = AlertStore(store.engine).open_alerts(mirror.name)
    worst = max((Severity.parse(a["severity"]) for a in alerts), default=None)
    text = "; ".join(f"{a['code']} ({a['severity']})" for a in alerts
                     if Severity.parse(a["severity"]) >= Severity.ERROR)
    running_for = None
    if is_locked(lock_dir(config), mirror.name) if here else True:
        current = store.last_run(mirror.name, outcome="running")
        running_for = now - current.started_at if current else None
    durations = [r.duration_seconds for r in history if r.outcome == "success"]
    free_ratio = free_bytes = None
    try:
        if here:
            st = os.statvfs(mirror.dest)
            free_bytes = st.f_bavail * st.f_frsize
            free_ratio = st.f_bavail / st.f_blocks if st.f_blocks else None
    except OSError:
        pass
    last = history[0] if history else None
    poll = store.last_poll(mirror.name) if mirror.settings.update_signal else None
    upstream_mtime = poll["upstream_mtime"] if poll else None
    local_signal = (local_mtime(mirror.dest, mirror.settings.update_signal,
                                mirror.settings.signal_kind)
                    if mirror.settings.update_signal and here else None)
    return MirrorFacts(
        name=mirror.name,
        age=now - last_ok.finished_at if last_ok and last_ok.finished_at else None,
        stale_after=mirror.settings.stale_after,
        warn_age=min(2 * interval, mirror.settings.stale_after),
        worst_alert=worst, alert_text=text, running_for=running_for,
        usual_duration=statistics.median(durations) if durations else None,
        free_ratio=free_ratio, free_bytes=free_bytes,
        failure_ratio=(last.files_failed / last.files_total) if last and last.files_total else 0,
        last_duration=last.duration_seconds if last else None,
        last_bytes=last.bytes_transferred if last else None,
        upstream_age=now - upstream_mtime if upstream_mtime else None,
        behind_upstream=max(0.0, upstream_mtime - (local_signal or 0.0))
        if upstream_mtime and here else None,
        host=host,
    )


class Mirrors(nagiosplugin.Resource):  # type: ignore[misc]
    name = "MIRRORKEEPER"

    def __init__(self, facts: list[MirrorFacts]) -> None:
        self.facts = facts

    def probe(self) -> list[nagiosplugin.Metric]:
        metrics = []
        for f in self.facts:
            age = round(f.age) if f.age is not None else float("inf")
            metrics.append(nagiosplugin.Metric(f"{f.name}_age", age, "s", min=0,
                                               context=f"{f.name}_age"))
            metrics.append(nagiosplugin.Metric(f"{f.name}_alert", int(f.worst_alert or 0),
                                               context="alert"))
            metrics.append(nagiosplugin.Metric(f"{f.name}_running", f.running_for or 0, "s",
                                               min=0, context="running"))
            if f.free_ratio is not None:
                metrics.append(nagiosplugin.Metric(f"{f.name}_free", round(f.free_ratio * 100, 2),
                                                   "%", min=0, max=100, context="free"))
            metrics.append(nagiosplugin.Metric(f"{f.name}_failure_ratio",
                                               round(f.failure_ratio, 6), min=0,
                                               context="figure"))
            if f.last_duration is not None:
                metrics.append(nagiosplugin.Metric(f"{f.name}_duration",
                                                   round(f.last_duration, 1), "s", min=0,
                                                   context="figure"))
            if f.last_bytes is not None:
                metrics.append(nagiosplugin.Metric(f"{f.name}_bytes", f.last_bytes, "B",
                                                   min=0, context="figure"))
            if f.upstream_age is not None:
                metrics.append(nagiosplugin.Metric(f"{f.name}_upstream_age",
                                                   round(max(f.upstream_age, 0)), "s", min=0,
                                                   context="figure"))
            if f.behind_upstream is not None:
                metrics.append(nagiosplugin.Metric(f"{f.name}_behind_upstream",
                                                   round(f.behind_upstream), "s", min=0,
                                                   context="figure"))
        return metrics


class _FactContext(nagiosplugin.Context):  # type: ignore[misc]
    """Judges one mirror's facts; its metric is a state carrier, so it adds no perfdata."""

    def __init__(self, name: str, facts: dict[str, MirrorFacts]) -> None:
        super().__init__(name)
        self.facts = facts

    def facts_of(self, metric: Any) -> MirrorFacts:
        return self.facts[metric.name.rsplit("_", 1)[0]]  # "<mirror>_<context>"

    def performance(self, metric: Any, resource: Any) -> None:
        return None


class AlertContext(_FactContext):
    def __init__(self, facts: dict[str, MirrorFacts]) -> None:
        super().__init__("alert", facts)

    def evaluate(self, metric: Any, resource: Any) -> Any:
        f = self.facts_of(metric)
        state = _ALERT_STATE.get(Severity(metric.value) if metric.value else Severity.INFO,
                                 nagiosplugin.Ok)
        return self.result_cls(state, f"{f.name}: {f.alert_text}" if f.alert_text else None,
                               metric)


class RunningContext(_FactContext):
    def __init__(self, facts: dict[str, MirrorFacts]) -> None:
        super().__init__("running", facts)

    def evaluate(self, metric: Any, resource: Any) -> Any:
        f = self.facts_of(metric)
        if f.running_for and f.usual_duration and f.running_for > max(3 * f.usual_duration,
                                                                      600):
            return self.result_cls(nagiosplugin.Warn, f"{f.name}: running for "
                                   f"{format_duration(f.running_for)}, usually "
                                   f"{format_duration(f.usual_duration)}", metric)
        return self.result_cls(nagiosplugin.Ok, None, metric)


class AgeContext(nagiosplugin.ScalarContext):  # type: ignore[misc]
    def __init__(self, f: MirrorFacts, warning: str | None, critical: str | None) -> None:
        super().__init__(f"{f.name}_age", warning or f"{f.warn_age:.0f}",
                         critical or f"{f.stale_after:.0f}")
        self.facts = f

    def describe(self, metric: Any) -> str:
        f = self.facts
        name = f"{f.name} ({f.host})" if f.host else f.name
        if f.age is None:
            return f"{name} never synced"
        return f"{name} synced {format_duration(f.age)} ago"

    def performance(self, metric: Any, resource: Any) -> Any:
        if metric.value == float("inf"):
            return None  # never synced: no number to graph
        return super().performance(metric, resource)


def _say(result: Any) -> str:
    """An age result reads "debian synced 3h ago (critical past 86400)"; others their hint."""
    if isinstance(result.context, AgeContext):
        described = result.context.describe(result.metric)
        limit = result.hint.replace("outside range", "limit") if result.hint else ""
        return f"{described} ({limit})" if limit else described
    return str(result.hint or result)


class Brief(nagiosplugin.Summary):  # type: ignore[misc]
    def ok(self, results: Any) -> str:
        return ", ".join(_say(r) for r in results if isinstance(r.context, AgeContext))

    def problem(self, results: Any) -> str:
        return "; ".join(_say(r) for r in results.most_significant)

    def verbose(self, results: Any) -> list[str]:
        lines = []
        for r in results:
            if isinstance(r.context, AgeContext) or r.state != nagiosplugin.Ok:
                lines.append(f"{str(r.state).upper()}: {_say(r)}")
        return lines


def run_check(config: Config, store: Store, mirrors: list[MirrorSpec], warning: str | None,
              critical: str | None, verbose: int) -> None:
    """Print the status line (and perfdata) and exit 0/1/2/3, as a Nagios plugin does."""
    now = time.time()
    facts = [gather(config, store, m, now) for m in mirrors]
    by_name = {f.name: f for f in facts}
    contexts: list[Any] = [AgeContext(f, warning, critical) for f in facts]
    contexts += [AlertContext(by_name), RunningContext(by_name),
                 nagiosplugin.ScalarContext("free", "10:", "5:"),
                 nagiosplugin.ScalarContext("figure")]
    check = nagiosplugin.Check(Mirrors(facts), *contexts, Brief())
    check.main(verbose=verbose)


def running_command() -> str:
    """How Nagios runs the Mirrorkeeper that is running now: the console script it was started
    as — absolute but not resolved, so the documented ``/usr/local/bin/mirrorkeeper`` symlink
    survives an upgrade of the venv behind it — else this interpreter with ``-m``."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if (script is not None and script.name.startswith("mirrorkeeper") and script.is_file()
            and os.access(script, os.X_OK)):
        return str(script.absolute())
    return f"{sys.executable} -m mirrorkeeper"


def nagios_config(config: Config, command: str, host: str, define_host: bool = True,
                  fleet: bool = False) -> str:
    """Nagios/Icinga object definitions: one command, the host (unless the admin named one
    Nagios already has), one service per enabled mirror.

    The host is this machine — ``check`` reads the local store — under the name the alert
    plugins submit passive results for (``[global] hostname``). It uses the ``linux-server``
    template that Debian's nagios4 and Nagios' sample configuration ship.

    ``fleet``: every fleet host is a Nagios host (its ``[fleet]`` name, which Nagios must
    resolve) and each mirror's service is on the host that syncs it; the checks themselves
    run here, on the shared store.
    """
    lines = [
        "# Generated by `mirrorkeeper nagios-config`; include it from nagios.cfg.",
        "define command {",
        "    command_name    check_mirrorkeeper",
        f"    command_line    {command} -c {os.path.abspath(config.path)} check $ARG1$",
        "}",
        "",
    ]
    mirrors = config.enabled()
    on = {m.name: config.host_of(m) if fleet else host for m in mirrors}
    if define_host:
        for name in sorted(set(on.values())) if fleet else [host]:
            lines += [
                "define host {",
                "    use                     linux-server",
                f"    host_name               {name}",
                f"    alias                   {name} (Mirrorkeeper"
                + (" fleet host)" if fleet else ")"),
                f"    address                 {name if fleet else '127.0.0.1'}",
                "}",
                "",
            ]
    for m in mirrors:
        lines += [
            "define service {",
            "    use                     generic-service",
            f"    host_name               {on[m.name]}",
            f"    service_description     mirror {m.name}",
            f"    check_command           check_mirrorkeeper!{m.name}",
            "    check_interval          5",
            "}",
            "",
        ]
    return "\n".join(lines)
