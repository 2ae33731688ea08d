"""Mirrorkeeper's overhead against the tools it replaces, in one process, interleaved (issue #12).

    .venv/bin/python bench/bench_overhead.py [--packages N] [--repeat R] [--large]

One generated Debian-like tree (2 files per package plus indexes; ``--packages 50000`` is the
issue's 100,000 files), one rsync daemon on 127.0.0.1, and for each repetition, tool by tool in
turn so that the machine's load falls on all of them alike:

- full (into an empty directory), no-change, and 1% update (``mutate``) syncs by
  ``mirrorkeeper sync``; by *bare two-stage rsync*, Mirrorkeeper's own stage argv run by hand
  (stage 2 deleting with ``--delete-after`` instead of listing); by a naive
  ``rsync -a --delete``; and by Debian's ``ftpsync`` where it is installed;
- the peak RSS of the Mirrorkeeper process itself (``VmHWM``, rsync not included);
- CLI start-up: ``--help``, ``profiles``, ``status``;
- an update-signal poll against the no-change rsync.

It prints min and median of the per-repetition ratios. ``--large`` adds the peak RSS at
1,000,000 files (a tree of that size takes a while to make).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mirrorkeeper.config.load import load_config
from mirrorkeeper.demo.rsyncd import Module, RsyncDaemon
from mirrorkeeper.demo.tree import DebianLikeTree
from mirrorkeeper.plan.argv import LIST_DELETIONS, RSYNC_ENV, build_plan

#: Runs the CLI and writes the process's own peak RSS (KiB) and CPU seconds (user + system,
#: rsync's not included) to the fd in $MK_RSS_FD at exit.
RSS_PROBE = """
import atexit, os, resource, sys
def peak():
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            os.write(int(os.environ["MK_RSS_FD"]),
                     f"{line.split()[1]} {cpu.ru_utime + cpu.ru_stime}".encode())
atexit.register(peak)
from mirrorkeeper.cli import main
main(sys.argv[1:])
"""


def run(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env={**os.environ, **RSYNC_ENV, **(env or {})},
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed ({done.returncode}): {done.stderr[-1500:]}")
    return elapsed


def run_mk(config: Path, *args: str, python: str = sys.executable,
           cpu: list[float] | None = None) -> tuple[float, int]:
    """Wall seconds of a ``mirrorkeeper`` command and its own peak RSS in KiB; ``python``
    is the interpreter of the install to run (another checkout's venv for a baseline)."""
    read, write = os.pipe()
    start = time.perf_counter()
    proc = subprocess.Popen([python, "-c", RSS_PROBE, "-c", str(config), *args],
                            pass_fds=(write,), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MK_RSS_FD": str(write)})
    os.close(write)
    _, err = proc.communicate()
    elapsed = time.perf_counter() - start
    probe = os.read(read, 64).split()
    os.close(read)
    if proc.returncode != 0:
        raise SystemExit(f"mirrorkeeper {args} failed ({proc.returncode}): {err[-1500:]}")
    if cpu is not None and len(probe) == 2:
        cpu.append(float(probe[1]))
    return elapsed, int(probe[0]) if probe else 0


def write_config(work: Path, url: str) -> Path:
    config = work / "mk.toml"
    config.write_text(f'[global]\nstate_dir = "{work}/state"\nlog_dir = "{work}/logs"\n'
                      f'[mirrors.deb]\nprofile = "debian"\ndest = "{work}/mk"\n'
                      f'upstreams = ["{url}"]\ndelete_grace = "0s"\n')
    return config


def bare_two_stage(config: Path, url: str, dest: Path) -> list[list[str]]:
    """Mirrorkeeper's own stage argv for ``dest``, stage 2 deleting as plain rsync does."""
    mirror = load_config(config).mirrors["deb"]
    plan = build_plan(mirror, url)
    commands = []
    for stage in plan.stages:
        argv = [a for a in stage.argv if a not in LIST_DELETIONS]
        if stage.deletes:
            argv.insert(-2, "--delete-after")
        argv[-1] = f"{dest}/"
        commands.append(argv)
    return commands


def ftpsync_runner(work: Path, port: int) -> Callable[[], float] | None:
    """Debian's ftpsync against the same daemon (None where it is not installed)."""
    if shutil.which("ftpsync") is None:
        return None
    home = work / "ftpsync-home"
    (home / ".config" / "ftpsync").mkdir(parents=True, exist_ok=True)
    (home / ".config" / "ftpsync" / "ftpsync.conf").write_text(
        f'MIRRORNAME="bench.test"\nTO="{work}/ftpsync/"\nRSYNC_HOST="127.0.0.1"\n'
        f'RSYNC_PATH="debian"\nRSYNC_EXTRA="--port={port}"\nINFO_MAINTAINER="bench"\n'
        f'LOGDIR="{home}/log"\nARCH_INCLUDE=""\nARCH_EXCLUDE=""\nLOCK="{home}/lock"\n')
    (work / "ftpsync").mkdir(exist_ok=True)
    env = {"HOME": str(home), "LOGNAME": os.environ.get("LOGNAME", "root")}
    return lambda: run(["ftpsync", "sync:all"], env)


def ratios(pairs: list[tuple[float, float]]) -> str:
    values = [a / b for a, b in pairs]
    return f"{min(values):.3f} / {statistics.median(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packages", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--max-size", type=int, default=4000,
                        help="largest package file in bytes (the count is what costs us; "
                             "smaller files keep a 100,000-file run to minutes)")
    parser.add_argument("--large", action="store_true", help="also peak RSS at 1M files")
    parser.add_argument("--baseline", metavar="PYTHON",
                        help="also time the Mirrorkeeper installed for this interpreter (e.g. "
                             "an older checkout's .venv/bin/python), interleaved, same tree")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mk-overhead-"))
    try:
        tree = DebianLikeTree(work / "upstream", seed=11)
        tree.create(packages=args.packages, min_size=200, max_size=args.max_size)
        files = sum(1 for p in tree.root.rglob("*") if p.is_file())
        times: dict[tuple[str, str], list[float]] = {}
        rss: list[int] = []
        cpu: dict[str, list[float]] = {}
        with RsyncDaemon(work / "rsyncd", [Module("debian", tree.root)]) as daemon:
            url = daemon.url("debian")
            config = write_config(work, url)
            bare = bare_two_stage(config, url, work / "bare")
            naive = ["rsync", "-a", "--delete", url + "/", f"{work}/naive/"]
            ftpsync = ftpsync_runner(work, daemon.port)

            scenario_now = ["full"]

            def mk() -> float:
                seconds, peak = run_mk(config, "sync", "deb", "--quiet",
                                       cpu=cpu.setdefault(scenario_now[0], []))
                rss.append(peak)
                return seconds

            tools: dict[str, Callable[[], float]] = {
                "mirrorkeeper": mk,
                "bare two-stage": lambda: sum(run(argv) for argv in bare),
                "naive rsync -a --delete": lambda: run(naive),
            }
            if ftpsync is not None:
                tools["ftpsync"] = ftpsync
            if args.baseline:
                (work / "base").mkdir(exist_ok=True)
                base_config = write_config(work / "base", url)

                def baseline() -> float:
                    return run_mk(base_config, "sync", "deb", "--quiet",
                                  python=args.baseline)[0]

                tools["baseline"] = baseline
            for rep in range(args.repeat):
                for target in ("mk", "bare", "naive", "ftpsync", "state", "logs", "base/mk",
                               "base/state", "base/logs"):
                    shutil.rmtree(work / target, ignore_errors=True)
                (work / "ftpsync").mkdir()
                order = list(tools.items())
                order = order[rep % len(order):] + order[:rep % len(order)]  # rotate
                for scenario in ("full", "no-change", "1% update"):
                    scenario_now[0] = scenario
                    if scenario == "1% update":
                        n = max(1, args.packages // 100)
                        tree.mutate(add=n // 2, change=n // 4, remove=n // 4)
                    for name, tool in order:
                        try:
                            times.setdefault((scenario, name), []).append(tool())
                        except SystemExit as exc:
                            if name != "ftpsync":
                                raise
                            print(f"ftpsync left out: {exc}", file=sys.stderr)
                            tools.pop("ftpsync", None)
                            order = [(n2, t) for n2, t in order if n2 != "ftpsync"]
            poll = [run(["rsync", "--list-only", "--sockopts=TCP_NODELAY",
                         f"{url}/project/trace/master"]) for _ in range(args.repeat)]
            nochange = [run(argv) for _ in range(args.repeat) for argv in bare[:1]]
            installs = {"": (sys.executable, config)} | (
                {" (baseline)": (args.baseline, work / "base" / "mk.toml")}
                if args.baseline else {})
            cli = {f"{verb}{label}": [run_mk(cfg, *verb.split(), python=py)[0]
                                      for _ in range(args.repeat)]
                   for verb in ("--help", "profiles", "status")
                   for label, (py, cfg) in installs.items()}

        version = subprocess.run(["rsync", "--version"], capture_output=True,
                                 text=True).stdout.split()[2]
        print(f"tree: {files} files; rsync {version}; {os.cpu_count()} CPUs; "
              f"{args.repeat} repetitions, interleaved\n")
        print("| scenario | mirrorkeeper s (median) | ÷ bare two-stage (min / median) | "
              "÷ naive rsync -a --delete | ÷ ftpsync | ÷ baseline |")
        print("|---|---|---|---|---|---|")
        for scenario in ("full", "no-change", "1% update"):
            mine = times[(scenario, "mirrorkeeper")]
            cells = []
            for other in ("bare two-stage", "naive rsync -a --delete", "ftpsync", "baseline"):
                theirs = times.get((scenario, other))
                cells.append(ratios(list(zip(mine, theirs, strict=False))) if theirs else "-")
            print(f"| {scenario} | {statistics.median(mine):.2f} | " + " | ".join(cells) + " |")
        print(f"\npeak RSS of the mirrorkeeper process at {files} files: "
              f"{max(rss) / 1024:.1f} MiB")
        for scenario, seconds in cpu.items():
            print(f"CPU of the mirrorkeeper process (user + system, rsync not included), "
                  f"{scenario}: median {statistics.median(seconds):.2f} s")
        for verb, values in cli.items():
            print(f"`mirrorkeeper {verb}`: min {min(values) * 1000:.0f} ms, median "
                  f"{statistics.median(values) * 1000:.0f} ms")
        print(f"signal poll ÷ no-change stage-1 rsync: "
              f"{statistics.median(poll) / statistics.median(nochange):.3f} "
              f"({statistics.median(poll) * 1000:.0f} ms vs "
              f"{statistics.median(nochange) * 1000:.0f} ms)")
        print(json.dumps({"times": {f"{s}|{t}": v for (s, t), v in times.items()},
                          "rss_kib": rss}), file=sys.stderr)
        if args.large:
            large_rss(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def large_rss(work: Path) -> None:
    """Peak RSS of a first sync of 1,000,000 files (empty files: the count is what costs)."""
    root = work / "large"
    for i in range(1_000_000):
        d = root / f"pool/{i // 100_000}/{i // 1000}"
        if i % 1000 == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}").touch()
    with RsyncDaemon(work / "rsyncd-large", [Module("big", root)]) as daemon:
        config = work / "large.toml"
        config.write_text(f'[global]\nstate_dir = "{work}/lstate"\nlog_dir = "{work}/llogs"\n'
                          f'[mirrors.big]\ndest = "{work}/lmk"\n'
                          f'upstreams = ["{daemon.url("big")}"]\n')
        seconds, peak = run_mk(config, "sync", "big", "--quiet")
    print(f"peak RSS of the mirrorkeeper process at 1,000,000 files: {peak / 1024:.1f} MiB "
          f"({seconds:.0f} s)")


if __name__ == "__main__":
    main()
