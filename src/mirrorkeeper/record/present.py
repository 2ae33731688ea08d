"""Runs as plain data for every reader: ``--json``, ``status``, the web API, the dashboard."""

from __future__ import annotations

from typing import Any

from ..logs import iso
from ..rsync.exitcodes import meaning
from .run import RunRecord


def human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB"


def human_rate(bits_per_second: float | None) -> str:
    if not bits_per_second:
        return "-"
    value = bits_per_second
    for unit in ("bit/s", "kbit/s", "Mbit/s", "Gbit/s"):
        if value < 1000 or unit == "Gbit/s":
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} Gbit/s"


def run_json(record: RunRecord) -> dict[str, Any]:
    """A run as JSON; the field names are a public interface (issue #2)."""
    return {
        "mirror": record.mirror,
        "run_id": record.run_id,
        "started_at": iso(record.started_at),
        "finished_at": iso(record.finished_at),
        "duration_seconds": round(record.duration_seconds, 3),
        "bytes_transferred": record.bytes_transferred,
        "size_bytes": record.size_bytes,
        "bitrate_bps": round(record.bitrate_bps, 1),
        "files_total": record.files_total,
        "files_transferred": record.files_transferred,
        "files_deleted": record.files_deleted,
        "files_failed": record.files_failed,
        "errors": record.errors,
        "exit_code": record.exit_code,
        "upstream": record.upstream,
        "outcome": record.outcome,
        "stages": [
            {
                "name": s.name,
                "exit_code": s.exit_code,
                "exit_meaning": meaning(s.exit_code),
                "started_at": iso(s.started_at),
                "duration_seconds": round(s.duration_seconds, 3),
                "bytes_transferred": s.bytes_transferred,
                "files_total": s.files_total,
                "files_transferred": s.files_transferred,
                "files_deleted": s.files_deleted,
                "files_failed": s.files_failed,
                "errors": s.errors,
                "error_samples": list(s.error_samples),
                "stopped_by": s.stopped_by,
                "start_error": s.start_error,
                "attempt": s.attempt,
                "upstream": s.upstream,
                "argv": list(s.argv),
            }
            for s in record.stages
        ],
        "skipped_stages": list(record.skipped),
        "upstreams_tried": list(record.upstreams_tried),
        "attempts": [
            {"number": a.number, "upstream": a.upstream, "category": a.category,
             "code": a.code, "reason": a.reason, "stage": a.stage, "exit_code": a.exit_code,
             "started_at": iso(a.started_at), "duration_seconds": round(a.duration_seconds, 3),
             "failure_ratio": round(a.failure_ratio, 6), "detail": a.detail}
            for a in record.attempts
        ],
        "deletions": _deletions_json(record),
        "downstreams": [
            {"name": d.name, "host": d.host, "kind": d.kind, "sent": list(d.sent),
             "exit_codes": list(d.exit_codes), "error": d.error or None,
             "duration_seconds": d.seconds}
            for d in record.downstreams
        ],
        "log_path": record.log_path,
    }


def _deletions_json(record: RunRecord) -> dict[str, Any] | None:
    d = record.deletions
    if d is None:
        return None
    return {"listed": d.listed, "deleted": d.deleted, "kept": d.kept, "waiting": d.waiting,
            "protected": d.protected, "failed": d.failed, "skipped": d.skipped,
            "skipped_runs": d.skipped_runs, "mass_delete": d.mass_delete}


def deletions_text(record: RunRecord) -> str | None:
    """One line on what became of the files the upstream dropped (None: there were none)."""
    d = record.deletions
    if d is None or not d.listed:
        return None
    parts = [f"{d.deleted} deleted"]
    if d.waiting:
        parts.append(f"{d.waiting} wait for delete_grace")
    if d.protected:
        parts.append(f"{d.protected} kept (upstream errors on their paths)")
    if d.failed:
        parts.append(f"{d.failed} could not be deleted")
    text = f"{d.listed} dropped upstream: " + ", ".join(parts)
    if d.mass_delete:
        text += " — more than the max-delete bound, none deleted"
    if d.skipped:
        text += f" — none deleted: {d.skipped}"
    return text
