"""Running a filesystem tool: an argv list, never a shell; a failure is a SnapshotError that
says what was run and what the tool answered."""

from __future__ import annotations

import shlex
import subprocess
import time

from . import SnapshotError

#: Seconds a single zfs / btrfs command may take (a rollback of a large dataset is slow).
TIMEOUT = 600.0


def run(argv: list[str], *, retries_when_busy: int = 0) -> str:
    """stdout of ``argv``; retried after a second while the tool says the dataset is busy
    (zfs right after a rollback or a read of a clone)."""
    for attempt in range(retries_when_busy + 1):
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT,
                                  check=False)
        except FileNotFoundError:
            raise SnapshotError(f"`{argv[0]}` is not installed") from None
        except subprocess.TimeoutExpired:
            raise SnapshotError(f"`{shlex.join(argv)}` took longer than {TIMEOUT:.0f}s") \
                from None
        if done.returncode == 0:
            return done.stdout
        said = (done.stderr or done.stdout).strip().replace("\n", "; ")
        if "busy" in said and attempt < retries_when_busy:
            time.sleep(1.0)
            continue
        raise SnapshotError(f"`{shlex.join(argv)}` failed (exit {done.returncode}): {said}")
    raise AssertionError("unreachable")  # pragma: no cover


def succeeds(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=TIMEOUT,
                              check=False).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False
