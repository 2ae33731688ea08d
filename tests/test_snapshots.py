"""Snapshots on real ZFS (zfs-fuse) and btrfs (a loop device): a snapshot after each success,
retention, rollback (by hand and after a guard trip) and atomic publishing, with real rsync
runs against a real daemon. The retention planner is pure and tested on its own first."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from mirrorkeeper.config.load import load_config
from mirrorkeeper.demo.tree import DebianLikeTree
from mirrorkeeper.exitcodes import Exit
from mirrorkeeper.metrics.prometheus import registry_for
from mirrorkeeper.record import RunRecord
from mirrorkeeper.snapshots import backend_for
from mirrorkeeper.snapshots.naming import parse_name, snapshot_name
from mirrorkeeper.snapshots.retention import Keep, plan_retention
from mirrorkeeper.store import Store
from mirrorkeeper.store import snapshots as rows
from mirrorkeeper.sync.lock import MirrorLock
from mirrorkeeper.sync.run import lock_dir, sync_mirror

from .accounts import Accounts, accounts, as_user, privileged_test, runnable_bin, shared
from .conftest import TEST_HOSTNAME, CliResult, tree_files, write_config
from .snapfs import SnapFs, btrfs_mounted, zfs_daemon_running, zfs_pool

__all__ = ["accounts", "runnable_bin", "shared"]  # fixtures, imported for pytest


@pytest.fixture(scope="session")
def zfs_daemon() -> Iterator[None]:
    with zfs_daemon_running():
        yield


@pytest.fixture(params=["btrfs", pytest.param("zfs", marks=pytest.mark.slow)])
def snapfs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SnapFs]:
    """Each test that takes it runs on both real filesystems."""
    if request.param == "btrfs":
        with btrfs_mounted(tmp_path) as fs:
            yield fs
        return
    request.getfixturevalue("zfs_daemon")
    with zfs_pool(tmp_path) as fs:
        yield fs


HOUR = 3600.0
NOW = 1_790_000_000.0  # a fixed Wednesday, so the buckets below are exact


# -- the pure planner -------------------------------------------------------------------------
def test_names_carry_time_and_run() -> None:
    name = snapshot_name(NOW, 42)
    parsed = parse_name(name)
    assert name.startswith("mk-") and name.endswith("Z-r42")
    assert parsed is not None and parsed.run_id == 42 and not parsed.pre
    assert abs(parsed.created_at - NOW) < 60
    assert parse_name(snapshot_name(NOW, 7, pre=True)) == parse_name(
        snapshot_name(NOW, 7, pre=True))
    assert parse_name("nightly-backup") is None


def test_retention_keeps_one_per_bucket_and_never_what_is_in_use() -> None:
    # One snapshot every hour for 60 days, newest last.
    names = [snapshot_name(NOW - h * HOUR, 5000 - h) for h in range(60 * 24)]
    oldest = names[-1]
    plan = plan_retention([*names, "admins-own"], Keep(hourly=24, daily=14, weekly=8),
                          in_use=frozenset({oldest}))
    kept = set(plan.keep)
    assert names[0] in kept and "newest" in plan.keep[names[0]]
    assert set(names[:24]) <= kept  # the 24 newest hours
    daily = [n for n, why in plan.keep.items() if "daily" in why]
    weekly = [n for n, why in plan.keep.items() if "weekly" in why]
    assert len(daily) == 14 and len(weekly) == 8
    assert oldest in kept and plan.keep[oldest] == ("in use",)
    assert "admins-own" not in kept and "admins-own" not in plan.prune
    assert len(kept) + len(plan.prune) == len(names)
    # 24 hourly; the daily and weekly ones partly coincide with them and with each other.
    assert 24 + 14 - 1 <= len(kept) - 1 <= 24 + 14 + 8
    # oldest first, so a prune that stops half-way has removed the least useful ones.
    times = [parse_name(n).created_at for n in plan.prune]  # type: ignore[union-attr]
    assert times == sorted(times)


def test_a_runs_pre_snapshot_counts_as_older_than_the_one_after_it() -> None:
    pre, after = snapshot_name(NOW, 9, pre=True), snapshot_name(NOW, 9)
    assert plan_retention([after, pre], Keep(1, 1, 1)).prune == (pre,)


def test_retention_of_zero_still_keeps_the_newest() -> None:
    names = [snapshot_name(NOW - d * 86400, d + 1) for d in range(5)]
    plan = plan_retention(names, Keep(0, 0, 0))
    assert list(plan.keep) == [names[0]] and len(plan.prune) == 4


# -- real filesystems -------------------------------------------------------------------------
def mirror_config(tmp_path: Path, fs: SnapFs, upstreams: list[str], **overrides: Any) -> Path:
    dest = fs.mountpoint / "deb"
    if not dest.exists():
        fs.make_dest("deb")
    return write_config(tmp_path / "mk.toml", {"deb": {
        "profile": "debian", "dest": str(dest), "upstreams": upstreams,
        "retry_backoff": "0.1s", "delete_grace": "0s", "trace": "debian",
        "snapshots": fs.kind, "publish": "snapshot",
        "publish_path": str(tmp_path / "www" / "debian"), **overrides}})


def sync(path: Path) -> RunRecord:
    config = load_config(path)
    store = Store.open(config.settings.state_dir)
    try:
        return sync_mirror(config, config.mirrors["deb"], store)
    finally:
        store.close()


def snapshot_rows(path: Path, pruned: bool = False) -> list[rows.SnapshotRow]:
    config = load_config(path)
    store = Store.open(config.settings.state_dir)
    try:
        return rows.rows(store, "deb", pruned=pruned)
    finally:
        store.close()


def listed(path: Path) -> list[str]:
    config = load_config(path)
    mirror = config.mirrors["deb"]
    backend = backend_for(mirror.settings.snapshots, mirror.dest)
    assert backend is not None
    return [s.name for s in backend.listed()]


@pytest.mark.privileged
def test_snapshot_after_success_is_published_with_its_trace(
        tmp_path: Path, snapfs: SnapFs, served: str, upstream: DebianLikeTree,
        mk: Callable[..., CliResult]) -> None:
    path = mirror_config(tmp_path, snapfs, [served], snapshot_before=True)
    assert mk("-c", str(path), "config", "check").code == Exit.OK
    record = sync(path)
    assert record.outcome == "success", record.notices
    (made,) = snapshot_rows(path)
    assert made.run_id == record.run_id and not made.pre and made.published_at
    # The pre-run snapshot guarded the run; once it succeeded, the new one supersedes it
    # (same hour, not in use), so retention removed it, and the store says so.
    before, after = snapshot_rows(path, pruned=True)
    assert before.pre and before.run_id == record.run_id and before.pruned_at
    assert after == made
    assert listed(path) == [made.name]
    link = tmp_path / "www" / "debian"
    assert link.is_symlink() and Path(os.readlink(link)).name == made.name
    trace = link / "project" / "trace" / TEST_HOSTNAME
    assert trace.is_file() and "Archive serial" in trace.read_text()  # in what is published
    assert tree_files(link) == tree_files(upstream.root)
    shown = mk("-c", str(path), "snapshots", "deb", "--json")
    assert shown.code == 0
    assert [(s["name"], s["run_id"], s["run_outcome"]) for s in shown.json()] == [
        (made.name, record.run_id, "success")]
    status = mk("-c", str(path), "status", "--json").json()[0]["snapshots"]
    assert status["count"] == 1 and status["published"] == made.name
    assert (status["space_used_bytes"] is None) == (snapfs.kind == "btrfs")
    config = load_config(path)
    store = Store.open(config.settings.state_dir, readonly=True)
    try:
        exposed = generate_latest(registry_for(config, store)).decode()
    finally:
        store.close()
    assert 'mirrorkeeper_snapshots{mirror="deb"} 1.0' in exposed
    assert ("mirrorkeeper_snapshots_space_used_bytes{mirror=" in exposed) == (
        snapfs.kind == "zfs")


@pytest.mark.privileged
def test_retention_prunes_after_success_but_not_held_or_foreign(
        tmp_path: Path, snapfs: SnapFs, served: str, mk: Callable[..., CliResult]) -> None:
    path = mirror_config(tmp_path, snapfs, [served], snapshot_keep_hourly=1,
                         snapshot_keep_daily=2, snapshot_keep_weekly=1, publish="direct")
    config = load_config(path)
    mirror = config.mirrors["deb"]
    backend = backend_for(mirror.settings.snapshots, mirror.dest)
    assert backend is not None
    now = time.time()
    old = [snapshot_name(now - days * 86400, days) for days in (30, 20, 10)]
    store = Store.open(config.settings.state_dir)
    try:
        for name in [*old, "admins-own"]:
            backend.create(name)
        for name in old:
            rows.add(store, "deb", name, snapfs.kind, None, pre=False,
                     created_at=parse_name(name).created_at)  # type: ignore[union-attr]
        view = backend.view(old[2])  # published once; nothing publishes it now
    finally:
        store.close()
    assert mk("-c", str(path), "snapshots", "deb", "--hold", old[0]).code == 0
    record = sync(path)
    assert record.outcome == "success", record.notices
    names = listed(path)
    newest = [n for n in names if n.endswith(f"-r{record.run_id}")]
    assert len(newest) == 1
    # Today's is the newest; 10 days old is the second day that has one (daily = 2); 20 days
    # old no bucket keeps; 30 days old is held; the admin's own is not ours to prune.
    assert set(names) == {newest[0], old[2], old[0], "admins-own"}
    # The kept one's view is let go of: ZFS destroys its clone (one mount fewer per kept
    # snapshot); a btrfs snapshot is its own view.
    assert view.is_dir() == (snapfs.kind == "btrfs")
    pruned = {r.name for r in snapshot_rows(path, pruned=True) if r.pruned_at}
    assert old[1] in pruned and old[0] not in pruned
    assert set(names) - pruned == set(names)


@pytest.mark.privileged
def test_rollback_by_hand_is_refused_while_syncing_and_recorded_as_a_run(
        tmp_path: Path, snapfs: SnapFs, served: str, mk: Callable[..., CliResult]) -> None:
    path = mirror_config(tmp_path, snapfs, [served])
    first = sync(path)
    assert first.outcome == "success"
    dest = snapfs.mountpoint / "deb"
    good = tree_files(dest)
    (dest / "stray-file").write_text("not from upstream")
    victim = next(p for p in sorted(good) if p.startswith("pool/"))
    (dest / victim).unlink()
    config = load_config(path)
    with MirrorLock(lock_dir(config), "deb"):  # a sync holds it
        refused = mk("-c", str(path), "rollback", "deb")
    assert refused.code == Exit.LOCKED and "being synced" in refused.err
    assert (dest / "stray-file").exists()
    done = mk("-c", str(path), "rollback", "deb")
    assert done.code == 0, done.err
    assert tree_files(dest) == good
    history = mk("-c", str(path), "history", "deb", "--json").json()
    assert history[0]["outcome"] == "rolled_back" and history[1]["run_id"] == first.run_id
    # still a working mirror: the next sync runs on the rolled-back subvolume / dataset
    assert sync(path).outcome == "success"


def open_alerts(mk: Callable[..., CliResult], path: Path) -> dict[str, str]:
    shown = mk("-c", str(path), "alerts", "list", "--json").json()
    return {a["code"]: a["summary"] for a in shown if not a["resolved_at"]}


@pytest.mark.slow
@pytest.mark.privileged
def test_guard_trip_after_stage1_wrote_names_the_snapshot_then_rolls_back(
        tmp_path: Path, snapfs: SnapFs, served: str, upstream: DebianLikeTree,
        mk: Callable[..., CliResult]) -> None:
    path = mirror_config(tmp_path, snapfs, [served])
    assert sync(path).outcome == "success"
    (good_name,) = [r.name for r in snapshot_rows(path)]
    dest = snapfs.mountpoint / "deb"
    good = tree_files(dest)
    upstream.mutate(add=20, change=0, remove=0)  # stage 1 will bring these ...
    for rel in upstream.pool_files()[: len(upstream.pool_files()) // 2]:
        (upstream.root / rel).unlink()  # ... then see half the tree gone: the guard trips
    assert mk("-c", str(path), "sync", "deb", "--quiet").code == Exit.SYNC_FAILED
    alerts = open_alerts(mk, path)
    assert set(alerts) == {"guard.upstream_empty", "snapshot.last_good"}
    assert f"mirrorkeeper rollback deb {good_name}" in alerts["snapshot.last_good"]
    assert tree_files(dest) != good  # the stage-1 files are there
    # The command the finding names: the mirror is good again, and so are its alerts.
    assert mk("-c", str(path), "rollback", "deb", good_name).code == 0
    assert tree_files(dest) == good
    assert set(open_alerts(mk, path)) == {"snapshot.rolled_back"}
    # A second trip with nothing new to copy still finds the mirror written since the
    # snapshot (the first trip's files) only when no rollback came between: here one did.
    tripped = sync(path)
    assert tripped.outcome == "failed" and tripped.files_transferred > 0
    notices = {code: summary for code, _u, summary in tripped.notices}
    assert good_name in notices["snapshot.last_good"]
    again = sync(path)
    assert again.files_transferred == 0
    assert good_name in {c: t for c, _u, t in again.notices}["snapshot.last_good"]
    path = mirror_config(tmp_path, snapfs, [served], auto_rollback=True)
    again = sync(path)
    assert again.outcome == "failed"
    notices = {code: summary for code, _u, summary in again.notices}
    assert good_name in notices["snapshot.rolled_back"]
    assert tree_files(dest) == good
    config = load_config(path)
    store = Store.open(config.settings.state_dir)
    try:
        newest = store.history("deb", 1)[0]
    finally:
        store.close()
    assert newest.outcome == "rolled_back" and newest.upstream == f"snapshot:{good_name}"


# -- atomic publishing ------------------------------------------------------------------------
FILES = 120
SIZE = 6000


def write_version(root: Path, version: int) -> None:
    """Every file says which publish it belongs to: a tree is complete when all agree."""
    for i in range(FILES):
        path = root / f"d{i % 6}" / f"f{i:03d}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"v{version}\n" + "x" * SIZE)
        os.utime(path, (1_700_000_000 + version * 3600,) * 2)


def states_of(root: Path) -> set[str]:
    """The versions one walk of ``root`` finds (an incomplete tree adds "missing")."""
    seen: set[str] = set()
    count = 0
    for directory, _dirs, names in os.walk(root):
        for name in names:
            if not name.startswith("f"):
                continue
            try:
                with open(os.path.join(directory, name), encoding="utf-8") as handle:
                    seen.add(handle.readline().strip())
                count += 1
            except FileNotFoundError:
                seen.add("missing")
    if count != FILES:
        seen.add("missing")
    return seen


@pytest.mark.slow
@pytest.mark.privileged
def test_reader_of_the_published_tree_sees_only_complete_states(
        tmp_path: Path, snapfs: SnapFs) -> None:
    source = tmp_path / "upstream"
    write_version(source, 1)
    assert sync(mirror_config(tmp_path, snapfs, [str(source)])).outcome == "success"
    write_version(source, 2)
    path = mirror_config(tmp_path, snapfs, [str(source)], bwlimit=400)  # ~2 s of transfer
    link, dest = tmp_path / "www" / "debian", snapfs.mountpoint / "deb"
    published: list[set[str]] = []
    working: list[set[str]] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            # A client resolves the served path once per walk, as a download of a tree does.
            published.append(states_of(Path(os.path.realpath(link))))
            working.append(states_of(dest))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        record = sync(path)
    finally:
        stop.set()
        reader.join()
    assert record.outcome == "success", record.notices
    assert states_of(Path(os.path.realpath(link))) == {"v2"}
    assert len(published) >= 3
    assert all(state in ({"v1"}, {"v2"}) for state in published), [
        s for s in published if len(s) != 1]
    # The sync was observable as in progress in the working tree: the test can tell.
    assert any(len(state) > 1 for state in working)
    # A third run in the same hour: the first snapshot is no longer in use (two newer ones
    # were published since) and the hourly bucket keeps only the newest, so it goes.
    first, second = (r.name for r in snapshot_rows(path))
    assert sync(path).outcome == "success"
    names = listed(path)
    assert first not in names and second in names and len(names) == 2


# -- configuration and what goes wrong --------------------------------------------------------
def test_config_check_names_each_snapshot_setting_problem(
        tmp_path: Path, mk: Callable[..., CliResult]) -> None:
    path = write_config(tmp_path / "mk.toml", {
        "a": {"profile": "debian", "dest": str(tmp_path / "a"), "snapshots": "lvm"},
        "b": {"profile": "debian", "dest": str(tmp_path / "b"), "publish": "snapshot",
              "auto_rollback": True, "snapshot_keep_daily": -1},
        "c": {"profile": "debian", "dest": str(tmp_path / "c"), "snapshots": "btrfs",
              "publish": "snapshot", "publish_path": str(tmp_path / "c" / "www")},
    })
    result = mk("-c", str(path), "config", "check")
    assert result.code == Exit.CONFIG
    err = " ".join(result.err.split())
    for expected in ("mirrors.a.snapshots: `lvm` is not a snapshot backend",
                     'mirrors.b.publish: "snapshot" needs snapshots',
                     "mirrors.b.publish_path: is required",
                     "mirrors.b.auto_rollback: needs snapshots",
                     "mirrors.b.snapshot_keep_daily: cannot be negative",
                     "mirrors.c.publish_path: overlaps dest"):
        assert expected in err, expected


@pytest.mark.privileged
def test_dest_that_is_no_dataset_is_refused_up_front_and_never_breaks_a_sync(
        tmp_path: Path, snapfs: SnapFs, served: str, mk: Callable[..., CliResult]) -> None:
    plain = snapfs.mountpoint / "deb"
    plain.mkdir()  # a directory, not a subvolume / dataset
    www = tmp_path / "www" / "debian"
    www.mkdir(parents=True)  # a real directory where the link should go
    (www / "index.html").write_text("the admin's old tree")
    path = mirror_config(tmp_path, snapfs, [served])
    check = mk("-c", str(path), "config", "check")
    err = " ".join(check.err.split())
    assert check.code == Exit.CONFIG
    assert ("is not a btrfs subvolume" if snapfs.kind == "btrfs"
            else "is not the mountpoint of a ZFS dataset") in err
    assert "mirrors.deb.publish_path" in err and "is not a symlink" in err
    doctor = mk("-c", str(path), "doctor", "deb", "--json").json()[0]
    assert {c["name"]: c["status"] for c in doctor["local"]}["snapshots"] == "error"
    record = sync(path)  # the sync itself still works and says what is missing
    assert record.outcome == "success"
    assert [code for code, _u, _s in record.notices] == ["snapshot.failed"]
    assert (www / "index.html").read_text() == "the admin's old tree"


def test_snapshot_figures_on_the_api_and_the_dashboard(tmp_path: Path) -> None:
    """The web reads the store's snapshot rows; the filesystem is not needed for that."""
    from starlette.testclient import TestClient

    from mirrorkeeper.daemon.service import Daemon
    from mirrorkeeper.web.app import create_app

    path = write_config(tmp_path / "mk.toml", {
        "snap": {"profile": "debian", "dest": str(tmp_path / "snap"), "snapshots": "zfs",
                 "upstreams": ["rsync://up.example/debian/"]},
        "plain": {"profile": "debian", "dest": str(tmp_path / "plain"),
                  "upstreams": ["rsync://up.example/debian/"]}})
    daemon = Daemon(load_config(path))
    try:
        for run_id, name in enumerate((snapshot_name(NOW, 1), snapshot_name(NOW + HOUR, 2)), 1):
            rows.add(daemon.store, "snap", name, "zfs", run_id, pre=False, created_at=NOW)
        rows.mark_published(daemon.store, "snap", snapshot_name(NOW, 1), NOW)
        rows.set_space_used(daemon.store, "snap", snapshot_name(NOW + HOUR, 2), 5 << 20)
        with TestClient(create_app(daemon), base_url="http://127.0.0.1:8118") as client:
            status = {r["mirror"]: r for r in client.get("/api/status").json()}
            assert status["snap"]["snapshots"] == {
                "count": 2, "space_used_bytes": 5 << 20,
                "newest": snapshot_name(NOW + HOUR, 2), "published": snapshot_name(NOW, 1)}
            assert status["plain"]["snapshots"] is None
            page = client.get("/mirrors/snap").text
            assert "2 snapshot(s), 5.0 MiB only they hold" in page
            assert snapshot_name(NOW, 1) in page
            assert "snapshot(s)" not in client.get("/mirrors/plain").text
    finally:
        daemon.close()


@privileged_test
def test_btrfs_snapshots_work_as_the_unprivileged_user_the_docs_name(
        shared: Path, accounts: Accounts, runnable_bin: Path, served: str,
        upstream: DebianLikeTree) -> None:
    # As docs/snapshots.md sets it up: the filesystem mounted with user_subvol_rm_allowed, a
    # directory on it owned by the service user, which makes the mirror's subvolume there
    # itself; then it syncs, keeps what retention says (deleting read-only snapshots) and
    # rolls back (moving its subvolume aside in that directory).
    svc = accounts.create("svc")
    with btrfs_mounted(shared, options="user_subvol_rm_allowed") as fs:
        mirrors = fs.mountpoint / "mirrors"
        dest = mirrors / "deb"
        www, state, logs = shared / "www", shared / "state", shared / "logs"
        for path in (mirrors, www, state, logs):
            path.mkdir()
            os.chown(path, svc.uid, svc.gid)
        made = as_user(svc, ["btrfs", "subvolume", "create", str(dest)])
        assert made.returncode == 0, made.stderr
        config = write_config(shared / "mk.toml", {"deb": {
            "profile": "debian", "dest": str(dest), "upstreams": [served],
            "retry_backoff": "0.1s", "delete_grace": "0s", "snapshots": "btrfs",
            "snapshot_before": True, "snapshot_keep_hourly": 1, "snapshot_keep_daily": 0,
            "snapshot_keep_weekly": 0, "publish": "snapshot",
            "publish_path": str(www / "debian")}},
            {"state_dir": str(state), "log_dir": str(logs)})
        config.chmod(0o644)

        def mk(*args: str) -> subprocess.CompletedProcess[str]:
            return as_user(svc, [str(runnable_bin / "mirrorkeeper"), "-c", str(config), *args])

        # Set up short of the guide, the check says what is missing before any sync.
        os.chown(mirrors, 0, 0)
        refused = mk("config", "check")
        assert refused.returncode == Exit.CONFIG
        assert f"{mirrors} is not writable by this user" in refused.stdout + refused.stderr
        os.chown(mirrors, svc.uid, svc.gid)
        checked = mk("config", "check")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        for _ in range(3):
            done = mk("sync", "deb", "--json")
            assert done.returncode == 0, done.stdout + done.stderr
            assert json.loads(done.stdout)["outcome"] == "success"
            upstream.mutate()
        shown = mk("snapshots", "deb", "--json")
        assert shown.returncode == 0, shown.stderr
        kept = json.loads(shown.stdout)
        # The published one and the one published before it (a reader may still be in it);
        # the first run's and every pre-run snapshot were deleted, read-only as they were.
        assert [s["run_id"] for s in kept] == [3, 2] and not any(s["pre"] for s in kept)
        views = mirrors / "deb.snapshots"
        assert sorted(p.name for p in views.iterdir()) == sorted(s["name"] for s in kept)
        back = mk("rollback", "deb", kept[1]["name"])
        assert back.returncode == 0, back.stdout + back.stderr
        assert tree_files(dest) == tree_files(views / kept[1]["name"])
        assert sorted(p.name for p in views.iterdir()) == sorted(s["name"] for s in kept)


@pytest.mark.slow
@privileged_test
def test_zfs_as_a_user_that_may_not_run_it_is_refused_with_the_fix(
        shared: Path, accounts: Accounts, runnable_bin: Path, served: str,
        zfs_daemon: None) -> None:
    # zfs-fuse answers root only (its socket is root's; it has no `zfs allow`). The check,
    # run as the service user, says so and how to delegate on OpenZFS, before any sync.
    svc = accounts.create("svc")
    with zfs_pool(shared) as fs:
        dest = fs.make_dest("deb")
        os.chown(dest, svc.uid, svc.gid)
        for name in ("state", "logs"):
            (shared / name).mkdir()
            os.chown(shared / name, svc.uid, svc.gid)
        config = write_config(shared / "mk.toml", {"deb": {
            "profile": "debian", "dest": str(dest), "upstreams": [served],
            "snapshots": "zfs"}}, {"state_dir": str(shared / "state"),
                                  "log_dir": str(shared / "logs")})
        config.chmod(0o644)
        checked = as_user(svc, [str(runnable_bin / "mirrorkeeper"), "-c", str(config),
                                "config", "check"])
        said = checked.stdout + checked.stderr
        assert checked.returncode == Exit.CONFIG, said
        assert "this user may not run zfs" in said and "zfs allow" in said, said
        assert "Traceback" not in said
