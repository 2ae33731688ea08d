"""Dashboard and API response times with a long history (issue #5's figure).

    .venv/bin/python bench/bench_web.py [--mirrors 50] [--runs 10000] [--repeat 20]

Builds a store of MIRRORS x RUNS finished runs (two stages each, with the stage JSON a real run
stores), serves the daemon's web app with uvicorn on 127.0.0.1, and times each page and API call
over real HTTP: median and 95th percentile of REPEAT requests after one warm-up.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import uvicorn

from mirrorkeeper.config.load import load_config
from mirrorkeeper.daemon.service import Daemon
from mirrorkeeper.record import Attempt, RunRecord, StageResult
from mirrorkeeper.store.schema import runs
from mirrorkeeper.store.store import stage_to_json
from mirrorkeeper.web.app import create_app

PATHS = ("/", "/api/status", "/mirrors/m00", "/api/mirrors/m00",
         "/api/mirrors/m00/series?range=week", "/api/mirrors/m00/series?range=year",
         "/api/mirrors/m00/runs", "/jobs", "/mirrorz.json", "/metrics")


def build(state: Path, mirrors: int, count: int) -> Path:
    config = state / "mirrorkeeper.toml"
    lines = [f'[global]\nstate_dir = "{state}"\nlog_dir = "{state}/logs"\n'
             f'profiles_dir = "{state}/profiles"\nhostname = "bench"\n']
    for m in range(mirrors):
        lines.append(f'[mirrors.m{m:02d}]\nprofile = "debian"\ndest = "{state}/srv/m{m:02d}"\n'
                     'upstreams = ["rsync://up.example/debian/"]\n')
    lines.append('[web]\nlisten = "127.0.0.1:8118"\n')
    config.write_text("\n".join(lines))
    daemon = Daemon(load_config(config))
    now = time.time()
    rows = []
    for m in range(mirrors):
        for i in range(count):
            start = now - (count - i) * 3600.0
            stages = [StageResult(name=name, argv=("rsync", "--recursive", "--times"),
                                  started_at=start, finished_at=start + 300, exit_code=0,
                                  bytes_received=5_000_000, size_bytes=10**12,
                                  files_total=500_000, files_transferred=400,
                                  attempt=1, upstream="rsync://up.example/debian/")
                      for name in ("stage1", "stage2")]
            attempt = Attempt(1, "rsync://up.example/debian/", "ok", None, "complete",
                              "stage2", 0, start, start + 600)
            record = RunRecord(0, f"m{m:02d}", "rsync://up.example/debian/", start,
                               start + 600, "success", tuple(stages))
            rows.append(dict(
                mirror=record.mirror, host="bench", upstream=record.upstream,
                started_at=start, finished_at=start + 600, outcome="success", exit_code=0,
                duration_seconds=600.0, bytes_transferred=record.bytes_transferred,
                size_bytes=10**12, bitrate_bps=record.bitrate_bps, files_total=500_000,
                files_transferred=800, files_deleted=10, files_failed=0, errors={},
                stages={"stages": [stage_to_json(s) for s in stages], "skipped": [],
                        "attempts": [dataclasses.asdict(attempt)]},
                log_path="", findings=[]))
        with daemon.store.engine.begin() as conn:
            conn.execute(runs.insert(), rows)
        rows.clear()
    daemon.close()
    return config


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mirrors", type=int, default=50)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        config = build(Path(tmp), args.mirrors, args.runs)
        size = (Path(tmp) / "mirrorkeeper.db").stat().st_size
        print(f"store: {args.mirrors} mirrors x {args.runs} runs, {size / 2**20:.0f} MiB, "
              f"built in {time.perf_counter() - began:.0f}s")
        daemon = Daemon(load_config(config))
        # No reuse of /jobs and /mirrorz.json: the figures are the work of building them.
        server = uvicorn.Server(uvicorn.Config(create_app(daemon, public_cache_seconds=0),
                                               host="127.0.0.1", port=0,
                                               log_config=None, lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        print("\n| request | median ms | p95 ms | bytes |\n|---|---|---|---|")
        for path in PATHS:
            url = f"http://127.0.0.1:{port}{path}"
            urllib.request.urlopen(url).read()  # warm-up
            times, size = [], 0
            for _ in range(args.repeat):
                start = time.perf_counter()
                with urllib.request.urlopen(url) as reply:
                    size = len(reply.read())
                times.append((time.perf_counter() - start) * 1000)
            times.sort()
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            print(f"| `{path}` | {statistics.median(times):.0f} | {p95:.0f} | {size:,} |")
        server.should_exit = True
        thread.join()
        daemon.close()


if __name__ == "__main__":
    main()
