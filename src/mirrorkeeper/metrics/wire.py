"""One line of wire format per value (pure). Names: ``PREFIX.HOST.MIRROR.METRIC``."""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..record import RunRecord
from ..record.progress import LiveProgress

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def component(text: str) -> str:
    """Dots separate path levels in Graphite, so a host's dots become underscores."""
    return _UNSAFE.sub("_", text)


def run_values(record: RunRecord) -> dict[str, float]:
    return {
        "duration_seconds": round(record.duration_seconds, 3),
        "bytes_transferred": record.bytes_transferred,
        "bitrate_bps": round(record.bitrate_bps, 1),
        "files_total": record.files_total,
        "files_transferred": record.files_transferred,
        "files_deleted": record.files_deleted,
        "files_failed": record.files_failed,
        "errors": sum(record.errors.values()),
        "exit_code": record.exit_code if record.exit_code is not None else -1,
        "size_bytes": record.size_bytes,
        "success": 1 if record.outcome == "success" else 0,
    }


def progress_values(live: LiveProgress) -> dict[str, float]:
    values: dict[str, float] = {"progress_bytes": live.bytes_done,
                                "progress_rate_bps": round(live.rate_bps * 8, 1)}
    if live.percent is not None:
        values["progress_percent"] = live.percent
    return values


def graphite(prefix: str, host: str, mirror: str, values: Mapping[str, float],
             timestamp: int) -> list[str]:
    base = f"{prefix}.{component(host)}.{component(mirror)}"
    return [f"{base}.{name} {_num(value)} {timestamp}\n" for name, value in values.items()]


def statsd(prefix: str, host: str, mirror: str, values: Mapping[str, float]) -> list[str]:
    base = f"{prefix}.{component(host)}.{component(mirror)}"
    return [f"{base}.{name}:{_num(value)}|g" for name, value in values.items()]


def collectd(host: str, mirror: str, values: Mapping[str, float], timestamp: int,
             interval: float) -> list[str]:
    """``PUTVAL`` lines for collectd's unixsock (or exec) plugin, as gauges."""
    return [f'PUTVAL "{host}/mirrorkeeper-{component(mirror)}/gauge-{name}" '
            f"interval={interval:g} {timestamp}:{_num(value)}\n"
            for name, value in values.items()]


def _num(value: float) -> str:
    """Plain decimal, never exponent notation (not every consumer reads 1e+07)."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.6f}".rstrip("0").rstrip(".")
