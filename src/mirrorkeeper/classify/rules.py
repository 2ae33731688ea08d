"""Rules tune findings (pure). Fail closed: a finding no rule matches keeps its default.

Order of evaluation for one run's findings:

1. rules, first match wins: ``set_severity`` or ``suppress_for`` (never on a protected code);
2. escalation: an ``error`` seen ``escalate_after_runs`` runs in a row becomes ``critical``;
3. the staleness watchdog is added by the caller afterwards and no rule ever sees it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from fnmatch import fnmatchcase

from ..config.spec import AlertRule, AlertSettings
from .codes import CODES
from .findings import Finding, Severity


@dataclasses.dataclass(frozen=True)
class Ruled:
    finding: Finding
    #: Silence notifications for this long (the alert is still recorded).
    suppress_for: float | None = None


def _count(finding: Finding) -> int | None:
    for key in ("files_failed", "files", "count"):
        value = finding.details.get(key)
        if isinstance(value, int):
            return value
    return None


def matches(rule: AlertRule, finding: Finding, consecutive: int) -> bool:
    if rule.code.endswith("*"):
        if not finding.code.startswith(rule.code[:-1]):
            return False
    elif rule.code != finding.code:
        return False
    if not fnmatchcase(finding.mirror, rule.mirror):
        return False
    if rule.upstream != "*" and not fnmatchcase(finding.upstream or "", rule.upstream):
        return False
    if rule.exit_code is not None and finding.details.get("exit_code") != rule.exit_code:
        return False
    ratio = finding.details.get("failure_ratio")
    if rule.failure_ratio_min is not None or rule.failure_ratio_max is not None:
        if not isinstance(ratio, int | float):
            return False  # a ratio bound never matches a finding without a ratio
        if rule.failure_ratio_min is not None and ratio < rule.failure_ratio_min:
            return False
        if rule.failure_ratio_max is not None and ratio > rule.failure_ratio_max:
            return False
    if rule.count_min is not None or rule.count_max is not None:
        count = _count(finding)
        if count is None:
            return False
        if rule.count_min is not None and count < rule.count_min:
            return False
        if rule.count_max is not None and count > rule.count_max:
            return False
    return not (rule.consecutive_min is not None and consecutive < rule.consecutive_min)


def apply_rules(findings: list[Finding], alerts: AlertSettings,
                consecutive: Mapping[str, int]) -> list[Ruled]:
    """``consecutive[code]``: runs in a row (this one included) that produced ``code``."""
    out: list[Ruled] = []
    for finding in findings:
        runs = consecutive.get(finding.code, 1)
        ruled = Ruled(finding)
        protected = CODES.get(finding.code) is not None and CODES[finding.code].protected
        if not protected:
            for index, rule in enumerate(alerts.rules):
                if not matches(rule, finding, runs):
                    continue
                label = f"{index}:{rule.name}"
                new = finding
                if rule.set_severity is not None:
                    new = dataclasses.replace(finding, severity=Severity.parse(rule.set_severity),
                                              rule=label)
                ruled = Ruled(dataclasses.replace(new, rule=label), rule.suppress_for)
                break
        f = ruled.finding
        if f.severity == Severity.ERROR and runs >= alerts.escalate_after_runs:
            f = dataclasses.replace(f, severity=Severity.CRITICAL, details={
                **f.details, "escalated": f"seen in {runs} runs in a row"})
            ruled = Ruled(f, None)  # an escalated alert is never silenced
        out.append(ruled)
    return out
