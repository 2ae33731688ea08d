"""The scheduler's pure parts: cron, next run with jitter, the tick planner; and the web's pure
parts: tunasync/MirrorZ formats, downsampling, sparklines."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mirrorkeeper.config.load import load_config
from mirrorkeeper.config.problems import ConfigError
from mirrorkeeper.config.schedule import parse_schedule
from mirrorkeeper.plan.cron import Cron
from mirrorkeeper.plan.due import MirrorFacts, SignalSeen, jitter_offset, next_run, plan_tick
from mirrorkeeper.web import compat
from mirrorkeeper.web.graphs import downsample, sparkline

from .conftest import write_config

UTC = UTC
NOW = datetime(2026, 11, 25, 8, 30, tzinfo=UTC).timestamp()
HOUR = 3600.0


def at(*fields: int) -> float:
    return datetime(*fields, tzinfo=UTC).timestamp()  # type: ignore[misc]


# -- cron ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("expr", "expected"), [
    ("15 */6 * * *", at(2026, 11, 25, 12, 15)),
    ("*/20 * * * *", at(2026, 11, 25, 8, 40)),
    ("0 3 * * 0", at(2026, 11, 29, 3, 0)),          # Sunday
    ("0 3 * * 7", at(2026, 11, 29, 3, 0)),          # 7 is Sunday too
    ("0 3 1 * 1", at(2026, 11, 30, 3, 0)),          # day 1 OR Monday: Monday the 30th first
    ("0 0 29 2 *", at(2028, 2, 29, 0, 0)),          # the next leap day
    ("30 8 25 11 *", at(2027, 11, 25, 8, 30)),      # strictly after now
    ("0-10/5 9 * * *", at(2026, 11, 25, 9, 0)),
])
def test_cron_next_firing(expr: str, expected: float) -> None:
    assert Cron.parse(tuple(expr.split())).next_after(NOW, UTC) == expected


def test_cron_that_never_fires_is_a_config_error(tmp_path: Path) -> None:
    config = write_config(tmp_path / "mk.toml", {"m": {
        "profile": "debian", "dest": str(tmp_path / "m"), "schedule": "0 0 30 2 *"}})
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert any(p.key == "mirrors.m.schedule" and "never comes" in p.message
               for p in caught.value.problems)


def test_daemon_and_web_sections_are_checked(tmp_path: Path) -> None:
    path = write_config(tmp_path / "mk.toml", {})
    path.write_text(path.read_text() + '\n[daemon]\nmax_parallel = 0\npoll_interval = "10s"\n'
                    'tick = "2s"\n[web]\nlisten = "localhost"\nsite_url = "https://x/"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    keys = {p.key for p in caught.value.problems}
    assert keys == {"daemon.max_parallel", "daemon.poll_interval", "web.listen", "web.site_url"}


# -- next run, jitter ------------------------------------------------------------------------------
def test_never_ran_is_due_now() -> None:
    assert next_run(parse_schedule("every 6h"), None, "m", 600, NOW, UTC) == NOW


def test_interval_counts_from_the_last_start_plus_a_bounded_reproducible_jitter() -> None:
    schedule = parse_schedule("every 1h")
    last = NOW - 1800
    first = next_run(schedule, last, "debian", 3600, NOW, UTC)
    assert first == next_run(schedule, last, "debian", 3600, NOW, UTC)  # reproducible
    assert last + HOUR <= first <= last + HOUR + HOUR / 4  # jitter capped at interval/4
    assert next_run(schedule, last, "debian", 0, NOW, UTC) == last + HOUR
    spread = {round(jitter_offset(f"m{i}", last, 600)) for i in range(50)}
    assert len(spread) > 40 and all(0 <= s <= 600 for s in spread)  # mirrors are spread out


def test_cron_schedule_adds_jitter_after_the_firing() -> None:
    schedule = parse_schedule("0 */6 * * *")
    when = next_run(schedule, at(2026, 11, 25, 6, 0, 5), "m", 300, NOW, UTC)
    assert at(2026, 11, 25, 12, 0) <= when <= at(2026, 11, 25, 12, 5)


# -- the tick --------------------------------------------------------------------------------------
def facts(name: str = "m", **kw: object) -> MirrorFacts:
    base: dict[str, object] = dict(name=name, schedule=parse_schedule("every 6h"),
                                   last_started=NOW - HOUR, has_signal=True,
                                   last_polled_at=NOW - 60, local_signal_mtime=NOW - 2 * HOUR)
    base.update(kw)
    return MirrorFacts(**base)  # type: ignore[arg-type]


def tick(*mirrors: MirrorFacts, poll_interval: float = 300) -> tuple[dict[str, str], set[str]]:
    plan = plan_tick(list(mirrors), NOW, jitter=0, poll_interval=poll_interval, tz=UTC)
    return {d.mirror: d.reason for d in plan.due}, set(plan.polls)


def test_tick_starts_first_runs_and_overdue_mirrors_only() -> None:
    due, _ = tick(facts("new", last_started=None), facts("old", last_started=NOW - 7 * HOUR),
                  facts("fresh"))
    assert due == {"new": "first run", "old": "schedule"}


def test_running_or_queued_mirrors_are_never_started_again() -> None:
    due, polls = tick(facts("a", last_started=None, running=True),
                      facts("b", last_started=NOW - 7 * HOUR, queued=True),
                      facts("c", running=True, last_polled_at=None))
    assert due == {} and polls == set()


def test_a_newer_upstream_signal_starts_a_sync_early() -> None:
    seen = SignalSeen(upstream_mtime=NOW - 600, first_seen_at=NOW - 30, polled_at=NOW - 30)
    due, _ = tick(facts(signal=seen))
    assert due == {"m": "update signal"}


def test_a_signal_already_acted_on_does_not_restart_a_failing_mirror() -> None:
    """The run after the change was seen started (and failed): retries are the schedule's job."""
    seen = SignalSeen(upstream_mtime=NOW - 600, first_seen_at=NOW - 900, polled_at=NOW - 30)
    due, _ = tick(facts(signal=seen, last_started=NOW - 800))
    assert due == {}


def test_same_or_older_signal_is_no_reason_to_sync() -> None:
    local = NOW - 2 * HOUR
    for mtime in (local, local + 1.5, local - 600):  # within slack, equal, older
        seen = SignalSeen(upstream_mtime=mtime, first_seen_at=NOW - 30, polled_at=NOW - 30)
        assert tick(facts(signal=seen))[0] == {}


def test_a_missing_local_signal_counts_as_changed() -> None:
    seen = SignalSeen(upstream_mtime=NOW - 600, first_seen_at=NOW - 30, polled_at=NOW - 30)
    assert tick(facts(signal=seen, local_signal_mtime=None))[0] == {"m": "update signal"}


def test_deletions_whose_grace_has_passed_start_a_run() -> None:
    due, _ = tick(facts("due", deletions_due_at=NOW - 5), facts("later", deletions_due_at=NOW + 5),
                  facts("running", deletions_due_at=NOW - 5, running=True))
    assert due == {"due": "deletions due"}


def test_skip_unchanged_probes_first_then_skips_until_a_publish_or_verify_every() -> None:
    """A scheduled run of an unchanged upstream costs one signal probe, not two tree walks."""
    local = NOW - 2 * HOUR
    base = dict(last_started=NOW - 7 * HOUR, skip_unchanged=True, last_success=NOW - 7 * HOUR,
                local_signal_mtime=local)
    # Due by the schedule, not polled since: poll first, start nothing yet.
    assert tick(facts(**base, last_polled_at=NOW - 2 * HOUR)) == ({}, {"m"})
    same = SignalSeen(upstream_mtime=local, first_seen_at=NOW - 3 * HOUR, polled_at=NOW - 60)
    skipped = plan_tick([facts(**base, last_polled_at=NOW - 60, signal=same)], NOW, jitter=0,
                        poll_interval=300, tz=UTC)
    assert skipped.due == () and skipped.polls == ()
    assert skipped.next_run["m"] == NOW - 7 * HOUR + 86400  # the forced verification
    # The upstream published: the run starts.
    newer = SignalSeen(upstream_mtime=NOW - 600, first_seen_at=NOW - 60, polled_at=NOW - 60)
    assert tick(facts(**base, last_polled_at=NOW - 60, signal=newer))[0] == {"m": "schedule"}
    # The probe failed (the last poll saw nothing): run as scheduled, never wait on a probe.
    assert tick(facts(**base, last_polled_at=NOW - 60, signal=SignalSeen(
        local, NOW - 3 * HOUR, NOW - 2 * HOUR)))[0] == {"m": "schedule"}
    # verify_every has passed since the last success: a full run whatever the signal says.
    old = {**base, "last_success": NOW - 25 * HOUR}
    assert tick(facts(**old, last_polled_at=NOW - 60, signal=same))[0] == {"m": "schedule"}
    # Without skip_unchanged nothing changes.
    assert tick(facts(**{**base, "skip_unchanged": False}, last_polled_at=NOW - 60,
                      signal=same))[0] == {"m": "schedule"}


def test_polls_are_due_after_the_poll_interval_and_only_with_a_signal() -> None:
    _, polls = tick(facts("never", last_polled_at=None), facts("recent", last_polled_at=NOW - 60),
                    facts("old", last_polled_at=NOW - 301),
                    facts("nosignal", has_signal=False, last_polled_at=None))
    assert polls == {"never", "old"}
    assert tick(facts("never", last_polled_at=None), poll_interval=0)[1] == set()


def test_next_run_is_reported_for_every_mirror() -> None:
    plan = plan_tick([facts("a"), facts("b", running=True)], NOW, jitter=0, poll_interval=300,
                     tz=UTC)
    assert plan.next_run == {"a": NOW - HOUR + 6 * HOUR, "b": NOW - HOUR + 6 * HOUR}


# -- tunasync and MirrorZ --------------------------------------------------------------------------
def state(**kw: object) -> compat.MirrorState:
    base: dict[str, object] = dict(
        name="debian", enabled=True, running=False, queued=False, upstream="rsync://u/debian/",
        last_outcome="success", last_success_at=1_700_000_000.0,
        last_started_at=1_699_999_000.0, last_ended_at=1_700_000_000.0,
        next_run_at=1_700_021_600.0, size_bytes=59_712_345_678)
    base.update(kw)
    return compat.MirrorState(**base)  # type: ignore[arg-type]


TUNASYNC_FIELDS = {"name", "is_master", "status", "last_update", "last_update_ts", "last_started",
                   "last_started_ts", "last_ended", "last_ended_ts", "next_schedule",
                   "next_schedule_ts", "upstream", "size"}


def test_tunasync_job_has_exactly_its_fields_and_formats() -> None:
    job = compat.tunasync_job(state())
    assert set(job) == TUNASYNC_FIELDS
    assert job["status"] == "success" and job["size"] == "55.61G"
    assert job["last_update_ts"] == 1_700_000_000
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}", job["last_update"])


def test_tunasync_never_set_times_are_go_zero_time() -> None:
    job = compat.tunasync_job(state(last_outcome=None, last_success_at=None,
                                    last_started_at=None, last_ended_at=None, size_bytes=None))
    assert job["status"] == "none" and job["size"] == "unknown"
    assert job["last_update"] == "0001-01-01 00:00:00 +0000"
    assert job["last_update_ts"] == job["last_started_ts"] == -62135596800


@pytest.mark.parametrize(("kw", "status"), [
    ({"running": True}, "syncing"), ({"queued": True}, "pre-syncing"),
    ({"enabled": False}, "disabled"), ({"last_outcome": "failed"}, "failed"),
    ({"last_outcome": "partial"}, "failed"), ({"last_outcome": "interrupted"}, "failed"),
    ({"last_outcome": "staged"}, "syncing"),  # a stage-1 push done, its stage 2 to come
])
def test_tunasync_status_words(kw: dict[str, object], status: str) -> None:
    assert compat.tunasync_job(state(**kw))["status"] == status


MAIN_TOKENS = set("SDYFPCRU")


def tokens(status: str) -> list[tuple[str, str]]:
    assert re.fullmatch(r"([A-Z]\d*)+", status), status
    return re.findall(r"([A-Z])(\d*)", status)


@pytest.mark.parametrize(("kw", "expected"), [
    ({}, "S1700000000X1700021600"),
    ({"last_outcome": "failed", "last_ended_at": 1_700_003_600.0},
     "F1700003600O1700000000X1700021600"),
    ({"running": True, "last_started_at": 1_700_050_000.0}, "Y1700050000O1700000000X1700021600"),
    ({"last_outcome": "staged", "last_started_at": 1_700_050_000.0},
     "Y1700050000O1700000000X1700021600"),
    ({"last_outcome": "failed", "last_success_at": None}, "F1700000000O0000000001X1700021600"),
    ({"last_outcome": None, "last_success_at": None, "next_run_at": None}, "U"),
])
def test_mirrorz_status_tokens(kw: dict[str, object], expected: str) -> None:
    status = compat.mirrorz_status(state(**kw), now=1_700_060_000.0)
    assert status == expected
    assert sum(1 for letter, _ in tokens(status) if letter in MAIN_TOKENS) == 1


def test_mirrorz_document() -> None:
    doc = compat.mirrorz([state(), state(name="old", enabled=False)],
                         {"url": "https://m.example", "abbr": "EX", "name": ""}, 1.8e9)
    assert doc["version"] == 1.7 and doc["site"] == {"url": "https://m.example", "abbr": "EX"}
    assert doc["mirrors"][0] == {"cname": "debian", "url": "/debian",
                                 "status": "S1700000000X1700021600",
                                 "upstream": "rsync://u/debian/", "size": "55.61G"}
    assert doc["mirrors"][1]["disable"] is True and doc["mirrors"][1]["status"] == "P1700000000"


# -- graphs ----------------------------------------------------------------------------------------
def rows(count: int, start: float, step: float) -> list[dict[str, float | None]]:
    return [{"started_at": start + i * step, "duration_seconds": 10.0, "bytes_transferred": 100.0,
             "bitrate_bps": 80.0, "files_transferred": 1.0, "files_failed": 0.0}
            for i in range(count)]


def test_downsample_keeps_small_series_and_bounds_large_ones() -> None:
    few = downsample(rows(20, 0, 60), 0, 1200, 300)
    assert len(few["time"]) == 20
    many = rows(10_000, 0, 60)
    many[5000]["duration_seconds"] = 9999.0  # a hang must survive downsampling
    many[5001]["bitrate_bps"] = 8000.0
    out = downsample(many, 0, 600_000, 300)
    assert len(out["time"]) <= 300 and all(len(v) == len(out["time"]) for v in out.values())
    assert max(v for v in out["duration_seconds"] if v is not None) == 9999.0
    assert 80.0 < max(v for v in out["bitrate_bps"] if v is not None) < 8000.0  # averaged
    assert out["time"] == sorted(out["time"])


def test_sparkline_is_an_svg_polyline_scaled_to_the_values() -> None:
    svg = sparkline([1.0, 5.0, 3.0], width=100, height=20)
    points = re.search(r'points="([^"]+)"', svg)
    assert svg.startswith("<svg") and points
    ys = [float(p.split(",")[1]) for p in points.group(1).split()]
    assert ys[1] == min(ys) and ys[0] == max(ys)  # highest value drawn at the top
    assert sparkline([1.0]) == ""


# -- trace files ---------------------------------------------------------------------------------
def test_trace_files_in_debian_and_arch_style(tmp_path: Path) -> None:
    from mirrorkeeper.record import RunRecord, StageResult
    from mirrorkeeper.sync.trace import trace_path, write_trace

    end = at(2026, 11, 5, 4, 2, 55)
    stages = (StageResult("stage1", (), end - 100, end - 40, 0, bytes_received=1000),
              StageResult("stage2", (), end - 40, end, 0, bytes_received=24))
    record = RunRecord(7, "debian", "rsync://up.example/debian/", end - 100, end, "success",
                       stages)
    (tmp_path / "project" / "trace").mkdir(parents=True)
    (tmp_path / "project/trace/master").write_text("Thu Nov  5 03:00:01 UTC 2026\n"
                                                    "Archive serial: 2026110501\n")
    path = write_trace("debian", str(tmp_path), "mirror.example.org", record)
    assert path == tmp_path / "project/trace/mirror.example.org"
    lines = path.read_text().splitlines()
    assert lines[0] == "Thu Nov  5 04:02:55 UTC 2026"  # exactly `LC_ALL=POSIX date -u`
    fields = dict(line.split(": ", 1) for line in lines[1:])
    assert fields["Date"] == "Thu, 05 Nov 2026 04:02:55 +0000"  # `date -u -R`, as ftpsync
    assert fields["Archive serial"] == "2026110501"
    assert fields["Total bytes received in rsync"] == "1024"
    assert (fields["Total time spent in stage1 rsync"], fields["Total time spent in stage2 rsync"],
            fields["Total time spent in rsync"]) == ("60", "40", "100")
    assert not list((tmp_path / "project/trace").glob(".*"))  # no temporary file left
    arch = write_trace("arch", str(tmp_path), "mirror.example.org", record)
    assert arch == tmp_path / "lastsync" and arch.read_text() == f"{int(end)}\n"
    assert trace_path("", "h") is None and write_trace("", str(tmp_path), "h", record) is None


def test_cron_follows_daylight_saving_time_in_the_hosts_zone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from mirrorkeeper.clock import local_zone

    monkeypatch.setenv("TZ", "Europe/Berlin")  # the only patch: the host's zone
    berlin = local_zone()
    daily = Cron.parse(("0", "3", "*", "*", "*"))
    assert daily.next_after(at(2026, 10, 23, 12, 0), berlin) == at(2026, 10, 24, 1, 0)  # CEST
    assert daily.next_after(at(2026, 10, 24, 12, 0), berlin) == at(2026, 10, 25, 2, 0)  # CET
    monkeypatch.setenv("TZ", "Not/AZone")
    fallback = local_zone()  # a fixed offset instead of a failing tick
    assert fallback.utcoffset(None) is not None and berlin.utcoffset(None) is None
