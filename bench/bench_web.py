"""The dashboard and API under load, with a long history (issue #12's figures).

    .venv/bin/python bench/bench_web.py [--mirrors 50] [--runs 10000] [--clients 20]
        [--requests 10] [--repeat 3] [--before OTHER/src] [--public]

Each variant (this tree, and with ``--before`` another checkout's ``src``) runs in its own
process: it builds a store of MIRRORS x RUNS finished runs (two stages of stage JSON each, one
run in 20 failed, the last 300 of five mirrors failed, pending deletions and open alerts), times
``status``'s own query (``status_rows`` on the read-only store the CLI opens), and serves the
daemon's web app with uvicorn on 127.0.0.1, as the daemon does. This process is the client:
one request at a time per path (median), then CLIENTS keep-alive connections at once, each
sending REQUESTS requests back to back per path (p50 and p99 over every request of every
repetition); variants and repetitions interleave. Last, the whole ``mirrorkeeper status``
command (a fresh interpreter: imports plus query) is timed on each variant's store.

``--public`` turns ``[web] public`` on (issue #18; not for a ``--before`` tree older than it):
``/`` is then the public page, the dashboard ``/admin``, and ``/help/m00`` and ``/about`` are
timed too.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

SEQUENTIAL = ("/", "/api/status", "/mirrors/m00", "/api/mirrors/m00",
              "/api/mirrors/m00/series?range=week", "/api/mirrors/m00/series?range=year",
              "/api/mirrors/m00/runs", "/jobs", "/mirrorz.json", "/metrics")
CONCURRENT = ("/", "/api/status", "/metrics", "/api/mirrors/m00", "/jobs", "/mirrorz.json")
PUBLIC = ("/", "/admin", "/help/m00", "/about")
FAILING_TAIL = 300  # the last runs of m45..m49 all failed: their last success is far back


# -- the server side (a child process per variant) ---------------------------------------------
def build(state: Path, mirrors: int, count: int, public: bool = False) -> Path:
    """A config of MIRRORS mirrors and a store holding COUNT runs of each (written directly,
    a few seconds for 500,000 runs), with the summaries the code under test keeps, if any."""
    from mirrorkeeper.record import Attempt, StageResult
    from mirrorkeeper.store import Store
    from mirrorkeeper.store.store import stage_to_json

    state.mkdir(parents=True, exist_ok=True)
    config = state / "mirrorkeeper.toml"
    lines = [f'[global]\nstate_dir = "{state}"\nlog_dir = "{state}/logs"\n'
             f'profiles_dir = "{state}/profiles"\nhostname = "bench"\n']
    for m in range(mirrors):
        lines.append(f'[mirrors.m{m:02d}]\nprofile = "debian"\ndest = "{state}/srv/m{m:02d}"\n'
                     'upstreams = ["rsync://up.example/debian/"]\n')
    lines.append('[web]\nlisten = "127.0.0.1:8118"\n'
                 + ('public = true\npublic_url = "https://mirror.example"\n' if public else ""))
    config.write_text("\n".join(lines))
    Store.open(state).close()  # the schema, by the code under test
    now = time.time()
    upstream = "rsync://up.example/debian/"
    db = sqlite3.connect(state / "mirrorkeeper.db")
    for m in range(mirrors):
        name = f"m{m:02d}"
        first = now - count * 3600.0
        stages = json.dumps({"stages": [stage_to_json(StageResult(
            name=stage, argv=("rsync", "--recursive", "--times", "--links", "--hard-links",
                              "--delete-delay", upstream, f"/srv/{name}/"),
            started_at=first, finished_at=first + 300, exit_code=0, bytes_received=5_000_000,
            size_bytes=10**12, files_total=500_000, files_transferred=400, attempt=1,
            upstream=upstream)) for stage in ("stage1", "stage2")], "skipped": [],
            "attempts": [dataclasses.asdict(Attempt(1, upstream, "ok", None, "complete",
                                                    "stage2", 0, first, first + 600))],
            "deletions": None, "notices": []})

        def failed(i: int, m: int = m) -> bool:
            return i % 20 == 19 or (m >= mirrors - 5 and i >= count - FAILING_TAIL)

        db.executemany(
            "INSERT INTO runs (mirror, host, upstream, started_at, finished_at, outcome,"
            " exit_code, duration_seconds, bytes_transferred, size_bytes, bitrate_bps,"
            " files_total, files_transferred, files_deleted, files_failed, errors, stages,"
            " log_path, findings) VALUES (?, 'bench', ?, ?, ?, ?, ?, ?, 10040000, ?, 133866.7,"
            " 500000, 800, 10, ?, '{}', ?, '', '[]')",
            ((name, upstream, first + i * 3600.0, first + i * 3600.0 + 600 + i % 7,
              "failed" if failed(i) else "success", 23 if failed(i) else 0,
              600.0 + i % 7, 10**12 + i, 3 if failed(i) else 0, stages)
             for i in range(count)))
    db.executemany("INSERT INTO pending_deletions (mirror, path, first_seen) VALUES (?, ?, ?)",
                   (("m00", f"pool/main/p/pkg{i}.deb", now - 3600) for i in range(1000)))
    db.executemany(
        "INSERT INTO alerts (mirror, code, severity, summary, first_seen, last_seen,"
        " occurrences) VALUES (?, 'run-failed', 'error', 'the last run failed', ?, ?, 1)",
        ((f"m{m:02d}", now - 600, now - 60) for m in range(mirrors - 5, mirrors)))
    db.commit()
    db.close()
    store = Store.open(state)
    refresh = getattr(store, "refresh_summary", None)  # the summaries, where the code has them
    if refresh is not None:
        for m in range(mirrors):
            refresh(f"m{m:02d}")
    store.close()
    return config


def serve(state: Path, mirrors: int, count: int, public: bool = False) -> None:
    """Build, time the status query, serve; report on stdout; stop when stdin closes."""
    import uvicorn

    from mirrorkeeper.config.load import load_config
    from mirrorkeeper.daemon.service import Daemon
    from mirrorkeeper.overview import status_rows
    from mirrorkeeper.store import Store
    from mirrorkeeper.web.app import create_app

    began = time.perf_counter()
    config_path = build(state, mirrors, count, public)
    built = time.perf_counter() - began
    config = load_config(config_path)
    query_ms = []
    for _ in range(7):
        start = time.perf_counter()
        store = Store.open(config.settings.state_dir, readonly=True)
        try:
            status_rows(config, store)
        finally:
            store.close()
        query_ms.append((time.perf_counter() - start) * 1000)
    daemon = Daemon(config)
    server = uvicorn.Server(uvicorn.Config(create_app(daemon), host="127.0.0.1", port=0,
                                           log_config=None, access_log=False,
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    size = (state / "mirrorkeeper.db").stat().st_size
    print(json.dumps({"port": port, "config": str(config_path), "built_s": built,
                      "db_mib": size / 2**20, "status_query_ms": query_ms}), flush=True)
    sys.stdin.read()
    server.should_exit = True
    thread.join()
    daemon.close()


# -- the client side ---------------------------------------------------------------------------
async def fetch_many(port: int, path: str, count: int, into: list[float]) -> int:
    """COUNT requests of PATH over one keep-alive connection; their times (ms) into INTO."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    size = 0
    try:
        for _ in range(count):
            start = time.perf_counter()
            writer.write(request)
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            status = head.split(" ", 2)[1]
            if status != "200":
                raise RuntimeError(f"{path}: HTTP {status}")
            length = next(int(line.split(":", 1)[1]) for line in head.split("\r\n")
                          if line.lower().startswith("content-length:"))
            size = len(await reader.readexactly(length))
            into.append((time.perf_counter() - start) * 1000)
    finally:
        writer.close()
    return size


def load(port: int, path: str, clients: int, count: int) -> tuple[list[float], float]:
    """CLIENTS connections at once; every request's time (ms) and the requests per second."""
    times: list[float] = []

    async def run() -> None:
        await asyncio.gather(*(fetch_many(port, path, count, times) for _ in range(clients)))

    start = time.perf_counter()
    asyncio.run(run())
    return times, len(times) / (time.perf_counter() - start)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def start_variant(src: str, state: Path, args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": src}
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(state), "--mirrors", str(args.mirrors),
         "--runs", str(args.runs), *(["--public"] if args.public else [])],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line:
        raise SystemExit(f"the server of {src} did not start")
    return child, json.loads(line)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mirrors", type=int, default=50)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=10, help="per client, per path")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--before", metavar="SRC", help="another checkout's src, to compare")
    parser.add_argument("--public", action="store_true", help="[web] public = true")
    parser.add_argument("--serve", metavar="STATE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve), args.mirrors, args.runs, args.public)
        return
    sequential_paths = (*PUBLIC, *SEQUENTIAL[1:]) if args.public else SEQUENTIAL
    concurrent_paths = (*PUBLIC, *CONCURRENT[1:]) if args.public else CONCURRENT
    here = str(Path(__file__).resolve().parent.parent / "src")
    variants = {"before": args.before, "after": here} if args.before else {"this": here}
    with tempfile.TemporaryDirectory() as tmp:
        servers = {}
        for name, src in variants.items():
            servers[name] = start_variant(src, Path(tmp) / name, args)
            info = servers[name][1]
            print(f"{name}: store of {args.mirrors} mirrors x {args.runs} runs, "
                  f"{info['db_mib']:.0f} MiB, built in {info['built_s']:.0f} s; status query "
                  f"median {statistics.median(info['status_query_ms']):.1f} ms", flush=True)
        sequential: dict[tuple[str, str], list[float]] = {}
        concurrent: dict[tuple[str, str], list[float]] = {}
        rates: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.repeat):
            for name, (_, info) in servers.items():
                for path in sequential_paths:
                    times: list[float] = []
                    asyncio.run(fetch_many(info["port"], path, 5, times))
                    sequential.setdefault((name, path), []).extend(times[1:])
                for path in concurrent_paths:
                    times, rate = load(info["port"], path, args.clients, args.requests)
                    concurrent.setdefault((name, path), []).extend(times)
                    rates.setdefault((name, path), []).append(rate)
        print("\nOne request at a time (median ms):\n")
        print("| request | " + " | ".join(servers) + " |\n|---|" + "---|" * len(servers))
        for path in sequential_paths:
            print(f"| `{path}` | " + " | ".join(
                f"{statistics.median(sequential[(n, path)]):.1f}" for n in servers) + " |")
        print(f"\n{args.clients} clients at once, {args.requests} requests each, "
              f"x {args.repeat} (ms; requests/s):\n")
        print("| request | " + " | ".join(f"{n} p50 | {n} p99 | {n} max | {n} req/s"
                                         for n in servers)
              + " |\n|---|" + "---|---|---|---|" * len(servers))
        for path in concurrent_paths:
            cells = []
            for n in servers:
                times = concurrent[(n, path)]
                cells.append(f"{percentile(times, 0.5):.1f} | {percentile(times, 0.99):.1f} | "
                             f"{max(times):.1f} | {statistics.median(rates[(n, path)]):.0f}")
            print(f"| `{path}` | " + " | ".join(cells) + " |")
        print("\n`mirrorkeeper status --json`, whole command, median of 5 (s):\n")
        walls: dict[str, list[float]] = {n: [] for n in servers}
        for _ in range(5):
            for name, (_, info) in servers.items():
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "mirrorkeeper", "-c", info["config"],
                                "status", "--json"], check=True, stdout=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONPATH": variants[name]})
                walls[name].append(time.perf_counter() - start)
        for name, (_, info) in servers.items():
            print(f"- {name}: {statistics.median(walls[name]):.3f} s (its query alone: "
                  f"{statistics.median(info['status_query_ms']):.1f} ms)")
        for child, _ in servers.values():
            child.stdin.close()
            child.wait(timeout=30)


if __name__ == "__main__":
    main()
