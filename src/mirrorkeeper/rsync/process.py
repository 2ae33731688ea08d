"""Run one rsync process (I/O): stream both pipes line by line, watchdog, clean stop.

rsync runs under :mod:`.guard` in a session of its own, so a terminal's Ctrl-C reaches only us
and we decide how to stop it, and so that the whole group dies with us even if we are killed.
The guardian relies on ``PR_SET_PDEATHSIG``, which fires when the *thread* that started it
ends: call :func:`run_process` from a thread that lives for the whole run.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .lines import LineSplitter

#: How long rsync gets to exit after SIGTERM before SIGKILL.
TERM_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class ProcessResult:
    exit_code: int | None  # negative: killed by that signal; None: never started
    stopped_by: str | None  # "signal" (we were asked to stop) or "watchdog" (no output)
    start_error: str | None = None


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Signal the child's whole process group: rsync forks a receiver beside itself."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


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
    if shutil.which(argv[0], path=child_env.get("PATH")) is None:
        why = "not executable" if os.path.exists(argv[0]) else "no such program"
        return ProcessResult(None, None, start_error=f"cannot run {argv[0]}: {why}")
    guarded = [sys.executable, "-m", "mirrorkeeper.rsync.guard", str(os.getpid()), *argv]
    try:
        proc = subprocess.Popen(
            guarded, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=child_env, start_new_session=True)
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
    kill_at: float | None = None  # when SIGTERM's grace runs out
    last_output = time.monotonic()
    reaped = False

    def begin_stop(reason: str) -> None:
        nonlocal stopped_by, kill_at
        stopped_by = reason
        kill_at = time.monotonic() + TERM_GRACE_SECONDS
        _signal_group(proc, signal.SIGTERM)

    try:
        while streams:
            # Keep draining both pipes while rsync stops: a full pipe would block its exit.
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
            if not reaped and proc.poll() is not None:
                # The guardian is gone, and with it rsync: nothing left of its group may keep
                # our pipes open (the guardian kills such stragglers itself; this is in case
                # it could not).
                reaped = True
                _signal_group(proc, signal.SIGKILL)
            now = time.monotonic()
            if stopped_by is None and stop.is_set():
                begin_stop("signal")
            elif stopped_by is None and now - last_output > no_output_timeout:
                on_line("err", f"mirrorkeeper: no output from rsync for {no_output_timeout:.0f}s;"
                               " stopping it")
                begin_stop("watchdog")
            elif kill_at is not None and now > kill_at:
                on_line("err", f"mirrorkeeper: rsync still running {TERM_GRACE_SECONDS:.0f}s "
                               "after SIGTERM; sending SIGKILL")
                _signal_group(proc, signal.SIGKILL)
                kill_at = None
    finally:
        selector.close()
        proc.stdout.close()
        proc.stderr.close()
        if proc.poll() is None:
            # Pipes closed but rsync lives on (or we are unwinding an exception): end it.
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=TERM_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
        if stopped_by is not None:
            _signal_group(proc, signal.SIGKILL)  # any straggler of the group
    return ProcessResult(proc.wait(), stopped_by)
