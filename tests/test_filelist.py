"""The file-list method (issue #13): Fedora's ``fullfiletimelist`` read, compared and synced.

The reader and the planner are pure (unit tests on a sample in the real format, as Fedora's
``create-filelist`` writes it). Every sync here runs against a real rsync daemon serving a
generated Fedora-like tree (two modules, hard links between them) whose lists the test writes
in the real format; the big tree (100,000+ files) is shared by the module and marked slow.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mirrorkeeper.classify.findings import Finding, Severity
from mirrorkeeper.classify.judge import classify_run
from mirrorkeeper.config.load import load_config
from mirrorkeeper.demo.fedora import FedoraLikeTree, write_filelist
from mirrorkeeper.demo.rsyncd import Module, RsyncDaemon
from mirrorkeeper.filelist.compare import (
    Local,
    ModuleList,
    Patterns,
    dropped,
    plan_transfer,
)
from mirrorkeeper.filelist.format import (
    Entry,
    FileList,
    Malformed,
    files_lines,
    parse,
    render,
)
from mirrorkeeper.record import RunRecord
from mirrorkeeper.record.progress import LiveProgress
from mirrorkeeper.rsync.parse import DeleteCandidate
from mirrorkeeper.store import Store
from mirrorkeeper.sync.run import sync_mirror

from .conftest import OWN_TRACE, write_config

LISTS = ["fedora/fullfiletimelist-fedora", "epel/fullfiletimelist-epel"]

#: A list as create-filelist writes it (version 3: restricted types), with a section this
#: reader does not know, which it must skip.
SAMPLE = (
    "[Version]\n3\n\n[Files]\n"
    "1700000000\td\t4096\treleases\n"
    "1700000100\tf\t5\treleases/README\n"
    "1700000200\tl\t11\tlatest\n"
    "1700000300\tf-\t9\tprivate/key\n"
    "1700000400\td*\t4096\tembargoed\n"
    "1700000500\tf\t3\tname with spaces\tand tab\n"
    "\n[Checksums SHA1]\n"
    "da39a3ee5e6b4b0d3255bfef95601890afd80709\treleases/README\n"
    "\n[Checksums SHA512]\n"
    + "ab" * 64 + "\treleases/README\n"
    "\n[Directories]\nreleases\n"
    "\n[End]\n"
)


def test_reader_takes_the_real_format() -> None:
    parsed = parse(SAMPLE)
    assert isinstance(parsed, FileList)
    assert parsed.version == 3
    assert parsed.entries["releases/README"] == Entry(1700000100, "f", 5)
    assert parsed.entries["latest"].kind == "l"
    assert parsed.entries["private/key"].restricted and parsed.entries["embargoed"].restricted
    assert parsed.entries["name with spaces\tand tab"].size == 3  # the path is the rest
    assert set(parsed.public) == {"releases", "releases/README", "latest",
                                  "name with spaces\tand tab"}
    assert parsed.checksums["SHA1"] == {"releases/README":
                                        "da39a3ee5e6b4b0d3255bfef95601890afd80709"}
    assert "1700000300\tf-\t9\tprivate/key" in files_lines(SAMPLE)
    assert len(files_lines(SAMPLE)) == 6
    # What render writes, parse reads back.
    again = parse(render(parsed.entries, parsed.checksums["SHA1"], version=3))
    assert isinstance(again, FileList) and again.entries == parsed.entries


@pytest.mark.parametrize(("text", "says"), [
    (SAMPLE.replace("\n[End]\n", "\n"), "[End]"),
    (SAMPLE[:200], "[End]"),  # cut off in transfer
    (SAMPLE.replace("[Version]\n3", "[Version]\n4"), "version 4"),
    (SAMPLE.replace("[Version]\n3\n", ""), "no [Version]"),
    ("[Version]\n2\n\n[End]\n", "no [Files]"),
    (SAMPLE.replace("1700000100\tf\t5", "1700000100\tf"), "separated by tabs"),
    (SAMPLE.replace("\tf\t5\t", "\tx\t5\t"), "a type (f, d or l"),
    (SAMPLE.replace("\tf\t5\t", "\tf\t5x\t"), "line 6:"),
    (SAMPLE.replace("releases/README\n", "../etc/passwd\n", 1), "'.'/'..'"),
    (SAMPLE.replace("releases/README\n", "/etc/passwd\n", 1), "absolute"),
    (SAMPLE.replace("da39a3ee", "da39"), "not a SHA1"),
])
def test_reader_refuses_what_is_not_a_usable_list(text: str, says: str) -> None:
    parsed = parse(text)
    assert isinstance(parsed, Malformed), parsed
    assert says in parsed.reason


def lines(filelist: FileList) -> frozenset[str]:
    return files_lines(render(filelist.entries))


def _list(**files: tuple[int, str, int]) -> FileList:
    return FileList.of({p.replace("__", "/"): Entry(*v) for p, v in files.items()})


def test_planner_sends_what_changed_is_missing_or_differs_and_deletes_what_is_gone() -> None:
    old = _list(a=(1, "d", 0), a__x_rpm=(1, "f", 5), a__y_rpm=(1, "f", 5), a__z_rpm=(1, "f", 5),
                a__repodata=(1, "d", 0), a__repodata__repomd_xml=(1, "f", 9))
    new = _list(a=(2, "d", 0), a__x_rpm=(2, "f", 6), a__y_rpm=(1, "f", 5), a__z_rpm=(1, "f", 5),
                a__w_rpm=(2, "f", 7), a__repodata=(1, "d", 0),
                a__repodata__repomd_xml=(2, "f", 9))
    local = {"m": Local("d", 0), "m/a": Local("d", 0), "m/a/x_rpm": Local("f", 5),
             "m/a/y_rpm": Local("f", 4),  # differs here
             "m/a/z_rpm": Local("f", 5),
             "m/a/repodata": Local("d", 0), "m/a/repodata/repomd_xml": Local("f", 9),
             "m/a/gone_rpm": Local("f", 1), "m/a/old": Local("d", 0),
             "m/a/old/f": Local("f", 1), "m/fullfiletimelist-m": Local("f", 10),
             "elsewhere/keep": Local("f", 1)}  # outside every list's directory
    plan = plan_transfer([ModuleList("m", new, lines(old))], local,
                         stage2=Patterns(["repodata/"]), keep=["m/fullfiletimelist-m"])
    # z is unchanged and present, so it is not sent.
    assert plan.content == ("m/a", "m/a/w_rpm", "m/a/x_rpm", "m/a/y_rpm")
    assert plan.indexes == ("m/a/repodata/repomd_xml",)
    assert (plan.changed, plan.missing, plan.differing) == (4, 0, 1)
    assert plan.candidates == (DeleteCandidate("m/a/gone_rpm", False),
                               DeleteCandidate("m/a/old", True),
                               DeleteCandidate("m/a/old/f", False))
    assert (plan.files_total, plan.bytes_total) == (7, 6 + 5 + 5 + 7 + 9)
    assert (plan.files_to_transfer, plan.bytes_to_transfer) == (4, 6 + 7 + 9 + 5)
    # The same list again: only what is missing or differs here.
    same = plan_transfer([ModuleList("m", new, lines(new))], local, stage2=Patterns(["repodata/"]))
    assert same.content == ("m/a/w_rpm", "m/a/x_rpm", "m/a/y_rpm")
    assert (same.changed, same.missing, same.differing) == (0, 1, 2)


def test_planner_checks_checksums_skips_restricted_and_excluded_and_adds_link_partners() -> None:
    new = FileList.of({"r/repomd.xml": Entry(1, "f", 3), "p/k.rpm": Entry(2, "f", 4),
                       "q/k.rpm": Entry(1, "f", 4), "secret": Entry(1, "f", 1, restricted=True),
                       "debug/x": Entry(1, "f", 1)},
                      {"SHA1": {"r/repomd.xml": "1" * 40}})
    old = FileList.of({**new.entries, "p/k.rpm": Entry(1, "f", 4)})
    local = {"r/repomd.xml": Local("f", 3), "p/k.rpm": Local("f", 4), "q/k.rpm": Local("f", 4),
             "secret": Local("f", 1), "debug/x": Local("f", 1)}
    plan = plan_transfer([ModuleList("", new, lines(old))], local,
                         local_digests={"r/repomd.xml": {"SHA1": "2" * 40}},
                         excludes=Patterns(["debug/"]))
    # repomd.xml's digest differs; q/k.rpm goes along with p/k.rpm so -H can link them.
    assert set(plan.content) == {"p/k.rpm", "q/k.rpm", "r/repomd.xml"}
    assert plan.partners == 1 and plan.files_to_transfer == 2
    # The restricted file is not for this mirror; the excluded one is never touched.
    assert plan.candidates == (DeleteCandidate("secret", False),)


def test_with_a_previous_list_only_what_it_dropped_is_looked_up() -> None:
    old = _list(a=(1, "d", 0), a__x=(1, "f", 5), b=(1, "d", 0), b__y=(1, "f", 5),
                b__gone=(1, "f", 1), c=(1, "d", 0), c__z=(1, "f", 3))
    new = _list(a=(1, "d", 0), a__x=(1, "f", 5), b=(2, "d", 0), b__y=(1, "f", 5),
                c=(1, "d", 0), c__z=(1, "f", 3), c__w=(2, "f", 3))
    assert dropped([ModuleList("", new, lines(old))]) == ["b/gone"]
    # Nothing else of the tree is looked at: what the lists did not change is taken to be
    # there (the full rsync checks that), and only the dropped path is a candidate.
    local = {"b/gone": Local("f", 1)}
    plan = plan_transfer([ModuleList("", new, lines(old))], local, trust_previous=True)
    assert plan.content == ("b", "c/w")
    assert [c.path for c in plan.candidates] == ["b/gone"]
    assert plan.partners == 0  # c/w is named like nothing else
    assert (plan.files_total, plan.bytes_total) == (7, 5 + 5 + 3 + 3)
    # Trusting or comparing the whole tree, a tree as the old list says plans the same.
    tree = {p: Local(e.kind, e.size if e.kind == "f" else 0) for p, e in old.entries.items()}
    walked = plan_transfer([ModuleList("", new, lines(old))], tree)
    assert (walked.content, walked.candidates) == (plan.content, plan.candidates)


def test_a_previous_list_line_that_could_leave_the_mirror_names_nothing_to_delete() -> None:
    # The mirror's copy of the list is read unchecked (only its dropped lines matter); a line
    # there that is not a sound list line must not become a deletion outside the mirror.
    new = _list(a=(1, "d", 0), a__x=(1, "f", 5))
    old = lines(new) | {"1\tf\t1\t../../etc/passwd", "1\tf\t1\t/etc/shadow",
                        "1\tf\t1\ta/../../x", "x\tf\t1\ta/y", "1\tf\t1\ta/gone"}
    assert dropped([ModuleList("", new, frozenset(old))]) == ["a/gone"]


def test_patterns_match_like_rsync_filters() -> None:
    p = Patterns(["repodata/", "fullfiletimelist-*", "/top/only"])
    assert p.matches("a/repodata/x.xml", False) and p.matches("a/repodata", True)
    assert not p.matches("a/repodata", False)  # a file named repodata is no directory
    assert p.matches("epel/fullfiletimelist-epel", False)
    assert p.matches("top/only", False) and not p.matches("x/top/only", False)
    q = Patterns(["debug/**/x86_64", "*.i[0-9]86", "[!a-c]*.iso"])
    assert q.matches("debug/a/b/x86_64/p.rpm", False) and not q.matches("x86_64/p", False)
    assert q.matches("os/Packages/p.i686", False) and not q.matches("p.x686", False)
    assert q.matches("d/dvd.iso", False) and not q.matches("d/boot.iso", False)
    assert Patterns(["a*"]).matches("ab/cd", False) is not False  # a* matches the part ab
    assert not Patterns(["a*c"]).matches("ab/c", False)  # * stops at /


# The real thing: a daemon serving a Fedora-like tree.


def mirror_config(tmp_path: Path, url: str, **overrides: Any) -> Path:
    return write_config(tmp_path / "mk.toml", {"fed": {
        "profile": "fedora", "dest": str(tmp_path / "mirror"), "upstreams": [url],
        "filelist": LISTS, "update_signal": LISTS[0], "delete_grace": "0s",
        "retry_backoff": "0.1s", "attempts_per_upstream": 1, **overrides}})


def sync(config_path: Path) -> tuple[RunRecord, list[Finding]]:
    config = load_config(config_path)
    store = Store.open(config.settings.state_dir)
    try:
        history = store.history("fed", 5)
        last_ok = next((r for r in history if r.outcome == "success"), None)
        record = sync_mirror(config, config.mirrors["fed"], store)
    finally:
        store.close()
    settings = config.mirrors["fed"].settings
    return record, classify_run(record, settings, last_ok.files_total if last_ok else None)


def codes(findings: list[Finding]) -> dict[str, Severity]:
    return {f.code: f.severity for f in findings}


def snapshot(root: Path) -> dict[str, tuple[str, bytes | str | None]]:
    """Every entry of a tree: files with their bytes, links with their targets, directories."""
    out: dict[str, tuple[str, bytes | str | None]] = {}
    for path in root.rglob("*"):
        rel = str(path.relative_to(root))
        if rel == OWN_TRACE or ".~tmp~" in rel:
            continue
        if path.is_symlink():
            out[rel] = ("l", os.readlink(path))
        elif path.is_dir():
            out[rel] = ("d", None)
        else:
            out[rel] = ("f", path.read_bytes())
    return out


def inode_groups(root: Path) -> set[frozenset[str]]:
    """The sets of paths that share an inode (hard links)."""
    by_inode: dict[int, set[str]] = {}
    for path in root.rglob("*.rpm"):
        if not path.is_symlink():
            by_inode.setdefault(path.stat().st_ino, set()).add(str(path.relative_to(root)))
    return {frozenset(g) for g in by_inode.values() if len(g) > 1}


def content_stages(record: RunRecord) -> list[str]:
    return [s.name for s in record.final_stages]


def uses_files_from(record: RunRecord) -> bool:
    return any(a.startswith("--files-from=") for s in record.final_stages
               if s.name.startswith("stage") for a in s.argv)


@pytest.fixture
def small(tmp_path: Path, rsyncd: Callable[[list[Module]], RsyncDaemon],
          ) -> Iterator[tuple[FedoraLikeTree, Path]]:
    """A 2,000-file tree served by a daemon, and a config that mirrors it (not yet synced)."""
    tree = FedoraLikeTree(tmp_path / "upstream", seed=5)
    tree.create(files=2000)
    url = rsyncd([Module("buffet", tree.root)]).url("buffet")
    yield tree, mirror_config(tmp_path, url)


def test_first_sync_is_full_then_no_change_then_an_update_by_the_list(
        small: tuple[FedoraLikeTree, Path]) -> None:
    tree, config = small
    mirror = config.parent / "mirror"
    record, findings = sync(config)
    assert record.outcome == "success"
    assert codes(findings) == {"filelist.full": Severity.INFO}
    assert "first sync" in next(f.summary for f in findings)
    assert not uses_files_from(record)
    assert snapshot(mirror) == snapshot(tree.root)
    assert inode_groups(mirror) == inode_groups(tree.root) != set()

    record, findings = sync(config)  # nothing published meanwhile
    assert record.outcome == "success" and codes(findings) == {}
    assert content_stages(record) == ["filelist"]  # one small transfer, nothing else
    assert record.files_transferred == 0
    assert record.files_total >= 2000  # the tree's size, kept from the last run

    published = tree.publish(0.01)
    record, findings = sync(config)
    assert record.outcome == "success", record.attempts
    assert codes(findings) == {}
    assert uses_files_from(record)
    assert content_stages(record) == ["filelist", "stage1", "stage2"]
    # Only what changed moved: the changed and new packages, the indexes, the directories.
    received = {s.name: s.items_received for s in record.final_stages}
    assert received["stage1"] == len(published.changed) + len(published.added)
    assert received["stage2"] == 2 * len(tree.repos())  # repomd.xml and primary.xml each
    assert record.deletions is not None
    assert record.deletions.deleted >= len(published.removed)  # and the old primary.xml
    assert snapshot(mirror) == snapshot(tree.root)
    assert inode_groups(mirror) == inode_groups(tree.root)
    # Exact totals up front: the list's count, not what one stage saw.
    filelist_stage = record.final_stages[0]
    listed = [p for p in tree.root.rglob("*") if p.parent != tree.root]
    assert filelist_stage.files_total == len(listed)
    assert filelist_stage.size_bytes == sum(p.stat().st_size for p in listed if p.is_file()
                                            and not p.is_symlink() and p.name not in
                                            ("fullfiletimelist-fedora",
                                             "fullfiletimelist-epel"))


def test_a_malformed_list_falls_back_to_a_full_rsync_and_says_why(
        small: tuple[FedoraLikeTree, Path]) -> None:
    tree, config = small
    sync(config)
    tree.publish(0.01)
    fedora_list = tree.root / LISTS[0]
    text = fedora_list.read_text()
    stamp = fedora_list.stat().st_mtime
    fedora_list.write_text(text[: len(text) // 2])  # cut off: no [End]
    os.utime(fedora_list, (stamp, stamp))
    record, findings = sync(config)
    assert record.outcome == "success"
    assert codes(findings) == {"filelist.unusable": Severity.WARNING}
    assert "[End]" in next(f.summary for f in findings)
    assert not uses_files_from(record)
    assert snapshot(config.parent / "mirror") == snapshot(tree.root)


def test_an_upstream_without_the_list_gets_a_full_rsync_and_says_so(
        small: tuple[FedoraLikeTree, Path]) -> None:
    tree, config = small
    sync(config)
    published = tree.publish(0.01)
    (tree.root / LISTS[1]).unlink()
    record, findings = sync(config)
    assert record.outcome == "success"
    assert codes(findings) == {"filelist.unusable": Severity.WARNING}
    assert "has no epel/fullfiletimelist-epel" in next(f.summary for f in findings)
    assert not uses_files_from(record)
    mirror = config.parent / "mirror"
    assert all((mirror / rel).exists() for rel in published.added)
    assert not (mirror / LISTS[1]).exists()  # a full rsync mirrors what the upstream has


def test_a_list_naming_a_file_the_upstream_lacks_transfers_the_rest_and_keeps_the_old_list(
        small: tuple[FedoraLikeTree, Path]) -> None:
    tree, config = small
    mirror = config.parent / "mirror"
    sync(config)
    published = tree.publish(0.01)
    ghost = published.added[0]
    (tree.root / ghost).unlink()  # listed, but vanished before we fetch it
    record, findings = sync(config)
    assert uses_files_from(record)
    assert record.outcome == "success", record.attempts
    assert codes(findings) == {"transfer.partial": Severity.INFO}
    assert record.files_failed == 1
    for rel in published.added[1:] + published.changed:
        assert (mirror / rel).read_bytes() == (tree.root / rel).read_bytes()
    for rel in published.removed:
        assert not (mirror / rel).exists()
    # The mirror keeps its old list, so the next run compares against it and tries again.
    assert (mirror / LISTS[0]).read_bytes() != (tree.root / LISTS[0]).read_bytes()
    write_filelist(tree.root / "fedora", "fullfiletimelist-fedora",
                   tree.publish_time)  # the upstream fixes its list
    record, findings = sync(config)
    assert record.outcome == "success" and codes(findings) == {}
    assert snapshot(mirror) == snapshot(tree.root)


def test_a_renamed_module_directory_keeps_its_hard_links(
        small: tuple[FedoraLikeTree, Path]) -> None:
    tree, config = small
    mirror = config.parent / "mirror"
    sync(config)
    before = inode_groups(mirror)
    assert before
    tree.rename("epel/9", "epel/9.5")
    record, findings = sync(config)
    assert record.outcome == "success" and codes(findings) == {}, record.attempts
    assert uses_files_from(record)
    assert not (mirror / "epel/9").exists()
    assert snapshot(mirror) == snapshot(tree.root)
    # Every EPEL package that was a hard link to a Fedora one still is: no second copy.
    assert inode_groups(mirror) == inode_groups(tree.root)
    assert len(inode_groups(mirror)) == len(before)


def test_a_damaged_copy_of_the_list_here_means_the_whole_tree_is_compared(
        small: tuple[FedoraLikeTree, Path]) -> None:
    tree, config = small
    mirror = config.parent / "mirror"
    sync(config)
    stamp = (mirror / LISTS[1]).stat().st_mtime
    (mirror / LISTS[1]).write_text("[Version]\n2\n\n[Files]\n")  # cut short here
    os.utime(mirror / LISTS[1], (stamp, stamp))
    removed = tree.packages()[5]
    (mirror / removed).unlink()  # and a file lost here, which no list says
    stray = mirror / "epel/9/stray.rpm"
    stray.write_bytes(b"not upstream\n")
    record, findings = sync(config)
    assert record.outcome == "success" and codes(findings) == {}, record.attempts
    assert uses_files_from(record)
    assert snapshot(mirror) == snapshot(tree.root)


def test_full_every_brings_a_full_rsync_back(small: tuple[FedoraLikeTree, Path]) -> None:
    tree, config = small
    sync(config)
    stamp = config.parent / "state" / "filelists" / "fed" / "last-full"
    assert abs(float(stamp.read_text()) - (config.parent / "mirror").stat().st_mtime) < 3600
    stamp.write_text(f"{float(stamp.read_text()) - 8 * 86400:.0f}\n")  # a week and a day ago
    tree.publish(0.01)
    record, findings = sync(config)
    assert record.outcome == "success"
    assert codes(findings) == {"filelist.full": Severity.INFO}
    assert "full_every" in next(f.summary for f in findings)
    assert not uses_files_from(record)
    record, findings = sync(config)  # recorded: the lists again
    assert codes(findings) == {} and content_stages(record) == ["filelist"]


def test_an_upstream_list_older_than_ours_is_refused(small: tuple[FedoraLikeTree, Path]) -> None:
    tree, config = small
    mirror = config.parent / "mirror"
    sync(config)
    before = snapshot(mirror)
    for name in LISTS:  # an upstream that has not caught up: its lists predate ours
        os.utime(tree.root / name, (tree.publish_time - 86400, tree.publish_time - 86400))
    (tree.root / "fedora/README").write_bytes(b"rolled back\n")
    write_filelist(tree.root / "fedora", "fullfiletimelist-fedora", tree.publish_time - 86400)
    record, findings = sync(config)
    assert record.outcome == "failed"
    assert "guard.upstream_stale" in codes(findings)
    assert snapshot(mirror) == before


def test_more_dropped_files_than_the_bound_deletes_none_and_keeps_the_old_list(
        small: tuple[FedoraLikeTree, Path]) -> None:
    tree, config = small
    mirror = config.parent / "mirror"
    sync(config)
    config.write_text(config.read_text().replace(
        'delete_grace = "0s"', 'delete_grace = "0s"\nmax_delete_min = 5\n'
        'max_delete_fraction = 0.001'))
    published = tree.publish(0.01, remove=40)
    record, findings = sync(config)
    assert codes(findings).get("guard.mass_delete") == Severity.CRITICAL
    assert record.deletions is not None and record.deletions.mass_delete
    assert all((mirror / rel).exists() for rel in published.removed)
    assert all((mirror / rel).exists() for rel in published.added)  # the copy did run
    assert (mirror / LISTS[0]).read_bytes() != (tree.root / LISTS[0]).read_bytes()


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FedoraLikeTree, Path]]:
    """One 100,000-file tree and its daemon for the module (generating it takes seconds)."""
    work = tmp_path_factory.mktemp("big")
    tree = FedoraLikeTree(work / "upstream", seed=7)
    tree.create(files=100_000)
    with RsyncDaemon(work / "rsyncd", [Module("buffet", tree.root)]) as daemon:
        yield tree, mirror_config(work, daemon.url("buffet"))


@pytest.mark.slow
def test_a_100000_file_tree_full_then_no_change_then_one_percent(
        big: tuple[FedoraLikeTree, Path]) -> None:
    tree, config = big
    mirror = config.parent / "mirror"
    assert sum(1 for _ in tree.root.rglob("*")) >= 100_000
    record, findings = sync(config)
    assert record.outcome == "success" and set(codes(findings)) == {"filelist.full"}
    assert snapshot(mirror) == snapshot(tree.root)
    assert inode_groups(mirror) == inode_groups(tree.root) != set()
    full_seconds = record.duration_seconds

    record, findings = sync(config)
    assert record.outcome == "success" and codes(findings) == {}
    assert content_stages(record) == ["filelist"] and record.files_transferred == 0
    assert record.files_total >= 100_000

    published = tree.publish(0.01)
    record, findings = sync(config)
    assert record.outcome == "success" and codes(findings) == {}, record.attempts
    assert content_stages(record) == ["filelist", "stage1", "stage2"]
    stage1 = record.final_stages[1]
    assert stage1.items_received == len(published.changed) + len(published.added) >= 1000
    assert record.deletions is not None and record.deletions.deleted >= len(published.removed)
    assert snapshot(mirror) == snapshot(tree.root)
    assert inode_groups(mirror) == inode_groups(tree.root)
    print(f"full {full_seconds:.1f}s, 1% update {record.duration_seconds:.1f}s")


def test_progress_is_known_up_front_and_only_moves_forward(
        small: tuple[FedoraLikeTree, Path]) -> None:
    tree, config = small
    sync(config)
    tree.publish(0.02)
    seen: list[LiveProgress] = []
    loaded = load_config(config)
    store = Store.open(loaded.settings.state_dir)
    try:
        record = sync_mirror(loaded, loaded.mirrors["fed"], store, on_progress=seen.append,
                             live_interval=0.0)
    finally:
        store.close()
    assert record.outcome == "success" and uses_files_from(record)
    assert {p.stage for p in seen} == {"stage1", "stage2"}  # the list fetch is not on the bar
    for stage in ("stage1", "stage2"):
        totals = {p.files_expected for p in seen if p.stage == stage and p.files_expected}
        assert len(totals) == 1, totals  # the whole count from the first line: never grows
        assert not any(p.incremental for p in seen if p.stage == stage)
    percents = [p.percent for p in seen if p.percent is not None]
    assert percents == sorted(percents) and percents[-1] > 50
