"""The line splitter and the streaming parser, on lines rsync 3.2 really printed.

The literal lines below were recorded from rsync daemons on 127.0.0.1 (permission-denied files
in a module running as ``nobody``, an unknown module, a closed port, a --max-delete limit), and
from rsync 3.5.0 with Mirrorkeeper's options (a dry run, --only-write-batch, hard links,
attribute-only changes); ``test_parser_on_live_output`` and
``test_itemized_files_agree_with_the_stats_on_live_two_stage_syncs`` record fresh output from a
daemon in the test itself.
"""

from __future__ import annotations

import os
import subprocess
import tracemalloc
from pathlib import Path

from mirrorkeeper.classify.codes import CODES
from mirrorkeeper.classify.findings import Severity
from mirrorkeeper.classify.judge import judge_stage, output_mismatch
from mirrorkeeper.config.load import load_config
from mirrorkeeper.config.spec import SyncSettings
from mirrorkeeper.demo.tree import DebianLikeTree
from mirrorkeeper.plan.argv import COMMON_OPTIONS, RSYNC_ENV, build_plan
from mirrorkeeper.record import StageResult
from mirrorkeeper.rsync.lines import LineSplitter
from mirrorkeeper.rsync.parse import (
    DryRun,
    Error,
    ExitLine,
    Info,
    Item,
    Progress,
    Stat,
    Unparsed,
    parse_line,
    parse_output,
)
from mirrorkeeper.rsync.tally import StageTally


def test_splitter_cuts_at_newline_and_carriage_return_across_chunks() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b">f+++++++++ a\n\r   10  1%") == [">f+++++++++ a"]
    assert splitter.feed(b" 0.00kB/s 0:00:00\r   20") == ["   10  1% 0.00kB/s 0:00:00"]
    assert splitter.feed(b"  2%\nlast") == ["   20  2%"]
    assert splitter.close() == ["last"]
    assert splitter.close() == []


def test_splitter_bounds_a_line_without_end() -> None:
    splitter = LineSplitter(max_line=100)
    out = splitter.feed(b"x" * 350)
    assert [len(x) for x in out] == [100, 100, 100]
    assert splitter.close() == ["x" * 50]


def test_undecodable_names_stay_visible() -> None:
    assert LineSplitter().feed(b">f+++++++++ caf\xe9.deb\n") == [">f+++++++++ caf\\xe9.deb"]


def test_progress_lines() -> None:
    line = "    698510   3%  166.54MB/s    0:00:00 (xfr#10, to-chk=12/4609)"
    event = parse_line(line)
    assert event == Progress(bytes_done=698510, percent=3, rate_bps=166.54 * 1024**2,
                             transferred=10, to_check=12, total_known=4609, incremental=False)
    inc = parse_line("  1,234 50%  1.00kB/s 0:01:00 (xfr#1, ir-chk=1000/2000)")
    assert isinstance(inc, Progress) and inc.incremental and inc.bytes_done == 1234
    assert parse_line("              0   0%    0.00kB/s    0:00:00  ") == Progress(
        0, 0, 0.0, None, None, None, False)


def test_progress_glued_to_the_next_message_is_split() -> None:
    events = parse_output("   698510   3%  166.54MB/s    0:00:00 (xfr#10, to-chk=0/4609)"
                          "*deleting   pool/contrib/p/pkg00013/pkg00013_1_amd64.deb")
    assert isinstance(events[0], Progress)
    assert events[1] == Item("*deleting", "pool/contrib/p/pkg00013/pkg00013_1_amd64.deb",
                             "deleted", False)


def test_itemized_lines() -> None:
    assert parse_line(">f+++++++++ pool/a/f1.deb") == Item(">f+++++++++", "pool/a/f1.deb",
                                                           "file", True)
    assert parse_line(".d..t...... pool/a/") == Item(".d..t......", "pool/a/", "dir", False)
    link = parse_line("cL+++++++++ dists/R2 -> Release")
    assert isinstance(link, Item) and link.kind == "symlink" and not link.transferred
    assert parse_line(">f.st...... pool/a/f4.deb") == Item(">f.st......", "pool/a/f4.deb",
                                                           "file", True)
    hard = parse_line("hf+++++++++ pool/b => pool/a")
    assert isinstance(hard, Item) and hard.kind == "hardlink"


def test_stats_block() -> None:
    block = """Number of files: 36 (reg: 31, dir: 4, link: 1)
Number of created files: 35 (reg: 31, dir: 3, link: 1)
Number of deleted files: 3 (reg: 3)
Number of regular files transferred: 31
Total file size: 465009 bytes
Total transferred file size: 465002 bytes
Literal data: 465002 bytes
Matched data: 0 bytes
File list size: 687
File list generation time: 0.001 seconds
File list transfer time: 0.000 seconds
Total bytes sent: 632
Total bytes received: 467088
sent 632 bytes  received 467088 bytes  935440.00 bytes/sec
total size is 465009  speedup is 0.99""".splitlines()
    events = [parse_line(x) for x in block]
    assert all(isinstance(e, Stat) for e in events), events
    stats = {e.name: e.value for e in events if isinstance(e, Stat)}
    assert stats["files_total"] == 36 and stats["files_deleted"] == 3
    assert stats["files_transferred"] == 31 and stats["size_bytes"] == 465009
    assert stats["bytes_sent"] == 632 and stats["bytes_received"] == 467088
    assert stats["file_list_generation_seconds"] == 0.001
    assert parse_line("Number of files: 1,234,567 (reg: 1,000)") == Stat("files_total", 1234567)


def test_error_lines_are_classified() -> None:
    denied = parse_line('rsync: [sender] send_files failed to open "pool/a/f5.deb" (in u): '
                        "Permission denied (13)")
    assert denied == Error("permission_denied",
                           'send_files failed to open "pool/a/f5.deb" (in u): Permission denied '
                           "(13)", path="pool/a/f5.deb", errno=13, role="sender")
    ours = parse_line('rsync: [receiver] mkstemp "/srv/m/pool/.f.deb.Xa1" failed: Permission '
                      "denied (13)")
    assert isinstance(ours, Error) and ours.kind == "local_permission"
    mkdir = parse_line('rsync: [generator] recv_generator: mkdir "/srv/m/pool/x" failed: '
                       "Permission denied (13)")
    assert isinstance(mkdir, Error) and mkdir.kind == "local_permission"
    refused = parse_line("rsync: [Receiver] failed to connect to 127.0.0.1 (127.0.0.1): "
                         "Connection refused (111)")
    assert isinstance(refused, Error) and refused.kind == "connection_refused"
    assert parse_line("@ERROR: Unknown module 'nope'") == Error("module_missing",
                                                               "Unknown module 'nope'")
    assert isinstance(parse_line("@ERROR: auth failed on module m"), Error)
    assert parse_line("@ERROR: auth failed on module m").kind == "auth"  # type: ignore[union-attr]
    vanished = parse_line('file has vanished: "/pool/a/x.deb" (in debian)')
    assert vanished == Error("vanished", 'file has vanished: "/pool/a/x.deb" (in debian)',
                             path="/pool/a/x.deb")
    full = parse_line('rsync: [receiver] write failed on "/srv/m/pool/x": No space left on '
                      "device (28)")
    assert isinstance(full, Error) and full.kind == "no_space" and full.errno == 28
    timeout = parse_line("rsync: [receiver] io timeout after 30 seconds -- exiting")
    assert isinstance(timeout, Error) and timeout.kind == "timeout"
    maxdel = parse_line("Deletions stopped due to --max-delete limit (8 skipped)")
    assert isinstance(maxdel, Error) and maxdel.kind == "max_delete"
    assert parse_line("rsync error: some files/attrs were not transferred (see previous errors)"
                      " (code 23) at main.c(1874) [generator=3.2.7]") == ExitLine(
        23, "some files/attrs were not transferred (see previous errors)")
    assert parse_line("rsync warning: some files vanished before they could be transferred "
                      "(code 24) at main.c(1874) [generator=3.2.7]").code == 24  # type: ignore


def test_known_chatter_is_info_and_anything_else_is_unparsed() -> None:
    assert isinstance(parse_line("receiving incremental file list"), Info)
    assert isinstance(parse_line("something rsync never said"), Unparsed)


def test_tally_memory_does_not_grow_with_the_number_of_files() -> None:
    def peak(files: int) -> int:
        tally = StageTally()
        tracemalloc.start()
        for i in range(files):
            for event in parse_output(f">f+++++++++ pool/main/p/pkg{i}/pkg{i}_1_amd64.deb"):
                tally.add(event)
            if i % 7 == 0:
                for event in parse_output(f'rsync: [sender] send_files failed to open "p{i}" '
                                          "(in m): Permission denied (13)"):
                    tally.add(event)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert tally.items["file"] == files
        assert tally.files_failed == len(range(0, files, 7))
        assert len(tally.error_samples) == tally.sample_limit
        return top

    small, large = peak(2_000), peak(40_000)
    assert large < small * 1.5 + 64 * 1024, (small, large)


def test_parser_on_live_output(tmp_path: Path, served: str, upstream: DebianLikeTree) -> None:
    """Record real output from the test daemon; every line must be understood."""
    dest = tmp_path / "copy"
    proc = subprocess.run(["rsync", *COMMON_OPTIONS, served, f"{dest}/"], env=RSYNC_ENV,
                          capture_output=True, check=True)
    splitter = LineSplitter()
    lines = splitter.feed(proc.stdout + proc.stderr) + splitter.close()
    tally = StageTally()
    for line in lines:
        for event in parse_output(line):
            tally.add(event)
    regular = [p for p in upstream.root.rglob("*") if p.is_file()]
    assert tally.unparsed == 0, [x for x in lines if isinstance(parse_line(x), Unparsed)]
    assert tally.stat("files_transferred") == len(regular) == tally.items_received
    assert tally.stat("size_bytes") == sum(p.stat().st_size for p in regular)
    dirs = [p for p in upstream.root.rglob("*") if p.is_dir()]
    assert tally.stat("files_total") == len(regular) + len(dirs) + 1  # "." counts too
    assert tally.last_progress is not None and tally.last_progress.to_check == 0


def _tally_state(tally: StageTally) -> dict[str, object]:
    return {k: v for k, v in vars(tally).items() if k != "_progress"} | {
        "last_progress": tally.last_progress}


def test_the_fast_feed_counts_exactly_what_the_events_count(
        tmp_path: Path, served: str, upstream: DebianLikeTree) -> None:
    """``StageTally.feed`` (the hot path: no event objects) and ``parse_output`` → ``add`` give
    the same tally, on real output and on every kind of line the parser knows."""
    proc = subprocess.run(["rsync", *COMMON_OPTIONS, served, f"{tmp_path / 'copy'}/"],
                          env=RSYNC_ENV, capture_output=True, check=True)
    splitter = LineSplitter()
    live = splitter.feed(proc.stdout + proc.stderr) + splitter.close()
    corpus = [*live, *DRY_RUN, *CHANGES, *IGNORE_TIMES,
              "   698510   3%  166.54MB/s    0:00:00 (xfr#10, to-chk=0/4609)*deleting   a/b.deb",
              "hf+++++++++ pool/b => pool/a", ">f+++++++++ ", "cannot delete non-empty "
              "directory: pool/x", 'rsync: [sender] send_files failed to open "p/a.deb" (in u):'
              " Permission denied (13)", "@ERROR: max connections (2) reached -- try again later",
              "Deletions stopped due to --max-delete limit (8 skipped)", "something else",
              "delete_item(pool/old.deb) mode=100644 flags=0"]
    for listing in (False, True):
        slow, fast = StageTally(listing=listing), StageTally(listing=listing)
        shown = 0
        for line in corpus:
            for event in parse_output(line):
                slow.add(event)
            shown += fast.feed(line)
        assert _tally_state(fast) == _tally_state(slow)
        assert shown == sum(any(isinstance(e, Progress) for e in parse_output(x))
                            for x in corpus) > 0


# rsync 3.5.0, Mirrorkeeper's options plus -n, into an empty directory: it reads like a real
# first sync (itemized lines, 3 files transferred) but for the last word.
DRY_RUN = """created directory /srv/mirror
cd+++++++++ ./
>f+++++++++ empty
cL+++++++++ latest -> pool/a/y_1.deb
cd+++++++++ pool/
cd+++++++++ pool/a/
>f+++++++++ pool/a/x_1.deb.hl
hf+++++++++ pool/a/x_1.deb => pool/a/x_1.deb.hl
>f+++++++++ pool/a/y_1.deb
Number of files: 8 (reg: 4, dir: 3, link: 1)
Number of created files: 8 (reg: 4, dir: 3, link: 1)
Number of deleted files: 0
Number of regular files transferred: 3
Total file size: 26 bytes
Total transferred file size: 8 bytes
Literal data: 0 bytes
Matched data: 0 bytes
File list size: 0
File list generation time: 0.001 seconds
File list transfer time: 0.000 seconds
Total bytes sent: 228
Total bytes received: 98
sent 228 bytes  received 98 bytes  652.00 bytes/sec
total size is 26  speedup is 0.08 (DRY RUN)""".splitlines()

# The next real run (stage 2's options) after upstream touched x_1.deb (hard-linked to
# x_1.deb.hl), chmod-ed y_1.deb, added z_1.deb with a hard link z.hl, and removed `empty`:
# two files received (>f), one attribute-only change (.f), two hard links made locally (hf).
CHANGES = """.d..t...... ./
.d..t...... pool/a/
>f..t...... pool/a/x_1.deb
.f...p..... pool/a/y_1.deb
>f+++++++++ pool/a/z_1.deb
hf..t...... pool/a/x_1.deb.hl => pool/a/x_1.deb
hf+++++++++ z.hl => pool/a/z_1.deb
*deleting   empty
Number of files: 9 (reg: 5, dir: 3, link: 1)
Number of created files: 2 (reg: 2)
Number of deleted files: 1 (reg: 1)
Number of regular files transferred: 2
Total file size: 38 bytes
Total transferred file size: 10 bytes
Literal data: 10 bytes
Matched data: 0 bytes
File list size: 0
File list generation time: 0.001 seconds
File list transfer time: 0.000 seconds
Total bytes sent: 368
Total bytes received: 114
sent 368 bytes  received 114 bytes  964.00 bytes/sec
total size is 38  speedup is 0.08""".splitlines()

# -I (--ignore-times) on an unchanged tree: every file is sent again; hard-link lines carry
# no attribute letters at all.
IGNORE_TIMES = """>f......... empty
>f......... hl2
>f......... a/f2
>f......... a/f3
>f......... a/b/big
hf          a/f1 => hl2
hf          a/b/hl1 => hl2
Number of regular files transferred: 5""".splitlines()


def tally_of(lines: list[str]) -> StageTally:
    tally = StageTally()
    for line in lines:
        for event in parse_output(line):
            tally.add(event)
    return tally


def stage_of(tally: StageTally, exit_code: int | None = 0) -> StageResult:
    """The stage result sync/run.py builds, as far as the verdict reads it."""
    return StageResult("stage1", (), 0.0, 1.0, exit_code, files_failed=tally.files_failed,
                       errors=dict(tally.errors), dry_run=tally.dry_run,
                       items_received=tally.items_received,
                       stats_files_transferred=tally.stats_files_transferred)


def test_the_dry_run_and_batch_only_summaries_are_events_of_their_own() -> None:
    assert parse_line("total size is 26  speedup is 0.08 (DRY RUN)") == DryRun("DRY RUN")
    assert parse_line("total size is 70  speedup is 0.27 (BATCH ONLY)") == DryRun("BATCH ONLY")
    assert parse_line("total size is 38  speedup is 0.08") == Stat("total_size_bytes", 38)
    # rsync prints only those two suffixes; another would be new output: fail closed.
    assert isinstance(parse_line("total size is 38  speedup is 0.08 (SOMETHING)"), Unparsed)


def test_a_dry_run_is_never_a_success() -> None:
    tally = tally_of(DRY_RUN)
    assert tally.unparsed == 0 and tally.dry_run == "DRY RUN"
    # The counts agree, so only the summary line tells a dry run from a real first sync.
    assert tally.items_received == tally.stats_files_transferred == 3
    verdict = judge_stage(stage_of(tally), SyncSettings(), None)
    assert (verdict.category, verdict.code) == ("internal", "internal.dry_run")
    assert verdict.reason == "rsync reported (DRY RUN): it changed nothing in the mirror"
    batch = tally_of([*DRY_RUN[:-1], "total size is 26  speedup is 0.08 (BATCH ONLY)"])
    assert judge_stage(stage_of(batch), SyncSettings(), None).code == "internal.dry_run"
    assert CODES["internal.dry_run"].severity == Severity.CRITICAL
    assert CODES["internal.dry_run"].protected


def test_hard_links_and_attribute_changes_are_not_counted_as_received() -> None:
    for lines, received in ((CHANGES, 2), (IGNORE_TIMES, 5)):
        tally = tally_of(lines)
        assert tally.unparsed == 0
        assert tally.items_received == tally.stats_files_transferred == received
        assert output_mismatch(stage_of(tally)) is None
        assert judge_stage(stage_of(tally), SyncSettings(), None).category == "ok"
    assert tally_of(CHANGES).items["hardlink"] == 2 and tally_of(CHANGES).items["file"] == 3


def test_output_that_does_not_add_up_is_not_a_success() -> None:
    settings = SyncSettings()
    missing_item = tally_of([x for x in CHANGES if not x.startswith(">f+++++++++")])
    verdict = judge_stage(stage_of(missing_item), settings, None)
    assert (verdict.category, verdict.code) == ("internal", "internal.output_mismatch")
    assert verdict.reason.startswith("rsync's stats say 2 files transferred but it itemized 1")
    no_stats = tally_of([x for x in CHANGES if x.startswith((">f", ".f", "hf", "*del", ".d"))])
    verdict = judge_stage(stage_of(no_stats), settings, None)
    assert (verdict.category, verdict.code) == ("internal", "internal.output_mismatch")
    assert "no --stats block" in verdict.reason
    # Only a clean exit is checked: with exit 23 or 24 rsync has said what went wrong.
    assert judge_stage(stage_of(missing_item, 24), settings, None).category == "ok"
    # A stage not read line by line (the update-signal probe) has nothing to compare.
    assert judge_stage(StageResult("preflight", (), 0.0, 0.0, 0), settings, None).category == (
        "ok")


def _run_stage(argv: tuple[str, ...], deletes: bool = False) -> StageTally:
    proc = subprocess.run(argv, env=RSYNC_ENV, capture_output=True, check=False)
    # The deleting stage lists what it would delete with --max-delete=0: exit 25 when any.
    assert proc.returncode in ((0, 25) if deletes else (0,)), proc.stderr
    splitter = LineSplitter()
    return tally_of(splitter.feed(proc.stdout + proc.stderr) + splitter.close())


def test_itemized_files_agree_with_the_stats_on_live_two_stage_syncs(
        mirror_config: Path, served: str, upstream: DebianLikeTree) -> None:
    """Mirrorkeeper's real stage argv against the test daemon: a first sync, then an update
    with hard links, symlinks, attribute-only changes and deletions. The check must never
    fire on a normal run."""
    mirror = load_config(mirror_config).mirrors["deb"]
    plan = build_plan(mirror, served)
    kinds: set[str] = set()
    listed = 0
    for round_ in range(3):
        for stage in plan.stages:
            tally = _run_stage(stage.argv, stage.deletes)
            listed += tally.candidates_total
            assert tally.unparsed == 0
            assert tally.items_received == tally.stats_files_transferred, (round_, stage.name)
            assert output_mismatch(stage_of(tally)) is None
            kinds |= {k for k, n in tally.items.items() if n}
        upstream.mutate(add=5, change=5, remove=5)
        pool = sorted(p for p in (upstream.root / "pool").rglob("*.deb"))
        os.link(pool[0], upstream.root / f"pool/hardlink{round_}.deb")
        os.link(pool[1], pool[1].with_name(pool[1].name + f".hl{round_}"))
        (upstream.root / f"latest{round_}").symlink_to(os.path.relpath(pool[2], upstream.root))
        pool[3].chmod(0o600)
        os.utime(pool[4], (1, 1))
    assert kinds >= {"file", "dir", "hardlink", "symlink"}
    assert listed >= 10  # the deletions rsync listed for Mirrorkeeper instead of making them
