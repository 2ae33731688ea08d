"""Run one rsync process (I/O): stream both pipes line by line, watchdog, clean stop.

The child gets its own session so a terminal's Ctrl-C reaches only us and we decide how to stop
it; on Linux it also gets ``PR_SET_PDEATHSIG`` so it dies if we are killed with SIGKILL.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .lines import LineSplitter

#: How long rsync gets to exit after SIGTERM before SIGKILL.
TERM_GRACE_SECONDS = 10.0
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ProcessResult:
    exit_code: int | None  # negative: killed by that signal; None: never started
    stopped_by: str | None  # "signal" (we were asked to stop) or "watchdog" (no output)
    start_error: str | None = None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the child's whole process group (rsync forks), then SIGKILL after a grace."""
    for sig, grace in ((signal.SIGTERM, TERM_GRACE_SECONDS), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def run_process(
    argv: tuple[str, ...] | list[str],
    on_line: Callable[[str, str], None],
    *,
    env: Mapping[str, str] | None = None,
    no_output_timeout: float = 1800.0,
    stop: threading.Event | None = None,
    poll_seconds: float = 0.5,
) -> ProcessResult:
    """Run ``argv``; call ``on_line(stream, line)`` for each stdout/stderr line as it arrives."""
    stop = stop or threading.Event()
    child_env = {**os.environ, **(env or {})}
    try:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=child_env, start_new_session=True,
            preexec_fn=_die_with_parent if os.uname().sysname == "Linux" else None,
        )
    except OSError as exc:
        return ProcessResult(None, None, start_error=f"cannot run {argv[0]}: {exc.strerror}")
    assert proc.stdout is not None and proc.stderr is not None
    streams = {proc.stdout.fileno(): ("out", LineSplitter()),
               proc.stderr.fileno(): ("err", LineSplitter())}
    selector = selectors.DefaultSelector()
    for fd in streams:
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ)
    stopped_by: str | None = None
    last_output = time.monotonic()
    try:
        while streams:
            for key, _ in selector.select(timeout=poll_seconds):
                fd = int(key.fd)
                name, splitter = streams[fd]
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if chunk:
                    last_output = time.monotonic()
                    for line in splitter.feed(chunk):
                        on_line(name, line)
                else:
                    for line in splitter.close():
                        on_line(name, line)
                    selector.unregister(fd)
                    del streams[fd]
            if stopped_by is None and stop.is_set():
                stopped_by = "signal"
                _stop(proc)
            elif stopped_by is None and time.monotonic() - last_output > no_output_timeout:
                stopped_by = "watchdog"
                on_line("err", f"mirrorkeeper: no output from rsync for {no_output_timeout:.0f}s;"
                               " stopping it")
                _stop(proc)
    finally:
        selector.close()
        proc.stdout.close()
        proc.stderr.close()
        if proc.poll() is None:
            _stop(proc)
    return ProcessResult(proc.wait(), stopped_by)
