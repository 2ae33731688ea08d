"""Signals for the foreground commands (``sync``, ``trigger``): a stop request, never a death.

Python's default for SIGHUP, SIGQUIT, SIGUSR1, ... is to end the process at once, which left
the run ``running`` in the store until the next run found it; SIGINT raised KeyboardInterrupt
wherever it landed. Within :class:`SignalStop` every terminating signal only sets the stop
event: rsync is stopped, the run recorded ``interrupted`` with the signal's name, and the
command exits 128+N.
"""

from __future__ import annotations

import signal
from types import FrameType, TracebackType
from typing import Any

from ..stop import TERMINATING_SIGNALS, StopRequest


class SignalStop:
    def __init__(self) -> None:
        self.stop = StopRequest()
        self.received: list[int] = []
        self._previous: dict[signal.Signals, Any] = {}

    def __enter__(self) -> SignalStop:
        for sig in TERMINATING_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.received.append(signum)
        self.stop.request(signal.Signals(signum).name)

    @property
    def exit_status(self) -> int | None:
        """128+N for the first signal received, as a shell reports a death by signal N."""
        return 128 + self.received[0] if self.received else None
