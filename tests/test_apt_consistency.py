"""Do apt clients fail against a mirror while it is being synced? A real signed archive of real
.debs, a real rsync daemon, and apt-get clients fetching over HTTP (see tests/aptrepo.py).

The harness sees the problem (a missing .deb; the inconsistent tree a plain single
``rsync -a --delete`` leaves while it runs), and Mirrorkeeper's two-stage sync with its deletion
grace never shows it to a client, even when the upstream publishes again mid-sync.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mirrorkeeper.config.load import load_config
from mirrorkeeper.demo.rsyncd import Module, RsyncDaemon
from mirrorkeeper.record import RunRecord
from mirrorkeeper.store import Store
from mirrorkeeper.sync.run import sync_mirror

from .aptrepo import (
    AptClients,
    AptRepo,
    ClientsResult,
    HttpMirror,
    Publish,
    apt_problems,
    missing_tools,
)
from .conftest import tree_files, write_config

MISSING = missing_tools()
# Skipped on a developer's machine without the tools; CI (CI=true) installs them, so there a
# missing tool fails the test instead of hiding it.
needs_apt = pytest.mark.skipif(
    bool(MISSING) and not os.environ.get("CI"),
    reason=f"needs {' '.join(MISSING)}: run `sh scripts/bootstrap.sh --test`")


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[AptRepo]:
    with AptRepo(tmp_path / "upstream") as archive:
        yield archive


def summary(result: ClientsResult) -> str:
    """Failures by stage and the first few messages, for assertion output."""
    stages = Counter(f.stage for f in result.failures)
    firsts = "\n".join(f"  client {f.client} {f.stage}: {f.message[:300]}"
                       for f in result.failures[:5])
    return f"{result.iterations} iterations, failures by stage {dict(stages)}\n{firsts}"


def test_apt_output_classification() -> None:
    """Failed fetches count, whatever apt did next; notes and the sandbox warning do not."""
    not_found = ("Err:1 http://127.0.0.1:1 stable/main all mkpkg000 all 1\n"
                 "  404  File not found [IP: 127.0.0.1 1]\n"
                 "E: Failed to fetch http://127.0.0.1:1/pool/main/m/mkpkg000/mkpkg000_1_all.deb"
                 "  404  File not found [IP: 127.0.0.1 1]\n")
    assert apt_problems(100, not_found) == [
        "Err:1 http://127.0.0.1:1 stable/main all mkpkg000 all 1 | 404  File not found "
        "[IP: 127.0.0.1 1]",
        "E: Failed to fetch http://127.0.0.1:1/pool/main/m/mkpkg000/mkpkg000_1_all.deb  404  "
        "File not found [IP: 127.0.0.1 1]"]
    # apt fell back to another compression and exited 0: the failed fetch still counts.
    assert len(apt_problems(0, "Get:1 x InRelease\nErr:2 x Packages\n  404  Not Found\n"
                               "Get:2 x Packages [455 B]\nReading package lists...\n")) == 1
    assert len(apt_problems(0, "W: GPG error: x InRelease: NO_PUBKEY 00\n")) == 1
    assert apt_problems(100, "Reading package lists...\n") == [
        "apt-get exited 100 and printed no error"]
    assert apt_problems(0, "Get:1 x InRelease [1 kB]\nN: Some note\n  more\nW: Download is "
                           "performed unsandboxed as root as file 'x' couldn't be accessed\n"
                           "Fetched 1 kB in 0s\n") == []


@needs_apt
def test_harness_sees_a_missing_deb(tmp_path: Path, repo: AptRepo) -> None:
    repo.publish(1, packages=30)
    with (HttpMirror(repo.root) as http,
          AptClients(http.url, repo.keyring, tmp_path / "clients", clients=2) as clients):
        clients.wait_rounds(2)
        clean = clients.result()
        victim = repo.listed_debs()[7]
        (repo.root / victim).unlink()
        clients.wait_rounds(1)  # an iteration begun after the deletion, by every client
        result = clients.stop()

    assert clean.failures == [], summary(clean)
    assert clean.iterations >= 4
    assert {(run.listed, run.downloaded) for run in clean.runs} == {(30, 30)}

    assert result.failures, summary(result)
    assert {f.stage for f in result.failures} == {"download"}, summary(result)
    assert all(Path(victim).name in f.message and "404" in f.message
               for f in result.failures), summary(result)
    assert {f.client for f in result.failures} == {0, 1}
    # The other 29 packages still came down in the failing iterations.
    late = [run for run in result.runs if run.failures]
    assert late and all(run.downloaded == 29 for run in late)


def rsync(source: str, dest: Path, *options: str) -> None:
    subprocess.run(["rsync", "-a", "--delete", *options, source, f"{dest}/"], check=True,
                   capture_output=True)


def mirrorkeeper_config(tmp_path: Path, source: str, dest: Path) -> Path:
    """The shipped debian profile as an admin enables it (its delete_grace of an hour too); a
    bandwidth limit stretches the sync over seconds, so that clients fetch all through it."""
    return write_config(tmp_path / "mk.toml", {"deb": {
        "profile": "debian", "dest": str(dest), "upstreams": [source], "bwlimit": 500}})


def sync(config_path: Path, on_line: Callable[[str, str, str], None] | None = None,
         ) -> RunRecord:
    config = load_config(config_path)
    store = Store.open(config.settings.state_dir)
    try:
        return sync_mirror(config, config.mirrors["deb"], store, on_line=on_line)
    finally:
        store.close()


@needs_apt
@pytest.mark.slow
def test_two_stage_sync_keeps_clients_whole_where_plain_rsync_breaks_them(
        tmp_path: Path, repo: AptRepo, rsyncd: Callable[[list[Module]], RsyncDaemon]) -> None:
    """The same update (v1 → v2, every old .deb dropped) synced two ways while four apt
    clients loop update + download against the mirror over HTTP.

    One ``rsync -a --delete``: dists/ sorts before pool/, so the new index arrives before the
    .debs it names, and each pool dir loses its old .debs while clients holding the old index
    still want them. The clients must see that (the harness can see the problem).

    Mirrorkeeper, with the upstream publishing *again* (v3) in the middle of stage 1: stage 1
    runs again for v3, stage 2 brings the indexes, the dropped .debs stay for the profile's
    grace — not one client failure of any kind. (With ``delete_grace = "0s"`` this test sees
    404s: clients that fetched the old index just before stage 2 want the old .debs.)
    """
    repo.publish(1)
    source = rsyncd([Module("debian", repo.root)]).url("debian")
    plain, ours = tmp_path / "plain", tmp_path / "ours"
    rsync(source, plain)
    config_path = mirrorkeeper_config(tmp_path, source, ours)
    assert sync(config_path).outcome == "success"
    assert tree_files(ours) == tree_files(plain)
    change = repo.publish(2)  # upstream only: the clients see the mirror, which is still at 1
    assert len(change.added) == len(change.removed) == 200

    # One plain rsync of the update.
    with (HttpMirror(plain) as http,
          AptClients(http.url, repo.keyring, tmp_path / "clients", clients=4) as clients):
        clients.wait_rounds(1)
        before = clients.result()
        started = time.monotonic()
        # ~1.4 MB of new .debs at 500 KiB/s: about three seconds of a half-synced mirror.
        rsync(source, plain, "--bwlimit=500")
        finished = time.monotonic()
        clients.wait_rounds(2)
        result = clients.stop()
    assert before.failures == [], summary(before)  # the mirror was consistent before the sync
    assert tree_files(plain) == tree_files(repo.root)  # and complete after it
    assert finished - started > 1.5
    during = result.between(started, finished)
    assert len({run.client for run in during}) == 4 and len(during) >= 8, summary(result)
    assert result.failures, summary(result)
    assert all(run.failures == 0 for run in result.runs if run.started > finished), (
        "clients still fail after the sync finished:\n" + summary(result))
    assert any("404" in f.message for f in result.failures), summary(result)

    # Mirrorkeeper syncing the same update, with a second publish during stage 1.
    again: list[Publish] = []

    def on_line(stage: str, _stream: str, line: str) -> None:
        if stage == "stage1" and line.startswith(">f") and not again:
            again.append(repo.publish(3))  # rsync waits meanwhile: truly mid-stage 1

    with (HttpMirror(ours) as http,
          AptClients(http.url, repo.keyring, tmp_path / "clients2", clients=4) as clients):
        clients.wait_rounds(1)
        started = time.monotonic()
        record = sync(config_path, on_line=on_line)
        finished = time.monotonic()
        clients.wait_rounds(2)
        result = clients.stop()
    assert record.outcome == "success", record
    assert [s.name for s in record.stages] == ["stage1", "signal", "stage1", "signal", "stage2"]
    during = result.between(started, finished)
    assert len({run.client for run in during}) == 4 and len(during) >= 8, summary(result)
    assert result.failures == [], summary(result)
    assert repo.listed_debs() == sorted(again[0].added)
    served = tree_files(ours)
    upstream = tree_files(repo.root)
    assert {k: v for k, v in served.items() if k in upstream} == upstream
    # What v2 and v3 dropped stays for the grace, for clients that still hold older indexes
    # (every v1 .deb; the v2 ones that stage 1 copied before v3 replaced them).
    held = set(served) - set(upstream)
    assert set(change.removed) <= held <= set(change.removed) | set(again[0].removed)
    assert record.deletions is not None and record.deletions.waiting == len(held)
