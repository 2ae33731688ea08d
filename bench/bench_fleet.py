"""What the fleet store costs a sync: ``mirrorkeeper sync`` with the SQLite store in the state
directory against the same sync with ``[fleet]`` (PostgreSQL 15 on a unix socket, the
fleet-wide advisory lock, Redis unused by a one-off sync), interleaved, same tree and daemon.

    .venv/bin/python bench/bench_fleet.py [--packages N] [--repeat R]

Prints, per scenario (first full sync, no-change sync), the median seconds of each and the
median of the per-repetition ratios fleet / SQLite. Needs PostgreSQL 15 (see
tests/fleetservers.py) and the ``fleet`` extra.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_sync import bench_tree  # beside this script

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.fleetservers import Postgres

from mirrorkeeper.demo.rsyncd import Module, RsyncDaemon


def config(work: Path, url: str, store: str | None) -> list[str]:
    path = work / "mk.toml"
    text = (f'[global]\nstate_dir = "{work}/state"\nlog_dir = "{work}/logs"\n'
            f'[mirrors.deb]\nprofile = "debian"\ndest = "{work}/mk"\n'
            f'upstreams = ["{url}"]\ndelete_grace = "0s"\n')
    if store:
        text += f'[fleet]\nstore = "{store}"\nqueue = "redis://127.0.0.1:1/0"\nhost = "a"\n'
    path.write_text(text)
    return [sys.executable, "-m", "mirrorkeeper", "-c", str(path), "sync", "deb", "--quiet"]


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packages", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mk-bench-fleet-"))
    postgres = Postgres().start()
    daemon = RsyncDaemon(work / "rsyncd", [Module("debian", bench_tree(work, args.packages).root)])
    daemon.start()
    results: dict[str, dict[str, list[float]]] = {
        s: {"sqlite": [], "fleet": []} for s in ("first full sync", "no-change sync")}
    try:
        for i in range(args.repeat):
            for kind in ("sqlite", "fleet"):
                here = work / f"{kind}{i}"
                here.mkdir()
                argv = config(here, daemon.url("debian"),
                              postgres.create_database() if kind == "fleet" else None)
                results["first full sync"][kind].append(timed(argv))
                results["no-change sync"][kind].append(timed(argv))
    finally:
        daemon.stop()
        postgres.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"tree: {args.packages} packages; median of {args.repeat}")
    print("| scenario | SQLite s | fleet (PostgreSQL) s | ratio |")
    print("|---|---|---|---|")
    for scenario, by in results.items():
        ratios = [f / s for f, s in zip(by["fleet"], by["sqlite"], strict=True)]
        print(f"| {scenario} | {statistics.median(by['sqlite']):.2f} | "
              f"{statistics.median(by['fleet']):.2f} | {statistics.median(ratios):.2f} |")


if __name__ == "__main__":
    main()
