"""Hub mode (I/O): after a good run, push the downstream mirrors over ssh as ``runmirrors``
does — every downstream at once, staged ones held between their two stages until all of them
have finished stage 1 (or ``push_delay`` passed). Each push is an argv list; nothing goes
through a shell here. A downstream that cannot be reached is recorded (and becomes a
``downstream.unreachable`` finding); it never fails the run, whose mirror is good.
"""

from __future__ import annotations

import dataclasses
import subprocess
import threading
import time

from ..config.spec import MirrorSpec
from ..logs import event
from ..plan.downstreams import Downstream, PushStep, parse_downstream, plan_pushes, ssh_argv
from ..record import DownstreamResult, RunRecord
from ..safetext import printable

#: ssh's own failure (no connection, authentication refused): runmirrors' "trigger failed".
SSH_FAILED = 255


def push_kind(outcome: str, scope: str, mhop: bool) -> str | None:
    """What the run asks of its downstreams (runmirrors' ``-k``), or None: nothing. Pure."""
    if outcome == "success":
        return {"all": "all", "stage2": "stage2"}.get(scope, "all")
    if outcome == "staged" and mhop:
        return "mhop"
    return None


class _Stage1Gate:
    """Staged downstreams wait here after their stage 1 until every one has come, or the
    push delay has passed (then all of them go on: one timeout ends every wait)."""

    def __init__(self, expected: int, delay: float, stop: threading.Event) -> None:
        self.expected, self.delay, self.stop = expected, delay, stop
        self.arrived = 0
        self.open = False
        self.condition = threading.Condition()

    def arrive(self, wait: bool = True) -> bool:
        """Say this downstream is done with stage 1 (or failed it: ``wait=False``), then,
        if ``wait``, wait for the others; True if all came in time."""
        deadline = time.monotonic() + self.delay
        with self.condition:
            self.arrived += 1
            self.condition.notify_all()
            while (wait and not self.open and self.arrived < self.expected
                   and not self.stop.is_set()):
                left = deadline - time.monotonic()
                if left <= 0:
                    self.open = True  # one timeout ends every wait
                    self.condition.notify_all()
                    return False
                self.condition.wait(min(left, 1.0))
            return self.arrived >= self.expected


def _ssh(argv: list[str], timeout: float) -> tuple[int | None, str]:
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, check=False)
    except FileNotFoundError:
        return None, f"cannot run {argv[0]}: not found"
    except subprocess.TimeoutExpired:
        return None, f"no answer within {timeout:.0f}s"
    tail = printable(done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:][0]
                     if done.stderr.strip() else "")
    return done.returncode, tail


def _push_one(step: PushStep, key: str | None, gate: _Stage1Gate, timeout: float,
              results: dict[str, DownstreamResult]) -> None:
    down = step.downstream
    started = time.monotonic()
    sent: list[str] = []
    codes: list[int | None] = []
    error = ""

    def send(words: str) -> bool:
        nonlocal error
        code, why = _ssh(ssh_argv(down, words, key=key), timeout)
        sent.append(words)
        codes.append(code)
        event("hub.pushed", downstream=down.name, host=down.host, words=words, exit_code=code)
        if code is None or code == SSH_FAILED:
            error = f"`{words}` did not reach {down.host}: {why or 'ssh failed'}"
            return False
        return True

    reached = send(step.first)
    # An mhop push (no second word list) waits too: the hub answers its own upstream only
    # once its whole staged tree has finished stage 1.
    if step.staged and not gate.arrive(wait=reached) and reached:
        event("hub.push_delay_passed", downstream=down.name)
    if reached and step.second is not None:
        if gate.stop.is_set():
            error = "stopped before stage 2 was pushed"
        else:
            send(step.second)
    results[down.name] = DownstreamResult(down.name, down.host, down.kind, tuple(sent),
                                          tuple(codes), error,
                                          round(time.monotonic() - started, 3))


def push_downstreams(mirror: MirrorSpec, kind: str, stop: threading.Event,
                     ) -> tuple[DownstreamResult, ...]:
    """Push every configured downstream for a run of ``kind``; return what came of it."""
    s = mirror.settings
    downstreams = [d for d in map(parse_downstream, s.downstreams) if isinstance(d, Downstream)]
    steps = plan_pushes(downstreams, kind)
    gate = _Stage1Gate(sum(1 for x in steps if x.staged), s.push_delay, stop)
    results: dict[str, DownstreamResult] = {}
    threads = [threading.Thread(target=_push_one, name=f"push-{x.downstream.name}",
                                args=(x, s.push_key, gate, s.run_budget, results))
               for x in steps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tuple(results[x.downstream.name] for x in steps)


def push_after(mirror: MirrorSpec, record: RunRecord, scope: str, mhop: bool,
               stop: threading.Event) -> RunRecord:
    """The record with its downstream pushes, when the mirror is a hub and the run calls for
    them (ftpsync's HUB=true); else the record as it was."""
    kind = push_kind(record.outcome, scope, mhop)
    if not mirror.settings.downstreams or kind is None:
        return record
    event("hub.start", mirror=mirror.name, kind=kind,
          downstreams=len(mirror.settings.downstreams))
    results = push_downstreams(mirror, kind, stop)
    event("hub.end", mirror=mirror.name, kind=kind,
          failed=[r.name for r in results if r.error])
    return dataclasses.replace(record, downstreams=results)
