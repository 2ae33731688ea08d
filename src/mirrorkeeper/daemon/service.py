"""The daemon: a tick that plans, a queue whose workers sync, a web server, and signals.

Threads: the main thread owns signals and the tick loop; Huey's thread workers run syncs (their
number is the parallel limit); a small pool polls update signals; uvicorn serves the dashboard.
Every sync goes through the mirror's ``flock``, so a manual ``mirrorkeeper sync`` and the daemon
never run one mirror twice. One failing mirror never stops the others: each job's errors are
recorded and logged, and the loop goes on.

A condition that lasts — the state disk full, say — is logged when it starts (one line, no
traceback for what an admin must fix), rate-limited while it lasts, and "recovered" when it
ends; a failed poll waits before it is tried again instead of waking the planner at once.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

import sqlalchemy as sa

from ..access import Place, require_writable
from ..clock import local_zone
from ..config.files import web_file_problems
from ..config.load import load_config
from ..config.problems import ConfigError
from ..config.spec import Config
from ..errors import StateUnavailable
from ..job import run_job, write_textfile
from ..logs import event, log_to_stderr, setup_event_log
from ..metrics.sink import MetricsSink, age_seconds
from ..plan.due import Due, MirrorFacts, TickPlan, plan_tick
from ..stop import TERMINATING_SIGNALS, StopRequest
from ..store import Store
from ..store.spool import Spool, spool_dir
from ..store.store import STORE_DOWN
from ..sync.lock import MirrorLock, MirrorLocked, is_locked
from ..sync.run import lock_dir, writer_places
from ..web.hosts import beyond_loopback
from .deliveries import Deliverer
from .facts import free_slots, gather_facts, offline_facts
from .poller import poll_signal
from .queue import open_queue, queue_places
from .replay import replay_spool

log = logging.getLogger("mirrorkeeper")

#: Reasons that come from outside and must not be lost when the mirror is busy.
URGENT_REASONS = frozenset({"push", "update signal"})
DAEMON_LOCK = "daemon"
#: A job for a mirror that another process is syncing waits this long and tries again.
BUSY_RETRY_SECONDS = 60.0
POLL_WORKERS = 4
POLL_KEEP_SECONDS = 30 * 86400.0
#: A poll that failed (its result could not even be stored) is not tried again sooner.
POLL_RETRY_SECONDS = 60.0


class WebUnavailable(Exception):
    """The web server could not start (its port is taken, say): the daemon does not start."""


def log_profile_problems(config: Config) -> None:
    """Profile files that do not validate, in the event log (and so in journald); the mirrors
    that use them get a ``config.profile_invalid`` alert from the watchdog."""
    if config.profile_problems:
        event("config.profile_invalid", level=logging.ERROR,
              mirrors=sorted(b.name for b in config.broken_enabled()),
              problems=[str(p) for p in config.profile_problems])


def daemon_running(state_dir: str | Path) -> bool:
    return is_locked(state_dir, DAEMON_LOCK)


def daemon_places(config: Config) -> list[Place]:
    """Everything the daemon writes: its lock, the queue, and each enabled mirror's files."""
    state = Path(config.settings.state_dir)
    places = [Place("lock file", state / f"{DAEMON_LOCK}.lock", state),
              *(queue_places(state) if config.fleet is None else [])]
    for mirror in config.enabled():
        places += writer_places(config, mirror)
    return places


def locked_mirrors(config: Config) -> set[str]:
    """Enabled mirrors some process is syncing right now (a manual ``sync`` included)."""
    return {m.name for m in config.enabled() if is_locked(lock_dir(config), m.name)}


def make_plan(config: Config, store: Store, running: set[str], queued: set[str],
              now: float, facts: list[MirrorFacts] | None = None) -> TickPlan:
    """Gather the facts (unless given) and ask the planner; a start owed to a changed signal
    marks its poll."""
    if facts is None:
        facts = gather_facts(config, store, running, queued)
    plan = plan_tick(facts, now,
                     jitter=config.daemon.jitter, poll_interval=config.daemon.poll_interval,
                     tz=local_zone(), free_slots=free_slots(config, queued))
    if plan.held:
        event("plan.held", mirrors=list(plan.held),
              why="every connection slot of their upstream host is in use")
    for due in plan.due:
        if due.reason == "update signal":
            store.mark_last_poll_triggered(due.mirror)
    return plan


def plan_once(config: Config, store: Store) -> list[Due]:
    """What is due now without a daemon (``sync --due`` from a timer): polls that are due run
    here, one after another, before the plan is made."""
    running = locked_mirrors(config)
    plan = make_plan(config, store, running, set(), time.time())
    if plan.polls:
        for name in plan.polls:
            poll_signal(config, config.mirrors[name], store)
        plan = make_plan(config, store, running, set(), time.time())
    return list(plan.due)


class Daemon:
    """Construct it, then :meth:`run` it on the main thread (or use it as the web backend)."""

    def __init__(self, config: Config) -> None:
        """Raises :class:`StateUnavailable` (exit 73) before anything starts if a state or log
        file is not this user's to write, naming the file and the fix."""
        #: The whole config: the dashboard and API show every fleet host's mirrors.
        self.config = config
        #: ... and the mirrors this host syncs (all of them outside a fleet).
        self.mine = config.local()
        require_writable(daemon_places(self.mine))
        self.store = Store.for_config(config)
        self.queue = open_queue(config)
        self.queue.handler = self.execute
        self.stop = StopRequest()
        self.wake = threading.Event()
        #: The last plan held a due mirror back for its host's connection budget.
        self._held = False
        self._reload = threading.Event()
        self._lock = threading.Lock()
        self.running: set[str] = set()
        #: Jobs waiting in the queue, including those left by a previous daemon.
        self.queued: set[str] = {mirror for mirror, _ in self.queue.pending()}
        #: ... and those of them that are pushes or changed signals (queued ahead).
        self._queued_urgent: set[str] = {m for m, r in self.queue.pending()
                                         if r in URGENT_REASONS}
        #: When this daemon last started a run of each mirror: a job queued before that is
        #: covered by that run (it saw the upstream as it was when the job was queued, or
        #: newer).
        self._started: dict[str, float] = {}
        self._rerun: set[str] = set()
        self._polling: set[str] = set()
        self._poll_failed: dict[str, float] = {}
        #: What is failing right now (``tick``, ``poll deb``, ...) → when it started.
        self._trouble: dict[str, float] = {}
        self.sink: MetricsSink | None = MetricsSink(config) if config.metrics.enabled else None
        self._pollers = ThreadPoolExecutor(POLL_WORKERS, thread_name_prefix="poll")
        self.deliverer = Deliverer(lambda: self.config, self.store, self.stop)
        #: Fleet mode: runs spooled while the store was unreachable, replayed by the tick.
        self.spool = Spool(spool_dir(self.mine.settings.state_dir))
        #: The planner's facts as last read from the store (the schedule runs on them while
        #: the store is unreachable), and since when it is (None: it is not).
        self._facts: list[MirrorFacts] = []
        self.store_down_since: float | None = None
        self._replayed = 0
        #: Notices about the store itself, sent in order without it (see alerts.direct).
        self._notifier = ThreadPoolExecutor(1, thread_name_prefix="notify")
        #: Jobs run here because the fleet queue (Redis) is unreachable.
        self._local_jobs = ThreadPoolExecutor(config.daemon.max_parallel,
                                              thread_name_prefix="local-job")
        self._local_queued: set[str] = set()
        self._last_pruned = 0.0
        self._closed = False

    def close(self) -> None:
        """Release the store, the queue and the emitters (safe to call twice)."""
        if self._closed:
            return
        self._closed = True
        self._pollers.shutdown(wait=True, cancel_futures=True)
        self._local_jobs.shutdown(wait=True, cancel_futures=True)
        self._notifier.shutdown(wait=True, cancel_futures=True)
        self.deliverer.close()
        if self.sink is not None:
            self.sink.close()
        self.queue.close()
        if self.config.fleet is not None:  # a planned stop is no host.down
            try:
                self.store.leave(self.config.fleet.host)
            except sa.exc.SQLAlchemyError as exc:
                event("fleet.leave_failed", level=logging.WARNING, error=str(exc).split("\n")[0])
        self.store.close()

    # -- jobs ---------------------------------------------------------------------------------
    def enqueue(self, mirror: str, reason: str) -> bool:
        """Queue a sync; False if the mirror is unknown or disabled. Safe from any thread.

        A mirror already waiting in the queue absorbs the request (the run it waits for will
        see the upstream as it is now, or newer) — unless this one is urgent and the waiting
        job is not: then it is queued too, ahead, and the waiting one is dropped when its turn
        comes (:meth:`execute`)."""
        spec = self.config.mirrors.get(mirror)
        if spec is None or not spec.enabled:
            return False
        if mirror not in self.mine.mirrors:  # another fleet host's: onto its queue
            return self._enqueue_remote(spec.name, reason)
        urgent = reason in URGENT_REASONS
        with self._lock:
            absorbed = mirror in self.queued and (mirror in self._queued_urgent or not urgent)
            self.queued.add(mirror)
            if urgent:
                self._queued_urgent.add(mirror)
        if absorbed:
            event("job.coalesced", mirror=mirror, reason=reason, why="already queued")
            return True
        try:
            self.queue.enqueue(mirror, reason, urgent=urgent)
        except StateUnavailable as exc:
            if self.config.fleet is None:
                with self._lock:  # not queued after all: the next plan must try again
                    self.queued.discard(mirror)
                    self._queued_urgent.discard(mirror)
                raise
            # The fleet's Redis is unreachable; the job is this host's anyway: run it here.
            self._failing("queue", "queue.unreachable", exc,
                          why="jobs of this host run without the queue until it is back")
            with self._lock:
                self._local_queued.add(mirror)
            self._local_jobs.submit(self._run_local, mirror, reason, time.time())
            event("job.queued", mirror=mirror, reason=reason, where="local")
            return True
        except BaseException:
            with self._lock:  # not queued after all: the next plan must try again
                self.queued.discard(mirror)
                self._queued_urgent.discard(mirror)
            raise
        self._recovered("queue")
        event("job.queued", mirror=mirror, reason=reason)
        return True

    def _run_local(self, mirror: str, reason: str, queued_at: float) -> None:
        with self._lock:
            self._local_queued.discard(mirror)
        self.execute(mirror, reason, queued_at)

    def _enqueue_remote(self, mirror: str, reason: str) -> bool:
        host = self.config.host_of(self.config.mirrors[mirror])
        queue = open_queue(self.config, host)
        try:
            queue.enqueue(mirror, reason, urgent=reason in URGENT_REASONS)
        finally:
            queue.close()
        event("job.queued", mirror=mirror, reason=reason, host=host)
        return True

    def execute(self, name: str, reason: str, queued_at: float = 0.0) -> None:
        """A queue worker runs this for each job; it never raises."""
        config = self.mine
        mirror = config.mirrors.get(name)
        with self._lock:
            self.queued.discard(name)
            self._queued_urgent.discard(name)
            if mirror is None or not mirror.enabled:
                event("job.dropped", level=logging.WARNING, mirror=name, reason=reason,
                      why="not an enabled mirror in the current config")
                return
            if self.stop.is_set():
                return
            started = self._started.get(name)
            if started is not None and queued_at <= started:
                # Queued (by `trigger`, say) before a run that has started since: covered.
                event("job.coalesced", mirror=name, reason=reason,
                      why="a run that started after it was queued covers it")
                return
            if name in self.running:  # coalesce: a push or new signal earns one more run
                if reason in URGENT_REASONS:
                    self._rerun.add(name)
                event("job.coalesced", mirror=name, reason=reason, why="running")
                return
            self.running.add(name)
            before, self._started[name] = started, time.time()
        event("job.start", mirror=name, reason=reason)
        try:
            result = run_job(config, mirror, self.store, stop=self.stop, sink=self.sink,
                             deliver=False,  # the delivery workers send, not this one
                             trigger=reason)
            event("job.end", mirror=name, reason=reason, run_id=result.record.run_id,
                  outcome=result.record.outcome, notices=result.notices,
                  problems=result.problems)
            self._recovered(f"job {name}")
            if self.store.deferred(result.record.run_id):
                self.wake.set()  # spooled: the tick replays it as soon as the store takes it
        except MirrorLocked as exc:
            with self._lock:  # no run of ours started after all
                if before is None:
                    self._started.pop(name, None)
                else:
                    self._started[name] = before
            event("job.busy", mirror=name, reason=reason, holder=exc.holder)
            if reason in URGENT_REASONS and not self.stop.is_set():
                self._enqueue_later(name, reason)
        except StateUnavailable as exc:  # the admin's to fix; the schedule tries again
            self._failing(f"job {name}", "job.failed", exc, mirror=name, reason=reason)
        except Exception as exc:
            log.exception("job failed")
            event("job.crashed", level=logging.CRITICAL, mirror=name, reason=reason,
                  error=repr(exc))
        finally:
            self.deliverer.kick()
            with self._lock:
                self.running.discard(name)
                again = name in self._rerun and not self.stop.is_set()
                self._rerun.discard(name)
            if again:
                self.enqueue(name, "push")
            if self._held:  # a mirror waits for a slot of a host: plan again now
                self.wake.set()

    def _enqueue_later(self, name: str, reason: str) -> None:
        try:
            self.queue.enqueue(name, reason, urgent=True, delay=BUSY_RETRY_SECONDS)
        except StateUnavailable as exc:
            self._failing(f"job {name}", "job.retry_lost", exc, mirror=name, reason=reason)

    # -- conditions that last -------------------------------------------------------------------
    def _failing(self, what: str, name: str, exc: Exception, **fields: Any) -> None:
        """Log a failure the admin must fix as one line: the stderr handler rate-limits
        repeats, and :meth:`_recovered` says when it is over."""
        with self._lock:
            self._trouble.setdefault(what, time.time())
        event(name, level=logging.ERROR, error=str(exc), **fields)

    def _recovered(self, what: str) -> None:
        with self._lock:
            since = self._trouble.pop(what, None)
        if since is not None:
            event("daemon.recovered", what=what, failing_seconds=round(time.time() - since))

    # -- the tick -------------------------------------------------------------------------------
    def tick(self, now: float | None = None) -> TickPlan:
        now = now or time.time()
        config = self.mine
        reachable = True
        if config.fleet is not None:
            self._forget_lost_jobs()
            reachable = self._replay()
        with self._lock:
            running = set(self.running) | locked_mirrors(config)
            queued = set(self.queued)
            polling = set(self._polling)
        facts = None
        if reachable:
            try:
                facts = gather_facts(config, self.store, running, queued)
            except STORE_DOWN as exc:
                if config.fleet is None:
                    raise
                self._store_unreachable(exc)
                reachable = False
        if facts is not None:
            self._facts = facts
            plan = make_plan(config, self.store, running, queued, now, facts)
        else:  # the fleet store is unreachable: the schedule goes on from what was known
            with self._lock:
                started = dict(self._started)
            plan = plan_tick(offline_facts(self._facts, started, running, queued), now,
                             jitter=config.daemon.jitter, poll_interval=0.0, tz=local_zone(),
                             free_slots=free_slots(config, queued))
        self._held = bool(plan.held)
        for due in plan.due:
            self.enqueue(due.mirror, due.reason)
        if not reachable:
            return plan
        self._store_reachable()
        for name in plan.polls:
            failed = self._poll_failed.get(name)
            if name not in polling and (failed is None
                                        or time.monotonic() - failed >= POLL_RETRY_SECONDS):
                self._start_poll(name)
        self._housekeeping(now)
        return plan

    # -- the fleet store down, and back -------------------------------------------------------
    def _replay(self) -> bool:
        """Replay the spooled runs, oldest first; False when the store is unreachable."""
        if self.store_down_since is None and not self.spool.pending():
            return True
        try:
            replayed = replay_spool(self.mine, self.store, self.spool)
        except STORE_DOWN as exc:
            self._store_unreachable(exc)
            return False
        if replayed:
            self._replayed += replayed
            self.deliverer.kick()  # the replayed runs' alerts
        return True

    def _store_unreachable(self, exc: Exception) -> None:
        """Said once per outage: in the log, and through the plugins directly (the store, where
        alerts are kept, is the thing that is down)."""
        if self.store_down_since is not None:
            return
        self.store_down_since = time.time()
        assert self.config.fleet is not None
        host = self.config.fleet.host
        error = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["?"])[0]
        event("store.unreachable", level=logging.ERROR, host=host, error=error,
              why="runs go on and are spooled; the schedule goes on")
        self._notify(f"host:{host}", "store.unreachable",
                     f"fleet host {host} cannot reach the fleet store: its runs go on and are "
                     f"spooled on the host until the store is back ({error})",
                     {"host": host, "error": error, "store": self._store_where()},
                     resolved=False, since=self.store_down_since)

    def _store_reachable(self) -> None:
        if self.store_down_since is None:
            return
        since, self.store_down_since = self.store_down_since, None
        replayed, self._replayed = self._replayed, 0
        assert self.config.fleet is not None
        host = self.config.fleet.host
        down = round(time.time() - since)
        event("store.back", host=host, down_seconds=down, replayed=replayed)
        self._notify(f"host:{host}", "store.unreachable",
                     f"fleet host {host} reaches the fleet store again after {down}s; "
                     f"{replayed} spooled run(s) replayed",
                     {"host": host, "down_seconds": down, "replayed": replayed,
                      "store": self._store_where()}, resolved=True, since=since)

    def _store_where(self) -> str:
        return self.store.engine.url.render_as_string()

    def _notify(self, mirror: str, code: str, summary: str, details: dict[str, Any], *,
                resolved: bool, since: float) -> None:
        from ..alerts.direct import notify_directly

        config = self.config
        self._notifier.submit(notify_directly, config, mirror, code, summary, details,
                              resolved=resolved, first_seen=since, stop=self.stop)

    def _forget_lost_jobs(self) -> None:
        """Redis restarted without persistence: the jobs this daemon counts as queued are
        gone, and would never be planned again. Keep only those still waiting."""
        try:
            waiting = {mirror for mirror, _ in self.queue.pending()}
        except StateUnavailable as exc:  # Redis is down: the jobs run here meanwhile
            self._failing("queue", "queue.unreachable", exc)
            return
        self._recovered("queue")
        with self._lock:
            lost = self.queued - waiting - self._local_queued
            self.queued -= lost
            self._queued_urgent -= lost
        if lost:
            event("job.lost", level=logging.WARNING, mirrors=sorted(lost),
                  why="no longer in the queue (Redis restarted?); planned again")

    def _start_poll(self, name: str) -> None:
        with self._lock:
            self._polling.add(name)
        future = self._pollers.submit(poll_signal, self.mine, self.mine.mirrors[name],
                                      self.store, self.stop)
        future.add_done_callback(partial(self._poll_done, name))

    def _poll_done(self, name: str, future: Future[Any]) -> None:
        with self._lock:
            self._polling.discard(name)
        error = future.exception()
        if error is None:
            self._poll_failed.pop(name, None)
            self._recovered(f"poll {name}")
            self.wake.set()  # plan again now: the signal may have changed
            return
        # Not again at once: a poll whose result cannot be stored would be due again at the
        # next plan, and waking it would loop as fast as the poll fails.
        self._poll_failed[name] = time.monotonic()
        if isinstance(error, StateUnavailable):
            self._failing(f"poll {name}", "poll.failed", error, mirror=name)
        else:
            event("poll.crashed", level=logging.ERROR, mirror=name, error=repr(error))

    def _housekeeping(self, now: float) -> None:
        """Alerts that need no sync (staleness, retries of failed deliveries) and ages."""
        from ..alerts.dispatch import watchdog

        config = self.mine
        try:
            watchdog(config, self.store, now)  # queues; the delivery workers send
        except StateUnavailable as exc:
            self._failing("alerts", "alert.failure", exc)
        except Exception as exc:
            log.exception("alert housekeeping failed")
            event("alert.failure", level=logging.ERROR, error=repr(exc))
        else:
            self._recovered("alerts")
        self.deliverer.kick()
        if config.fleet is not None:
            self._fleet_watch(config, now)
        if self.sink is not None:
            for mirror in config.enabled():
                age = age_seconds(self.store, mirror.name, now)  # not the whole last run
                if age is not None:
                    self.sink.send(mirror.name, {"age_seconds": age})
        write_textfile(config, self.store)
        if now - self._last_pruned > 3600:
            self._last_pruned = now
            self.store.prune_polls(now - POLL_KEEP_SECONDS)

    def _fleet_watch(self, config: Config, now: float) -> None:
        """Beat for this host; notice the hosts that stopped (one ``host.down`` fleet-wide:
        the claim is one UPDATE). A host that comes back resolves its own alert."""
        from ..alerts.dispatch import host_alerts

        assert config.fleet is not None
        try:
            host_alerts(config, self.store, now)
        except StateUnavailable as exc:
            self._failing("fleet", "fleet.failure", exc)
        except sa.exc.SQLAlchemyError as exc:  # the store is down: it says so, keeps going
            self._failing("fleet", "fleet.failure", exc)
        else:
            self._recovered("fleet")

    # -- config reload ------------------------------------------------------------------------
    def reload(self, path: str) -> bool:
        """Swap in a new config; a bad one is refused with its errors and the old one kept.

        A profile file that does not validate is not a bad config: only the mirrors that use
        it stop (``config.profile_invalid``); a token file that would refuse every action is.
        """
        try:
            new = load_config(path)
            problems = web_file_problems(new)
            if problems:
                raise ConfigError(problems)
        except ConfigError as exc:
            event("config.reload_refused", level=logging.ERROR,
                  problems=[str(p) for p in exc.problems])
            return False
        old = self.config
        if new.daemon.max_parallel != old.daemon.max_parallel:
            event("config.restart_needed", level=logging.WARNING, key="daemon.max_parallel")
        if new.metrics != old.metrics:
            if self.sink is not None:
                self.sink.close()
            self.sink = MetricsSink(new) if new.metrics.enabled else None
        self.config, self.mine = new, new.local()
        event("config.reloaded", mirrors=sorted(new.mirrors))
        log_profile_problems(new)
        self.wake.set()
        return True

    # -- main loop ------------------------------------------------------------------------------
    def run(self) -> int:
        """Run until SIGTERM/SIGINT; SIGHUP reloads the config. Main thread only."""
        config = self.mine
        setup_event_log(config.settings.log_dir)
        log_to_stderr()
        with MirrorLock(config.settings.state_dir, DAEMON_LOCK):
            if config.fleet is not None:  # runs this host left when it died: interrupted
                closed = self.store.close_host_runs(config.host)
                if closed:
                    event("fleet.runs_closed", host=config.host, runs=closed)
            server = self._start_web()  # first: a port that is taken ends the start here
            consumer = self.queue.consumer(config.daemon.max_parallel)
            consumer.start()
            self._install_signals()
            event("daemon.start", pid=os.getpid(), mirrors=len(config.enabled()),
                  max_parallel=config.daemon.max_parallel, tick=config.daemon.tick,
                  pending=len(self.queue.pending()),
                  web=config.web.listen if server else None)
            log_profile_problems(config)
            try:
                self._loop()
            finally:
                event("daemon.stopping", running=sorted(self.running))
                self.stop.set()  # every running sync stops its rsync and records interrupted
                consumer.stop(graceful=True)
                if server is not None:
                    server.should_exit = True
                self.close()
                event("daemon.stop")
        return 0

    def _loop(self) -> None:
        next_tick = 0.0
        while not self.stop.is_set():
            if self._reload.is_set():
                self._reload.clear()
                self.reload(self.config.path)
            now = time.time()
            if now >= next_tick or self.wake.is_set():
                self.wake.clear()
                try:
                    self.tick(now)
                except StateUnavailable as exc:
                    self._failing("tick", "tick.failed", exc)
                except sa.exc.OperationalError as exc:  # the fleet store is unreachable
                    self._failing("tick", "tick.failed", exc)
                except Exception as exc:
                    log.exception("tick failed")
                    event("tick.failed", level=logging.ERROR, error=repr(exc))
                else:
                    self._recovered("tick")
                next_tick = now + self.config.daemon.tick
            self.wake.wait(min(1.0, max(0.0, next_tick - time.time())))

    def _install_signals(self) -> None:
        def on_stop(signum: int, _frame: FrameType | None) -> None:
            name = signal.Signals(signum).name
            event("daemon.signal", signal=name)
            self.stop.request(name)  # runs record "stopped by SIGTERM"
            self.wake.set()

        def on_hup(_signum: int, _frame: FrameType | None) -> None:
            self._reload.set()
            self.wake.set()

        for sig in TERMINATING_SIGNALS:  # each a clean stop, but SIGHUP: reload
            signal.signal(sig, on_hup if sig == signal.SIGHUP else on_stop)

    def _start_web(self) -> Any:
        web = self.config.web
        if not web.enabled:
            return None
        import uvicorn

        from ..web.app import create_app

        host, _, port = web.listen.rpartition(":")
        if beyond_loopback(host):
            event("web.exposed", level=logging.WARNING, listen=web.listen,
                  why="the dashboard and API answer other machines; keep [web] listen on "
                      "loopback behind a reverse proxy, or firewall the port")
        server = uvicorn.Server(uvicorn.Config(
            create_app(self), host=host.strip("[]"), port=int(port), log_config=None,
            access_log=False, lifespan="off", timeout_graceful_shutdown=2))
        thread = threading.Thread(target=server.run, name="web", daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not server.started:
            server.should_exit = True
            event("web.failed", level=logging.CRITICAL, listen=web.listen)
            raise WebUnavailable(f"cannot serve the dashboard on {web.listen} (is the port "
                                 "taken?); set [web] listen to a free HOST:PORT, or "
                                 "[web] enabled = false")
        return server
