"""Mirrorkeeper's push path vs Debian's ftpsync, measured in the same run on the same tree and
rsync daemon.

    .venv/bin/python bench/bench_ftpsync.py [--packages N] [--repeat R]

Both receive the same push (``SSH_ORIGINAL_COMMAND=sync:all``, as sshd gives a forced
command) and write their trace; ftpsync is the packaged ``/usr/bin/ftpsync`` with a minimal
config (``--port`` in RSYNC_EXTRA, as its own test suite does), Mirrorkeeper is ``mirrorkeeper
trigger`` of a ``debian`` mirror with no daemon running (so it syncs in the foreground). For
each scenario (first sync, no-change push, an update) the medians of R repeats of wall time and
peak RSS are reported, with the ratio Mirrorkeeper / ftpsync. A staged pair (``sync:stage1``
then ``sync:stage2``) is timed once per repeat after the update.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sync import bench_tree, measure

from mirrorkeeper.demo.rsyncd import Module, RsyncDaemon


def ftpsync_push(work: Path, port: int, words: str) -> list[str]:
    home = work / "home"
    (home / ".config/ftpsync").mkdir(parents=True, exist_ok=True)
    (home / ".config/ftpsync/ftpsync.conf").write_text(
        f'MIRRORNAME="bench.test"\nTRACEHOST="bench.test"\nTO="{work}/ftpsync/"\n'
        f'LOGDIR="{work}/ftpsync-log"\nMAILTO="root"\nRSYNC_HOST="127.0.0.1"\n'
        f'RSYNC_PATH="debian"\nRSYNC_EXTRA="--port={port}"\n')
    ftpsync = shutil.which("ftpsync") or "/usr/bin/ftpsync"
    return ["env", f"HOME={home}", "LOGNAME=root", f"SSH_ORIGINAL_COMMAND={words}", ftpsync]


def mirrorkeeper_push(work: Path, url: str, words: str) -> list[str]:
    config = work / "mk.toml"
    config.write_text(f'[global]\nstate_dir = "{work}/state"\nlog_dir = "{work}/logs"\n'
                      'hostname = "bench.test"\n'
                      f'[mirrors.deb]\nprofile = "debian"\ndest = "{work}/mk"\n'
                      f'upstreams = ["{url}"]\n'
                      # Delete at once, as ftpsync does: the same work on both sides.
                      'delete_grace = "0s"\n')
    return ["env", f"SSH_ORIGINAL_COMMAND={words}", sys.executable, "-m", "mirrorkeeper",
            "-c", str(config), "trigger", "deb"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packages", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("ftpsync"):
        raise SystemExit("needs Debian's ftpsync package: `sh scripts/bootstrap.sh --test`")
    work = Path(tempfile.mkdtemp(prefix="mk-bench-ftpsync-"))
    try:
        tree = bench_tree(work, args.packages)
        files = sum(1 for p in tree.root.rglob("*") if p.is_file())
        rows: dict[str, dict[str, list[float]]] = {}

        def record(name: str, tool: str, result: tuple[float, int]) -> None:
            slot = rows.setdefault(name, {})
            slot.setdefault(f"{tool}_s", []).append(result[0])
            slot.setdefault(f"{tool}_kib", []).append(result[1])

        with RsyncDaemon(work / "rsyncd", [Module("debian", tree.root)]) as daemon:
            ftp = {w: ftpsync_push(work, daemon.port, w) for w in
                   ("sync:all", "sync:stage1", "sync:stage2")}
            mk = {w: mirrorkeeper_push(work, daemon.url("debian"), w) for w in ftp}
            for _ in range(args.repeat):
                for target in ("ftpsync", "ftpsync-log", "mk", "state", "logs"):
                    shutil.rmtree(work / target, ignore_errors=True)
                for name in ("first sync", "no-change push"):
                    record(name, "ftpsync", measure(ftp["sync:all"]))
                    record(name, "mk", measure(mk["sync:all"]))
            tree.mutate(add=500, change=200, remove=300)
            record("update (+500 ~200 -300)", "ftpsync", measure(ftp["sync:all"]))
            record("update (+500 ~200 -300)", "mk", measure(mk["sync:all"]))
            for _ in range(args.repeat):
                tree.mutate(add=50, change=20, remove=30)
                for tool, pushes in (("ftpsync", ftp), ("mk", mk)):
                    one = measure(pushes["sync:stage1"])
                    two = measure(pushes["sync:stage2"])
                    record("staged push (stage1 + stage2)", tool,
                           (one[0] + two[0], max(one[1], two[1])))
        print(f"tree: {files} files; {os.cpu_count()} CPUs; median of {args.repeat} "
              "(update: 1 run)\n")
        print("| scenario | ftpsync s | mirrorkeeper s | time ratio | ftpsync peak RSS MiB | "
              "mirrorkeeper peak RSS MiB |")
        print("|---|---|---|---|---|---|")
        for name, slot in rows.items():
            f, m = statistics.median(slot["ftpsync_s"]), statistics.median(slot["mk_s"])
            print(f"| {name} | {f:.2f} | {m:.2f} | {m / f:.2f} | "
                  f"{max(slot['ftpsync_kib']) / 1024:.1f} | {max(slot['mk_kib']) / 1024:.1f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
