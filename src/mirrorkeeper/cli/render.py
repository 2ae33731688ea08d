"""How runs, status and profiles look: JSON documents (stable field names) and rich tables."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from ..config.durations import format_duration
from ..config.spec import Profile
from ..logs import iso
from ..profiles import BrokenProfile
from ..record import RunRecord
from ..record.present import deletions_text, human_bytes, human_rate
from ..rsync.exitcodes import meaning

if TYPE_CHECKING:
    from ..doctor import MirrorReport


def run_summary(record: RunRecord) -> Table:
    """The stats block printed after ``sync``."""
    table = Table(title=f"{record.mirror} — run {record.run_id}: {record.outcome}",
                  show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    failed = record.outcome != "success"
    last = record.attempts[-1] if record.attempts else None
    rows = [("upstream", record.upstream)]
    if failed and last is not None:
        # The cause first, in rsync's own words: the exit status alone does not tell it.
        rows.append(("cause", last.detail or last.reason))
    rows += [
        ("started", iso(record.started_at) or "-"),
        ("duration", f"{record.duration_seconds:.2f} s"),
        ("transferred", f"{human_bytes(record.bytes_transferred)} ({record.bytes_transferred} B)"),
        ("bitrate", human_rate(record.bitrate_bps)),
        ("tree size", f"{human_bytes(record.size_bytes)} in {record.files_total} files"),
        ("files transferred", str(record.files_transferred)),
        ("files deleted", str(record.files_deleted)),
        ("files failed", str(record.files_failed)),
        ("errors", ", ".join(f"{k}: {v}" for k, v in record.errors.items())
         or ("-" if failed else "none")),
    ]
    if deletions := deletions_text(record):
        rows.append(("deletions", deletions))
    for stage in record.stages:
        label = stage.name if len(record.attempts) < 2 else f"{stage.name} #{stage.attempt}"
        if stage.exit_code is None and stage.start_error:
            rows.append((label, f"not started: {stage.start_error}"))
            continue
        rows.append((label, f"exit {stage.exit_code} ({meaning(stage.exit_code)}) in "
                     f"{stage.duration_seconds:.2f} s, {stage.files_transferred} files, "
                     f"{stage.files_deleted} deleted"))
    for name in record.skipped:
        rows.append((name, "not run"))
    if len(record.attempts) > 1 or (record.attempts and record.attempts[-1].category != "ok"):
        for a in record.attempts:
            rows.append((f"attempt {a.number}", f"{a.upstream}: {a.category}"
                         + (f" ({a.code})" if a.code else "") + f" — {a.reason}"
                         + (f": {a.detail}" if a.detail and a.detail not in a.reason else "")))
    rows.append(("log", record.log_path))
    for field_name, value in rows:
        table.add_row(field_name, Text(value))  # Text: an upstream's words are never markup
    return table


def status_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="mirrors", title_justify="left")
    fleet = bool(rows) and "host" in rows[0]  # a fleet: which host syncs each
    for column in ("mirror", *(("host",) if fleet else ()), "state", "progress",
                   "last success", "age", "last outcome", "size", "files", "to delete",
                   "last duration", "next run"):
        table.add_column(column)
    now = time.time()
    for row in rows:
        progress = "-"
        if row["state"] == "running":
            pct = row.get("progress_percent")
            progress = (f"{row.get('stage')} {pct:.1f}%" if pct is not None
                        else f"{row.get('stage')} …")
            if row.get("eta_seconds"):
                progress += f" ETA {format_duration(row['eta_seconds'])}"
        age = row.get("last_success_epoch")
        table.add_row(
            row["mirror"], *((row["host"],) if fleet else ()), row["state"], progress,
            row.get("last_success_at") or "never",
            format_duration(now - age) if age else "-", row.get("outcome") or "-",
            human_bytes(row.get("size_bytes")), str(row.get("files_total") or "-"),
            str(row.get("pending_deletions") or "-"),
            f"{row['duration_seconds']:.1f} s" if row.get("duration_seconds") is not None
            else "-",
            _next_run(row.get("next_run_epoch"), now),
        )
    return table


def _next_run(epoch: float | None, now: float) -> str:
    if epoch is None:
        return "-"
    return "due now" if epoch <= now else f"in {format_duration(epoch - now)}"


def history_table(mirror: str, records: list[RunRecord]) -> Table:
    table = Table(title=f"{mirror}: last {len(records)} runs", title_justify="left")
    for column in ("run", "started", "outcome", "exit", "duration", "transferred", "files",
                   "deleted", "failed", "upstream"):
        table.add_column(column)
    for r in records:
        table.add_row(str(r.run_id), iso(r.started_at) or "-", r.outcome, str(r.exit_code),
                      f"{r.duration_seconds:.1f} s", human_bytes(r.bytes_transferred),
                      str(r.files_transferred),
                      str(r.files_deleted) + (f" (+{r.deletions.kept} kept)"
                                              if r.deletions and r.deletions.kept else ""),
                      str(r.files_failed),
                      r.upstream)
    return table


def profile_json(p: Profile) -> dict[str, Any]:
    s = p.settings
    return {
        "name": p.name, "description": p.info.description, "docs": p.info.docs,
        "approx_size": p.info.approx_size, "notes": p.info.notes, "extends": p.info.extends,
        "restricted": p.info.restricted, "checked_against": list(p.info.checked_against),
        "unverified": list(p.info.unverified),
        "source": p.source, "upstreams": list(s.upstreams), "stage2": list(s.stage2),
        "stage1_include": list(s.stage1_include), "excludes": list(s.excludes),
        "rsync_options": list(s.rsync_options), "update_signal": s.update_signal,
        "method": s.method, "filelist": list(s.filelist),
        "schedule": s.schedule, "stale_after_seconds": s.stale_after,
        "timeout_seconds": s.timeout, "two_stage": bool(s.stage2),
        "valid": True, "problems": [],
    }


def broken_profile_json(b: BrokenProfile) -> dict[str, Any]:
    """A profile file that does not validate: where it is and what is wrong."""
    return {"name": b.name, "source": b.source, "valid": False,
            "problems": [str(p) for p in b.problems]}


def profiles_table(profiles: list[Profile], broken: list[BrokenProfile] | None = None) -> Table:
    broken = broken or []
    title = f"{len(profiles)} profiles" + (f", {len(broken)} invalid" if broken else "")
    table = Table(title=title, title_justify="left")
    for column in ("profile", "description", "size", "schedule", "stages", "update signal"):
        table.add_column(column)
    for p in profiles:
        table.add_row(p.name, p.info.description, p.info.approx_size, p.settings.schedule,
                      "2" if p.settings.stage2 else "1", p.settings.update_signal or "-")
    for b in broken:
        table.add_row(Text(b.name), Text(f"INVALID: {len(b.problems)} problem(s), listed "
                                         "above"), "-", "-", "-", "-")
    return table


def profile_detail(p: Profile) -> Table:
    table = Table(title=f"profile {p.name}", show_header=False, title_justify="left")
    table.add_column("key", style="bold")
    table.add_column("value")
    for key, value in profile_json(p).items():
        if isinstance(value, list):
            value = "\n".join(value) or "-"
        table.add_row(key, "-" if value in (None, "") else str(value))
    return table


_MARK = {"ok": "[green]ok[/]", "warning": "[yellow]warning[/]", "error": "[red]error[/]",
         "skipped": "[dim]skipped[/]"}


def doctor_table(report: MirrorReport) -> Table:
    """``doctor``: one row per check, upstream by upstream, then this host."""
    table = Table(title=f"{report.mirror}: {report.status}", title_justify="left")
    for column in ("where", "check", "result", "detail"):
        table.add_column(column)
    for upstream in report.upstreams:
        for i, c in enumerate(upstream.checks):
            table.add_row(upstream.upstream if i == 0 else "", c.name, _MARK[c.status],
                          c.detail)
    for i, c in enumerate(report.local):
        table.add_row("this host" if i == 0 else "", c.name, _MARK[c.status], c.detail)
    return table
