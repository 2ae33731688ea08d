"""Parallel seeding and the per-host connection budget (issue #14), against a real rsync
daemon behind a real TCP proxy that caps each connection's bandwidth and counts connections."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from mirrorkeeper.classify.findings import Severity
from mirrorkeeper.classify.judge import classify_run
from mirrorkeeper.config.load import load_config
from mirrorkeeper.config.schedule import parse_schedule
from mirrorkeeper.config.spec import MirrorSpec, SyncSettings
from mirrorkeeper.daemon import poller
from mirrorkeeper.daemon.service import make_plan
from mirrorkeeper.demo.rsyncd import Module, RsyncDaemon
from mirrorkeeper.demo.throttle import ThrottledProxy
from mirrorkeeper.demo.tree import DebianLikeTree
from mirrorkeeper.plan.argv import build_plan
from mirrorkeeper.plan.budget import host_key, host_limits
from mirrorkeeper.plan.due import MirrorFacts, plan_tick
from mirrorkeeper.plan.seed import is_far_behind, listing_argv, stream_argv, wants_seed
from mirrorkeeper.plan.shares import ShareTree, split_shares
from mirrorkeeper.plan.upstreams import recent_failures
from mirrorkeeper.record import RunRecord
from mirrorkeeper.record.progress import LiveProgress
from mirrorkeeper.rsync.process import ProcessResult
from mirrorkeeper.store import Store
from mirrorkeeper.sync.budget import ConnectionBudget
from mirrorkeeper.sync.run import sync_mirror
from mirrorkeeper.sync.seed import Listing, write_shares

from .conftest import (
    CliResult,
    codes,
    processes_mentioning,
    python_cli,
    tree_files,
    wait_for,
    write_config,
)

Daemons = Callable[[list[Module]], RsyncDaemon]


def _limited(upstream: DebianLikeTree, tmp_path: Path, rsyncd: Daemons,
             connections: int) -> RsyncDaemon:
    """The upstream served by a daemon whose module allows ``connections`` at once."""
    return rsyncd([Module("debian", upstream.root, {
        "max connections": str(connections), "lock file": str(tmp_path / "rsyncd.lock")})])


@pytest.fixture
def proxy() -> Iterator[Callable[[RsyncDaemon, float], ThrottledProxy]]:
    started: list[ThrottledProxy] = []

    def start(daemon: RsyncDaemon, rate_bps: float) -> ThrottledProxy:
        one = ThrottledProxy(daemon.port, rate_bps).start()
        started.append(one)
        return one

    yield start
    for one in started:
        one.stop()


def _config(tmp_path: Path, url: str, names: tuple[str, ...] = ("deb",),
            **overrides: Any) -> Path:
    return write_config(tmp_path / "mk.toml", {name: {
        "profile": "debian", "dest": str(tmp_path / name), "upstreams": [url],
        "retry_backoff": "0.2s", "delete_grace": "0s", **overrides} for name in names})


def _sync(path: Path, name: str, stop: threading.Event | None = None,
          progress: list[LiveProgress] | None = None) -> RunRecord:
    config = load_config(path)
    store = Store.open(config.settings.state_dir)
    try:
        return sync_mirror(config, config.mirrors[name], store, stop=stop,
                           on_progress=None if progress is None else progress.append)
    finally:
        store.close()


# -- pure parts ---------------------------------------------------------------------------

def test_shares_cover_every_file_once_and_balance_by_size() -> None:
    entries = [(f"pool/main/{chr(97 + i % 7)}/p{i}/f{i}.deb", 1000 + (i * 7919) % 90_000)
               for i in range(3000)]
    entries += [("README", 10), ("dists/stable/Release", 900)]
    shares = split_shares(entries, 4)
    assert len(shares) == 4
    sizes = [s.size for s in shares]
    assert sum(sizes) == sum(size for _, size in entries)
    assert max(sizes) <= 1.02 * min(sizes)
    pieces = {p for share in shares for p in share.paths}

    def owners(path: str) -> int:
        parts = path.split("/")
        return sum("/".join(parts[:n]) in pieces for n in range(1, len(parts) + 1))

    assert all(owners(f) == 1 for f, _ in entries)  # every file in exactly one share
    assert split_shares([("only", 5)], 4)[0].paths == ("only",)
    assert split_shares([], 4) == []


def test_the_share_tree_holds_directories_not_file_names() -> None:
    # A first sync of Fedora lists 12 million entries: the first pass keeps a few numbers
    # per directory, whatever the number of files (a list of names would be ~20 MB here).
    tracemalloc.start()
    try:
        tree = ShareTree()
        for i in range(200_000):
            tree.add(f"pool/{i % 500}/{i}-a-long-name-of-a-package-1.0.noarch.rpm", 1000)
        held = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (tree.files, tree.size) == (200_000, 200_000_000)
    assert held < 2_000_000, held


def test_shares_written_from_a_spilled_listing_cover_every_file_once(tmp_path: Path) -> None:
    # Names with a tab, a newline or bytes that are not UTF-8 survive the listing's file, and
    # the flat directory that has to be opened is dealt file by file.
    entries = [(f"flat/{i}.iso", 10_000 + i) for i in range(200)]
    entries += [("odd/tab\tname", 5), ("odd/new\nline", 5), (os.fsdecode(b"odd/\xff"), 5),
                ("top", 1), ("small/a", 3), ("small/b", 4)]
    tree = ShareTree()
    with open(tmp_path / "listing", "wb") as out:
        for path, size in entries:
            tree.add(path, size)
            out.write(b"%d\t%s\0" % (size, os.fsencode(path)))
    listing = Listing(tree, tmp_path / "listing", ProcessResult(0, None), None)
    shares = write_shares(tmp_path, listing, 4)
    assert len(shares) == 4 and [s.size for s in shares] == sorted((s.size for s in shares),
                                                                  reverse=True)
    named = [os.fsdecode(p) for s in shares
             for p in s.list_file.read_bytes().split(b"\0")[:-1]]
    assert sorted(named) == sorted({"odd", "top", "small", *(p for p, _ in entries
                                                             if p.startswith("flat/"))})
    assert sum(s.size for s in shares) == sum(size for _, size in entries)
    assert sum(s.files for s in shares) == len(entries)
    flat = [s.size for s in shares]
    assert max(flat) - min(flat) <= 10_200  # list scheduling: at most one file apart


def test_host_keys_and_the_smallest_budget_of_a_host_wins() -> None:
    assert host_key("rsync://U@Mirror.Example.org/debian/") == "mirror.example.org:873"
    assert host_key("rsync://127.0.0.1:8873/m/") == "127.0.0.1:8873"
    assert host_key("ftp.example.org::debian/") == "ftp.example.org:873"
    assert host_key("/srv/local/") is None

    def mirror(name: str, limit: int, *upstreams: str) -> MirrorSpec:
        return MirrorSpec(name, "debian", f"/m/{name}", True,
                          SyncSettings(upstreams=upstreams, max_connections=limit))

    limits = host_limits([mirror("a", 3, "rsync://h/a/"), mirror("b", 2, "h::b/"),
                          mirror("c", 0, "rsync://h/c/", "rsync://other/c/"),
                          mirror("d", 0, "rsync://free/d/")])
    assert limits == {"h:873": 2, "other:873": 0, "free:873": 0}


def test_seed_streams_use_stage_one_filters_and_never_delete() -> None:
    two = MirrorSpec("d", "debian", "/m/d", True, SyncSettings(
        upstreams=("rsync://h/d/",), stage2=("Packages*",), update_signal="project/trace/x"))
    plan = build_plan(two, "rsync://h/d/")
    argv = stream_argv(plan, "/state/seed/d/share-1")
    assert argv[-4:] == ("--files-from=/state/seed/d/share-1", "--from0", "rsync://h/d/",
                         "/m/d/")
    assert "--exclude=Packages*" in argv and "--exclude=/project/trace/x" in argv
    listing = listing_argv(plan)
    assert listing[:2] == ("rsync", "--list-only") and listing[-1] == "rsync://h/d/"
    assert "--exclude=Packages*" in listing and not any(
        w.startswith(("--out-format", "--info", "--chmod")) for w in listing)
    single = build_plan(dataclasses.replace(two, settings=dataclasses.replace(
        two.settings, stage2=())), "rsync://h/d/")
    assert single.stages[0].deletes
    words = stream_argv(single, "/x")
    assert not any(w.startswith(("--delete", "--max-delete", "--delay-updates"))
                   for w in words)
    assert wants_seed(4, had_success=False) and not wants_seed(4, had_success=True)
    assert not wants_seed(1, had_success=False)
    assert is_far_behind(49, 100, 0.5) and not is_far_behind(50, 100, 0.5)
    assert not is_far_behind(0, 0, 0.5)


def test_the_planner_holds_back_mirrors_of_a_host_whose_slots_are_all_taken() -> None:
    """Queue workers go to other hosts' mirrors instead of waiting for a busy host."""
    schedule = parse_schedule("every 6h")
    mirrors = [MirrorFacts(name, schedule, None, host=host)
               for name, host in (("a1", "a:873"), ("a2", "a:873"), ("a3", "a:873"),
                                  ("b1", "b:873"), ("local", None))]
    plan = plan_tick(mirrors, 1000.0, jitter=0, poll_interval=0, tz=UTC,
                     free_slots={"a:873": 1, "b:873": 0})
    assert [d.mirror for d in plan.due] == ["a1", "local"]
    assert plan.held == ("a2", "a3", "b1")
    unlimited = plan_tick(mirrors, 1000.0, jitter=0, poll_interval=0, tz=UTC)
    assert len(unlimited.due) == 5 and unlimited.held == ()


def test_budget_slots_are_shared_with_other_processes(tmp_path: Path) -> None:
    """Two slots held by another process: this one waits, and gives up when stopped."""
    budget = ConnectionBudget(tmp_path, {"h:873": 2})
    slots = tmp_path / "connections" / "h_873"
    slots.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fds = [os.open('{slots}/slot-%d' % i, os.O_RDONLY | os.O_CREAT) for i in (0, 1)]\n"
        "[fcntl.flock(fd, fcntl.LOCK_EX) for fd in fds]\n"
        "print('held', flush=True); time.sleep(float(sys.argv[1]))"), "1.0"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        assert budget.in_use("rsync://h/x/") == 2
        stop = threading.Event()
        stop.set()
        waits: list[int] = []
        with budget.slot("rsync://h/x/", stop, waits.append) as held:
            assert not held and waits == [2]
        with budget.slot("rsync://h/x/", timeout=0.2) as held:
            assert not held
        began = time.monotonic()
        with budget.slot("rsync://h/x/", threading.Event()) as held:
            assert held and time.monotonic() - began > 0.3  # waited for the holder to exit
            assert budget.in_use("rsync://h/x/") == 1
        with budget.slot("/local/path/", stop) as held:
            assert held  # no host, no budget
    finally:
        holder.kill()
        holder.communicate()


# -- against a daemon ---------------------------------------------------------------------

def test_two_seeding_mirrors_never_open_more_connections_than_the_budget(
        tmp_path: Path, upstream: DebianLikeTree, rsyncd: Daemons,
        proxy: Callable[[RsyncDaemon, float], ThrottledProxy]) -> None:
    """Two new mirrors of one upstream, each seeding with 4 streams, max_connections = 2:
    the proxy never sees a third connection, the daemon (which allows 2) never refuses one,
    and both mirrors end identical to the upstream."""
    daemon = _limited(upstream, tmp_path, rsyncd, 2)
    relay = proxy(daemon, 1_500_000)
    path = _config(tmp_path, relay.url("debian"), ("one", "two"), seed_parallel=4,
                   seed_min_gib=0,
                   max_connections=2)
    # The store is made first: two runs opening a new state directory at once race on its
    # first migration (a separate matter from this test's).
    Store.open(load_config(path).settings.state_dir).close()
    records: dict[str, RunRecord] = {}
    progress: dict[str, list[LiveProgress]] = {"one": [], "two": []}
    threads = [threading.Thread(target=lambda n=name: records.update(
        {n: _sync(path, n, progress=progress[n])})) for name in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert relay.peak == 2 and relay.accepted > 8
    for name in ("one", "two"):
        record = records[name]
        assert record.outcome == "success", record
        assert [a.code for a in record.attempts] == [None]  # never refused
        assert [s.name for s in record.stages] == ["seed", "stage1", "signal", "stage2"]
        seed = record.stages[0]
        assert seed.files_transferred > 500 and record.stages[1].files_transferred == 0
        assert tree_files(tmp_path / name) == tree_files(upstream.root)
        log = Path(record.log_path).read_text()
        assert all(f"seed stream {n}: exit 0" in log for n in (1, 2, 3, 4))
        # The stage's figures and its live progress are the four streams' sums.
        received = [int(m) for m in re.findall(r"seed stream \d: exit 0, \d+ files, (\d+) "
                                               r"bytes received", log)]
        assert len(received) == 4 and seed.bytes_received == sum(received)
        last = [p for p in progress[name] if p.stage == "seed"][-1]
        assert last.bytes_done == seed.size_bytes == sum(
            (upstream.root / rel).stat().st_size for rel in upstream.pool_files())
        assert 80 < (last.percent or 0) < 90  # the seed's share of the bar (stage 1's 85%)
    # Each stream's lines are in the log under its own name; none brought an index file
    # (stage 2 brings those, last).
    seed_lines = [line for line in Path(records["one"].log_path).read_text().splitlines()
                  if re.match(r"\S+ out[1-4] ", line)]
    assert {line.split()[1] for line in seed_lines} == {"out1", "out2", "out3", "out4"}
    assert not [line for line in seed_lines if "dists/" in line]


def test_by_default_a_small_new_mirror_is_listed_but_not_seeded(
        tmp_path: Path, served: str) -> None:
    """Seeding is on by default (4 streams) for a new mirror, but only pays for an upstream
    of a gigabyte or more: a small one is listed once and synced the ordinary way."""
    record = _sync(_config(tmp_path, served), "deb")
    assert record.outcome == "success"
    assert "seed" not in [s.name for s in record.stages]
    log = Path(record.log_path).read_text()
    assert "less than seed_min_gib (1 GiB); no parallel seed" in log
    again = _sync(_config(tmp_path, served), "deb")  # not new any more: not even listed
    assert "seed:" not in Path(again.log_path).read_text()


def test_a_max_connections_refusal_is_retried_after_a_backoff_and_recorded(
        tmp_path: Path, upstream: DebianLikeTree, rsyncd: Daemons,
        proxy: Callable[[RsyncDaemon, float], ThrottledProxy]) -> None:
    """Another machine holds the daemon's only connection (so our budget cannot know): the
    first attempt is refused, the retry after the backoff gets through."""
    big = upstream.root / "pool" / "big.bin"
    big.write_bytes(os.urandom(600_000))
    daemon = _limited(upstream, tmp_path, rsyncd, 1)
    slow, relay = proxy(daemon, 500_000), proxy(daemon, 50_000_000)
    holder = subprocess.Popen(["rsync", slow.url("debian") + "pool/big.bin",
                               str(tmp_path / "held")], stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (tmp_path / "rsyncd.lock").exists() and slow.active == 1,
                 what="the other machine's transfer to start")
        path = _config(tmp_path, relay.url("debian"), retry_backoff="2s",
                       attempts_per_upstream=3)
        record = _sync(path, "deb")
    finally:
        holder.wait(30)
    assert record.outcome == "success"
    first = record.attempts[0]
    assert (first.category, first.code) == ("transient", "upstream.max_connections")
    assert "max connections (1) reached" in first.detail
    assert [a.category for a in record.attempts[1:]] == ["ok"]
    config = load_config(path)
    findings = classify_run(record, config.mirrors["deb"].settings)
    assert codes(findings) == {"upstream.max_connections": Severity.INFO}
    # Busy is not broken: a refusal never sends the upstream to the back of the order.
    refused_only = dataclasses.replace(record, attempts=record.attempts[:1])
    assert recent_failures([refused_only]) == {}


def _streams_running(tmp_path: Path) -> bool:
    """An rsync of each of the four shares is running."""
    return all(processes_mentioning(f"{tmp_path}/state/seed/deb/share-{n}")
               for n in (1, 2, 3, 4))


def _seeding(tmp_path: Path, rsyncd: Daemons, upstream: DebianLikeTree,
             proxy: Callable[[RsyncDaemon, float], ThrottledProxy],
             ) -> tuple[Path, threading.Event, list[RunRecord], threading.Thread]:
    """A slow 4-stream seed started in a thread (each connection at 150 kB/s)."""
    daemon = rsyncd([Module("debian", upstream.root)])
    relay = proxy(daemon, 150_000)
    path = _config(tmp_path, relay.url("debian"), seed_parallel=4, seed_min_gib=0,
                   max_connections=4,
                   attempts_per_upstream=1)
    stop = threading.Event()
    records: list[RunRecord] = []
    thread = threading.Thread(target=lambda: records.append(_sync(path, "deb", stop)))
    thread.start()
    wait_for(lambda: _streams_running(tmp_path), what="four seed streams")
    return path, stop, records, thread


def _no_rsync_left(tmp_path: Path) -> None:
    wait_for(lambda: not processes_mentioning(str(tmp_path / "deb")), timeout=10,
             what="every rsync of the run to be gone")


def test_a_stream_killed_mid_run_fails_the_stage_cleanly(
        tmp_path: Path, upstream: DebianLikeTree, rsyncd: Daemons,
        proxy: Callable[[RsyncDaemon, float], ThrottledProxy]) -> None:
    _path, _stop, records, thread = _seeding(tmp_path, rsyncd, upstream, proxy)
    victim = min(processes_mentioning(f"{tmp_path}/state/seed/deb/share-2"))
    os.kill(victim, signal.SIGKILL)
    thread.join(60)
    record = records[0]
    assert record.outcome == "failed"
    assert [s.name for s in record.stages] == ["seed"]
    seed = record.stages[0]
    assert seed.exit_code == -signal.SIGKILL and seed.stopped_by is None
    assert record.skipped == ("stage1", "stage2")
    assert record.attempts[-1].stage == "seed"
    assert record.attempts[-1].code == "internal.error"
    _no_rsync_left(tmp_path)
    # No index reached the mirror, and the share lists are gone.
    assert not (tmp_path / "deb" / "dists").exists()
    assert not (tmp_path / "state" / "seed" / "deb").exists()
    log = Path(record.log_path).read_text()
    assert f"seed stream 2: exit {-signal.SIGKILL}" in log


def test_a_stop_request_stops_every_stream(
        tmp_path: Path, upstream: DebianLikeTree, rsyncd: Daemons,
        proxy: Callable[[RsyncDaemon, float], ThrottledProxy]) -> None:
    _path, stop, records, thread = _seeding(tmp_path, rsyncd, upstream, proxy)
    stop.set()
    thread.join(30)
    record = records[0]
    assert record.outcome == "interrupted"
    assert record.stages[0].name == "seed" and record.stages[0].stopped_by == "signal"
    _no_rsync_left(tmp_path)
    assert not (tmp_path / "deb" / "dists").exists()


def test_a_poll_waits_for_a_slot_and_is_not_made_while_syncs_hold_them_all(
        tmp_path: Path, served: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(poller, "POLL_SLOT_WAIT", 0.3)
    path = _config(tmp_path, served, max_connections=1)
    config = load_config(path)
    store = Store.open(config.settings.state_dir)
    try:
        budget = ConnectionBudget(config.settings.state_dir, {host_key(served) or "": 1})
        with budget.slot(served) as held:
            assert held
            result = poller.poll_signal(config, config.mirrors["deb"], store)
        assert result.error is not None and "not polled" in result.error
        assert result.upstream_mtime is None
        again = poller.poll_signal(config, config.mirrors["deb"], store)
        assert again.error is None and again.upstream_mtime is not None
    finally:
        store.close()


def test_the_daemon_plan_holds_back_mirrors_while_their_host_is_busy(
        tmp_path: Path, served: str) -> None:
    """Real slot files, a real store: a sync elsewhere holds the host's only slot."""
    other = "rsync://other.invalid/debian/"
    path = write_config(tmp_path / "mk.toml", {
        name: {"profile": "debian", "dest": str(tmp_path / name), "upstreams": [url],
               "max_connections": 1}
        for name, url in (("one", served), ("two", served), ("elsewhere", other))})
    config = load_config(path)
    store = Store.open(config.settings.state_dir)
    try:
        budget = ConnectionBudget(config.settings.state_dir, host_limits(config.mirrors.values()))
        with budget.slot(served) as held:
            assert held
            busy = make_plan(config, store, set(), set(), time.time())
        assert [d.mirror for d in busy.due] == ["elsewhere"]
        assert busy.held == ("one", "two")
        free = make_plan(config, store, set(), set(), time.time())
        assert [d.mirror for d in free.due] == ["one", "elsewhere"] and free.held == ("two",)
        queued = make_plan(config, store, set(), {"one"}, time.time())
        assert [d.mirror for d in queued.due] == ["elsewhere"] and queued.held == ("two",)
    finally:
        store.close()


def test_sigterm_to_mirrorkeeper_sync_stops_every_stream(
        tmp_path: Path, upstream: DebianLikeTree, rsyncd: Daemons,
        proxy: Callable[[RsyncDaemon, float], ThrottledProxy],
        mk: Callable[..., CliResult]) -> None:
    """The real command and a real SIGTERM: `status` shows the seed's progress meanwhile."""
    daemon = rsyncd([Module("debian", upstream.root)])
    relay = proxy(daemon, 150_000)
    path = _config(tmp_path, relay.url("debian"), seed_parallel=4, seed_min_gib=0,
                   max_connections=4)
    proc = subprocess.Popen([*python_cli(), "-c", str(path), "sync", "deb", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: _streams_running(tmp_path), what="four seed streams")

        def seeding() -> bool:
            row = mk("-c", str(path), "status", "--json").json()[0]
            return bool(row["state"] == "running" and row["stage"] == "seed"
                        and row["bytes_done"] > 0)

        wait_for(seeding, what="the seed's live progress")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    _no_rsync_left(tmp_path)
    history = mk("-c", str(path), "history", "deb", "--json").json()
    assert history[0]["outcome"] == "interrupted"
    assert history[0]["stages"][0]["name"] == "seed"
    assert history[0]["stages"][0]["stopped_by"] == "signal"
    assert not (tmp_path / "deb" / "dists").exists()
