"""Real faults on real rsync daemons on 127.0.0.1: what each one becomes, and that the mirror
is never damaged. docs/alerting.md lists the same situations for admins."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from mirrorkeeper.classify.findings import Severity
from mirrorkeeper.classify.judge import classify_run
from mirrorkeeper.config.load import load_config
from mirrorkeeper.demo.rsyncd import Module, RsyncDaemon
from mirrorkeeper.demo.tree import DebianLikeTree
from mirrorkeeper.store import Store
from mirrorkeeper.sync.prefetch import ProbePrefetch
from mirrorkeeper.sync.run import sync_mirror

from .conftest import (
    OWN_TRACE,
    CliResult,
    codes,
    sync_and_classify,
    tree_files,
    wait_for,
    write_config,
)

root_only = pytest.mark.skipif(os.geteuid() != 0,
                               reason="needs root: the daemon module runs as `nobody`")

Daemons = Callable[[list[Module]], RsyncDaemon]


@root_only
def test_permission_denied_on_a_few_files_is_info(tmp_path: Path, public: Path,
                                                  rsyncd: Daemons) -> None:
    tree = DebianLikeTree(public / "up", seed=5)
    tree.create(packages=600)
    denied = tree.pool_files()[:1]
    for rel in denied:
        (tree.root / rel).chmod(0)
    daemon = rsyncd([Module("debian", tree.root, {"uid": "nobody", "gid": "nogroup"})])
    record, findings = sync_and_classify(tmp_path, [daemon.url("debian")])
    assert record.outcome == "success"  # stage 2 ran: 1 of ~2,400 is not worth stale indexes
    assert [s.name for s in record.stages] == ["stage1", "signal", "stage2"]
    assert record.files_failed == 1 and record.stages[-1].errors["permission_denied"] == 1
    assert record.errors["permission_denied"] == 1  # one file, though both stages say so
    assert codes(findings) == {"transfer.partial": Severity.INFO}
    assert findings[0].details["samples"][0].startswith("send_files failed to open")


@root_only
def test_permission_denied_on_most_files_is_critical_and_keeps_the_mirror(
        tmp_path: Path, public: Path, rsyncd: Daemons) -> None:
    tree = DebianLikeTree(public / "up", seed=5)
    tree.create(packages=200)
    daemon = rsyncd([Module("debian", tree.root, {"uid": "nobody", "gid": "nogroup"})])
    first, _ = sync_and_classify(tmp_path, [daemon.url("debian")])
    assert first.outcome == "success"
    change = tree.mutate(add=10, change=150, remove=30)
    before = tree_files(tmp_path / "mirror")
    for rel in change.changed[:120]:  # most changed files unreadable: they must be fetched
        (tree.root / rel).chmod(0)
    record, findings = sync_and_classify(tmp_path, [daemon.url("debian")])
    assert record.outcome == "partial" and record.exit_code == 23
    assert record.skipped == ("stage2",)  # no deletions, no new indexes
    assert codes(findings) == {"transfer.failure_ratio": Severity.CRITICAL}
    after = tree_files(tmp_path / "mirror")
    assert set(before) <= set(after)  # nothing deleted
    assert all(after[rel] == before[rel] for rel in change.changed[:120])  # old copies kept
    assert after["dists/stable/Release"] == before["dists/stable/Release"]


def test_files_vanishing_during_the_transfer(tmp_path: Path, rsyncd: Daemons) -> None:
    tree = DebianLikeTree(tmp_path / "up", seed=6)
    tree.create(packages=120)
    daemon = rsyncd([Module("debian", tree.root)])
    doomed = tree.pool_files()[-6:]  # transferred last
    path = write_config(tmp_path / "mk.toml", {"deb": {
        "profile": "debian", "dest": str(tmp_path / "mirror"),
        "upstreams": [daemon.url("debian")], "bwlimit": 400}})
    config = load_config(path)
    store = Store.open(config.settings.state_dir)

    def on_line(stage: str, _stream: str, line: str) -> None:
        if stage == "stage1" and line.startswith(">f") and (tree.root / doomed[0]).exists():
            for rel in doomed:
                (tree.root / rel).unlink()

    try:
        record = sync_mirror(config, config.mirrors["deb"], store, on_line=on_line)
    finally:
        store.close()
    assert record.stages[0].exit_code == 24 and record.outcome == "success"
    findings = classify_run(record, config.mirrors["deb"].settings)
    assert codes(findings)["transfer.vanished"] == Severity.INFO
    assert record.errors["vanished"] == len(doomed)


def test_unknown_module_falls_back_to_the_next_upstream(tmp_path: Path, served: str) -> None:
    wrong = served.replace("/debian/", "/nosuchmodule/")
    record, findings = sync_and_classify(tmp_path, [wrong, served])
    assert record.outcome == "success" and record.upstream == served
    assert [(a.upstream, a.category, a.code) for a in record.attempts] == [
        (wrong, "upstream", "upstream.module_missing"), (served, "ok", None)]
    assert codes(findings) == {"upstream.module_missing": Severity.WARNING}


def test_primary_down_fallback_up(tmp_path: Path, served: str) -> None:
    down = "rsync://127.0.0.1:9/debian/"
    record, findings = sync_and_classify(tmp_path, [down, served], attempts_per_upstream=2)
    assert record.outcome == "success"
    assert [a.category for a in record.attempts] == ["transient", "transient", "ok"]
    assert codes(findings) == {"upstream.unreachable": Severity.WARNING}
    # The next run starts with the upstream that worked (the failed one cools down).
    again, _ = sync_and_classify(tmp_path, [down, served])
    assert again.attempts[0].upstream == served and len(again.attempts) == 1


def test_all_upstreams_down(tmp_path: Path) -> None:
    record, findings = sync_and_classify(
        tmp_path, ["rsync://127.0.0.1:9/a/", "rsync://127.0.0.1:7/b/"], attempts_per_upstream=1)
    assert record.outcome == "failed" and len(record.attempts) == 2
    assert codes(findings) == {"upstream.unreachable": Severity.ERROR}
    assert findings[0].details["upstreams_tried"] == ["rsync://127.0.0.1:9/a/",
                                                      "rsync://127.0.0.1:7/b/"]


def test_wrong_password(tmp_path: Path, upstream: DebianLikeTree, rsyncd: Daemons) -> None:
    secrets = tmp_path / "rsyncd.secrets"
    secrets.write_text("mirror:right\n")
    secrets.chmod(0o600)
    daemon = rsyncd([Module("debian", upstream.root, {"auth users": "mirror",
                                                      "secrets file": str(secrets)})])
    password = tmp_path / "password"
    password.write_text("wrong\n")
    password.chmod(0o600)
    url = daemon.url("debian").replace("rsync://", "rsync://mirror@")
    record, findings = sync_and_classify(tmp_path, [url], password_file=str(password))
    assert record.outcome == "failed" and len(record.attempts) == 1  # not retried
    assert codes(findings) == {"upstream.auth": Severity.CRITICAL}
    password.write_text("right\n")
    good, _ = sync_and_classify(tmp_path, [url], password_file=str(password))
    assert good.outcome == "success"


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def test_stalled_upstream_is_caught_by_the_watchdog(tmp_path: Path, upstream: DebianLikeTree,
                                                   rsyncd: Daemons) -> None:
    daemon = rsyncd([Module("debian", upstream.root)])
    assert daemon.proc is not None
    stopped: list[int] = []
    path = write_config(tmp_path / "mk.toml", {"deb": {
        "profile": "debian", "dest": str(tmp_path / "mirror"), "upstreams": [daemon.url("debian")],
        "bwlimit": 300, "timeout": "2s", "no_output_timeout": "3s",
        "attempts_per_upstream": 1}})
    config = load_config(path)
    store = Store.open(config.settings.state_dir)

    def on_line(stage: str, _stream: str, line: str) -> None:
        if not stopped and line.startswith(">f"):
            for child in _children(daemon.proc.pid):  # type: ignore[union-attr]
                os.kill(child, signal.SIGSTOP)
                stopped.append(child)

    try:
        record = sync_mirror(config, config.mirrors["deb"], store, on_line=on_line)
    finally:
        store.close()
        for child in stopped:
            os.kill(child, signal.SIGKILL)
    assert stopped
    # rsync 3.2.7's own --timeout=2 did not fire against a stopped daemon child (it still
    # waited after 60 s); Mirrorkeeper's no-output watchdog stops it.
    assert record.outcome == "failed" and record.stages[0].stopped_by == "watchdog"
    assert record.errors["stalled"] == 1
    findings = classify_run(record, config.mirrors["deb"].settings)
    assert codes(findings) == {"upstream.timeout": Severity.ERROR}
    assert record.skipped == ("stage2",)


def test_disk_full_is_critical_and_not_retried(tmp_path: Path, served: str) -> None:
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(small)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        record, findings = sync_and_classify(tmp_path, [served], dest=str(small / "mirror"))
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)
    assert record.outcome in ("failed", "partial") and len(record.attempts) == 1
    assert codes(findings) == {"local.disk_full": Severity.CRITICAL}


def test_empty_upstream_never_wipes_the_mirror(tmp_path: Path, served: str,
                                               rsyncd: Daemons) -> None:
    first, _ = sync_and_classify(tmp_path, [served])
    assert first.outcome == "success"
    before = tree_files(tmp_path / "mirror")
    empty = tmp_path / "empty"
    empty.mkdir()
    daemon = rsyncd([Module("debian", empty)])
    record, findings = sync_and_classify(tmp_path, [daemon.url("debian")])
    assert record.outcome == "failed" and record.stages == ()
    assert codes(findings) == {"guard.upstream_empty": Severity.CRITICAL}
    assert daemon.url("debian") in findings[0].summary
    assert tree_files(tmp_path / "mirror") == before


def test_truncated_upstream_stops_before_stage2(tmp_path: Path, upstream: DebianLikeTree,
                                                served: str) -> None:
    sync_and_classify(tmp_path, [served])
    before = tree_files(tmp_path / "mirror")
    for rel in upstream.pool_files()[: len(upstream.pool_files()) // 2]:
        (upstream.root / rel).unlink()  # half the pool gone, signal file still there
    record, findings = sync_and_classify(tmp_path, [served])
    assert [s.name for s in record.stages] == ["stage1"] and record.skipped == ("stage2",)
    assert codes(findings) == {"guard.upstream_empty": Severity.CRITICAL}
    assert tree_files(tmp_path / "mirror") == before


def test_stale_upstream_never_rolls_back(tmp_path: Path, upstream: DebianLikeTree,
                                         served: str, rsyncd: Daemons) -> None:
    old_copy = tmp_path / "old"
    shutil.copytree(upstream.root, old_copy)  # yesterday's upstream, preserved mtimes
    upstream.mutate(add=5, change=5, remove=5)
    sync_and_classify(tmp_path, [served])
    before = tree_files(tmp_path / "mirror")
    behind = rsyncd([Module("debian", old_copy)]).url("debian")
    record, findings = sync_and_classify(tmp_path, [behind])
    assert codes(findings) == {"guard.upstream_stale": Severity.CRITICAL}
    assert tree_files(tmp_path / "mirror") == before
    # With a current upstream behind it, the stale one is skipped and the run succeeds.
    record, findings = sync_and_classify(tmp_path, [behind, served], upstream_cooldown=0)
    assert record.outcome == "success"
    assert codes(findings) == {"upstream.stale": Severity.WARNING}


def test_mass_delete_is_stopped_by_the_bound(tmp_path: Path, upstream: DebianLikeTree,
                                             served: str) -> None:
    """Single-stage profiles have no stage-1 count to compare: --max-delete is the guard."""
    single = {"stage2": [], "max_delete_min": 5, "max_delete_fraction": 0.001}
    first, _ = sync_and_classify(tmp_path, [served], **single)
    assert first.outcome == "success"
    removed = upstream.pool_files()[:40]
    for rel in removed:
        (upstream.root / rel).unlink()
    record, findings = sync_and_classify(tmp_path, [served], **single)
    assert record.outcome == "failed" and len(record.attempts) == 1  # no retry
    assert record.attempts[0].code == "guard.mass_delete"
    # Nothing at all is deleted past the bound (rsync's own --max-delete would stop after 5).
    assert record.files_deleted == 0
    assert record.deletions is not None and record.deletions.mass_delete
    assert codes(findings) == {"guard.mass_delete": Severity.CRITICAL}
    assert all((tmp_path / "mirror" / rel).exists() for rel in removed)


def test_fastest_strategy_probes_once_and_skips_the_dead_upstream(
        tmp_path: Path, upstream: DebianLikeTree, rsyncd: Daemons) -> None:
    daemon = rsyncd([Module("debian", upstream.root)])
    down = "rsync://127.0.0.1:9/debian/"
    record, findings = sync_and_classify(tmp_path, [down, daemon.url("debian")],
                                         upstream_strategy="fastest")
    assert record.outcome == "success" and findings == []
    assert [(a.upstream, a.category) for a in record.attempts] == [(daemon.url("debian"), "ok")]
    requests = daemon.log_path.read_text().count("] rsync on debian/")
    # The ranking probe (reused by the guard), the listing a new mirror's seeding decision
    # needs, stage 1, the signal file (fetched after stage 1, put in place after stage 2),
    # stage 2.
    assert requests == 5


def test_a_dry_run_is_never_recorded_as_a_success(tmp_path: Path, served: str,
                                                  mk: Callable[..., CliResult]) -> None:
    """The issue: rsync_options = ["-nv"] passed config check, and every run was a `success`
    that copied nothing and wrote the trace. config check refuses -n now; here it is injected
    behind Mirrorkeeper's back (a wrapper set as `rsync`, as an admin might) to show that the
    parser fails closed on its own."""
    wrapper = tmp_path / "rsync-dry"
    wrapper.write_text('#!/bin/sh\nexec rsync -n "$@"\n')
    wrapper.chmod(0o755)
    path = str(write_config(tmp_path / "mk.toml", {"deb": {
        "profile": "debian", "dest": str(tmp_path / "mirror"), "upstreams": [served]}},
        global_={"rsync": str(wrapper)}))
    assert mk("-c", path, "config", "check").code == 0
    result = mk("-c", path, "sync", "deb", "--json")
    assert result.code == 1, result.err
    run = result.json()
    assert run["outcome"] == "failed"
    assert [a["code"] for a in run["attempts"]] == ["internal.dry_run"]  # no retry: it can't help
    assert [s["name"] for s in run["stages"]] == ["stage1"]  # stage 2 never ran
    assert run["files_transferred"] == 0  # what rsync *would* have copied is not claimed
    assert tree_files(tmp_path / "mirror") == {}
    assert not (tmp_path / "mirror" / OWN_TRACE).exists()
    history = mk("-c", path, "history", "deb", "--json").json()
    assert [h["outcome"] for h in history] == ["failed"]
    status = mk("-c", path, "status", "--json").json()[0]
    assert status["last_success_at"] is None
    alerts = mk("-c", path, "alerts", "list", "--json").json()
    assert [(a["code"], a["severity"]) for a in alerts] == [("internal.dry_run", "critical")]
    assert "(DRY RUN)" in alerts[0]["summary"]


def test_output_without_its_stats_is_not_a_success(tmp_path: Path, served: str,
                                                   mk: Callable[..., CliResult]) -> None:
    """A wrapper that adds -q: rsync copies stage 1 and exits 0 but prints nothing the parser
    asked for. Fail closed: no success, no stage 2, no trace. (No update signal: the probe's
    own empty listing would already fail the attempt before any stage.)"""
    wrapper = tmp_path / "rsync-quiet"
    wrapper.write_text('#!/bin/sh\nexec rsync -q "$@"\n')
    wrapper.chmod(0o755)
    path = str(write_config(tmp_path / "mk.toml", {"deb": {
        "profile": "debian", "dest": str(tmp_path / "mirror"), "upstreams": [served],
        "update_signal": ""}},
        global_={"rsync": str(wrapper)}))
    run = mk("-c", path, "sync", "deb", "--json").json()
    assert run["outcome"] == "failed"
    assert [(a["code"], a["exit_code"]) for a in run["attempts"]] == [
        ("internal.output_mismatch", 0)]
    assert "no --stats block" in run["attempts"][0]["reason"]
    assert [s["name"] for s in run["stages"]] == ["stage1"]
    assert not (tmp_path / "mirror" / OWN_TRACE).exists()
    alerts = mk("-c", path, "alerts", "list", "--json").json()
    assert [(a["code"], a["severity"]) for a in alerts] == [("internal.output_mismatch", "error")]


def test_a_prefetched_probe_is_used_once_and_still_guards(
        tmp_path: Path, upstream: DebianLikeTree, served: str, rsyncd: Daemons) -> None:
    """``sync`` starts the signal probe before the store is open: the run uses that probe in
    place of its own (the upstream is gone by the time the run checks it, yet the run refuses
    it as stale, which only the prefetched answer can say), and the guard holds on it."""
    old_copy = tmp_path / "old"
    shutil.copytree(upstream.root, old_copy)
    upstream.mutate(add=5, change=5, remove=5)
    sync_and_classify(tmp_path, [served])
    behind_daemon = rsyncd([Module("debian", old_copy)])
    behind = behind_daemon.url("debian")
    config = load_config(write_config(tmp_path / "mk.toml", {"deb": {
        "profile": "debian", "dest": str(tmp_path / "mirror"), "upstreams": [behind, served],
        "retry_backoff": "0.1s", "delete_grace": "0s", "upstream_cooldown": "0s"}}))
    mirror = config.mirrors["deb"]
    prefetch = ProbePrefetch(config, mirror)
    assert prefetch.upstreams() == (behind,)  # "ordered": the first upstream only
    wait_for(prefetch.done, timeout=20, what="the prefetched probe")
    behind_daemon.stop()
    store = Store.open(config.settings.state_dir)
    try:
        record = sync_mirror(config, mirror, store, prefetch=prefetch)
    finally:
        store.close()
    assert prefetch.take(behind) is None  # taken by the run, once
    assert [(a.upstream, a.code) for a in record.attempts] == [
        (behind, "upstream.stale"), (served, None)]
    assert record.outcome == "success"
