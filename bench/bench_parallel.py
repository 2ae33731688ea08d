"""A new mirror's first sync through a per-connection bandwidth cap: one stream against
``seed_parallel = N``, side by side in one run, on the same tree, daemon and proxy.

    .venv/bin/python bench/bench_parallel.py [--size-mb 150] [--files 5000] [--rate-mb 2]
                                             [--parallel 4]

The upstream is a Debian-like tree of ``--files`` files (sizes spread so that they add up to
about ``--size-mb``) served by a real rsync daemon behind :class:`ThrottledProxy`, which caps
each TCP connection at ``--rate-mb`` MB/s (the issue's acceptance case is ``--size-mb 2048
--files 20000``: about 17 minutes for the single stream alone). Each mirror starts empty and
runs once in-process (``sync_mirror``); afterwards both must be identical to the upstream
(every path, size and SHA-256). Reports wall seconds, the ratio, and the proxy's connection
peak during each.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

from mirrorkeeper.config.load import load_config
from mirrorkeeper.demo.rsyncd import Module, RsyncDaemon
from mirrorkeeper.demo.throttle import ThrottledProxy
from mirrorkeeper.demo.tree import DebianLikeTree
from mirrorkeeper.store import Store
from mirrorkeeper.sync.run import sync_mirror

OWN_TRACE = "project/trace/bench.test"


def digest(root: Path) -> dict[str, tuple[int, str]]:
    """Every regular file's (size, SHA-256), but the mirror's own trace file."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_file() and not path.is_symlink() and rel != OWN_TRACE:
            found[rel] = (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
    return found


def write_config(work: Path, url: str, parallel: int) -> Path:
    path = work / "mk.toml"
    mirrors = ""
    for name, streams in (("single", 1), ("parallel", parallel)):
        mirrors += f"""
[mirrors.{name}]
profile = "debian"
dest = "{work}/{name}"
upstreams = ["{url}"]
delete_grace = "0s"
seed_parallel = {streams}
seed_min_gib = 0
max_connections = {parallel}
"""
    path.write_text(f"""
[global]
state_dir = "{work}/state"
log_dir = "{work}/logs"
profiles_dir = "{work}/profiles"
hostname = "bench.test"
{mirrors}""")
    return path


def timed_sync(path: Path, name: str, proxy: ThrottledProxy) -> tuple[float, int, str]:
    config = load_config(path)
    store = Store.open(config.settings.state_dir)
    proxy.peak = proxy.active
    try:
        start = time.perf_counter()
        record = sync_mirror(config, config.mirrors[name], store)
        elapsed = time.perf_counter() - start
    finally:
        store.close()
    if record.outcome != "success":
        raise SystemExit(f"{name}: {record.outcome} ({record.attempts})")
    return elapsed, proxy.peak, " ".join(s.name for s in record.stages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=float, default=150.0)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--rate-mb", type=float, default=2.0, help="MB/s per connection")
    parser.add_argument("--parallel", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mk-bench-parallel-") as scratch:
        work = Path(scratch)
        tree = DebianLikeTree(work / "upstream", seed=14)
        mean = int(args.size_mb * 1e6 / args.files)
        began = time.perf_counter()
        tree.create(packages=args.files // 2, min_size=mean // 10, max_size=2 * mean - mean // 10)
        expected = digest(tree.root)
        size = sum(s for s, _ in expected.values())
        print(f"tree: {len(expected)} files, {size / 1e6:.0f} MB "
              f"(made in {time.perf_counter() - began:.0f}s); each connection capped at "
              f"{args.rate_mb:g} MB/s")
        with RsyncDaemon(work / "rsyncd", [Module("debian", tree.root, {
                "max connections": str(args.parallel),
                "lock file": str(work / "rsyncd.lock")})]) as daemon:
            proxy = ThrottledProxy(daemon.port, args.rate_mb * 1e6).start()
            try:
                path = write_config(work, proxy.url("debian"), args.parallel)
                Store.open(load_config(path).settings.state_dir).close()
                rows = []
                for name in ("single", "parallel"):
                    seconds, peak, stages = timed_sync(path, name, proxy)
                    identical = digest(work / name) == expected
                    rows.append((name, seconds, peak, stages, identical))
            finally:
                proxy.stop()
        print("\n| mirror | seconds | connections at once | stages | identical to upstream |")
        print("|---|---|---|---|---|")
        for name, seconds, peak, stages, identical in rows:
            print(f"| {name} | {seconds:.1f} | {peak} | {stages} | {identical} |")
        print(f"\nspeed-up with seed_parallel = {args.parallel}: "
              f"{rows[0][1] / rows[1][1]:.2f}x")
        if not all(row[4] for row in rows):
            raise SystemExit("a mirror differs from the upstream")


if __name__ == "__main__":
    main()
