"""Durations and schedules: the small value types of the config."""

import pytest

from mirrorkeeper.config.durations import format_duration, parse_duration
from mirrorkeeper.config.schedule import parse_schedule


@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90), ("30m", 1800), ("6h", 21600), ("2d", 172800), ("1w", 604800),
    ("1d12h", 129600), ("1.5h", 5400), ("600", 600), (45, 45), (2.5, 2.5),
])
def test_durations_parse_to_seconds(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["6 hours", "h", "", "-5", "5x", "1h garbage", True])
def test_bad_durations_name_the_accepted_forms(bad: str | bool) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_format_duration_is_short_and_readable() -> None:
    assert [format_duration(s) for s in (5, 125, 3600 + 300, 2 * 86400 + 4 * 3600)] == [
        "5s", "2m05s", "1h05m", "2d04h"]


def test_schedules_accept_intervals_aliases_and_cron() -> None:
    assert parse_schedule("every 6h").interval_seconds == 21600
    assert parse_schedule("30m").interval_seconds == 1800
    assert parse_schedule("hourly").interval_seconds == 3600
    assert parse_schedule("50 */4 * * *").cron == ("50", "*/4", "*", "*", "*")


@pytest.mark.parametrize(("bad", "why"), [
    ("every 10s", "shorter than a minute"),
    ("61 * * * *", "minute"),
    ("0 24 * * *", "hour"),
    ("sometimes", "not a schedule"),
])
def test_bad_schedules_say_why(bad: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_schedule(bad)
