"""The host's time zone (I/O: it reads ``$TZ`` and ``/etc/localtime``)."""

from __future__ import annotations

import os
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo


def local_zone() -> tzinfo:
    """This host's time zone, with its DST rules: cron expressions mean wall-clock time.

    ``$TZ`` first, then ``/etc/localtime``; a fixed offset only if neither can be read.
    """
    name = os.environ.get("TZ", "").lstrip(":")
    try:
        if name:
            return ZoneInfo(name)
        with open("/etc/localtime", "rb") as handle:
            return ZoneInfo.from_file(handle, key="localtime")
    except (OSError, ValueError, KeyError):  # KeyError: ZoneInfoNotFoundError
        zone = datetime.now().astimezone().tzinfo
        assert zone is not None
        return zone
