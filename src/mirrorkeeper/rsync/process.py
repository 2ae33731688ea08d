"""Run one rsync process (I/O): stream both pipes line by line, watchdog, clean stop.

rsync runs in a session of its own, so a terminal's Ctrl-C reaches only us and we decide how to
stop it. Its process group is registered with this process's :mod:`.guard` before it can
write, so that the whole group dies with us even if we are killed outright, and when rsync's
main process exits we kill what is left of its group before reaping it.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .guard import start_guardian
from .lines import LineSplitter

#: How long rsync gets to exit after SIGTERM before SIGKILL.
TERM_GRACE_SECONDS = 5.0
#: A read smaller than this means rsync writes slowly: wait ``BATCH_WAIT_SECONDS`` before the
#: next, so that one wake-up handles many lines (a large sync prints two lines per file; woken
#: per line, the loop itself cost more than parsing them).
BATCH_BYTES = 16384
BATCH_WAIT_SECONDS = 0.02
#: How often, at most, we ask whether rsync's main process has exited.
EXIT_CHECK_SECONDS = 0.1


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
    on_line: Callable[[str, str], None] | None,
    *,
    on_lines: Callable[[str, list[str]], None] | None = None,
    env: Mapping[str, str] | None = None,
    no_output_timeout: float = 1800.0,
    stop: threading.Event | None = None,
    poll_seconds: float = 0.5,
) -> ProcessResult:
    """Run ``argv``; call ``on_line(stream, line)`` for each stdout/stderr line as it arrives,
    or ``on_lines(stream, lines)`` once for the complete lines of each read (a sync's hot path:
    one call and one clock reading per 64 KiB instead of per line)."""
    deliver = on_lines or _one_by_one(on_line)
    stop = stop or threading.Event()
    child_env = {**os.environ, **(env or {})}
    if shutil.which(argv[0], path=child_env.get("PATH")) is None:
        why = "not executable" if os.path.exists(argv[0]) else "no such program"
        return ProcessResult(None, None, start_error=f"cannot run {argv[0]}: {why}")
    guardian = start_guardian()
    try:
        # Registered one pipe write after the spawn: rsync needs a connection and a file list
        # before it forks its receiver, so its group has one member until long after that.
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=child_env, start_new_session=True)
    except OSError as exc:
        return ProcessResult(None, None, start_error=f"cannot run {argv[0]}: {exc.strerror}")
    guardian.register(proc.pid)
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

    next_exit_check = 0.0
    try:
        while streams:
            # Keep draining both pipes while rsync stops: a full pipe would block its exit.
            ready = selector.select(timeout=poll_seconds)
            trickle = bool(ready)
            for key, _ in ready:
                fd = int(key.fd)
                name, splitter = streams[fd]
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if len(chunk) >= BATCH_BYTES:
                    trickle = False
                if chunk:
                    last_output = time.monotonic()
                    lines = splitter.feed(chunk)
                    if lines:
                        deliver(name, lines)
                else:
                    trickle = False  # rsync is ending: look for its exit now, not in 20 ms
                    lines = splitter.close()
                    if lines:
                        deliver(name, lines)
                    selector.unregister(fd)
                    del streams[fd]
            now = time.monotonic()
            if not reaped and (now >= next_exit_check or not streams) and _exited(proc):
                # rsync's main process is gone: nothing left of its group (a receiver trying a
                # "controlled shutdown" after SIGTERM) may write on or keep our pipes open.
                reaped = True
                _signal_group(proc, signal.SIGKILL)
            next_exit_check = now + EXIT_CHECK_SECONDS
            if stopped_by is None and stop.is_set():
                begin_stop("signal")
            elif stopped_by is None and now - last_output > no_output_timeout:
                deliver("err", [f"mirrorkeeper: no output from rsync for "
                                f"{no_output_timeout:.0f}s; stopping it"])
                begin_stop("watchdog")
            elif kill_at is not None and now > kill_at:
                deliver("err", [f"mirrorkeeper: rsync still running {TERM_GRACE_SECONDS:.0f}s "
                                "after SIGTERM; sending SIGKILL"])
                _signal_group(proc, signal.SIGKILL)
                kill_at = None
            if trickle and stopped_by is None:
                # rsync writes a line at a time: let a few accumulate rather than wake per
                # line (it fills the 64 KiB pipe in no less than this at any real rate).
                time.sleep(BATCH_WAIT_SECONDS)
    finally:
        selector.close()
        proc.stdout.close()
        proc.stderr.close()
        if not _exited(proc):
            # Pipes closed but rsync lives on (or we are unwinding an exception): end it.
            _signal_group(proc, signal.SIGTERM)
            deadline = time.monotonic() + TERM_GRACE_SECONDS
            while not _exited(proc) and time.monotonic() < deadline:
                time.sleep(0.05)
            _signal_group(proc, signal.SIGKILL)
        _exited(proc, wait=True)
        _signal_group(proc, signal.SIGKILL)  # any straggler, while the leader is unreaped
        guardian.unregister(proc.pid)
    return ProcessResult(proc.wait(), stopped_by)


def _one_by_one(on_line: Callable[[str, str], None] | None,
                ) -> Callable[[str, list[str]], None]:
    if on_line is None:
        raise TypeError("run_process needs on_line or on_lines")
    handler = on_line

    def deliver(stream: str, lines: list[str]) -> None:
        for line in lines:
            handler(stream, line)

    return deliver


def _exited(proc: subprocess.Popen[bytes], wait: bool = False) -> bool:
    """Has rsync's main process exited? Asked without reaping it (``WNOWAIT``): until we reap
    it its pid, which is its group's id, cannot be reused, so signalling the group is safe."""
    if proc.returncode is not None:
        return True
    flags = os.WEXITED | os.WNOWAIT | (0 if wait else os.WNOHANG)
    try:
        return os.waitid(os.P_PID, proc.pid, flags) is not None
    except ChildProcessError:  # reaped elsewhere
        return True
