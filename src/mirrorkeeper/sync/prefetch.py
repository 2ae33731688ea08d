"""Start a run's update-signal probes before the store is even open.

A ``mirrorkeeper sync`` spends a few hundred milliseconds importing and opening the store, and
its first rsync is the probe that checks the upstream's signal — a connection that spends most
of its time waiting on the network. Started in a thread right after the config is read, the
probe overlaps the rest of the start-up instead of following it. The run takes the result only
for the upstream it asked for; it probes again when it chose another, and the check it makes
is the same: the signal's time against ours, just before stage 1 starts.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future

from ..config.spec import Config, MirrorSpec
from ..plan.budget import host_limits
from .budget import ConnectionBudget
from .preflight import Probe, probe


class ProbePrefetch:
    """Probes of ``mirror``'s likely first upstream (every upstream for ``fastest``)."""

    def __init__(self, config: Config, mirror: MirrorSpec,
                 stop: threading.Event | None = None) -> None:
        s = mirror.settings
        self.mirror = mirror.name
        self._futures: dict[str, Future[Probe | None]] = {}
        if not s.update_signal or not s.upstreams or s.method == "filelist":
            return  # a file-list run's fetch of the lists is its probe
        signal, rsync = s.update_signal, config.settings.rsync
        wanted = s.upstreams if s.upstream_strategy == "fastest" else s.upstreams[:1]
        budget = ConnectionBudget(config.settings.state_dir, host_limits(config.mirrors.values()))
        at_once = threading.Event()
        at_once.set()  # no waiting: with the host's slots all taken, the run probes itself
        for upstream in wanted:
            future: Future[Probe | None] = Future()
            self._futures[upstream] = future

            def work(upstream: str = upstream, future: Future[Probe | None] = future) -> None:
                try:
                    with budget.slot(upstream, at_once) as held:
                        future.set_result(probe(rsync, upstream, signal, s, stop) if held
                                          else None)
                except BaseException as exc:  # noqa: BLE001 - handed to whoever takes it
                    future.set_exception(exc)

            threading.Thread(target=work, name=f"probe-{mirror.name}", daemon=True).start()

    def take(self, upstream: str) -> Probe | None:
        """The probe of ``upstream`` (waiting for it), once; None if none was started or made
        (every connection slot of its host was taken)."""
        future = self._futures.pop(upstream, None)
        return None if future is None else future.result()

    def done(self) -> bool:
        """Every probe started has its answer."""
        return all(f.done() for f in self._futures.values())

    def upstreams(self) -> tuple[str, ...]:
        return tuple(self._futures)
