"""Judging one attempt (for the retry loop) and one run (for alerts). Pure.

An attempt's *category* decides what the runner does next:

| category    | meaning                                   | next step                      |
|-------------|-------------------------------------------|--------------------------------|
| ok          | complete (exit 0, 24, or a tolerable 23)  | go on                          |
| transient   | network trouble                           | retry the same upstream        |
| upstream    | the upstream is broken for us             | next upstream                  |
| local       | disk full, not writable, no rsync         | stop now: retrying cannot help |
| guard       | a guard refused (mass delete, ...)        | stop now, mirror left intact   |
| interrupted | stopped by a signal                       | stop now                       |
| internal    | something we do not understand            | stop now (fail closed)         |
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..config.spec import SyncSettings
from ..record import Attempt, RunRecord, StageResult
from ..safetext import printable
from .codes import default_severity
from .findings import Finding, Severity

_TRANSIENT_EXITS = {10: "upstream.unreachable", 12: "upstream.protocol",
                    30: "upstream.timeout", 35: "upstream.timeout"}
_UPSTREAM_EXITS = {2: "upstream.protocol", 5: "upstream.protocol", 3: "upstream.protocol"}
_LOCAL_KINDS = {"no_space": "local.disk_full", "read_only": "local.not_writable",
                "local_permission": "local.not_writable"}


@dataclass(frozen=True)
class Verdict:
    category: str
    code: str | None  # the finding code, if any
    reason: str
    failure_ratio: float = 0.0
    #: rsync's own words for what went wrong (its first error line), made printable: the
    #: cause an admin needs, which the exit status alone does not tell.
    detail: str = ""


#: The most of rsync's line a summary carries.
DETAIL_LIMIT = 300
_EXIT_SAMPLE = re.compile(r"\(code \d+\)")


def cause(stage: StageResult) -> str:
    """rsync's own error line for a stage: why it could not start, else the first error it
    printed that is more than its closing ``rsync error: ... (code N)``."""
    if stage.start_error:
        return printable(stage.start_error)[:DETAIL_LIMIT]
    samples = stage.error_samples
    line = next((x for x in samples if not _EXIT_SAMPLE.search(x)), samples[0] if samples else "")
    return printable(line)[:DETAIL_LIMIT]


def judge_stage(stage: StageResult, settings: SyncSettings,
                last_files_total: int | None) -> Verdict:
    """What one stage's result means, and what to do next; rsync's error line rides along."""
    verdict = _judge(stage, settings, last_files_total)
    if verdict.category == "ok" and verdict.code is None:
        return verdict
    return dataclasses.replace(verdict, detail=cause(stage))


def failure_ratio(failed: int, files_total: int, last_files_total: int | None) -> float:
    tree = max(files_total, last_files_total or 0, 1)
    return failed / tree


def _judge(stage: StageResult, settings: SyncSettings,
           last_files_total: int | None) -> Verdict:
    errors = stage.errors
    if stage.start_error:
        if stage.start_error.startswith("cannot run"):
            return Verdict("local", "local.rsync_missing", stage.start_error)
        return Verdict("local", "local.not_writable", stage.start_error)
    if stage.stopped_by == "signal":
        return Verdict("interrupted", "run.interrupted", "stopped by a signal")
    if stage.dry_run:
        return Verdict("internal", "internal.dry_run",
                       f"rsync reported ({stage.dry_run}): it changed nothing in the mirror")
    for kind, local_code in _LOCAL_KINDS.items():
        if errors.get(kind):
            return Verdict("local", local_code, f"rsync reported {kind.replace('_', ' ')}")
    if stage.stopped_by == "watchdog":
        return Verdict("transient", "upstream.timeout", "no output from rsync; stopped it")
    rc = stage.exit_code
    if errors.get("password_file"):
        return Verdict("local", "config.password_file",
                       "rsync refused the password_file; no upstream can be tried without it")
    if rc == 25 or errors.get("max_delete"):
        return Verdict("guard", "guard.mass_delete", "the --max-delete bound stopped deletions")
    if errors.get("daemon_busy"):  # busy, not broken: the same upstream after a backoff
        return Verdict("transient", "upstream.max_connections",
                       "the upstream refused the connection: its `max connections` are in use")
    if errors.get("auth"):
        return Verdict("upstream", "upstream.auth", "the daemon refused our credentials")
    if errors.get("module_missing"):
        return Verdict("upstream", "upstream.module_missing", "the daemon has no such module")
    if rc == 0 and (mismatch := output_mismatch(stage)):
        return Verdict("internal", "internal.output_mismatch", mismatch)
    if rc in (0, 24):
        return Verdict("ok", "transfer.vanished" if rc == 24 else None, "complete")
    if rc in _TRANSIENT_EXITS:
        return Verdict("transient", _TRANSIENT_EXITS[rc], f"rsync exit {rc}")
    if rc == 23:
        ratio = failure_ratio(stage.files_failed, stage.files_total, last_files_total)
        if ratio <= settings.failure_ratio_warning:
            return Verdict("ok", "transfer.partial", f"{stage.files_failed} files failed",
                           ratio)
        return Verdict("upstream", "transfer.failure_ratio",
                       f"{stage.files_failed} files failed ({ratio:.2%} of the tree)", ratio)
    if rc in _UPSTREAM_EXITS:
        return Verdict("upstream", _UPSTREAM_EXITS[rc], f"rsync exit {rc}")
    return Verdict("internal", "internal.error", f"rsync exit {rc} is not understood")


def output_mismatch(stage: StageResult) -> str | None:
    """Why a stage's output does not add up, or None. Fail closed: a clean exit is believed only
    when rsync's own summary agrees with what it itemized.

    rsync counts a regular file in ``Number of regular files transferred`` exactly when its
    receiver takes the file's data, and prints one ``>f`` line for it then (receiver.c; a
    retransmission after a failed checksum counts and prints again). Hard links made locally
    (``hf``) and attribute-only changes (``.f``) are neither counted nor ``>f``. Checked with
    real two-stage syncs: new, changed, touched, chmod-ed, empty and hard-linked files,
    symlinks, --delay-updates and --delete-after, -I, -c, --copy-links, --partial-dir,
    --protocol=27..31. The two differ only where rsync also reports an error (exit 23), so
    only a clean exit 0 is checked; an exit 0 without the stats block means the output is not
    the one the parser was built for (-q, a wrapper, ...).
    """
    if stage.items_received is None:  # not read line by line: nothing to compare
        return None
    if stage.stats_files_transferred is None:
        return "rsync exited 0 but printed no --stats block: its output is not understood"
    if stage.stats_files_transferred != stage.items_received:
        return (f"rsync's stats say {stage.stats_files_transferred} files transferred but it "
                f"itemized {stage.items_received}: its output is not understood")
    return None


def ratio_severity(ratio: float, settings: SyncSettings) -> Severity:
    if ratio <= settings.failure_ratio_info:
        return Severity.INFO
    if ratio <= settings.failure_ratio_warning:
        return Severity.WARNING
    if ratio <= settings.failure_ratio_error:
        return Severity.ERROR
    return Severity.CRITICAL


def classify_run(record: RunRecord, settings: SyncSettings,
                 last_files_total: int | None = None) -> list[Finding]:
    """Findings of a finished run, before rules. Every failure yields at least one finding."""
    findings: list[Finding] = []

    def add(code: str, summary: str, severity: Severity | None = None,
            upstream: str | None = None, **details: object) -> None:
        findings.append(Finding(record.mirror, code, severity or default_severity(code),
                                summary, dict(details), record.run_id, upstream))

    final_ok = record.outcome in ("success", "staged")  # staged: stage 1 of a push, complete
    for attempt in record.attempts:
        if attempt.category in ("ok",) or attempt.code is None:
            continue
        if attempt.category in ("transient", "upstream") and final_ok:
            code = attempt.code if attempt.code.startswith("upstream.") else "upstream.fallback"
            # A refusal for want of connection slots that a later attempt got past is normal.
            busy = code == "upstream.max_connections"
            add(code, f"{said(attempt)} (another attempt succeeded)",
                Severity.INFO if busy else Severity.WARNING, attempt.upstream, stage=attempt.stage,
                exit_code=attempt.exit_code, rsync_error=attempt.detail)
    if record.outcome == "rolled_back":  # the mirror is a known-good state again
        for code, upstream, summary in record.notices:
            add(code, summary, None, upstream or None)
        return _dedup(findings)
    if record.outcome == "interrupted":
        last = record.attempts[-1].reason if record.attempts else ""
        how = last if last.startswith("stopped by") else "stopped by a signal"
        add("run.interrupted", f"the run was {how}")
        return _dedup(findings)
    final = record.attempts[-1] if record.attempts else None
    refused = {"upstream.stale": "guard.upstream_stale", "upstream.empty": "guard.upstream_empty"}
    if (not final_ok and record.attempts
            and all(a.code in refused for a in record.attempts if a.category != "transient")
            and any(a.code in refused for a in record.attempts)):
        # Every upstream we could reach would have rolled back or wiped the mirror.
        why = "; ".join(f"{a.upstream}: {a.reason}" for a in record.attempts
                        if a.code in refused)
        worst = next(a for a in reversed(record.attempts) if a.code in refused)
        assert worst.code is not None
        add(refused[worst.code], f"mirror left as it was — {why}",
            upstreams_tried=list(record.upstreams_tried))
        for code, upstream, summary in record.notices:  # the way back, if stage 1 wrote
            if code.startswith("snapshot."):
                add(code, summary, None, upstream or None)
        return _dedup(findings)
    if not final_ok and final is not None and final.code:
        severity = None
        if final.code == "transfer.failure_ratio":
            severity = max(ratio_severity(final.failure_ratio, settings), Severity.ERROR)
        add(final.code, said(final), severity,
            final.upstream, stage=final.stage, exit_code=final.exit_code,
            upstreams_tried=list(record.upstreams_tried), failure_ratio=final.failure_ratio,
            rsync_error=final.detail)
    elif not final_ok:
        add("internal.error", f"the run ended {record.outcome} without a known cause")
    if final_ok:
        stages = record.final_stages
        failed = record.files_failed
        if failed:
            ratio = failure_ratio(failed, record.files_total, last_files_total)
            code = "transfer.partial" if ratio <= settings.failure_ratio_info else (
                "transfer.failure_ratio")
            add(code, f"{failed} of {record.files_total} files failed ({ratio:.3%})",
                ratio_severity(ratio, settings), record.upstream, files_failed=failed,
                files_total=record.files_total, failure_ratio=ratio,
                errors=record.errors, samples=[x for s in stages for x in s.error_samples][:10])
        vanished = record.errors.get("vanished", 0)
        if vanished:
            add("transfer.vanished", f"{vanished} files vanished upstream during the run",
                files=vanished)
    _deletion_findings(record, settings, add)
    unreached = [d for d in record.downstreams if d.error]
    if unreached:
        add("downstream.unreachable", "; ".join(f"{d.name}: {d.error}" for d in unreached),
            downstreams=[d.name for d in unreached])
    for code, upstream, summary in record.notices:
        add(code, summary, None, upstream or None)
    unparsed = sum(s.unparsed_lines for s in record.stages)
    if unparsed:
        add("internal.unparsed_output", f"rsync printed {unparsed} lines not understood",
            samples=[x for s in record.stages for x in s.error_samples][:10])
    return _dedup(findings)


def said(attempt: Attempt) -> str:
    """An attempt in one line: the upstream, our judgement, and rsync's own words for it."""
    text = f"{attempt.upstream or 'no upstream'}: {attempt.reason}"
    if attempt.detail and attempt.detail not in attempt.reason:
        text += f" — {attempt.detail}"
    return text


def _deletion_findings(record: RunRecord, settings: SyncSettings,
                       add: Callable[..., None]) -> None:
    """Files the upstream dropped that stay on the mirror: never silent (zero false
    negatives), critical once the deletions have been skipped run after run."""
    d = record.deletions
    if d is None:
        return
    if d.skipped:
        critical = d.skipped_runs >= settings.deletions_skipped_critical_after
        add("transfer.deletions_skipped",
            f"no deletions for {d.skipped_runs} run(s) in a row: {d.skipped}; the mirror keeps "
            f"{d.kept} files the upstream dropped",
            Severity.CRITICAL if critical else Severity.WARNING, record.upstream,
            kept=d.kept, runs=d.skipped_runs, reason=d.skipped)
    if d.failed:
        add("local.delete_failed", f"{d.failed} files the upstream dropped could not be "
            "deleted here; see the run's log", None, record.upstream, files=d.failed)


def _dedup(findings: list[Finding]) -> list[Finding]:
    """One finding per code: the most severe."""
    best: dict[str, Finding] = {}
    for f in findings:
        if f.code not in best or f.severity > best[f.code].severity:
            best[f.code] = f
    return list(best.values())


def stale_finding(mirror: str, last_success_at: float | None, first_seen_at: float | None,
                  now: float, stale_after: float) -> Finding | None:
    """The staleness watchdog: outside the rules, critical whatever they say."""
    since = last_success_at if last_success_at is not None else first_seen_at
    if since is None or now - since <= stale_after:
        return None
    age = now - since
    what = "last successful sync" if last_success_at is not None else "never synced; configured"
    return Finding(mirror, "mirror.stale", Severity.CRITICAL,
                   f"{what} {age / 3600:.1f} h ago (stale after {stale_after / 3600:.1f} h)",
                   {"age_seconds": round(age), "stale_after_seconds": stale_after})


def host_alert_name(host: str) -> str:
    """The name a fleet host's alerts are kept under, beside the mirrors' names (``host:``
    cannot be a mirror name, so the two never mix)."""
    return f"host:{host}"


def host_down_finding(host: str, beat_at: float, now: float, down_after: float,
                      noticed_by: str) -> Finding:
    """A fleet host stopped beating: critical, outside the rules like staleness."""
    silent = now - beat_at
    return Finding(host_alert_name(host), "host.down", Severity.CRITICAL,
                   f"fleet host `{host}` has not beaten for {silent:.0f} s (down after "
                   f"{down_after:.0f} s); its mirrors are not synced",
                   {"host": host, "beat_at": beat_at, "silent_seconds": round(silent),
                    "noticed_by": noticed_by})
