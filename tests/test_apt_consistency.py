"""Do apt clients fail against a mirror while it is being synced? A real signed archive of real
.debs, a real rsync daemon, and apt-get clients fetching over HTTP (see tests/aptrepo.py).

These tests prove the harness can see the problem: a missing .deb, and the inconsistent tree a
plain single ``rsync -a --delete`` leaves while it runs.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mirrorkeeper.demo.rsyncd import Module, RsyncDaemon

from .aptrepo import (
    AptClients,
    AptRepo,
    ClientsResult,
    HttpMirror,
    apt_problems,
    missing_tools,
)
from .conftest import tree_files

MISSING = missing_tools()
needs_apt = pytest.mark.skipif(
    bool(MISSING), reason=f"needs {' '.join(MISSING)}: run `sh scripts/bootstrap.sh --test`")


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


@needs_apt
@pytest.mark.slow
def test_plain_rsync_breaks_clients(tmp_path: Path, repo: AptRepo,
                                    rsyncd: Callable[[list[Module]], RsyncDaemon]) -> None:
    """One ``rsync -a --delete`` of an update: dists/ sorts before pool/, so the new index
    arrives before the .debs it names, and each pool dir loses its old .debs while clients
    holding the old index still want them. The clients must see that."""
    repo.publish(1)
    source = rsyncd([Module("debian", repo.root)]).url("debian")
    dest = tmp_path / "mirror"
    rsync(source, dest)
    change = repo.publish(2)  # upstream only: the clients see the mirror, which is still at 1
    with (HttpMirror(dest) as http,
          AptClients(http.url, repo.keyring, tmp_path / "clients", clients=4) as clients):
        clients.wait_rounds(1)
        before = clients.result()
        started = time.monotonic()
        # ~1.4 MB of new .debs at 500 KiB/s: about three seconds of a half-synced mirror.
        rsync(source, dest, "--bwlimit=500")
        finished = time.monotonic()
        clients.wait_rounds(2)
        result = clients.stop()

    assert before.failures == [], summary(before)  # the mirror was consistent before the sync
    assert len(change.added) == len(change.removed) == 200
    assert tree_files(dest) == tree_files(repo.root)  # and complete after it
    assert finished - started > 1.5
    during = result.between(started, finished)
    assert len({run.client for run in during}) == 4 and len(during) >= 8, summary(result)

    assert result.failures, summary(result)
    assert all(run.failures == 0 for run in result.runs if run.started > finished), (
        "clients still fail after the sync finished:\n" + summary(result))
    assert any("404" in f.message for f in result.failures), summary(result)
