"""Conditions at the edges that only a human can fix, raised with what is wrong and the fix."""

from __future__ import annotations

import getpass


class StateUnavailable(Exception):
    """The state or log directory cannot be created, written or read (exit 73)."""

    def __init__(self, what: str, path: str, reason: str) -> None:
        self.what, self.path, self.reason = what, path, reason
        super().__init__(
            f"cannot use {path} as the {what}: {reason}; check [global] "
            f"{'state_dir' if what == 'state directory' else 'log_dir'} in the config, and that "
            f"user {getpass.getuser()} may create and write it")
