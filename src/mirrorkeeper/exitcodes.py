"""Exit statuses of the ``mirrorkeeper`` command (BSD sysexits where one fits)."""

from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    #: A sync ran but did not fully succeed (partial transfer or failure).
    SYNC_FAILED = 1
    #: Bad command-line usage (EX_USAGE).
    USAGE = 64
    #: A needed file or program is missing (EX_UNAVAILABLE), e.g. no rsync binary.
    UNAVAILABLE = 69
    #: The state or log directory cannot be created or written (EX_CANTCREAT).
    CANT_CREATE = 73
    #: Something outside our control is busy; try again later (EX_TEMPFAIL): the mirror is locked.
    LOCKED = 75
    #: The configuration is wrong (EX_CONFIG).
    CONFIG = 78
    #: Stopped by SIGINT / SIGTERM (128 + signal number is added by the caller).
    INTERRUPTED = 130
