"""``mirrorkeeper snapshots NAME`` and ``mirrorkeeper rollback NAME [SNAPSHOT]``."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from ..config.spec import Config, MirrorSpec
from ..exitcodes import Exit
from ..logs import iso


def _mirror(config: Config, name: str) -> MirrorSpec:
    from .common import UsageProblem

    mirror = config.mirrors.get(name)
    if mirror is None:
        raise UsageProblem(f"no mirror `{name}` in {config.path}")
    if mirror.settings.snapshots == "none":
        raise UsageProblem(f"mirror `{name}` takes no snapshots: set snapshots = \"zfs\" or "
                           "\"btrfs\" (see docs/snapshots.md)")
    return mirror


@click.command("snapshots")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--hold", metavar="SNAPSHOT", help="Never prune SNAPSHOT until released.")
@click.option("--release", metavar="SNAPSHOT", help="Let retention prune SNAPSHOT again.")
@click.pass_context
def snapshots_cmd(ctx: click.Context, name: str, as_json: bool, hold: str | None,
                  release: str | None) -> int:
    """NAME's snapshots, newest first: the run each came from, and why each is kept."""
    from ..snapshots import SnapshotError, backend_for
    from ..snapshots.retention import plan_retention
    from ..store import Store
    from ..store import snapshots as rows
    from ..sync.snapshots import in_use, keep_of
    from .common import console, err_console, load

    config = load(ctx, events=hold is not None or release is not None)
    mirror = _mirror(config, name)
    backend = backend_for(mirror.settings.snapshots, mirror.dest)
    assert backend is not None
    store = Store.for_config(config,
                       readonly=hold is None and release is None)
    try:
        for target, held in ((hold, True), (release, False)):
            if target is not None:
                if target not in {r.name for r in rows.rows(store, name)}:
                    err_console.print(f"mirrorkeeper: {name} has no snapshot `{target}`")
                    return Exit.USAGE
                rows.set_held(store, name, target, held)
        try:
            listed = [s.name for s in backend.listed()]
        except SnapshotError as exc:
            err_console.print(f"mirrorkeeper: {exc}", markup=False)
            return Exit.UNAVAILABLE
        known = {r.name: r for r in rows.rows(store, name)}
        plan = plan_retention(listed, keep_of(mirror), in_use(mirror, store))
        found: list[dict[str, Any]] = []
        for snap in reversed(listed):
            row = known.get(snap)
            run = store.run(row.run_id) if row and row.run_id else None
            found.append({
                "name": snap,
                "run_id": row.run_id if row else None,
                "run_outcome": run.outcome if run else None,
                "pre": row.pre if row else None,
                "created_at": iso(row.created_at) if row else None,
                "published_at": iso(row.published_at) if row and row.published_at else None,
                "held": row.held if row else False,
                "kept_by": list(plan.keep.get(snap, ())),
                "ours": row is not None,
            })
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return Exit.OK
    if not found:
        console.print(f"{name}: no snapshots yet (one is taken after each successful run)")
    for item in found:
        marks = [m for m, on in (("pre-run", item["pre"]), ("published", item["published_at"]),
                                 ("held", item["held"])) if on]
        made = (f"run {item['run_id']} ({'before it' if item['pre'] else item['run_outcome']})"
               if item["run_id"] else "not made by Mirrorkeeper")
        kept = ", ".join(item["kept_by"]) or ("-" if not item["ours"] else "prune next")
        console.print(f"{item['name']}  {item['created_at'] or '-'}  {made}  kept: {kept}"
                      + (f"  [{', '.join(marks)}]" if marks else ""), markup=False)
    return Exit.OK


@click.command("rollback")
@click.argument("name")
@click.argument("snapshot", required=False)
@click.pass_context
def rollback_cmd(ctx: click.Context, name: str, snapshot: str | None) -> int:
    """Return NAME's destination to SNAPSHOT (default: the newest taken after a success).

    Refused while the mirror syncs. Recorded as a run of its own; its alerts are resolved or
    raised like a run's. On ZFS the snapshots newer than SNAPSHOT are destroyed with it.
    """
    from ..job import JobResult, after_run
    from ..snapshots import SnapshotError, backend_for
    from ..store import Store
    from ..sync.lock import MirrorLock, MirrorLocked
    from ..sync.run import lock_dir
    from ..sync.snapshots import last_good, record_rollback, rollback_to
    from .common import console, err_console, load

    config = load(ctx)
    mirror = _mirror(config, name)
    backend = backend_for(mirror.settings.snapshots, mirror.dest)
    assert backend is not None
    try:
        lock = MirrorLock(lock_dir(config), name, root=config.settings.state_dir)
        lock.acquire()
    except MirrorLocked as exc:
        err_console.print(f"mirrorkeeper: {exc}; not rolling back under a running sync",
                          markup=False)
        return Exit.LOCKED
    try:
        store = Store.for_config(config)
    except BaseException:
        lock.release()
        raise
    try:
        try:
            existing = [s.name for s in backend.listed()]
        except SnapshotError as exc:
            err_console.print(f"mirrorkeeper: {exc}", markup=False)
            return Exit.UNAVAILABLE
        target = snapshot or last_good(mirror, store, existing)
        if target is None or target not in existing:
            err_console.print(f"mirrorkeeper: {name} has no snapshot "
                              + (f"`{target}`" if target else "of a successful run")
                              + ("; it has: " + ", ".join(existing) if existing else ""),
                              markup=False)
            return Exit.USAGE
        started = time.time()
        done = rollback_to(config, mirror, store, backend, target,
                           lambda text: None, existing)
        record = record_rollback(store, mirror, done)
        result = JobResult(record)
        after_run(config, mirror, store, record, None, result)
        for line in result.notices:
            err_console.print(line, markup=False)
    finally:
        store.close()
        lock.release()
    if done.error:
        err_console.print(f"mirrorkeeper: the rollback to {target} failed: {done.error}",
                          markup=False)
        return Exit.SYNC_FAILED
    console.print(f"{name}: rolled back to {target} in {time.time() - started:.1f}s (run "
                  f"{record.run_id})" + (f"; destroyed the newer {', '.join(done.destroyed)}"
                                         if done.destroyed else ""), markup=False)
    return Exit.OK
