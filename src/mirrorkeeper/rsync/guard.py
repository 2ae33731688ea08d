"""A guardian between Mirrorkeeper and rsync: ``python -m mirrorkeeper.rsync.guard PPID ARGV...``.

rsync forks a receiver beside itself, and ``PR_SET_PDEATHSIG`` does not survive a fork, so if
Mirrorkeeper were killed outright (SIGKILL, the OOM killer) the receiver could go on writing
into the mirror after the lock is gone. The guardian leads rsync's process group, asks the
kernel for SIGUSR2 when Mirrorkeeper dies, and then SIGKILLs the whole group.

Ordinary stops do not involve it: Mirrorkeeper signals the group; the guardian shrugs SIGTERM
and SIGINT off (a handler, not SIG_IGN, so rsync still receives them) and exits as rsync did.

When rsync itself has exited, the guardian SIGKILLs whatever is left of its group before it
exits. On SIGTERM rsync's receiver only sets a flag and tries a "controlled shutdown" through
the (throttled) socket; its generator exits at once and is what we wait for, so the receiver
used to live on — writing files, holding our pipes — until the 5 s SIGKILL fallback.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
from types import FrameType

_PR_SET_PDEATHSIG = 1


def _kill_group(_signum: int = 0, _frame: FrameType | None = None) -> None:
    os.killpg(0, signal.SIGKILL)


def _ignore(_signum: int, _frame: FrameType | None) -> None:
    """rsync gets the signal too (same group) and decides how to stop."""


def _group_members() -> list[int]:
    """Live processes of our group but us (``/proc``; no psutil). Only our descendants can be
    in it: the group is ours since we lead a session of our own."""
    me, group = os.getpid(), os.getpgid(0)
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[2] == str(group) and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def _kill_stragglers() -> None:
    """SIGKILL what outlived rsync's main process (through a pidfd where the kernel has them,
    so a recycled pid is never hit)."""
    group = os.getpgid(0)
    for pid in _group_members():
        try:
            fd = os.pidfd_open(pid)
        except OSError:  # gone already, or no pidfds here
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            continue
        try:
            if os.getpgid(pid) == group:  # still the process we found, still ours
                signal.pidfd_send_signal(fd, signal.SIGKILL)
        except OSError:
            pass
        finally:
            os.close(fd)


def main(args: list[str]) -> int:
    parent, argv = int(args[0]), args[1:]
    signal.signal(signal.SIGUSR2, _kill_group)
    signal.signal(signal.SIGTERM, _ignore)
    signal.signal(signal.SIGINT, _ignore)
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        ctypes.CDLL(libc_name).prctl(_PR_SET_PDEATHSIG, signal.SIGUSR2, 0, 0, 0)
    if os.getppid() != parent:  # Mirrorkeeper died before the request took effect
        return 1
    try:
        child = subprocess.Popen(argv)
    except OSError as exc:
        print(f"mirrorkeeper: cannot run {argv[0]}: {exc.strerror}", file=sys.stderr)
        return 127
    code = child.wait()
    _kill_stragglers()
    if code < 0:  # die of the same signal, so the caller sees what rsync saw
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
