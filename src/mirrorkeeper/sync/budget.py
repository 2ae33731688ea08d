"""The connection budget of each upstream host, shared by every process on this machine (I/O).

A host with a budget of N has N slot files in the state directory
(``connections/HOST_PORT/slot-K``); a connection may be opened only while its opener holds an
``flock`` on one of them. The kernel drops a lock when its holder dies, however it dies, so a
crash never leaks a slot; ``sync`` from cron, the daemon's workers and each seeding stream
open their own descriptor, so they exclude each other across processes and threads alike.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from ..access import Place, os_problem
from ..plan.budget import host_key

#: How often a waiter tries the slots again (and looks at its stop request).
WAIT_STEP_SECONDS = 0.1
_UNSAFE = re.compile(r"[^A-Za-z0-9.-]")


class ConnectionBudget:
    """``with budget.slot(upstream, stop) as held:`` — ``held`` is False only when ``stop``
    was set while waiting (nothing may be opened then)."""

    def __init__(self, state_dir: str | Path, limits: Mapping[str, int]) -> None:
        self.root = Path(state_dir) / "connections"
        self.limits = dict(limits)

    def limit(self, upstream: str) -> int:
        key = host_key(upstream)
        return self.limits.get(key, 0) if key else 0

    def _slot_dir(self, upstream: str) -> Path:
        key = host_key(upstream) or ""
        return self.root / _UNSAFE.sub("_", key)

    def _try(self, directory: Path, count: int) -> int | None:
        """A descriptor holding one free slot's lock, or None when all ``count`` are held;
        :class:`StateUnavailable` (with the fix) when the slots cannot be made or opened."""
        for number in range(count):
            path = directory / f"slot-{number}"
            try:
                directory.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise os_problem(exc, Place("connection slot", path, self.root.parent)) from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return fd
        return None

    @contextlib.contextmanager
    def slot(self, upstream: str, stop: threading.Event | None = None,
             on_wait: Callable[[int], None] | None = None,
             timeout: float | None = None) -> Iterator[bool]:
        """Hold one of ``upstream``'s host slots for the block (at once when it has no budget).
        ``on_wait(limit)`` is called once if every slot is taken and this has to wait; after
        ``timeout`` seconds of waiting (None: no end) ``held`` is False, as when stopped."""
        count = self.limit(upstream)
        if count <= 0:
            yield True
            return
        directory = self._slot_dir(upstream)
        fd = self._try(directory, count)
        if fd is None and on_wait is not None:
            on_wait(count)
        deadline = None if timeout is None else time.monotonic() + timeout
        waiting = stop or threading.Event()
        while fd is None:
            late = deadline is not None and time.monotonic() > deadline
            if waiting.wait(WAIT_STEP_SECONDS) or late:
                yield False
                return
            fd = self._try(directory, count)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def in_use(self, upstream: str) -> int:
        """How many of the host's slots are held right now (for status and tests)."""
        count = self.limit(upstream)
        directory = self._slot_dir(upstream)
        if count <= 0 or not directory.is_dir():
            return 0
        held = 0
        for number in range(count):
            with contextlib.suppress(FileNotFoundError):
                fd = os.open(directory / f"slot-{number}", os.O_RDONLY | os.O_CLOEXEC)
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    held += 1
                finally:
                    os.close(fd)
        return held


def unlimited() -> ConnectionBudget:
    """A budget that never waits (no host has a limit)."""
    return ConnectionBudget(".", {})
