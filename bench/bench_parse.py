"""How fast rsync's output is handled: lines per second through the whole per-line path.

    .venv/bin/python bench/bench_parse.py [--files N]

rsync's real output for a first sync of a generated tree (its own options: itemized lines and
``--info=progress2``, two lines per file) is recorded once, repeated to N files' worth, and fed
in 64 KiB reads, as the pipe delivers it, through what a stage does with each read: split into
lines, write to the run log, count in the tally (:meth:`StageTally.feed`). Printed: lines per
second of that path and, for comparison, of the event path it replaced (``parse_output`` then
``StageTally.add``, a log write per line).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from mirrorkeeper.demo.rsyncd import Module, RsyncDaemon
from mirrorkeeper.demo.tree import DebianLikeTree
from mirrorkeeper.logs import RunLog
from mirrorkeeper.plan.argv import COMMON_OPTIONS, RSYNC_ENV
from mirrorkeeper.rsync.lines import LineSplitter
from mirrorkeeper.rsync.parse import parse_output
from mirrorkeeper.rsync.tally import StageTally


def record_output(work: Path) -> bytes:
    tree = DebianLikeTree(work / "up", seed=3)
    tree.create(packages=1500, min_size=100, max_size=1000)
    with RsyncDaemon(work / "rsyncd", [Module("debian", tree.root)]) as daemon:
        done = subprocess.run(["rsync", *COMMON_OPTIONS, daemon.url("debian"),
                               f"{work}/copy/"], env=RSYNC_ENV, capture_output=True,
                              check=True)
    return done.stdout


def fast(chunks: list[bytes], logs: Path) -> int:
    log, tally, splitter, count = RunLog(logs, "m", 1, time.time()).open(), StageTally(), \
        LineSplitter(), 0
    for chunk in chunks:
        lines = splitter.feed(chunk)
        count += len(lines)
        log.write_lines("out", lines)
        for line in lines:
            tally.feed(line)
    log.close()
    return count


def events(chunks: list[bytes], logs: Path) -> int:
    log, tally, splitter, count = RunLog(logs, "m", 2, time.time()).open(), StageTally(), \
        LineSplitter(), 0
    for chunk in chunks:
        for line in splitter.feed(chunk):
            count += 1
            log.write("out", line)
            for event in parse_output(line):
                tally.add(event)
    log.close()
    return count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mk-parse-") as scratch:
        work = Path(scratch)
        sample = record_output(work)
        per_copy = max(1, sample.count(b"\n>f"))
        data = sample * max(1, args.files // per_copy)
        chunks = [data[i:i + 65536] for i in range(0, len(data), 65536)]
        for name, path in (("read, log, tally.feed", fast), ("parse_output, tally.add", events)):
            started = time.process_time()
            lines = path(chunks, work / "logs")
            seconds = time.process_time() - started
            print(f"{name}: {lines} lines in {seconds:.2f} s CPU, {lines / seconds:,.0f} lines/s")


if __name__ == "__main__":
    main()
