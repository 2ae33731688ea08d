"""Which upstream host a source talks to, and how many connections to it this machine may
hold at once (pure).

Upstreams cap connections per client host, not per mirror, so the budget belongs to the host
(and port): every mirror whose upstreams name it shares one budget, the smallest any of them
sets, so that no mirror's setting lets the machine exceed another's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..config.spec import MirrorSpec

DEFAULT_RSYNC_PORT = 873
_URL = re.compile(r"^rsync://(?:[^@/]+@)?(?P<host>\[[^\]]+\]|[^:/]+)(?::(?P<port>\d+))?/")
_DAEMON = re.compile(r"^(?:[^@/:\s]+@)?(?P<host>[^:/\s]+)::")


def host_key(upstream: str) -> str | None:
    """``host:port`` of an rsync daemon source; None for a local path (no connection)."""
    if m := _URL.match(upstream):
        return f"{m.group('host').lower()}:{m.group('port') or DEFAULT_RSYNC_PORT}"
    if m := _DAEMON.match(upstream):
        return f"{m.group('host').lower()}:{DEFAULT_RSYNC_PORT}"
    return None


def host_limits(mirrors: Iterable[MirrorSpec]) -> dict[str, int]:
    """Each upstream host's connection budget: the smallest ``max_connections`` of the mirrors
    that name it (0, no limit, only when every one of them says so)."""
    limits: dict[str, int] = {}
    for mirror in mirrors:
        limit = mirror.settings.max_connections
        for key in filter(None, map(host_key, mirror.settings.upstreams)):
            known = limits.get(key, 0)
            limits[key] = min(known, limit) if known and limit else known or limit
    return limits
