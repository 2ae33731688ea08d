"""The pure core: planning argv, estimating progress, judging outcomes; and the store schema."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from mirrorkeeper.config.spec import MirrorSpec, SyncSettings
from mirrorkeeper.plan import build_plan, max_delete_bound
from mirrorkeeper.record import RunRecord, StageResult
from mirrorkeeper.record.progress import estimate, stage_weights
from mirrorkeeper.rsync.parse import Progress
from mirrorkeeper.store import Store
from mirrorkeeper.store.schema import metadata

SETTINGS = SyncSettings(upstreams=("rsync://up.example.org/debian",),
                        stage1_include=("by-hash/",), stage2=("Packages*", "Release*"),
                        excludes=("/dists/sid/",), rsync_options=("--sparse",), bwlimit=900,
                        timeout=120, contimeout=30)


def mirror(settings: SyncSettings = SETTINGS) -> MirrorSpec:
    return MirrorSpec(name="deb", profile="debian", dest="/srv/deb", enabled=True,
                      settings=settings)


def test_stage1_holds_back_indexes_and_never_deletes() -> None:
    plan = build_plan(mirror(), SETTINGS.upstreams[0], last_files_total=50_000)
    stage1, stage2 = plan.stages
    assert stage1.argv[0] == "rsync" and not stage1.deletes
    assert not any(a.startswith(("--del", "--max-delete")) for a in stage1.argv)
    assert stage1.argv[-2:] == ("rsync://up.example.org/debian/", "/srv/deb/")
    filters = [a for a in stage1.argv if a.startswith(("--include=", "--exclude="))]
    # Includes come before the excludes they punch holes in; rsync's first match wins.
    assert filters == ["--exclude=.~tmp~/", "--exclude=/dists/sid/", "--include=by-hash/",
                       "--exclude=Packages*", "--exclude=Release*"]
    for option in ("--timeout=120", "--contimeout=30", "--bwlimit=900", "--sparse",
                   "--safe-links", "--hard-links", "--numeric-ids", "--no-motd", "--stats"):
        assert option in stage1.argv and option in stage2.argv


def test_stage2_transfers_everything_and_lists_deletions() -> None:
    plan = build_plan(mirror(), SETTINGS.upstreams[0], last_files_total=50_000)
    stage2 = plan.stages[1]
    assert stage2.deletes and plan.max_delete == 5000
    # rsync lists what the upstream dropped and deletes nothing; plan_deletions bounds it.
    for option in ("--delete-after", "--delay-updates", "--max-delete=0", "--ignore-errors",
                   "--debug=DEL2"):
        assert option in stage2.argv
    assert "--exclude=Packages*" not in stage2.argv
    assert "--exclude=/dists/sid/" in stage2.argv  # admin excludes hold in every stage


def test_single_stage_and_local_sources() -> None:
    plan = build_plan(mirror(SyncSettings(upstreams=("/srv/staging",))), "/srv/staging")
    assert [s.name for s in plan.stages] == ["single"]
    assert "--delete-after" in plan.stages[0].argv
    assert not any(a.startswith("--contimeout") for a in plan.stages[0].argv)


def test_max_delete_bound() -> None:
    s = SyncSettings(max_delete_fraction=0.1, max_delete_min=1000)
    assert max_delete_bound(s, None) == 1000
    assert max_delete_bound(s, 5_000) == 1000
    assert max_delete_bound(s, 123_456) == 12_346


def test_progress_uses_history_while_the_file_list_grows() -> None:
    weights = stage_weights(2, None)
    growing = Progress(1000, 80, 1e6, 5, to_check=200, total_known=1000, incremental=True)
    live = estimate(growing, stage="stage1", stage_index=0, stage_count=2, elapsed_seconds=10,
                    last_files_total=4000, weights=weights)
    # 800 of an expected 4000 files, in a stage worth 85%: 17%, not rsync's 80%.
    assert live.percent == 17.0 and live.files_expected == 4000
    assert live.eta_seconds is not None and 45 < live.eta_seconds < 50
    final = Progress(10, 100, 0, 1, to_check=0, total_known=4000, incremental=False)
    stage2 = estimate(final, stage="stage2", stage_index=1, stage_count=2, elapsed_seconds=1,
                      last_files_total=None, weights=weights)
    assert stage2.percent == 99.9  # never 100 while rsync still runs
    assert estimate(None, stage="stage1", stage_index=0, stage_count=2, elapsed_seconds=0,
                    last_files_total=None, weights=weights).percent == 0.0


def test_stage_weights_follow_the_last_run() -> None:
    assert stage_weights(1, None) == (1.0,)
    assert stage_weights(2, None) == (0.85, 0.15000000000000002)
    w = stage_weights(2, (90.0, 10.0))
    assert round(w[0], 2) == 0.9 and round(sum(w), 6) == 1


def test_run_record_totals() -> None:
    a = StageResult("stage1", (), 100.0, 108.0, 0, bytes_sent=100, bytes_received=9_900,
                    size_bytes=500, files_total=40, files_transferred=7, errors={"vanished": 1})
    b = StageResult("stage2", (), 108.0, 110.0, 23, bytes_sent=50, bytes_received=950,
                    size_bytes=600, files_total=45, files_transferred=2, files_deleted=3,
                    files_failed=1, errors={"vanished": 1, "permission_denied": 1})
    r = RunRecord(1, "deb", "u", 100.0, 110.0, "partial", stages=(a, b))
    assert (r.duration_seconds, r.bytes_transferred, r.bitrate_bps) == (10.0, 11_000, 8_800.0)
    assert (r.size_bytes, r.files_total, r.files_transferred) == (600, 45, 9)
    assert (r.files_deleted, r.files_failed, r.exit_code) == (3, 1, 23)
    # Per-file kinds count files (stage 2 retries what stage 1 failed), not lines.
    assert r.errors == {"permission_denied": 1, "vanished": 1}


def test_migrations_build_exactly_the_declared_schema(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        mode = conn.execute(sa.text("PRAGMA journal_mode")).scalar()
    assert mode == "wal"
    store.close()
    Store.open(tmp_path).close()  # opening a migrated store again changes nothing


def test_head_revision_constant_matches_the_migrations() -> None:
    from importlib import resources

    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from mirrorkeeper.store.store import HEAD_REVISION

    cfg = Config()
    cfg.set_main_option("script_location",
                        str(resources.files("mirrorkeeper.store") / "migrations"))
    assert ScriptDirectory.from_config(cfg).get_current_head() == HEAD_REVISION


def test_judging_stages() -> None:
    from mirrorkeeper.classify.judge import judge_stage

    s = SyncSettings(failure_ratio_warning=0.01)

    def verdict(code: int | None, **kw: object) -> tuple[str, str | None]:
        stage = StageResult("stage1", (), 0.0, 1.0, code, **kw)  # type: ignore[arg-type]
        v = judge_stage(stage, s, None)
        return v.category, v.code

    assert verdict(0) == ("ok", None) and verdict(24) == ("ok", "transfer.vanished")
    assert verdict(23, files_failed=1, files_total=1000) == ("ok", "transfer.partial")
    assert verdict(23, files_failed=50, files_total=1000) == ("upstream",
                                                             "transfer.failure_ratio")
    assert verdict(23, files_failed=3, files_total=1000, errors={"local_permission": 3}) == (
        "local", "local.not_writable")
    assert verdict(11, errors={"no_space": 1}) == ("local", "local.disk_full")
    assert verdict(10) == ("transient", "upstream.unreachable")
    assert verdict(30) == ("transient", "upstream.timeout")
    assert verdict(5, errors={"module_missing": 1}) == ("upstream", "upstream.module_missing")
    assert verdict(5, errors={"auth": 1}) == ("upstream", "upstream.auth")
    assert verdict(25) == ("guard", "guard.mass_delete")
    assert verdict(-15, stopped_by="signal") == ("interrupted", "run.interrupted")
    assert verdict(-15, stopped_by="watchdog") == ("transient", "upstream.timeout")
    assert verdict(None, start_error="cannot run rsync: no such program") == (
        "local", "local.rsync_missing")
    assert verdict(42) == ("internal", "internal.error")  # unknown: fail closed
