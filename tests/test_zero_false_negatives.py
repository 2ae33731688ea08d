"""The mirror is never silently wrong, against real rsync daemons on 127.0.0.1.

- a few unreadable upstream files do not stop deletions (rsync's own --delete would skip them
  all, forever); an unreadable upstream directory never gets its mirrored files deleted;
- deletions that cannot run safely are a warning at once and critical when they persist;
- files the upstream dropped stay for ``delete_grace``; the update signal comes last;
- a publish during stage 1 runs stage 1 again; an upstream mid-update (ftpsync's marker) is
  waited for, then left for the next upstream.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mirrorkeeper.classify.findings import Severity
from mirrorkeeper.demo.rsyncd import Module, RsyncDaemon
from mirrorkeeper.demo.tree import DebianLikeTree
from mirrorkeeper.record import StageResult

from .conftest import CliResult, codes, sync_and_classify, tree_files

Daemons = Callable[[list[Module]], RsyncDaemon]


def unprivileged() -> dict[str, str]:
    """Module options that make `chmod 000` bite: root reads anything, so as root the module
    runs as `nobody`; as another user the daemon already is that user."""
    return {"uid": "nobody", "gid": "nogroup"} if os.geteuid() == 0 else {}


@pytest.mark.slow
def test_unreadable_upstream_files_do_not_stop_deletions(tmp_path: Path, public: Path,
                                                         rsyncd: Daemons) -> None:
    """The issue's case: 10 of ~20,000 files unreadable, then a publish drops 30 files."""
    tree = DebianLikeTree(public / "up", seed=9)
    tree.create(packages=10_000, min_size=10, max_size=40)
    denied = tree.pool_files()[:10]
    for rel in denied:
        (tree.root / rel).chmod(0)
    daemon = rsyncd([Module("debian", tree.root, unprivileged())])
    first, _ = sync_and_classify(tmp_path, [daemon.url("debian")])
    assert first.outcome == "success" and first.errors["permission_denied"] == 10
    change = tree.mutate(add=0, change=0, remove=30)
    assert set(change.removed).isdisjoint(denied)
    mirror = tmp_path / "mirror"
    assert all((mirror / rel).exists() for rel in change.removed)
    record, findings = sync_and_classify(tmp_path, [daemon.url("debian")])
    assert record.outcome == "success"
    # rsync said "IO error encountered -- skipping file deletion" to itself; we deleted anyway.
    assert not any((mirror / rel).exists() for rel in change.removed)
    assert record.files_deleted == 30 and record.deletions is not None
    assert record.deletions.skipped is None and record.deletions.kept == 0
    assert record.errors["permission_denied"] == 10  # files, not lines (both stages say so)
    assert codes(findings) == {"transfer.partial": Severity.INFO}


def test_an_unreadable_upstream_directory_never_loses_its_mirrored_files(
        tmp_path: Path, public: Path, rsyncd: Daemons) -> None:
    tree = DebianLikeTree(public / "up", seed=10)
    tree.create(packages=400)
    daemon = rsyncd([Module("debian", tree.root, unprivileged())])
    assert sync_and_classify(tmp_path, [daemon.url("debian")])[0].outcome == "success"
    change = tree.mutate(add=0, change=0, remove=5)
    hidden = tree.root / "pool/main/p/pkg00002"
    kept = sorted(str(p.relative_to(tree.root)) for p in hidden.iterdir())
    hidden.chmod(0)  # the daemon lists the directory but cannot open it: it looks empty
    try:
        record, findings = sync_and_classify(tmp_path, [daemon.url("debian")])
    finally:
        hidden.chmod(0o755)
    mirror = tmp_path / "mirror"
    assert record.outcome == "success"
    assert not any((mirror / rel).exists() for rel in change.removed)
    assert kept and all((mirror / rel).exists() for rel in kept)
    assert record.deletions is not None and record.deletions.protected == len(kept)
    assert record.files_deleted == 5
    assert codes(findings) == {"transfer.partial": Severity.INFO}


def test_deletions_that_cannot_run_warn_and_then_turn_critical(
        tmp_path: Path, public: Path, rsyncd: Daemons) -> None:
    tree = DebianLikeTree(public / "up", seed=11)
    tree.create(packages=1000, min_size=10, max_size=40)
    for rel in tree.pool_files()[:2]:
        (tree.root / rel).chmod(0)  # 2 of ~2,000: above this mirror's info ratio
    daemon = rsyncd([Module("debian", tree.root, unprivileged())])
    strict = {"failure_ratio_info": 0.0001, "deletions_skipped_critical_after": 2}
    assert sync_and_classify(tmp_path, [daemon.url("debian")], **strict)[0].outcome == "success"
    change = tree.mutate(add=0, change=0, remove=7)
    mirror = tmp_path / "mirror"
    second, findings = sync_and_classify(tmp_path, [daemon.url("debian")], **strict)
    assert second.outcome == "success"
    assert all((mirror / rel).exists() for rel in change.removed)  # kept: the list is doubted
    assert second.deletions is not None and second.deletions.kept == 7
    assert codes(findings)["transfer.deletions_skipped"] == Severity.WARNING
    _, findings = sync_and_classify(tmp_path, [daemon.url("debian")], **strict)
    assert codes(findings)["transfer.deletions_skipped"] == Severity.CRITICAL
    finding = next(f for f in findings if f.code == "transfer.deletions_skipped")
    assert finding.details["kept"] == 7 and finding.details["runs"] == 2
    assert "failure_ratio_info" in finding.summary


def test_dropped_files_wait_for_the_grace_then_go(tmp_path: Path, upstream: DebianLikeTree,
                                                  served: str,
                                                  mk: Callable[..., CliResult]) -> None:
    assert sync_and_classify(tmp_path, [served], delete_grace="3s")[0].outcome == "success"
    change = upstream.mutate(add=5, change=0, remove=6)
    mirror = tmp_path / "mirror"
    record, findings = sync_and_classify(tmp_path, [served], delete_grace="3s")
    assert record.outcome == "success" and findings == []
    assert all((mirror / rel).exists() for rel in change.removed)  # old index readers served
    assert all((mirror / rel).exists() for rel in change.added)
    assert record.deletions is not None and record.deletions.waiting == 6
    status = mk("-c", str(tmp_path / "mk.toml"), "status", "--json")
    assert status.json()[0]["pending_deletions"] == 6
    history = mk("-c", str(tmp_path / "mk.toml"), "history", "deb")
    assert "(+6 kept)" in history.out
    time.sleep(3.2)
    later, _ = sync_and_classify(tmp_path, [served], delete_grace="3s")
    assert later.files_deleted == 6 and later.deletions is not None
    assert later.deletions.kept == 0
    assert tree_files(mirror) == tree_files(upstream.root)
    assert mk("-c", str(tmp_path / "mk.toml"), "status", "--json").json()[0][
        "pending_deletions"] == 0


def test_the_update_signal_arrives_after_the_indexes(tmp_path: Path, upstream: DebianLikeTree,
                                                     served: str) -> None:
    sync_and_classify(tmp_path, [served])
    mirror = tmp_path / "mirror"
    old_trace = (mirror / "project/trace/master").read_bytes()
    upstream.mutate()
    seen: dict[str, bytes] = {}

    def on_stage(result: StageResult) -> None:
        seen[result.name] = (mirror / "project/trace/master").read_bytes()

    record, _ = sync_and_classify(tmp_path, [served], on_stage=on_stage)
    assert record.outcome == "success"
    new_trace = (upstream.root / "project/trace/master").read_bytes()
    assert new_trace != old_trace
    # After stage 2 the new indexes are served, and the signal still says the old publish;
    # it was fetched after stage 1, outside the mirror, and is put in place last of all.
    assert seen == {"stage1": old_trace, "signal": old_trace, "stage2": old_trace}
    assert (mirror / "project/trace/master").read_bytes() == new_trace


def test_a_publish_during_stage_1_runs_stage_1_again(tmp_path: Path, upstream: DebianLikeTree,
                                                     served: str) -> None:
    sync_and_classify(tmp_path, [served])
    upstream.mutate()
    changes = []

    def on_stage(result: StageResult) -> None:
        if result.name == "stage1" and not changes:  # the upstream publishes again meanwhile
            changes.append(upstream.mutate(add=40, change=5, remove=10))

    record, _ = sync_and_classify(tmp_path, [served], on_stage=on_stage)
    assert record.outcome == "success"
    assert [s.name for s in record.stages] == ["stage1", "signal", "stage1", "signal", "stage2"]
    # Stage 2 brought indexes only: every pool file of the second publish came in stage 1.
    assert record.stages[-1].files_transferred == 8 + 2
    assert tree_files(tmp_path / "mirror") == tree_files(upstream.root)


def test_an_upstream_mid_update_is_waited_for(tmp_path: Path, upstream: DebianLikeTree,
                                              served: str) -> None:
    sync_and_classify(tmp_path, [served])
    upstream.mutate()
    marker = upstream.root / "Archive-Update-in-Progress-upstream.example"
    marker.write_text("syncing\n")

    def on_stage(result: StageResult) -> None:
        if result.name == "stage1" and marker.exists():
            marker.unlink()  # the upstream finishes while we wait

    record, findings = sync_and_classify(tmp_path, [served], on_stage=on_stage,
                                         upstream_busy_wait="0.1s")
    assert record.outcome == "success" and findings == []
    assert [s.name for s in record.stages] == ["stage1", "stage1", "signal", "stage2"]
    assert not (tmp_path / "mirror" / marker.name).exists()
    assert tree_files(tmp_path / "mirror") == tree_files(upstream.root)


def test_an_upstream_that_stays_mid_update_is_left_for_the_next(
        tmp_path: Path, upstream: DebianLikeTree, served: str, rsyncd: Daemons) -> None:
    busy = DebianLikeTree(tmp_path / "busy", seed=3)
    busy.create(packages=300)
    (busy.root / "Archive-Update-in-Progress-upstream.example").write_text("syncing\n")
    other = rsyncd([Module("debian", busy.root)]).url("debian")
    record, findings = sync_and_classify(tmp_path, [other, served], upstream_busy_wait="0.1s",
                                         upstream_busy_retries=1)
    assert record.outcome == "success" and record.upstream == served
    assert [(a.upstream, a.code) for a in record.attempts] == [
        (other, "upstream.busy"), (served, None)]
    assert codes(findings) == {"upstream.busy": Severity.WARNING}
    only_busy, findings = sync_and_classify(tmp_path, [other], upstream_busy_wait="0.1s",
                                            upstream_busy_retries=1)
    assert only_busy.outcome == "failed" and only_busy.skipped == ("stage2",)
    assert codes(findings) == {"upstream.busy": Severity.ERROR}
