"""rsync's exit codes (rsync(1), EXIT VALUES) and what each means for a mirror run."""

from __future__ import annotations

MEANINGS: dict[int, str] = {
    0: "success",
    1: "syntax or usage error",
    2: "protocol incompatibility",
    3: "errors selecting input/output files, dirs",
    4: "requested action not supported",
    5: "error starting client-server protocol",
    6: "daemon unable to append to log-file",
    10: "error in socket I/O",
    11: "error in file I/O",
    12: "error in rsync protocol data stream",
    13: "errors with program diagnostics",
    14: "error in IPC code",
    20: "received SIGUSR1 or SIGINT",
    21: "some error returned by waitpid()",
    22: "error allocating core memory buffers",
    23: "partial transfer due to error",
    24: "partial transfer due to vanished source files",
    25: "the --max-delete limit stopped deletions",
    30: "timeout in data send/receive",
    35: "timeout waiting for daemon connection",
}

#: The stage did its job: 24 means files vanished upstream while we copied, which the next run
#: fixes by itself (ftpsync treats it the same way).
COMPLETE = frozenset({0, 24})
#: Most files arrived but some did not: judged by the failure ratio (issue #3).
PARTIAL = frozenset({23})


def meaning(code: int | None) -> str:
    if code is None:
        return "did not run"
    if code < 0:
        return f"killed by signal {-code}"
    return MEANINGS.get(code, f"unknown exit code {code}")
