"""Whole runs against a real rsync daemon on 127.0.0.1: stats, two-stage order, deletions."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from mirrorkeeper.config.load import load_config
from mirrorkeeper.demo.tree import DebianLikeTree
from mirrorkeeper.logs import logger, setup_event_log
from mirrorkeeper.plan.argv import COMMON_OPTIONS, RSYNC_ENV
from mirrorkeeper.record import RunRecord, StageResult
from mirrorkeeper.store import Store
from mirrorkeeper.sync.run import sync_mirror

from .conftest import (
    OWN_FILES,
    OWN_TRACE,
    TEST_HOSTNAME,
    CliResult,
    tree_files,
    write_config,
)

#: ftpsync's chain file: the upstream may bring it; stage 2 never deletes ours.
HIERARCHY_MIRROR = "project/trace/_hierarchy.mirror"

RUN_FIELDS = {"mirror", "run_id", "started_at", "finished_at", "duration_seconds",
              "bytes_transferred", "size_bytes", "bitrate_bps", "files_total",
              "files_transferred", "files_deleted", "files_failed", "errors", "exit_code",
              "upstream", "outcome", "stages", "log_path"}


def sync_once(config_path: Path, name: str = "deb",
              on_line: Callable[[str, str, str], None] | None = None,
              on_stage: Callable[[StageResult], None] | None = None) -> RunRecord:
    config = load_config(config_path)
    store = Store.open(config.settings.state_dir)
    try:
        return sync_mirror(config, config.mirrors[name], store, on_line=on_line,
                           on_stage=on_stage)
    finally:
        store.close()


def reference_stats(source: str, dest: Path) -> dict[str, int]:
    """What bare rsync reports for the same update, in one stage, on a copy of the mirror."""
    own = [f"--exclude=/{path}" for path in sorted(OWN_FILES - {HIERARCHY_MIRROR})]
    out = subprocess.run(["rsync", *COMMON_OPTIONS, "--delete-after", *own,
                          f"--filter=P /{HIERARCHY_MIRROR}", source, f"{dest}/"],
                         env=RSYNC_ENV, capture_output=True, text=True, check=True).stdout
    def grab(label: str) -> int:
        match = re.search(rf"^{label}: ([\d,]+)", out, re.MULTILINE)
        assert match, label
        return int(match.group(1).replace(",", ""))
    return {"files_total": grab("Number of files"),
            "files_transferred": grab("Number of regular files transferred"),
            "files_deleted": grab("Number of deleted files"),
            "size_bytes": grab("Total file size")}


def test_first_full_sync(tmp_path: Path, mirror_config: Path, upstream: DebianLikeTree,
                         served: str) -> None:
    twin = tmp_path / "twin"
    expected = reference_stats(served, twin)
    record = sync_once(mirror_config)
    assert record.outcome == "success" and record.exit_code == 0
    assert tree_files(tmp_path / "mirror") == tree_files(upstream.root)
    # The update signal is fetched after stage 1 (to staging) and put in place after stage 2.
    assert [s.name for s in record.stages] == ["stage1", "signal", "stage2"]
    assert {k: getattr(record, k) for k in expected} == expected
    assert record.files_failed == 0 and record.errors == {}
    assert record.bytes_transferred > record.size_bytes  # payload plus protocol
    assert record.bitrate_bps > 0 and record.duration_seconds > 0


def test_no_change_sync_transfers_nothing(mirror_config: Path) -> None:
    sync_once(mirror_config)
    record = sync_once(mirror_config)
    assert record.outcome == "success"
    assert (record.files_transferred, record.files_deleted, record.files_failed) == (0, 0, 0)
    assert record.files_total > 600


def test_update_stats_equal_what_rsync_reports(tmp_path: Path, mirror_config: Path,
                                               upstream: DebianLikeTree, served: str) -> None:
    sync_once(mirror_config)
    change = upstream.mutate(add=20, change=10, remove=15)
    twin = tmp_path / "twin"
    shutil.copytree(tmp_path / "mirror", twin, symlinks=True)
    expected = reference_stats(served, twin)
    record = sync_once(mirror_config)
    assert record.outcome == "success"
    assert {k: getattr(record, k) for k in expected} == expected
    assert record.files_deleted == len(change.removed) == 15
    # 20 new + 10 changed .deb, 8 Packages(.gz), Release, InRelease, the trace file.
    assert record.files_transferred == 20 + 10 + 8 + 2 + 1
    assert tree_files(tmp_path / "mirror") == tree_files(upstream.root)


def test_two_stage_order(tmp_path: Path, mirror_config: Path, upstream: DebianLikeTree) -> None:
    """No index arrives before the pool files it lists; nothing is deleted before stage 2."""
    mirror = tmp_path / "mirror"
    sync_once(mirror_config)
    old_release = (mirror / "dists/stable/Release").read_bytes()
    change = upstream.mutate(add=30, change=10, remove=20)
    seen: dict[str, int] = {"checks": 0}
    violations: list[str] = []

    indexes = [mirror / f"dists/stable/{c}/binary-{a}/Packages"
               for c in ("main", "contrib") for a in ("amd64", "arm64")]

    def listed_files_present() -> None:
        for packages in indexes:  # --delay-updates renames each into place atomically
            for line in packages.read_text().splitlines():
                if line.startswith("Filename: ") and not (mirror / line[10:]).exists():
                    violations.append(f"{packages} lists missing {line[10:]}")

    def on_line(stage: str, _stream: str, line: str) -> None:
        seen["checks"] += 1
        if seen["checks"] % 25 == 0:  # rsync waits while we look (the pipe fills up)
            listed_files_present()
        if line.startswith("*deleting"):
            assert stage == "stage2", line

    def on_stage(result: StageResult) -> None:
        if result.name == "stage1":
            # Between the stages: new pool files are in, indexes and removals untouched.
            seen["between"] = 1
            assert all((mirror / rel).exists() for rel in change.added)
            assert all((mirror / rel).exists() for rel in change.removed)
            assert (mirror / "dists/stable/Release").read_bytes() == old_release
            listed_files_present()

    record = sync_once(mirror_config, on_line=on_line, on_stage=on_stage)
    listed_files_present()
    assert "between" in seen and violations == []
    assert record.stages[0].files_deleted == 0
    assert record.files_deleted == len(change.removed)  # after stage 2, by Mirrorkeeper
    assert record.stages[-1].files_transferred == 8 + 2  # only the indexes were held back
    assert not any((mirror / rel).exists() for rel in change.removed)


def test_single_stage_profile(tmp_path: Path, served: str, upstream: DebianLikeTree) -> None:
    path = write_config(tmp_path / "mk.toml", {"deb": {
        "profile": "kernel", "dest": str(tmp_path / "mirror"), "upstreams": [served],
        "stage2": []}})
    record = sync_once(path)
    assert [s.name for s in record.stages] == ["single"] and record.outcome == "success"
    assert tree_files(tmp_path / "mirror") == tree_files(upstream.root)


def test_every_rsync_line_is_in_the_run_log(mirror_config: Path, tmp_path: Path) -> None:
    record = sync_once(mirror_config)
    log = Path(record.log_path).read_text().splitlines()
    assert log[0].endswith(f"# mirrorkeeper run {record.run_id} of deb (profile debian), "
                           f"upstreams in order: {record.upstream}")
    assert any(x.endswith(f"# attempt 1 from {record.upstream} (max-delete 40000)") for x in log)
    received = [x for x in log if re.match(r"^\S+ out >f", x)]
    assert len(received) == record.files_transferred
    assert any(" out Number of files: " in x for x in log)
    assert any("# stage2: rsync " in x and "--delete-after" in x for x in log)
    events = [json.loads(x) for x in (tmp_path / "logs" / "events.jsonl").read_text().splitlines()]
    ends = [e for e in events if e["event"] == "run.end"]
    assert ends[-1]["mirror"] == "deb" and ends[-1]["run_id"] == record.run_id
    assert ends[-1]["files_transferred"] == record.files_transferred
    assert [e["stage"] for e in events if e["event"] == "stage.start"] == [
        "stage1", "signal", "stage2"]


def test_run_logs_are_pruned(tmp_path: Path, served: str) -> None:
    path = write_config(tmp_path / "mk.toml", {"deb": {
        "profile": "debian", "dest": str(tmp_path / "mirror"), "upstreams": [served]}},
        global_={"keep_run_logs": 2})
    records = [sync_once(path) for _ in range(3)]
    logs = sorted((tmp_path / "logs" / "runs" / "deb").iterdir())
    assert [p.name for p in logs] == sorted(Path(r.log_path).name for r in records[1:])


def test_old_run_logs_are_compressed_and_readable(tmp_path: Path, served: str,
                                                  mk: Callable[..., CliResult]) -> None:
    path = write_config(tmp_path / "mk.toml", {"deb": {
        "profile": "debian", "dest": str(tmp_path / "mirror"), "upstreams": [served]}})
    records = [sync_once(path) for _ in range(7)]
    names = sorted(p.name for p in (tmp_path / "logs" / "runs" / "deb").iterdir())
    assert sum(n.endswith(".log.gz") for n in names) == 2  # all but the newest five
    oldest = mk("-c", str(path), "logs", "deb", "--run", str(records[0].run_id))
    assert oldest.code == 0
    assert f"# mirrorkeeper run {records[0].run_id} of deb" in oldest.out
    assert " out Number of files: " in oldest.out
    newest = mk("-c", str(path), "logs", "deb")
    assert f"# mirrorkeeper run {records[-1].run_id} of deb" in newest.out
    assert mk("-c", str(path), "logs", "deb", "--run", "999").code == 64


def test_cli_sync_status_history_json(mirror_config: Path, mk: Callable[..., CliResult]) -> None:
    cfg = str(mirror_config)
    before = mk("-c", cfg, "status", "--json").json()
    assert before[0]["state"] == "never synced" and before[0]["last_success_at"] is None
    synced = mk("-c", cfg, "sync", "deb", "--json")
    assert synced.code == 0, synced.err
    run = synced.json()
    assert set(run) >= RUN_FIELDS
    assert run["outcome"] == "success" and run["stages"][-1]["name"] == "stage2"
    status = mk("-c", cfg, "status", "--json").json()[0]
    assert RUN_FIELDS | {"state", "progress_percent", "last_success_at"} <= set(status)
    assert status["state"] == "idle" and status["progress_percent"] is None
    assert status["last_success_at"] == run["finished_at"]
    assert status["files_total"] == run["files_total"]
    mk("-c", cfg, "sync", "--all", "--quiet")
    history = mk("-c", cfg, "history", "deb", "--json", "--limit", "5").json()
    assert [h["run_id"] for h in history] == [run["run_id"] + 1, run["run_id"]]
    assert history[0]["files_transferred"] == 0
    table = mk("-c", cfg, "sync", "deb")
    assert "deb — run" in table.out and "files transferred" in table.out


def test_unreachable_upstream_fails_and_skips_stage2(tmp_path: Path) -> None:
    path = write_config(tmp_path / "mk.toml", {"deb": {
        "profile": "debian", "dest": str(tmp_path / "mirror"), "retry_backoff": "0.2s",
        "upstreams": ["rsync://127.0.0.1:9/debian/"]}})
    record = sync_once(path)
    assert record.outcome == "failed" and record.exit_code == 10
    # The update-signal probe already fails; it is retried once, then the run gives up.
    assert [(a.stage, a.category, a.code) for a in record.attempts] == [
        ("preflight", "transient", "upstream.unreachable")] * 2
    assert record.stages == () and record.skipped == ("stage1", "stage2")
    assert not (tmp_path / "mirror" / "pool").exists()


def test_unusable_destination_is_reported(tmp_path: Path, served: str) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    path = write_config(tmp_path / "mk.toml", {"deb": {
        "profile": "debian", "dest": str(blocker / "mirror"), "upstreams": [served]}})
    record = sync_once(path)
    assert record.outcome == "failed"
    assert record.stages[0].start_error is not None
    assert "cannot create destination" in record.stages[0].start_error
    assert blocker.read_text() == "not a directory"


def test_missing_rsync_binary(tmp_path: Path, served: str, mk: Callable[..., CliResult]) -> None:
    path = write_config(tmp_path / "mk.toml", {"deb": {
        "profile": "debian", "dest": str(tmp_path / "mirror"), "upstreams": [served]}},
        global_={"rsync": str(tmp_path / "no-rsync")})
    result = mk("-c", str(path), "sync", "deb", "--json")
    assert result.code == 1
    attempt = result.json()["attempts"][0]
    assert attempt["code"] == "local.rsync_missing" and attempt["category"] == "local"
    assert attempt["reason"].startswith(f"cannot run {tmp_path / 'no-rsync'}")
    assert len(result.json()["attempts"]) == 1  # a local problem is not retried


@pytest.mark.slow
def test_demo_command(tmp_path: Path, mk: Callable[..., CliResult]) -> None:
    result = mk("demo", "--workdir", str(tmp_path / "demo"), "--packages", "60")
    assert result.code == 0, result.out + result.err
    assert "FAIL" not in result.out
    refused = mk("demo", "--workdir", str(tmp_path))  # not made by the demo: never wiped
    assert refused.code != 0 and (tmp_path / "demo").exists()


def test_trace_file_written_after_success_and_kept_by_later_syncs(
        tmp_path: Path, mirror_config: Path, upstream: DebianLikeTree) -> None:
    """ftpsync's trace: first line `date -u`, then fields; stage 2 must never delete it."""
    sync_once(mirror_config)
    trace = tmp_path / "mirror" / OWN_TRACE
    lines = trace.read_text().splitlines()
    assert re.match(r"^\w{3} \w{3} +\d+ \d\d:\d\d:\d\d UTC \d{4}$", lines[0])
    fields = dict(line.split(": ", 1) for line in lines[1:])
    assert fields["Running on host"] == TEST_HOSTNAME
    assert fields["Upstream-mirror"] == "127.0.0.1"  # the host, as ftpsync writes RSYNC_HOST
    assert fields["Archive serial"] == str(upstream.serial)  # copied from project/trace/master
    assert int(fields["Total bytes received in rsync"]) > 0
    upstream.mutate(add=3, change=0, remove=3)
    second = sync_once(mirror_config)
    assert second.outcome == "success" and second.files_deleted == 3
    later = dict(line.split(": ", 1) for line in trace.read_text().splitlines()[1:])
    assert later["Archive serial"] == str(upstream.serial) != fields["Archive serial"]


def test_no_trace_after_a_failed_sync(tmp_path: Path) -> None:
    config = write_config(tmp_path / "mirrorkeeper.toml", {"deb": {
        "profile": "debian", "dest": str(tmp_path / "mirror"),
        "upstreams": [str(tmp_path / "missing") + "/"], "attempts_per_upstream": 1}})
    record = sync_once(config)
    assert record.outcome == "failed"
    assert not (tmp_path / "mirror" / OWN_TRACE).exists()


def test_an_event_sent_to_a_replaced_event_log_goes_to_the_new_one(tmp_path: Path) -> None:
    # A thread still holding the old handler (a run of the previous config) must neither
    # reopen the old file, which nothing would close again, nor lose the event.
    setup_event_log(tmp_path / "old")
    (old,) = [h for h in logger.handlers if isinstance(h, logging.FileHandler)]
    setup_event_log(tmp_path / "new")
    old.handle(logger.makeRecord("mirrorkeeper", logging.INFO, __file__, 0, "late.event", (),
                                 None, extra={"event": "late.event", "fields": {}}))
    assert old.stream is None  # not reopened
    assert "late.event" in (tmp_path / "new" / "events.jsonl").read_text()
    assert "late.event" not in (tmp_path / "old" / "events.jsonl").read_text()
