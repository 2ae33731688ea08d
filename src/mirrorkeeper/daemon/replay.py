"""Replaying a fleet host's spool into the store once it is back (I/O).

Oldest first, each run as its end would have been written (:meth:`Store.replay_run`, keyed
by the run's uuid: a run replayed twice is stored once), then judged as a run that ends is
(findings, alerts and their notifications, queued for the delivery workers), so that the
alerts of a run spooled during an outage reach the plugins when the store returns. The first
store error stops the replay: the rest wait for the next tick, in order.
"""

from __future__ import annotations

import dataclasses
import logging
import time

from ..alerts.dispatch import Notice, process_run
from ..config.spec import Config
from ..logs import event
from ..store import Store
from ..store.alerts import AlertStore
from ..store.spool import BadSpoolFile, Spool
from ..store.store import STORE_DOWN


def _already_sent(store: Store, notices: list[Notice], sent: tuple[str, ...]) -> None:
    """The new alerts whose findings the host sent straight through the plugins while the
    store was unreachable: their queued notifications are closed, not sent a second time."""
    fresh = {n.alert_id for n in notices if n.kind == "new" and n.code in sent}
    if not fresh:
        return
    alerts = AlertStore(store.engine)
    now = time.time()
    for delivery in alerts.pending():
        if delivery["alert_id"] in fresh and alerts.claim(delivery["id"], now, now + 60):
            alerts.delivered(delivery["id"], now, None)
            event("alert.delivery", plugin=delivery["plugin"], alert_id=delivery["alert_id"],
                  ok=True, error=None, why="sent directly while the store was unreachable")


def replay_spool(config: Config, store: Store, spool: Spool) -> int:
    """Replay every spooled run; how many reached the store. Raises the store's error (one of
    ``STORE_DOWN``) when it cannot be reached, leaving that run and the later ones spooled."""
    spool.clear_leftovers()
    replayed = 0
    for path in spool.pending():
        try:
            spooled = spool.read(path)
        except BadSpoolFile as exc:
            spool.set_aside(path, str(exc))
            continue
        run_id = store.replay_run(spooled.record, spooled.uuid, spooled.host, spooled.pid)
        if run_id is not None:
            record = dataclasses.replace(spooled.record, run_id=run_id)
            mirror = config.mirrors.get(record.mirror)
            if mirror is not None:
                try:
                    notices = process_run(config, mirror, store, record)
                    _already_sent(store, notices, spooled.sent)
                except STORE_DOWN:
                    raise
                except Exception as exc:  # noqa: BLE001 - the run is stored; go on
                    event("alert.failure", level=logging.ERROR, mirror=record.mirror,
                          run_id=run_id, error=repr(exc))
        spool.done(path)
        replayed += 1
        event("run.replayed", mirror=spooled.record.mirror, run_id=run_id,
              spooled_as=spooled.record.run_id, outcome=spooled.record.outcome,
              already_stored=run_id is None)
    return replayed
