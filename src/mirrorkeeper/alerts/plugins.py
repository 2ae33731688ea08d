"""Running an alert plugin (I/O): any executable, one alert as JSON on stdin. Exit 0 means
delivered; anything else, a timeout or a missing program is logged and retried later — and
never breaks a sync."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from ..config.spec import PluginSpec
from .payload import environment


def run_plugin(spec: PluginSpec, data: dict[str, Any]) -> str | None:
    """Deliver ``data``; return None on success, else what went wrong."""
    try:
        proc = subprocess.run(list(spec.command), input=json.dumps(data), text=True,
                              capture_output=True, timeout=spec.timeout, check=False,
                              env={**os.environ, **environment(data)})
    except subprocess.TimeoutExpired:
        return f"timed out after {spec.timeout:.0f}s"
    except OSError as exc:
        return f"cannot run {spec.command[0]}: {exc.strerror}"
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        return f"exit {proc.returncode}: {tail[0][:500]}"
    return None
