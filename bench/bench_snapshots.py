"""What snapshots cost a run: the same sync with ``snapshots = "none"`` and with snapshots plus
atomic publishing, on the same real filesystem, tree and daemon, in the same run.

    sudo .venv/bin/python bench/bench_snapshots.py [--packages N] [--repeat R] [--fs btrfs,zfs]

Needs root, btrfs-progs and zfs-fuse (``sh scripts/bootstrap.sh --test``); the filesystems
are set up and torn down as in tests/test_snapshots.py. Each scenario runs both mirrors one
after the other (in-process ``sync_mirror``, so no interpreter start-up in the figures) and
reports the median wall time of each and their ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from mirrorkeeper.config.load import load_config
from mirrorkeeper.demo.rsyncd import Module, RsyncDaemon
from mirrorkeeper.demo.tree import DebianLikeTree
from mirrorkeeper.store import Store
from mirrorkeeper.sync.run import sync_mirror

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.snapfs import SnapFs, btrfs_mounted, zfs_daemon_running, zfs_pool


@contextlib.contextmanager
def filesystem(kind: str, work: Path) -> Iterator[SnapFs]:
    if kind == "btrfs":
        with btrfs_mounted(work) as fs:
            yield fs
    else:
        with zfs_daemon_running(), zfs_pool(work) as fs:
            yield fs


def config(work: Path, fs: SnapFs, url: str) -> Path:
    fs.make_dest("plain")
    fs.make_dest("snap")
    path = work / "mk.toml"
    path.write_text(f"""
[global]
state_dir = "{work}/state"
log_dir = "{work}/logs"
profiles_dir = "{work}/profiles"
hostname = "bench.test"

[mirrors.plain]
profile = "debian"
dest = "{fs.mountpoint}/plain"
upstreams = ["{url}"]
delete_grace = "0s"

[mirrors.snap]
profile = "debian"
dest = "{fs.mountpoint}/snap"
upstreams = ["{url}"]
delete_grace = "0s"
snapshots = "{fs.kind}"
publish = "snapshot"
publish_path = "{work}/www/snap"
""")
    return path


def timed_sync(path: Path, name: str) -> float:
    cfg = load_config(path)
    store = Store.open(cfg.settings.state_dir)
    try:
        start = time.perf_counter()
        record = sync_mirror(cfg, cfg.mirrors[name], store)
        elapsed = time.perf_counter() - start
    finally:
        store.close()
    if record.outcome != "success":
        raise SystemExit(f"{name}: {record.outcome} {record.notices}")
    return elapsed


def bench(kind: str, packages: int, repeat: int) -> list[tuple[str, float, float]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="mk-bench-snap-") as tmp:
        work = Path(tmp)
        tree = DebianLikeTree(work / "upstream", seed=11)
        tree.create(packages=packages, min_size=500, max_size=20_000)
        daemon = RsyncDaemon(work / "rsyncd", [Module("debian", tree.root)]).start()
        try:
            with filesystem(kind, work) as fs:
                path = config(work, fs, daemon.url("debian"))
                rows.append(("first full sync", timed_sync(path, "plain"),
                             timed_sync(path, "snap")))
                plain, snap = [], []
                for _ in range(repeat):
                    plain.append(timed_sync(path, "plain"))
                    snap.append(timed_sync(path, "snap"))
                rows.append(("no-change sync", statistics.median(plain),
                             statistics.median(snap)))
                plain, snap = [], []
                for _ in range(repeat):
                    tree.mutate(add=100, change=40, remove=60)
                    plain.append(timed_sync(path, "plain"))
                    snap.append(timed_sync(path, "snap"))
                rows.append(("update (+100 ~40 -60)", statistics.median(plain),
                             statistics.median(snap)))
        finally:
            daemon.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packages", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fs", default="btrfs,zfs")
    args = parser.parse_args()
    print(f"tree: {args.packages} packages x 2 arches; median of {args.repeat}\n")
    print("| filesystem | scenario | snapshots none s | snapshot + publish s | ratio |")
    print("|---|---|---|---|---|")
    for kind in args.fs.split(","):
        for scenario, plain, snap in bench(kind, args.packages, args.repeat):
            print(f"| {kind} | {scenario} | {plain:.2f} | {snap:.2f} | {snap / plain:.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
