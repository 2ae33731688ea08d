"""The file-list method vs Mirrorkeeper's plain two-stage rsync, in the same run, on the same
Fedora-like tree (two modules, hard links between them) and the same daemon.

    .venv/bin/python bench/bench_filelist.py [--files N] [--repeat R]

Both mirrors first sync in full (not timed against each other: the file-list mirror's first
sync *is* a two-stage rsync). Then, timed: a sync with nothing published (R times), a sync after a
publish that touches 1% of the packages (half of them rewritten, a quarter added, a quarter
dropped), and one after a publish three times that size (1% rewritten, 1% added, 1% dropped). After
every sync each mirror is compared with the upstream entry by entry (bytes, link targets, and
which paths share an inode); a difference stops the bench. Times: the command's wall time, and
the run's own duration from its record (the same minus the interpreter's start-up).

The last columns are the floor under the file-list method on this tree: what any file-list run
here pays whatever its planning costs — the command's start-up (its wall time minus the run)
and its rsync processes (the list fetch and the two ``--files-from`` transfers, from the
record) — as a share of the plain rsync's wall time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mirrorkeeper.demo.fedora import FedoraLikeTree
from mirrorkeeper.demo.rsyncd import Module, RsyncDaemon
from mirrorkeeper.store import Store

LISTS = ["fedora/fullfiletimelist-fedora", "epel/fullfiletimelist-epel"]


def config(work: Path, url: str, method: str) -> list[str]:
    """A fedora-profile mirror of ``url`` by ``method``, and the argv that syncs it."""
    path = work / f"{method}.toml"
    path.write_text(
        f'[global]\nstate_dir = "{work}/{method}-state"\nlog_dir = "{work}/{method}-logs"\n'
        f'[mirrors.fed]\nprofile = "fedora"\ndest = "{work}/{method}"\nupstreams = ["{url}"]\n'
        f'method = "{method}"\nfilelist = {LISTS!r}\nupdate_signal = "{LISTS[0]}"\n'
        # Delete at once on both sides: the same work.
        'delete_grace = "0s"\n'.replace("'", '"'))
    return [sys.executable, "-m", "mirrorkeeper", "-c", str(path), "sync", "fed", "--quiet"]


def timed(argv: list[str], state: Path) -> tuple[float, float, float]:
    """The command's wall time, the run's own (its record: without the interpreter's
    start-up and imports, which both methods pay alike), and its rsync processes' time."""
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{argv[-3:]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    store = Store.open(str(state))
    try:
        record = store.history("fed", 1)[0]
    finally:
        store.close()
    if record.outcome != "success":
        raise SystemExit(f"{argv[-3:]}: {record.outcome}")
    return elapsed, record.duration_seconds, sum(x.duration_seconds for x in record.stages)


def snapshot(root: Path) -> tuple[dict[str, object], set[frozenset[str]]]:
    """Every entry (file bytes, link target, directory) and the hard-link groups."""
    entries: dict[str, object] = {}
    inodes: dict[int, set[str]] = {}
    for path in root.rglob("*"):
        rel = str(path.relative_to(root))
        if ".~tmp~" in rel:
            continue
        if path.is_symlink():
            entries[rel] = ("l", os.readlink(path))
        elif path.is_dir():
            entries[rel] = "d"
        else:
            entries[rel] = path.read_bytes()
            inodes.setdefault(path.stat().st_ino, set()).add(rel)
    return entries, {frozenset(g) for g in inodes.values() if len(g) > 1}


def check(upstream: Path, mirror: Path, what: str) -> None:
    theirs, ours = snapshot(upstream), snapshot(mirror)
    if theirs[0] != ours[0]:
        missing = sorted(set(theirs[0]) - set(ours[0]))[:5]
        extra = sorted(set(ours[0]) - set(theirs[0]))[:5]
        raise SystemExit(f"{what}: {mirror.name} differs from the upstream "
                         f"(missing {missing}, extra {extra})")
    if theirs[1] != ours[1]:
        raise SystemExit(f"{what}: {mirror.name} lost hard links "
                         f"({len(ours[1])} groups, upstream {len(theirs[1])})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mk-bench-filelist-"))
    try:
        tree = FedoraLikeTree(work / "upstream", seed=13)
        tree.create(files=args.files)
        entries = sum(1 for _ in tree.root.rglob("*"))
        rows: dict[str, dict[str, list[tuple[float, float, float]]]] = {}
        with RsyncDaemon(work / "rsyncd", [Module("buffet", tree.root)]) as daemon:
            url = daemon.url("buffet")
            argv = {m: config(work, url, m) for m in ("rsync", "filelist")}

            def run(scenario: str) -> None:
                for method in ("rsync", "filelist"):
                    seconds = timed(argv[method], work / f"{method}-state")
                    check(tree.root, work / method, f"{scenario}, {method}")
                    rows.setdefault(scenario, {}).setdefault(method, []).append(seconds)

            run("first sync (both full)")
            for _ in range(args.repeat):
                run("no change")
            # 1% of the packages touched: half rewritten, a quarter added, a quarter dropped.
            quarter = len(tree.packages()) // 400
            tree.publish(0.005, add=quarter, remove=quarter)
            run("1% update (~0.5% +0.25% -0.25%)")
            tree.publish(0.01)
            run("3% update (~1% +1% -1%)")
        version = subprocess.run(["rsync", "--version"], capture_output=True,
                                 text=True).stdout.split()[2]
        print(f"tree: {entries} entries ({args.files} packages requested), 2 modules with "
              f"hard links; rsync {version}; {os.cpu_count()} CPUs; no change: median of "
              f"{args.repeat}; others: 1 run; every mirror checked identical after each sync\n")
        print("| scenario | two-stage rsync s | filelist s | filelist / rsync | run only: "
              "rsync s | filelist s | filelist / rsync | floor: start-up s | its rsyncs s "
              "| floor / rsync |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name, slot in rows.items():
            plain = [statistics.median(x[i] for x in slot["rsync"]) for i in (0, 1, 2)]
            quick = [statistics.median(x[i] for x in slot["filelist"]) for i in (0, 1, 2)]
            start = quick[0] - quick[1]
            print(f"| {name} | {plain[0]:.2f} | {quick[0]:.2f} | {quick[0] / plain[0]:.3f} | "
                  f"{plain[1]:.2f} | {quick[1]:.2f} | {quick[1] / plain[1]:.3f} | "
                  f"{start:.2f} | {quick[2]:.2f} | {(start + quick[2]) / plain[0]:.3f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
