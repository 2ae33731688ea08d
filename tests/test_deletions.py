"""Deletions: which files the upstream dropped are deleted, when, and how safely.

The planner is pure (unit tests); the deleter touches a real tree; the whole path runs through
real rsync daemons in tests/test_faults.py and tests/test_zero_false_negatives.py.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from mirrorkeeper.config.spec import MirrorSpec, SyncSettings
from mirrorkeeper.plan import build_plan
from mirrorkeeper.plan.deletions import plan_deletions
from mirrorkeeper.rsync.parse import DeleteCandidate, Error, parse_line, parse_output
from mirrorkeeper.rsync.tally import StageTally
from mirrorkeeper.sync.deletions import delete_paths

S = SyncSettings(failure_ratio_info=0.001)


def cands(*paths: str) -> list[DeleteCandidate]:
    return [DeleteCandidate(p.rstrip("/"), p.endswith("/")) for p in paths]


def test_parser_reads_rsyncs_deletion_list() -> None:
    assert parse_line("delete_item(pool/a b.deb) mode=100644 flags=2") == DeleteCandidate(
        "pool/a b.deb", False)
    assert parse_line("delete_item(gone) mode=40755 flags=2") == DeleteCandidate("gone", True)
    # rsync escapes unprintable bytes (all non-ASCII in the C locale) as \#ooo.
    assert parse_line(r"delete_item(caf\#303\#251\#012x) mode=100644 flags=4") == \
        DeleteCandidate("café\nx", False)
    assert parse_line("delete_in_dir(pool/main)").__class__.__name__ == "Info"


def test_listing_tally_takes_maxdelete_zero_as_asked_and_keeps_error_paths() -> None:
    tally = StageTally(listing=True, candidate_limit=2)
    lines = ["delete_item(a) mode=100644 flags=2", "delete_item(b) mode=100644 flags=2",
             "delete_item(c) mode=100644 flags=2", "cannot delete non-empty directory: d",
             'rsync: [sender] opendir "/pool/x" (in debian) failed: Permission denied (13)',
             "Deletions stopped due to --max-delete limit (3 skipped)",
             "rsync error: the --max-delete limit stopped deletions (code 25) at main.c(1394)"]
    for line in lines:
        for event in parse_output(line):
            tally.add(event)
    assert [c.path for c in tally.candidates] == ["a", "b"] and tally.candidates_total == 3
    assert tally.held == 3 and tally.error_paths == ["/pool/x"]
    assert dict(tally.errors) == {"permission_denied": 1} and tally.unattributed_errors == 0
    tally.add(Error("connection_lost", "connection unexpectedly closed"))
    assert tally.unattributed_errors == 1


def test_plan_deletes_children_first_and_only_under_the_bound() -> None:
    plan = plan_deletions(cands("d/", "d/sub/", "d/sub/f", "x.deb"), 4, settings=S, bound=10,
                          pending={}, now=1000.0)
    assert plan.delete == ("d/sub/f", "d/sub", "d", "x.deb") and not plan.keep
    mass = plan_deletions(cands("a", "b", "c"), 3, settings=S, bound=2, pending={}, now=1.0)
    assert mass.mass_delete and mass.delete == () and set(mass.keep) == {"a", "b", "c"}
    # A list cut short (more candidates than kept) is never trusted either.
    assert plan_deletions(cands("a"), 5, settings=S, bound=10, pending={}, now=1.0).mass_delete


def test_an_upstream_error_protects_its_path_and_everything_below() -> None:
    plan = plan_deletions(cands("pool/x/", "pool/x/a.deb", "pool/y.deb", "pool/x2.deb"), 4,
                          settings=S, bound=10, pending={}, now=5.0,
                          error_paths=["/srv/up/pool/x"])
    assert plan.delete == ("pool/x2.deb", "pool/y.deb")
    assert set(plan.keep) == {"pool/x", "pool/x/a.deb"} and plan.protected == 2


def test_untrusted_listings_delete_nothing_and_say_why() -> None:
    unnamed = plan_deletions(cands("a"), 1, settings=S, bound=10, pending={}, now=1.0,
                             unattributed_errors=2)
    assert unnamed.delete == () and "name no file" in (unnamed.skipped or "")
    ratio = plan_deletions(cands("a"), 1, settings=S, bound=10, pending={}, now=1.0,
                           failure_ratio=0.02)
    assert ratio.delete == () and "failure_ratio_info" in (ratio.skipped or "")
    assert set(ratio.keep) == {"a"}


def test_grace_keeps_files_until_it_has_passed_since_first_seen() -> None:
    s = dataclasses.replace(S, delete_grace=3600.0)
    first = plan_deletions(cands("old/", "old/a", "new"), 3, settings=s, bound=10,
                           pending={}, now=1000.0)
    assert first.delete == () and first.keep == {"old": 1000.0, "old/a": 1000.0, "new": 1000.0}
    later = plan_deletions(cands("old/", "old/a", "new"), 3, settings=s, bound=10,
                           pending={"old": 1000.0, "old/a": 1000.0, "new": 4000.0},
                           now=4700.0)
    assert later.delete == ("old/a", "old") and later.keep == {"new": 4000.0}
    # A file the upstream brought back is no candidate any more: it leaves the pending list.
    back = plan_deletions([], 0, settings=s, bound=10, pending={"new": 4000.0}, now=9e9)
    assert back.keep == {} and back.delete == ()


def test_a_kept_child_keeps_its_directory() -> None:
    s = dataclasses.replace(S, delete_grace=100.0)
    plan = plan_deletions(cands("d/", "d/a", "d/b"), 3, settings=s, bound=10,
                          pending={"d": 0.0, "d/a": 0.0, "d/b": 90.0}, now=150.0)
    assert plan.delete == ("d/a",) and set(plan.keep) == {"d", "d/b"}


def test_deleter_never_leaves_the_tree(tmp_path: Path) -> None:
    root, outside = tmp_path / "mirror", tmp_path / "outside"
    (root / "d/sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "precious").write_text("x")
    (root / "d/sub/f").write_text("1")
    (root / "x.deb").write_text("2")
    (root / "link").symlink_to(outside)  # a symlink the upstream planted
    result = delete_paths(str(root), ["d/sub/f", "d/sub", "link/precious", "../outside/precious",
                                      "missing", "x.deb"])
    assert (outside / "precious").exists()
    assert result.deleted == 3 and not (root / "d/sub").exists() and not (root / "x.deb").exists()
    assert [p for p, _ in result.failed] == ["link/precious", "../outside/precious"]
    # The link itself is a file like any other: deleting it leaves its target alone.
    assert delete_paths(str(root), ["link"]).deleted == 1 and (outside / "precious").exists()


def test_deleter_reports_what_it_cannot_delete(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full/keep").write_text("x")
    result = delete_paths(str(tmp_path), ["full"])
    assert result.deleted == 0 and result.failed[0][0] == "full"
    assert os.path.exists(tmp_path / "full/keep")


def test_the_update_signal_is_held_back_and_fetched_to_staging() -> None:
    settings = SyncSettings(upstreams=("rsync://up.example.org/debian/",), stage2=("Packages*",),
                            update_signal="project/trace/master")
    plan = build_plan(MirrorSpec("deb", "debian", "/srv/deb", True, settings),
                      settings.upstreams[0], signal_staging="/var/lib/mk/signals/deb/master")
    for stage in plan.stages:
        assert "--exclude=/project/trace/master" in stage.argv
    assert plan.signal is not None and plan.signal.argv[-2:] == (
        "rsync://up.example.org/debian/project/trace/master", "/var/lib/mk/signals/deb/master")
    assert (plan.signal_staging, plan.signal_path) == ("/var/lib/mk/signals/deb/master",
                                                       "project/trace/master")
    assert not any(a.startswith(("--del", "--max-delete")) for a in plan.signal.argv)


def test_store_keeps_pending_deletions_and_says_when_the_next_falls_due(tmp_path: Path) -> None:
    from mirrorkeeper.store import Store

    store = Store.open(tmp_path)
    try:
        store.set_pending_deletions("deb", {"a": 100.0, "b": 500.0})
        store.set_pending_deletions("other", {"x": 1.0})
        assert store.pending_deletions("deb") == {"a": 100.0, "b": 500.0}
        assert store.pending_summary("deb") == (2, 100.0)
        # With a grace of 60 s: "a" fell due at 160, "b" falls due at 560.
        assert store.next_deletion_due("deb", 60.0, after=50.0) == 160.0
        assert store.next_deletion_due("deb", 60.0, after=200.0) == 560.0  # a run since 160
        assert store.next_deletion_due("deb", 60.0, after=600.0) is None
        store.set_pending_deletions("deb", {})
        assert store.pending_summary("deb") == (0, None)
        assert store.pending_deletions("other") == {"x": 1.0}
    finally:
        store.close()
