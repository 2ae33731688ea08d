"""Update signals of every shape, and a wrong signal path that must not disable a mirror.

The samples are the formats the projects publish (research/project-profiles.md §1): Arch's
``lastupdate`` (epoch), Debian's ``project/trace/master``, Gentoo's ``timestamp.chk``, CTAN's
``timestamp`` and Manjaro's ``state``. The syncs run against real rsync daemons on 127.0.0.1.
"""

from __future__ import annotations

import calendar
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from mirrorkeeper.classify.findings import Severity
from mirrorkeeper.classify.judge import classify_run
from mirrorkeeper.config.load import load_config
from mirrorkeeper.config.spec import SyncSettings
from mirrorkeeper.demo.rsyncd import Module, RsyncDaemon
from mirrorkeeper.demo.tree import DebianLikeTree
from mirrorkeeper.plan.signals import content_parses, parse_date, signal_time
from mirrorkeeper.store import Store
from mirrorkeeper.sync.preflight import local_mtime, probe
from mirrorkeeper.sync.run import sync_mirror

from .conftest import tree_files, write_config

T = float(calendar.timegm((2026, 11, 29, 20, 30, 1)))

SAMPLES = {
    "epoch": b"1795984201\n",  # Arch, MSYS2 lastupdate: 2026-11-29 20:30:01 UTC
    "trace": (b"Sun Nov 29 20:30:01 UTC 2026\nDate: Sun, 29 Nov 2026 20:30:01 +0000\n"
              b"Archive serial: 2026112903\n"),
    "date": b"Sun, 29 Nov 2026 20:30:01 +0000\n",  # Gentoo metadata/timestamp.chk
    "keyvalue": b"branch=stable\ndate=2026-11-29T20:30:01Z\n",  # Manjaro stable/state
}


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_each_signal_kind_reads_its_projects_format(kind: str) -> None:
    assert signal_time(kind, SAMPLES[kind], mtime=1.0) == T
    assert content_parses(kind, SAMPLES[kind])


def test_date_forms_and_fallbacks() -> None:
    assert parse_date("2026-11-29-20-30") == T - 1  # CTAN's timestamp: minutes only
    assert parse_date("Sun Nov  9 20:30:01 UTC 2026") == calendar.timegm(
        (2026, 11, 9, 20, 30, 1))  # `date -u` pads a one-digit day
    assert parse_date("2026-11-29T20:30:01+00:00") == T
    assert parse_date("not a date") is None
    # Content that is not of the kind falls back to the mtime, and says so.
    assert signal_time("epoch", b"garbage\n", mtime=5.0) == 5.0
    assert not content_parses("epoch", b"garbage\n")
    assert signal_time("mtime", b"1795984201", mtime=5.0) == 5.0


def test_a_content_signal_is_read_upstream_and_here(tmp_path: Path,
                                                    rsyncd: Callable[[list[Module]], RsyncDaemon],
                                                    ) -> None:
    root = tmp_path / "up"
    root.mkdir()
    (root / "lastupdate").write_bytes(SAMPLES["epoch"])
    os.utime(root / "lastupdate", (1000, 1000))  # the mtime says 1970; the content says 2026
    url = rsyncd([Module("arch", root)]).url("arch")
    found = probe("rsync", url, "lastupdate", SyncSettings(signal_kind="epoch"))
    assert found.exists and found.parsed and found.mtime == T
    assert probe("rsync", url, "lastupdate", SyncSettings()).mtime == 1000.0
    assert local_mtime(str(root), "lastupdate", "epoch") == T
    missing = probe("rsync", url, "nothing-here", SyncSettings(signal_kind="epoch"))
    assert not missing.exists and missing.error_kind == "not_found"


def test_a_wrong_signal_path_warns_and_still_syncs(tmp_path: Path, upstream: DebianLikeTree,
                                                   served: str,
                                                   rsyncd: Callable[[list[Module]], RsyncDaemon],
                                                   ) -> None:
    """The profile names a file this upstream lacks: a warning and a complete sync; an empty
    module is still refused (critical), since stage 2 would wipe the mirror."""
    empty = tmp_path / "empty"
    empty.mkdir()
    empty_url = rsyncd([Module("empty", empty)]).url("empty")
    path = write_config(tmp_path / "mk.toml", {
        "deb": {"profile": "debian", "dest": str(tmp_path / "mirror"), "upstreams": [served],
                "update_signal": "project/trace/no-such-trace"},
        "void": {"profile": "debian", "dest": str(tmp_path / "void"), "upstreams": [empty_url]}})
    config = load_config(path)
    store = Store.open(config.settings.state_dir)
    try:
        record = sync_mirror(config, config.mirrors["deb"], store)
        refused = sync_mirror(config, config.mirrors["void"], store)
    finally:
        store.close()
    assert record.outcome == "success"
    assert tree_files(tmp_path / "mirror") == tree_files(upstream.root)
    findings = {f.code: f for f in classify_run(record, config.mirrors["deb"].settings)}
    assert findings["profile.signal_missing"].severity == Severity.WARNING
    assert "no-such-trace" in findings["profile.signal_missing"].summary
    assert refused.outcome == "failed"
    assert {f.code: f.severity for f in classify_run(refused, config.mirrors["void"].settings)
            } == {"guard.upstream_empty": Severity.CRITICAL}
