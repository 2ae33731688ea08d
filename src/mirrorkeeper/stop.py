"""A stop request that remembers what asked for it, and the signals that ask.

Every wait of a run watches one :class:`threading.Event`. When a signal sets it, the run is
recorded ``interrupted`` — and the record says *which* signal, so that ``stopped by SIGHUP`` in
the history matches the exit status 128+N the README promises.
"""

from __future__ import annotations

import signal
import threading

#: Signals whose default action ends the process: ``sync``, ``trigger`` and the daemon turn
#: each into a clean stop instead of dying with the run left ``running``. (SIGKILL cannot be
#: caught: the next run finds that one and records it ``interrupted``. Python already ignores
#: SIGPIPE and SIGXFSZ; SIGSEGV and friends are crashes, not requests.)
TERMINATING_SIGNALS: tuple[signal.Signals, ...] = (
    signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
    signal.SIGUSR2, signal.SIGALRM, signal.SIGVTALRM, signal.SIGPROF, signal.SIGPOLL,
    signal.SIGPWR, signal.SIGXCPU)


class StopRequest(threading.Event):
    """A ``threading.Event`` with the reason of the first request (e.g. ``"SIGHUP"``)."""

    def __init__(self) -> None:
        super().__init__()
        self.reason: str | None = None

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.set()


def stopped_by(stop: threading.Event) -> str:
    """How a run record says it was stopped: ``stopped by SIGTERM`` (or by a signal, when the
    event does not know)."""
    reason = stop.reason if isinstance(stop, StopRequest) else None
    return f"stopped by {reason or 'a signal'}"
