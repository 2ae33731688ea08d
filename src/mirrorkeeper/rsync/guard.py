"""The guardian: whatever kills Mirrorkeeper, no rsync it started lives on to write the mirror.

rsync runs in a session (and process group) of its own, so a terminal's Ctrl-C reaches only
Mirrorkeeper, which decides how to stop it. rsync forks a receiver beside itself, and
``PR_SET_PDEATHSIG`` does not survive that fork, so if Mirrorkeeper were killed outright (SIGKILL,
the OOM killer) the receiver could go on writing into the mirror after the lock is gone.

One guardian per Mirrorkeeper process — not per rsync — watches for that. It is a child that
holds the read end of a pipe whose only write end Mirrorkeeper keeps; every rsync's process group
is registered with it before rsync may write and unregistered before rsync's leader is reaped
(while the leader is a zombie its number cannot be reused, so a registered group is always
ours). When Mirrorkeeper dies, however it dies, the kernel closes the write end; the guardian
reads end-of-file and SIGKILLs every group still registered, then exits. Ordinary exits leave
nothing registered.

The guardian is forked, not exec'd, so it costs a millisecond and no interpreter start-up: call
:func:`start_guardian` while the process has one thread (the CLI does, before any sync). A
process that already runs threads when it first needs a guardian starts
``python -m mirrorkeeper.rsync.guard`` instead, once, because forking a multi-threaded process
may copy a lock another thread holds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading


def _watch(fd: int) -> None:
    """The guardian's whole life: follow registrations on ``fd``; at end-of-file kill the rest."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)  # only the pipe's end ends the guardian
    groups: set[int] = set()
    pending = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for clarity
            continue
        except OSError:
            chunk = b""
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line[:1] == b"+":
                groups.add(int(line[1:]))
            elif line[:1] == b"-":
                groups.discard(int(line[1:]))
    for group in groups:
        with contextlib.suppress(OSError):
            os.killpg(group, signal.SIGKILL)


def _run_forked(read_end: int) -> None:  # pragma: no cover - runs in the forked child
    """In the forked child: drop everything inherited but the pipe, watch, and exit without
    running any of the parent's exit handlers."""
    code = 0
    try:
        os.setsid()  # no terminal's signals
        devnull = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1, 2):
            os.dup2(devnull, target)
        os.closerange(3, read_end)
        os.closerange(read_end + 1, 65536)
        _watch(read_end)
    except BaseException:  # noqa: BLE001 - nothing may escape into the parent's code
        code = 1
    finally:
        os._exit(code)


class Guardian:
    """The parent's side: the pipe's write end and the registrations sent through it."""

    def __init__(self) -> None:
        read_end, self._write_end = os.pipe()
        os.set_inheritable(self._write_end, False)  # only this process may hold it
        self._lock = threading.Lock()
        self.owner = os.getpid()
        self.exited = False
        self.pid: int
        if threading.active_count() == 1:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                _run_forked(read_end)
            self.pid = pid
            self._reaper: subprocess.Popen[bytes] | None = None
        else:
            self._reaper = subprocess.Popen(
                [sys.executable, "-m", "mirrorkeeper.rsync.guard"], stdin=read_end,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            self.pid = self._reaper.pid
        os.close(read_end)
        threading.Thread(target=self._reap, name="guardian-reaper", daemon=True).start()

    def _reap(self) -> None:
        """Collect the guardian's exit status (it only exits with us, or if it fails)."""
        with contextlib.suppress(ChildProcessError):
            if self._reaper is not None:
                self._reaper.wait()
            else:
                os.waitpid(self.pid, 0)
        self.exited = True

    def _send(self, message: str) -> None:
        with self._lock:
            os.write(self._write_end, message.encode("ascii"))

    def register(self, group: int) -> None:
        """From now until :meth:`unregister`, ``group`` dies with this process."""
        self._send(f"+{group}\n")

    def unregister(self, group: int) -> None:
        self._send(f"-{group}\n")


_guardian: Guardian | None = None
_guardian_lock = threading.Lock()


def start_guardian() -> Guardian:
    """This process's guardian, started on first use (fork while single-threaded is cheapest).

    A guardian inherited through a fork of ours belongs to the parent, and one that died is of
    no use: either way a new one starts."""
    global _guardian
    with _guardian_lock:
        if _guardian is None or _guardian.owner != os.getpid() or _guardian.exited:
            _guardian = Guardian()
        return _guardian


if __name__ == "__main__":  # the exec'd guardian of a process that already had threads
    _watch(sys.stdin.fileno())
