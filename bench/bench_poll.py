"""What an update-signal poll costs, against a no-change rsync of the same mirror (issue #5).

    .venv/bin/python bench/bench_poll.py [--packages N] [--repeat R]

On one generated Debian-like tree served by one rsync daemon on 127.0.0.1, after a first full
sync, it measures in the same run: the daemon's poll (``rsync --list-only`` of
``project/trace/master``, as :func:`mirrorkeeper.daemon.poller.poll_signal` runs it), a bare
no-change rsync (one pass with Mirrorkeeper's options), and a no-change ``mirrorkeeper sync``
(two stages). Wall time (median of R) and bytes on the wire (rsync's ``--stats``), plus the
CPU time the rsync daemon spends serving each.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench_sync import bench_tree, mirrorkeeper_sync  # beside this script

from mirrorkeeper.config.spec import SyncSettings
from mirrorkeeper.demo.rsyncd import Module, RsyncDaemon
from mirrorkeeper.plan.argv import COMMON_OPTIONS, RSYNC_ENV
from mirrorkeeper.sync.preflight import probe


def wire_bytes(argv: list[str]) -> int:
    out = subprocess.run([*argv[:1], "--stats", *argv[1:]], env={**os.environ, **RSYNC_ENV},
                         capture_output=True, text=True, check=True).stdout
    sent = re.search(r"^Total bytes sent: ([\d,]+)", out, re.M)
    received = re.search(r"^Total bytes received: ([\d,]+)", out, re.M)
    assert sent and received, out
    return int(sent.group(1).replace(",", "")) + int(received.group(1).replace(",", ""))


def daemon_cpu(pid: int) -> float:
    """CPU seconds of the rsync daemon and its (reaped) children so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def timed(what: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(what, env={**os.environ, **RSYNC_ENV}, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packages", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mk-poll-"))
    try:
        tree = bench_tree(work, args.packages)
        files = sum(1 for p in tree.root.rglob("*") if p.is_file())
        with RsyncDaemon(work / "rsyncd", [Module("debian", tree.root)]) as rsyncd:
            url = rsyncd.url("debian")
            mk = mirrorkeeper_sync(work, url)
            bare = ["rsync", *COMMON_OPTIONS, "--delete-after", url, f"{work}/bare/"]
            listing = ["rsync", "--list-only", "--no-motd", f"{url}project/trace/master"]
            timed(mk), timed(bare)  # the first full syncs
            settings = SyncSettings(upstreams=(url,))
            assert rsyncd.proc is not None
            pid = rsyncd.proc.pid
            rows: dict[str, list[float]] = {"poll": [], "bare": [], "mk": []}
            cpu: dict[str, list[float]] = {"poll": [], "bare": [], "mk": []}
            for _ in range(args.repeat):
                for name in rows:
                    before = daemon_cpu(pid)
                    if name == "poll":
                        result = probe("rsync", url, "project/trace/master", settings)
                        assert result.exists, result
                        rows[name].append(result.seconds)
                    else:
                        rows[name].append(timed(bare if name == "bare" else mk))
                    time.sleep(0.2)  # let the daemon reap its child
                    cpu[name].append(daemon_cpu(pid) - before)
            poll_bytes, bare_bytes = wire_bytes(listing), wire_bytes(bare)
        poll = statistics.median(rows["poll"])
        print(f"tree: {files} files; median of {args.repeat}\n")
        print("| what | wall s | vs poll | bytes on the wire | rsync daemon CPU s |")
        print("|---|---|---|---|---|")
        for name, label, wire in (("poll", "update-signal poll (one file)", poll_bytes),
                                  ("bare", "bare rsync, no change (one pass)", bare_bytes),
                                  ("mk", "mirrorkeeper sync, no change (two stages)", None)):
            wall = statistics.median(rows[name])
            print(f"| {label} | {wall:.3f} | {wall / poll:.0f}x | "
                  f"{f'{wire:,}' if wire else '2 x the bare pass'} | "
                  f"{statistics.median(cpu[name]):.2f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
