"""A guardian between Mirrorkeeper and rsync: ``python -m mirrorkeeper.rsync.guard PPID ARGV...``.

rsync forks a receiver beside itself, and ``PR_SET_PDEATHSIG`` does not survive a fork, so if
Mirrorkeeper were killed outright (SIGKILL, the OOM killer) the receiver could go on writing
into the mirror after the lock is gone. The guardian leads rsync's process group, asks the
kernel for SIGUSR2 when Mirrorkeeper dies, and then SIGKILLs the whole group.

Ordinary stops do not involve it: Mirrorkeeper signals the group; the guardian shrugs SIGTERM
and SIGINT off (a handler, not SIG_IGN, so rsync still receives them) and exits as rsync did.
"""

from __future__ import annotations

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
    if code < 0:  # die of the same signal, so the caller sees what rsync saw
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
