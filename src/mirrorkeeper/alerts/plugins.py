"""Running an alert plugin (I/O): any executable, one alert as JSON on stdin. Exit 0 means
delivered; anything else, a timeout or a missing program is logged and retried later — and
never breaks a sync.

A plugin runs in a session of its own, and a timeout (or a stop: the daemon shutting down, a
signal to ``sync``) SIGKILLs its whole process group: a shell script's ``curl`` or a mailer
it forked must not linger, re-parented to init, holding our pipes. A plugin that exits in time
keeps what it left running on purpose (a mail queue runner, say).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from typing import Any

from ..config.spec import PluginSpec
from .payload import environment

#: How often a running plugin is checked for a stop request.
STOP_POLL_SECONDS = 0.2


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the plugin's process group, reap the plugin, and drop the pipes unread (a
    descendant that left the group could hold them open for ever)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    _close_pipes(proc)


def _close_pipes(proc: subprocess.Popen[str]) -> None:
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


def run_plugin(spec: PluginSpec, data: dict[str, Any],
               stop: threading.Event | None = None) -> str | None:
    """Deliver ``data``; return None on success, else what went wrong."""
    try:
        proc = subprocess.Popen(list(spec.command), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True, env={**os.environ, **environment(data)})
    except OSError as exc:
        return f"cannot run {spec.command[0]}: {exc.strerror}"
    deadline = time.monotonic() + spec.timeout
    text: str | None = json.dumps(data)
    while True:
        left = deadline - time.monotonic()
        try:
            out, err = proc.communicate(text, timeout=max(0.0, min(left, STOP_POLL_SECONDS)))
            break
        except subprocess.TimeoutExpired:
            text = None  # sent (or being sent); later calls only go on reading
        except OSError:  # the plugin closed stdin early (BrokenPipe): read what it said
            text = None
        if proc.poll() is not None:
            # It exited; something it started holds our pipes (a mail queue runner): its
            # exit status is the answer, and what it started is its own business.
            _close_pipes(proc)
            out, err = "", ""
            break
        if stop is not None and stop.is_set():
            _kill_group(proc)
            return "stopped before it finished (Mirrorkeeper is stopping)"
        if time.monotonic() >= deadline:
            _kill_group(proc)
            return f"timed out after {spec.timeout:.0f}s"
    if proc.returncode != 0:
        tail = (err or out).strip().splitlines()[-1:] or [""]
        return f"exit {proc.returncode}: {tail[0][:500]}"
    return None
