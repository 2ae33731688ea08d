"""Seeding a new mirror with parallel streams (I/O): list, decide, split, run, clean up.

Only a mirror with no successful run is looked at. Its upstream is listed once (the same
filters as stage 1); when the destination holds fewer than ``seed_below`` of those files, the
listing is cut into ``seed_parallel`` shares by size and copied by that many rsyncs at once
(:mod:`.streams`), within the upstream host's connection budget. The ordinary stages then run
over the whole tree, as for any run: they bring what the seed missed, the index files last,
and the deletions. A listing that fails only means no seed: the ordinary stages meet the same
trouble and are judged as always.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..plan.argv import RSYNC_ENV, SyncPlan
from ..plan.seed import big_enough, is_far_behind, listing_argv, stream_argv
from ..plan.shares import ShareTree
from ..rsync.parse import Progress, list_file_entry, unescape_name
from ..rsync.process import ProcessResult, run_process
from ..rsync.tally import StageTally
from .budget import ConnectionBudget
from .streams import StreamLines, Streams, fold


@dataclass(frozen=True)
class Listing:
    #: Sizes per directory (no names: see :mod:`..plan.shares`).
    tree: ShareTree
    #: Every file and symlink as ``size<TAB>path<NUL>``, for the second pass.
    spill: Path
    result: ProcessResult
    error: str | None


@dataclass(frozen=True)
class SeedShare:
    """One stream's ``--files-from`` list, written, and what it holds."""

    list_file: Path
    paths: int
    files: int
    size: int


def list_upstream(plan: SyncPlan, budget: ConnectionBudget, stop: threading.Event,
                  spill: Path) -> Listing:
    """Every file and symlink the seed would copy, from ``--list-only``: added up per
    directory, and written to ``spill`` as it arrives."""
    tree = ShareTree()
    errors: list[str] = []
    with open(spill, "wb") as out:

        def handle(stream: str, lines: list[str]) -> None:
            if stream == "err":
                errors.extend(lines[:5 - len(errors)])
                return
            for line in lines:
                entry = list_file_entry(line)
                if entry is not None:
                    name, size = entry
                    path = unescape_name(name) if "\\#" in name else name
                    tree.add(path, size)
                    out.write(b"%d\t%s\0" % (size, os.fsencode(path)))

        with budget.slot(plan.upstream, stop) as held:
            if not held:
                return Listing(tree, spill, ProcessResult(None, "signal"), "stopped")
            result = run_process(listing_argv(plan), None, on_lines=handle,
                                 env={**RSYNC_ENV, "TZ": "UTC"},
                                 no_output_timeout=plan.no_output_timeout, stop=stop)
    error = None
    if result.exit_code not in (0, 24):
        error = "; ".join(errors) or f"rsync --list-only exit {result.exit_code}"
    return Listing(tree, spill, result, error)


def _spilled(spill: Path) -> Iterator[tuple[str, int]]:
    """The listing's (path, size) again, read a block at a time."""
    rest = b""
    with open(spill, "rb") as handle:
        while block := handle.read(1 << 20):
            records = (rest + block).split(b"\0")
            rest = records.pop()
            for record in records:
                size, _, path = record.partition(b"\t")
                yield os.fsdecode(path), int(size)


def count_local(dest: str, enough: int) -> int:
    """Files and symlinks under ``dest``, counted up to ``enough`` (a mirror that is not far
    behind is not walked to the end)."""
    count = 0
    for _root, dirs, files in os.walk(dest):
        count += len(files) + sum(1 for d in dirs if os.path.islink(os.path.join(_root, d)))
        if count >= enough:
            break
    return count


def write_shares(directory: Path, listing: Listing, count: int) -> list[SeedShare]:
    """One NUL-separated ``--files-from`` list per share (names may hold newlines), largest
    share first: the directory pieces, then the listing read again for the files of opened
    directories, each written as it is placed."""
    plan = listing.tree.split(count)
    files = [directory / f"part-{number}" for number in range(1, len(plan.paths) + 1)]
    written = [len(paths) for paths in plan.paths]
    with contextlib.ExitStack() as stack:
        outs = [stack.enter_context(open(path, "wb")) for path in files]
        for out, paths in zip(outs, plan.paths, strict=True):
            out.write(b"".join(os.fsencode(p) + b"\0" for p in paths))
            paths.clear()
        for path, size in _spilled(listing.spill):
            index = plan.place(path, size)
            if index is not None:
                outs[index].write(os.fsencode(path) + b"\0")
                written[index] += 1
    shares = sorted((SeedShare(f, w, n, b) for f, w, n, b in zip(
        files, written, plan.files, plan.sizes, strict=True) if n), key=lambda x: -x.size)
    for number, share in enumerate(shares, 1):  # stream N reads share-N
        named = directory / f"share-{number}"
        share.list_file.rename(named)
        shares[number - 1] = dataclasses.replace(share, list_file=named)
    return shares


@dataclass(frozen=True)
class SeedRun:
    """The seed's streams folded into one stage's process result and tally."""

    argv: tuple[str, ...]
    started: float
    result: ProcessResult
    tally: StageTally
    shares: list[SeedShare]


def run_seed(plan: SyncPlan, shares: list[SeedShare], scratch: Path, *,
             budget: ConnectionBudget, stop: threading.Event, on_lines: StreamLines,
             total_size: int, on_progress: Callable[[Progress | None], None],
             note: Callable[[str], None]) -> SeedRun:
    """Copy ``shares`` at once, one rsync each; their files-from lists live in ``scratch``
    (removed at the end)."""
    started = time.time()
    argvs = [stream_argv(plan, str(share.list_file)) for share in shares]
    for number, (share, argv) in enumerate(zip(shares, argvs, strict=True), 1):
        note(f"seed stream {number}: {share.paths} paths, {share.files} files, "
             f"{share.size} bytes: {' '.join(argv)}")

    def waiting(number: int, limit: int) -> None:
        with streams.lock:
                note(f"seed stream {number} waits for a connection to {plan.upstream} "
                 f"({limit} allowed at once from this machine)")

    streams = Streams(argvs, upstream=plan.upstream, budget=budget, stop=stop, env=RSYNC_ENV,
                      no_output_timeout=plan.no_output_timeout, on_lines=on_lines,
                      on_wait=waiting)

    def tick() -> None:
        with streams.lock:
            summed = streams.progress()
        if summed is not None and total_size > 0:
            percent = min(100, summed.bytes_done * 100 // total_size)
            summed = Progress(summed.bytes_done, percent, summed.rate_bps, summed.transferred,
                              None, None, False)
        on_progress(summed)

    try:
        runs = streams.run(on_tick=tick)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for run in runs:
        note(f"seed stream {run.number}: exit {run.result.exit_code}"
             + (f", stopped by {run.result.stopped_by}" if run.result.stopped_by else "")
             + f", {run.tally.files_transferred} files, {run.tally.stat('bytes_received')} "
             f"bytes received in {run.finished - run.started:.1f}s")
    result, tally = fold(runs)
    shown = (*argvs[0][:-4], f"--files-from=<share 1..{len(argvs)}>", *argvs[0][-3:])
    return SeedRun(shown, started, result, tally, shares)


def plan_seed(plan: SyncPlan, dest: str, parallel: int, below: float,
              budget: ConnectionBudget, stop: threading.Event,
              note: Callable[[str], None], min_gib: float, scratch: Path,
              ) -> tuple[list[SeedShare], int]:
    """The shares to seed with (their lists written in ``scratch``) and the listing's total
    size, or ([], 0) when the upstream is smaller than ``min_gib``, the mirror is not far
    behind, the listing failed (said in the log) or there is nothing to split."""
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        scratch.mkdir(parents=True)
        listing = list_upstream(plan, budget, stop, scratch / "listing")
    except OSError as exc:  # a full disk, say: the ordinary stages can still run
        note(f"seed: cannot write the listing in {scratch} ({exc.strerror or exc}); no "
             "parallel seed, the ordinary stages run")
        shutil.rmtree(scratch, ignore_errors=True)
        return [], 0
    try:
        if listing.error is not None:
            note(f"seed: cannot list {plan.upstream} ({listing.error}); no parallel seed, "
                 "the ordinary stages run")
            return [], 0
        if not big_enough(listing.tree.size, min_gib):
            note(f"seed: the upstream holds {listing.tree.size} bytes, less than "
                 f"seed_min_gib ({min_gib:g} GiB); no parallel seed")
            return [], 0
        upstream_files = listing.tree.files
        local = count_local(dest, max(1, int(below * upstream_files)))
        if not is_far_behind(local, upstream_files, below):
            note(f"seed: the mirror holds {local}+ of the upstream's {upstream_files} files; "
                 "no parallel seed")
            return [], 0
        try:
            shares = write_shares(scratch, listing, parallel)
        except OSError as exc:
            note(f"seed: cannot write the streams' lists in {scratch} "
                 f"({exc.strerror or exc}); no parallel seed, the ordinary stages run")
            return [], 0
        note(f"seed: the mirror holds {local} of the upstream's {upstream_files} files "
             f"({listing.tree.size} bytes): {len(shares)} streams")
        return shares, listing.tree.size
    finally:
        listing.spill.unlink(missing_ok=True)
