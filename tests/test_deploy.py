"""docs/deploy.md for real, as the users it names: root installs and configures, a
``mirrorkeeper``-like system user syncs and runs the daemon, a ``nagios``-like user in its group
checks. Each is a real account (useradd), each command a real process under its uid (runuser).

The guide's commands that these tests run are quoted from docs/deploy.md (``doc_says``), so the
guide and what is tested cannot drift apart.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .accounts import (
    Account,
    Accounts,
    accounts,
    as_user,
    privileged,
    runnable_bin,
    setpriv,
    shared,
    tree_listing,
)
from .conftest import TEST_HOSTNAME

__all__ = ["accounts", "runnable_bin", "shared"]  # fixtures, imported for pytest

pytestmark = privileged

ROOT = Path(__file__).parent.parent


def doc_says(*lines: str, where: str = "docs/deploy.md") -> None:
    """Each line must stand in the guide (or a unit) as quoted: the test runs what it says."""
    text = (ROOT / where).read_text()
    for line in lines:
        assert line in text, f"{where} no longer says `{line}`; update this test"


@dataclass
class Host:
    """The guide's layout, rooted in a directory of the test's own."""

    base: Path
    bin: Path
    svc: Account  # the guide's `mirrorkeeper` user
    nag: Account  # the guide's `nagios`, in the `mirrorkeeper` group

    @property
    def state(self) -> Path:
        return self.base / "var/lib/mirrorkeeper"

    @property
    def logs(self) -> Path:
        return self.base / "var/log/mirrorkeeper"

    @property
    def srv(self) -> Path:
        return self.base / "srv/mirror"

    @property
    def config(self) -> Path:
        return self.base / "etc/mirrorkeeper/mirrorkeeper.toml"

    def mk(self, who: Account | str, *args: str, timeout: float = 120,
           ) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bin / "mirrorkeeper"), "-c", str(self.config), *args]
        if who == "root":
            return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        return as_user(who, argv, timeout=timeout)

    def configure(self, upstream: str, **mirror: Any) -> None:
        """``mirrorkeeper init`` as root, then the admin's edit ($EDITOR): the global paths of
        this host and the upstream. (That the daemon's user can read the file is the
        walk-through's to prove; the other tests make sure of it, to test one thing each.)"""
        done = self.mk("root", "init", "debian", "--dest", str(self.srv / "debian"))
        assert done.returncode == 0, done.stderr
        text = self.config.read_text()
        for key, value in (("state_dir", self.state), ("log_dir", self.logs),
                           ("hostname", TEST_HOSTNAME)):
            text = re.sub(rf"^# {key} = .*$", f'{key} = "{value}"', text, flags=re.M)
        text += f'upstreams = ["{upstream}"]\n' + "".join(
            f"{k} = {json.dumps(v)}\n" for k, v in mirror.items())
        with open(self.config, "r+") as handle:  # in place, as an editor that keeps the inode
            handle.write(text)

    def readable_config(self) -> None:
        self.config.chmod(0o644)

    def chown_state(self, account: Account) -> None:
        for root in (self.state, self.logs):
            for path in [root, *root.rglob("*")]:
                os.chown(path, account.uid, account.gid)


@pytest.fixture
def host(accounts: Accounts, shared: Path, runnable_bin: Path) -> Iterator[Host]:
    """Step 1 of the guide: the users, the directories with their owners and modes."""
    doc_says("adduser --system --group --home /var/lib/mirrorkeeper mirrorkeeper",
             "install -d -o mirrorkeeper -g mirrorkeeper -m 0750 /var/lib/mirrorkeeper "
             "/var/log/mirrorkeeper",
             "install -d -o mirrorkeeper -g mirrorkeeper /srv/mirror",
             "install -d /etc/mirrorkeeper",
             "adduser nagios mirrorkeeper")
    svc = accounts.create("svc")
    nag = accounts.create("nag", groups=(svc.group,))  # adduser nagios mirrorkeeper
    made = Host(shared, runnable_bin, svc, nag)
    run = [["install", "-d", "-o", svc.name, "-g", svc.group, "-m", "0750", str(made.state),
            str(made.logs)],
           ["install", "-d", "-o", svc.name, "-g", svc.group, str(made.srv)],
           ["install", "-d", str(made.config.parent)]]
    for argv in run:
        subprocess.run(argv, check=True)
    yield made


def no_traceback(*procs: subprocess.CompletedProcess[str]) -> None:
    for proc in procs:
        assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_the_guide_end_to_end_as_the_users_it_names(host: Host, served: str) -> None:
    # 2. Configure: root runs init; the daemon's user must be able to read what it wrote.
    host.configure(served)
    assert host.config.stat().st_mode & 0o777 == 0o644
    doc_says("User=mirrorkeeper", "ExecStartPre=/usr/local/bin/mirrorkeeper config check",
             where="deploy/systemd/mirrorkeeper.service")
    checked = host.mk(host.svc, "config", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The mirrorkeeper user syncs (what the timer's unit runs) and looks.
    synced = host.mk(host.svc, "sync", "debian", "--quiet")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "success" in synced.stdout
    own = [host.mk(host.svc, "status"), host.mk(host.svc, "check", "debian")]
    assert [p.returncode for p in own] == [0, 0], [p.stdout + p.stderr for p in own]
    # Nagios' user, in the mirrorkeeper group, reads everything and writes nothing.
    before = tree_listing(host.state), tree_listing(host.logs)
    doc_says("runuser -u nagios -- mirrorkeeper check --all")
    looks = {args: host.mk(host.nag, *args) for args in (
        ("check", "debian"), ("check", "--all"), ("status",), ("status", "--json"),
        ("history", "debian"), ("logs", "debian"), ("alerts", "list"), ("nagios-config",))}
    for args, proc in looks.items():
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    assert looks["check", "debian"].stdout.startswith("MIRRORKEEPER OK - debian synced")
    assert json.loads(looks["status", "--json"].stdout)[0]["state"] == "idle"
    assert "outcome success" in looks["logs", "debian"].stdout
    # Root looks too (the guide's "Verify"), and creates nothing the daemon could not write.
    assert host.mk("root", "status").returncode == 0
    assert (tree_listing(host.state), tree_listing(host.logs)) == before
    # Someone outside the group is told what to do, as a Nagios UNKNOWN.
    outsider = host.mk("nobody", "check", "debian")
    assert outsider.returncode == 3
    assert outsider.stdout.startswith("MIRRORKEEPER UNKNOWN - ")
    assert "user nobody may not read it" in outsider.stdout
    assert f"adduser nobody {host.svc.group}" in outsider.stdout
    no_traceback(checked, synced, *own, *looks.values(), outsider)


def test_nagios_checks_while_the_daemon_syncs_as_another_user(host: Host, served: str) -> None:
    """The daemon writes (WAL) as the mirrorkeeper user while Nagios' user checks; then it
    stops and the store is at rest, and the check still reads it."""
    host.configure(served, bwlimit=600)
    host.readable_config()
    host.config.write_text(host.config.read_text() + '\n[daemon]\ntick = "1s"\n'
                           'poll_interval = "0s"\n\n[web]\nenabled = false\n')
    daemon = subprocess.Popen([*setpriv(host.svc), str(host.bin / "mirrorkeeper"),
                               "-c", str(host.config), "daemon"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        states, codes = [], []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            status = host.mk(host.nag, "status", "--json")
            check = host.mk(host.nag, "check", "debian")
            assert status.returncode == 0, status.stderr
            assert check.returncode != 3, check.stdout  # never UNKNOWN
            states.append(json.loads(status.stdout)[0]["state"])
            codes.append(check.returncode)
            if codes[-1] == 0:
                break
            time.sleep(0.2)
        assert "running" in states, states
        assert codes[-1] == 0, (states, codes)
        assert (host.state / "mirrorkeeper.db-shm").exists()  # the daemon holds it in WAL
    finally:
        daemon.send_signal(signal.SIGTERM)
        _out, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    assert "Traceback" not in err
    # The last writer left the store at rest: one file, readable with read access alone.
    assert not (host.state / "mirrorkeeper.db-shm").exists()
    after = host.mk(host.nag, "check", "debian")
    assert after.returncode == 0 and after.stdout.startswith("MIRRORKEEPER OK"), after.stdout


def test_files_left_by_a_root_run_are_named_with_their_owner_and_the_fix(
        host: Host, served: str) -> None:
    host.configure(served)
    host.readable_config()
    mistake = host.mk("root", "sync", "debian", "--quiet")  # the first sync, run as root
    assert mistake.returncode == 0, mistake.stderr
    # The daemon's user now meets root's files: each time the first one, its owner, the fix.
    fixes, codes = [], []
    for _ in range(5):
        run = host.mk(host.svc, "sync", "debian", "--quiet")
        no_traceback(run)
        if run.returncode == 0:
            break
        codes.append(run.returncode)
        said = " ".join((run.stdout + run.stderr).split())  # tables wrap long lines
        fix = re.search(r"; fix: (chown -R \S+ \S+)", said)
        assert fix and "root:root" in said, said
        fixes.append(fix.group(1))
        subprocess.run(shlex.split(fix.group(1)), check=True)
    assert run.returncode == 0 and "success" in run.stdout, run.stdout + run.stderr
    assert fixes == [f"chown -R {host.svc.name}: {host.logs}",
                     f"chown -R {host.svc.name}: {host.state}",
                     f"chown -R {host.svc.name}: {host.srv / 'debian'}"]
    assert codes == [73, 73, 1]  # state and logs: exit 73 before anything; the tree: a run
    # Each file the issue names, alone: the exact file, its owner and mode, and the fix.
    leftovers = {"lock file": host.state / "locks" / "debian.lock",
                 "store": host.state / "mirrorkeeper.db",
                 "event log": host.logs / "events.jsonl"}
    for what, path in leftovers.items():
        host.chown_state(host.svc)
        os.chown(path, 0, 0)
        run = host.mk(host.svc, "sync", "debian", "--quiet")
        no_traceback(run)
        assert run.returncode == 73, (what, run.stdout, run.stderr)
        root = host.logs if what == "event log" else host.state
        assert (f"cannot use {path} as the {what}: it belongs to root:root (mode 0644) and "
                f"user {host.svc.name} may not write it; fix: chown -R {host.svc.name}: {root}"
                in run.stderr), run.stderr


def test_a_daemon_meeting_a_root_owned_queue_says_which_file(host: Host, served: str) -> None:
    host.configure(served)
    host.readable_config()
    host.config.write_text(host.config.read_text() + "\n[web]\nenabled = false\n")
    queue = host.state / "queue.db"
    queue.write_bytes(b"")
    daemon = host.mk(host.svc, "daemon", timeout=60)
    no_traceback(daemon)
    assert daemon.returncode == 73, daemon.stderr
    assert f"cannot use {queue} as the queue: it belongs to root:root" in daemon.stderr
