"""Conditions at the edges that only a human can fix, raised with what is wrong and the fix."""

from __future__ import annotations

import getpass


class StateUnavailable(Exception):
    """The state or log directory, or a file in it, cannot be created, written or read (exit 73).

    ``what`` names the place ("state directory", "log directory", "store", "lock file", ...),
    ``path`` the exact file or directory, ``reason`` what is wrong and ``fix`` what to do. Without
    a fix the message points at the config key, which is right for a directory that cannot be
    made; :mod:`mirrorkeeper.access` builds the precise fixes (ownership, a full disk).
    """

    def __init__(self, what: str, path: str, reason: str, fix: str | None = None) -> None:
        self.what, self.path, self.reason = what, path, reason
        key = "state_dir" if what == "state directory" else "log_dir"
        self.fix = fix or (f"check [global] {key} in the config, and that user "
                           f"{getpass.getuser()} may create and write it")
        super().__init__(f"cannot use {path} as the {what}: {reason}; {self.fix}")
