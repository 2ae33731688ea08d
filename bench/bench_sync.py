"""Mirrorkeeper vs bare rsync, measured in the same run on the same tree and daemon.

    .venv/bin/python bench/bench_sync.py [--packages N] [--repeat R]

For each scenario (first full sync, no-change sync, an update) it times bare rsync — one
command with Mirrorkeeper's own output options and --delete-after, the cheapest correct single
pass — and ``mirrorkeeper sync`` (two stages, parsing every line, logging, the store), and reports
wall time and peak memory of each, and their ratios. Medians of R repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mirrorkeeper.demo.rsyncd import Module, RsyncDaemon
from mirrorkeeper.demo.tree import DebianLikeTree
from mirrorkeeper.plan.argv import COMMON_OPTIONS, RSYNC_ENV

HERE = Path(__file__).resolve().parent


def timed(argv: list[str]) -> tuple[float, int]:
    """Wall seconds and the peak RSS (KiB) of the largest process in the command's tree."""
    start = time.perf_counter()
    proc = subprocess.run(argv, env={**os.environ, **RSYNC_ENV}, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    # ru_maxrss of RUSAGE_CHILDREN is the max over all waited-for descendants so far, so each
    # measurement runs in a fresh helper process (see measure()).
    return elapsed, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss


def measure(argv: list[str]) -> tuple[float, int]:
    helper = [sys.executable, __file__, "--measure", json.dumps(argv)]
    out = subprocess.run(helper, capture_output=True, text=True, check=True).stdout
    seconds, rss = out.split()
    return float(seconds), int(rss)


def bench_tree(work: Path, packages: int) -> DebianLikeTree:
    """The benchmarks' upstream: a Debian-like tree of ``packages`` packages, 0.5 to 20 KB."""
    tree = DebianLikeTree(work / "upstream", seed=11)
    tree.create(packages=packages, min_size=500, max_size=20_000)
    return tree


def mirrorkeeper_sync(work: Path, url: str) -> list[str]:
    """A config with one debian mirror of ``url`` in ``work``, and the argv that syncs it."""
    config = work / "mk.toml"
    config.write_text(f'[global]\nstate_dir = "{work}/state"\nlog_dir = "{work}/logs"\n'
                      f'[mirrors.deb]\nprofile = "debian"\ndest = "{work}/mk"\n'
                      f'upstreams = ["{url}"]\n'
                      # Delete at once, as bare rsync does: the same work on both sides.
                      'delete_grace = "0s"\n')
    return [sys.executable, "-m", "mirrorkeeper", "-c", str(config), "sync", "deb", "--quiet"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packages", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--measure")
    args = parser.parse_args()
    if args.measure:
        seconds, rss = timed(json.loads(args.measure))
        print(seconds, rss)
        return

    work = Path(tempfile.mkdtemp(prefix="mk-bench-"))
    try:
        tree = bench_tree(work, args.packages)
        files = sum(1 for p in tree.root.rglob("*") if p.is_file())
        size = sum(p.stat().st_size for p in tree.root.rglob("*") if p.is_file())
        rows: dict[str, dict[str, list[float]]] = {}
        with RsyncDaemon(work / "rsyncd", [Module("debian", tree.root)]) as daemon:
            url = daemon.url("debian")
            mk = mirrorkeeper_sync(work, url)
            bare = ["rsync", *COMMON_OPTIONS, "--timeout=600", "--delete-after", url,
                    f"{work}/bare/"]

            def record(name: str, tool: str, result: tuple[float, int]) -> None:
                slot = rows.setdefault(name, {})
                slot.setdefault(f"{tool}_s", []).append(result[0])
                slot.setdefault(f"{tool}_kib", []).append(result[1])

            for _ in range(args.repeat):
                for target in ("bare", "mk", "state", "logs"):
                    shutil.rmtree(work / target, ignore_errors=True)
                record("first full sync", "bare", measure(bare))
                record("first full sync", "mk", measure(mk))
                record("no-change sync", "bare", measure(bare))
                record("no-change sync", "mk", measure(mk))
            tree.mutate(add=500, change=200, remove=300)
            record("update (+500 ~200 -300)", "bare", measure(bare))
            record("update (+500 ~200 -300)", "mk", measure(mk))

        version = subprocess.run(["rsync", "--version"], capture_output=True,
                                 text=True).stdout.split()[2]
        print(f"tree: {files} files, {size / 2**20:.1f} MiB; rsync {version}; "
              f"{os.cpu_count()} CPUs; median of {args.repeat} (update: 1 run)\n")
        print("| scenario | bare rsync s | mirrorkeeper s | time ratio | bare peak RSS MiB | "
              "mirrorkeeper peak RSS MiB |")
        print("|---|---|---|---|---|---|")
        for name, slot in rows.items():
            b, m = statistics.median(slot["bare_s"]), statistics.median(slot["mk_s"])
            bk, mk_kib = max(slot["bare_kib"]), max(slot["mk_kib"])
            print(f"| {name} | {b:.2f} | {m:.2f} | {m / b:.2f} | {bk / 1024:.1f} | "
                  f"{mk_kib / 1024:.1f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
