"""``alerts replay``: what stored runs would have alerted under other rules (pure over records).

The guard of zero false negatives: an alert an admin marked as a real problem must not be
silenced (vanish, be suppressed, or drop to info) by the new rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..classify.findings import Severity
from ..classify.judge import classify_run
from ..classify.rules import Ruled, apply_rules
from ..config.spec import AlertSettings, MirrorSpec
from ..record import RunRecord


@dataclass(frozen=True)
class Change:
    mirror: str
    run_id: int
    code: str
    before: str | None  # severity, "suppressed", or None (no alert)
    after: str | None


def _label(r: Ruled | None) -> str | None:
    if r is None:
        return None
    return "suppressed" if r.suppress_for else str(r.finding.severity)


def evaluate_history(mirror: MirrorSpec, runs: list[RunRecord],
                     alerts: AlertSettings) -> dict[int, dict[str, Ruled]]:
    """Findings per run id, oldest first, with streaks counted as the live system would."""
    out: dict[int, dict[str, Ruled]] = {}
    streak: dict[str, int] = {}
    last_total: int | None = None
    for record in sorted(runs, key=lambda r: (r.started_at, r.run_id)):
        if record.outcome == "running":
            continue
        findings = classify_run(record, mirror.settings, last_total)
        codes = {f.code for f in findings}
        streak = {c: streak.get(c, 0) + 1 for c in codes}
        out[record.run_id] = {r.finding.code: r for r in apply_rules(findings, alerts, streak)}
        if record.outcome == "success":
            last_total = record.files_total
    return out


def replay(mirror: MirrorSpec, runs: list[RunRecord], old: AlertSettings,
           new: AlertSettings) -> list[Change]:
    before, after = evaluate_history(mirror, runs, old), evaluate_history(mirror, runs, new)
    changes = []
    for run_id in sorted(before):
        for code in sorted(set(before[run_id]) | set(after[run_id])):
            a, b = _label(before[run_id].get(code)), _label(after[run_id].get(code))
            if a != b:
                changes.append(Change(mirror.name, run_id, code, a, b))
    return changes


def silenced(label_before: str | None, label_after: str | None) -> bool:
    """Would a real problem go unnoticed?"""
    if label_before in (None, "suppressed"):
        return False
    return label_after in (None, "suppressed") or (
        Severity.parse(label_after) == Severity.INFO
        and Severity.parse(label_before) > Severity.INFO)
