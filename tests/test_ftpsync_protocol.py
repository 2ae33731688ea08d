"""ftpsync's push protocol, spoken for real: the ``sync:*`` words of a push, the
``Archive-Update-*`` markers in the published tree, and the trace files — checked against the
real ftpsync (Debian's ``ftpsync`` package) syncing the same tree from the same rsync daemon,
and against the real ``runmirrors`` pushing through a real sshd forced command.

ftpsync and sshd are real programs here; where they are missing the tests that need them are
skipped with the reason, except under ``CI=true``, where a missing one fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mirrorkeeper.config.load import load_config
from mirrorkeeper.demo.rsyncd import Module, free_port
from mirrorkeeper.demo.tree import DebianLikeTree
from mirrorkeeper.migrate.ftpsync import arch_excludes
from mirrorkeeper.plan.downstreams import Downstream, parse_downstream, plan_pushes, ssh_argv
from mirrorkeeper.plan.push import PushRequest, parse_push, push_words
from mirrorkeeper.record import RunRecord
from mirrorkeeper.store import Store
from mirrorkeeper.sync.hub import push_kind
from mirrorkeeper.sync.run import sync_mirror

from .conftest import TEST_HOSTNAME, processes_mentioning, python_cli, wait_for, write_config

IN_CI = os.environ.get("CI") == "true"
FTPSYNC = shutil.which("ftpsync")
RUNMIRRORS = shutil.which("runmirrors")
SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)


def _needs(present: object, what: str) -> pytest.MarkDecorator:
    """Skip (with the reason printed) without the tool, but fail under CI=true, where the
    bootstrap installs it: a missing tool must not hide a test there."""
    if not present and IN_CI:
        pytest.fail(f"{what} is missing under CI=true: `sh scripts/bootstrap.sh --test`",
                    pytrace=False)
    return pytest.mark.skipif(not present,
                              reason=f"needs {what}: `sh scripts/bootstrap.sh --test`")


needs_ftpsync = _needs(FTPSYNC and RUNMIRRORS, "Debian's ftpsync package (ftpsync, runmirrors)")
needs_sshd = _needs(SSHD, "openssh-server (sshd)")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the test's sshd runs as root")

OWN = {f"project/trace/{TEST_HOSTNAME}", f"project/trace/{TEST_HOSTNAME}-stage1",
       "project/trace/_hierarchy", "project/trace/_hierarchy.mirror", "project/trace/_traces"}
IN_PROGRESS = f"Archive-Update-in-Progress-{TEST_HOSTNAME}"
REQUIRED = f"Archive-Update-Required-{TEST_HOSTNAME}"


# -- the words ----------------------------------------------------------------------------------
def test_push_words_are_read_as_ftpsync_reads_them() -> None:
    assert parse_push("") == PushRequest()
    assert parse_push("sync:archive: sync:stage1") == PushRequest("stage1", archive="")
    assert parse_push("sync:archive:security sync:callback sync:mhop sync:stage2") == \
        PushRequest("stage2", mhop=True, callback=True, archive="security")
    assert parse_push("sync:stage1 sync:stage2").scope == "all"  # both halves: everything
    assert parse_push("sync:stage1", "sync:all").scope == "all"  # the forced command wins
    assert parse_push("sync:all", "sync:stage2").scope == "stage2"
    assert parse_push("sync:mhop").scope == "all"
    assert parse_push("rm -rf / sync:all").unknown == ("rm", "-rf", "/")
    # What a hub sends is exactly what runmirrors sends.
    assert push_words("stage1") == "sync:archive: sync:stage1"
    assert push_words("all", archive="x", mhop=True, callback=True) == \
        "sync:archive:x sync:callback sync:mhop sync:all"


def test_downstream_lines_and_what_each_kind_of_run_pushes_them() -> None:
    """runmirrors' mirror-list syntax, and its `signal` rules for -k all / stage2 / mhop."""
    staged = parse_downstream("staged eu.a a.example.org archvsync -p 2222")
    mhop = parse_downstream("mhop eu.b ssh+ftpsync://sync@b.example.org/security")
    every = parse_downstream("all eu.c c.example.org archvsync")
    assert staged == Downstream("staged", "eu.a", "a.example.org", "archvsync", ("-p", "2222"))
    assert mhop == Downstream("mhop", "eu.b", "b.example.org", "sync", (), "security")
    assert isinstance(every, Downstream) and isinstance(staged, Downstream)
    assert isinstance(mhop, Downstream)
    for bad, why in (("fast a b c", "not a push type"), ("all a b", "needs a user"),
                     ("all a http://b/", "not a push URL"), ("all a b c 2 key", "PROTO"),
                     ("all a b c d", "start with '-'")):
        problem = parse_downstream(bad)
        assert isinstance(problem, str) and why in problem, (bad, problem)
    words = {(p.downstream.name, p.first, p.second)
             for p in plan_pushes([staged, mhop, every], "all")}
    assert words == {("eu.a", "sync:archive: sync:stage1", "sync:archive: sync:stage2"),
                     ("eu.b", "sync:archive:security sync:stage1",
                      "sync:archive:security sync:stage2"),
                     ("eu.c", "sync:archive: sync:all", None)}
    assert {(p.downstream.name, p.first, p.second)
            for p in plan_pushes([staged, mhop, every], "mhop")} == {
        ("eu.a", "sync:archive: sync:stage1", None),  # stage 2 comes with the next push
        ("eu.b", "sync:archive:security sync:mhop sync:stage1", None)}
    assert {(p.downstream.name, p.first) for p in plan_pushes([staged, every], "stage2")} == {
        ("eu.a", "sync:archive: sync:stage2"), ("eu.c", "sync:archive: sync:all")}
    assert push_kind("success", "all", False) == "all"
    assert push_kind("success", "stage2", True) == "stage2"
    assert push_kind("staged", "stage1", True) == "mhop"
    assert push_kind("staged", "stage1", False) is None
    assert push_kind("failed", "all", False) is None
    argv = ssh_argv(staged, "sync:archive: sync:all", key="/k")
    assert argv[:2] == ["ssh", "-n"] and "StrictHostKeyChecking=no" not in argv
    assert argv[-4:] == ["2222", "--", "a.example.org", "sync:archive: sync:all"]


def test_config_check_names_a_bad_downstream_line(tmp_path: Path, deb: Path) -> None:
    deb.write_text(deb.read_text() + 'downstreams = ["staged a b", "all x y z", "all x y z"]\n'
                   'push_delay = "-1s"\n')
    checked = subprocess.run([*python_cli(), "-c", str(deb), "config", "check"],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 78
    assert "mirrors.deb.downstreams.0" in checked.stderr and "needs a user" in checked.stderr
    assert "a second downstream named `x`" in checked.stderr


# -- helpers ------------------------------------------------------------------------------------
def push(config: Path, words: str | None, *argv: str) -> subprocess.CompletedProcess[str]:
    """``mirrorkeeper trigger`` as sshd runs a forced command: the pushed words in
    SSH_ORIGINAL_COMMAND, a client address in SSH_CONNECTION."""
    env = {**os.environ, "SSH_CONNECTION": "127.0.0.1 40000 127.0.0.1 22"}
    if words is not None:
        env["SSH_ORIGINAL_COMMAND"] = words
    return subprocess.run([*python_cli(), "-c", str(config), "trigger", *argv], env=env,
                          capture_output=True, text=True, timeout=120)


def history(config: Path) -> list[RunRecord]:
    store = Store.open(load_config(config).settings.state_dir)
    try:
        return store.history("deb", limit=50)
    finally:
        store.close()


def fields(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}


def content(root: Path) -> dict[str, bytes]:
    """Every regular file but this host's own trace files and markers."""
    return {rel: p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink()
            and (rel := str(p.relative_to(root))) not in OWN
            and not rel.startswith("Archive-Update-")}


def trigger_events(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "logs" / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == "trigger"]


@pytest.fixture
def deb(tmp_path: Path, served: str) -> Path:
    return write_config(tmp_path / "mirrorkeeper.toml", {"deb": {
        "profile": "debian", "dest": str(tmp_path / "mirror"), "upstreams": [served],
        "delete_grace": "0s", "trace_maintainer": "Mirror Admin <admin@mirror.test>",
        "trace_country": "DE Germany"}})


# -- the flags ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_staged_push_brings_stage1_then_stage2_then_all(
        tmp_path: Path, deb: Path, upstream: DebianLikeTree) -> None:
    dest = tmp_path / "mirror"
    first = push(deb, "sync:archive: sync:stage1", "deb")
    assert first.returncode == 0, first.stderr
    assert "stage1 of a staged push" in first.stdout
    staged = history(deb)[0]
    assert staged.outcome == "staged" and [s.name for s in staged.stages] == ["stage1"]
    assert all((dest / p).exists() for p in upstream.pool_files())  # the new files are in
    assert not (dest / "dists/bookworm/Release").exists()  # the indexes wait for stage 2
    assert not (dest / "project/trace/master").exists()
    stage1_trace = dest / f"project/trace/{TEST_HOSTNAME}-stage1"
    assert stage1_trace.exists() and not (dest / f"project/trace/{TEST_HOSTNAME}").exists()
    stage1_seconds = fields(stage1_trace)["Total time spent in stage1 rsync"]
    assert not (dest / IN_PROGRESS).exists() and not (dest / REQUIRED).exists()

    second = push(deb, "sync:archive: sync:stage2", "deb")
    assert second.returncode == 0, second.stderr
    done = history(deb)[0]
    assert done.outcome == "success"
    assert [s.name for s in done.stages] == ["signal", "stage2"]  # the signal before stage 2
    assert content(dest) == content(upstream.root)
    trace = fields(dest / f"project/trace/{TEST_HOSTNAME}")
    assert trace["Total time spent in stage1 rsync"] == stage1_seconds  # from the -stage1 trace
    assert trace["Trigger"] == "ssh" and trace["Archive serial"] == "1"
    assert stage1_trace.exists()  # ftpsync keeps it after a stage-2 push

    upstream.mutate()
    third = push(deb, "sync:all", "deb")
    assert third.returncode == 0, third.stderr
    assert history(deb)[0].outcome == "success"
    assert content(dest) == content(upstream.root)
    assert not stage1_trace.exists()  # a full push removes it, as ftpsync does
    assert fields(dest / f"project/trace/{TEST_HOSTNAME}")["Archive serial"] == "2"


def test_the_archive_word_names_the_mirror_and_every_other_word_is_heard(
        tmp_path: Path, deb: Path) -> None:
    result = push(deb, "sync:archive:deb sync:callback sync:mhop bogus")
    assert result.returncode == 0, result.stderr
    assert "unknown option 'bogus' ignored" in result.stderr
    assert "sync:callback asked for" in result.stderr
    assert history(deb)[0].outcome == "success"
    logged = trigger_events(tmp_path)[-1]
    assert (logged["mirror"], logged["scope"], logged["mhop"], logged["callback"],
            logged["unknown"]) == ("deb", "all", True, True, ["bogus"])
    # The forced command's own words win over the pushed ones.
    assert push(deb, "sync:all", "deb", "sync:stage1").returncode == 0
    assert history(deb)[0].outcome == "staged"
    # No mirror named anywhere is a usage error, and nothing runs.
    nameless = push(deb, "sync:all")
    assert nameless.returncode == 64 and "sync:archive:NAME" in nameless.stderr
    assert len(history(deb)) == 2


# -- the markers --------------------------------------------------------------------------------
@pytest.mark.slow
def test_in_progress_marker_during_a_run_and_a_push_mid_run_is_never_lost(
        tmp_path: Path, served: str) -> None:
    dest = tmp_path / "mirror"
    config = write_config(tmp_path / "mirrorkeeper.toml", {"deb": {
        "profile": "debian", "dest": str(dest), "upstreams": [served], "delete_grace": "0s",
        "bwlimit": 600}})
    dest.mkdir()
    loaded = load_config(config)
    records: list[RunRecord] = []

    def run() -> None:
        store = Store.open(loaded.settings.state_dir)
        try:
            records.append(sync_mirror(loaded, loaded.mirrors["deb"], store))
        finally:
            store.close()

    worker = threading.Thread(target=run)
    worker.start()
    try:
        wait_for(lambda: bool(processes_mentioning(str(dest))), what="stage 1's rsync")
        marker = dest / IN_PROGRESS
        assert marker.read_text() == f"{os.getpid()}\n"  # ftpsync's lock: our PID
        busy = push(config, "sync:all", "deb")
        assert busy.returncode == 75, busy.stderr  # the mirror is locked: no second run ...
        assert "goes round once more" in busy.stdout  # ... but the push is kept
    finally:
        worker.join(timeout=120)
    record = records[0]
    assert record.outcome == "success", record.attempts
    content_stages = [s.name for s in record.stages if s.name != "signal"]
    assert content_stages.count("stage1") >= 2  # stage 1 (or the whole run) went round again
    assert not (dest / REQUIRED).exists() and not (dest / IN_PROGRESS).exists()


def test_own_markers_are_never_synced_over_nor_deleted(
        tmp_path: Path, deb: Path, upstream: DebianLikeTree) -> None:
    """An upstream that carries files with our names (a copy of our tree, say) overwrites
    none of ours, and stage 2 deletes none of ours, while a foreign marker is still seen."""
    dest = tmp_path / "mirror"
    assert push(deb, "sync:all", "deb").returncode == 0
    ours = (dest / f"project/trace/{TEST_HOSTNAME}").read_text()
    (upstream.root / f"project/trace/{TEST_HOSTNAME}").write_text("forged\n")
    (upstream.root / REQUIRED).write_text("forged\n")
    assert push(deb, "sync:stage1", "deb").returncode == 0
    assert not (dest / REQUIRED).exists()  # not pulled
    assert (dest / f"project/trace/{TEST_HOSTNAME}").read_text() == ours
    assert (dest / "project/trace/_hierarchy").read_text() == (
        f"{TEST_HOSTNAME}-stage1 {TEST_HOSTNAME} {TEST_HOSTNAME} 127.0.0.1\n")
    (upstream.root / f"project/trace/{TEST_HOSTNAME}").unlink()
    (upstream.root / REQUIRED).unlink()
    assert push(deb, "sync:stage2", "deb").returncode == 0
    assert "forged" not in (dest / f"project/trace/{TEST_HOSTNAME}").read_text()
    assert (dest / f"project/trace/{TEST_HOSTNAME}-stage1").exists()


def test_ubuntu_style_trace_and_the_chain_never_grows_from_our_own_lines(tmp_path: Path) -> None:
    from mirrorkeeper.migrate.ftpsync import arch_excludes
    from mirrorkeeper.record import RunRecord as Record
    from mirrorkeeper.sync.trace import arch_configuration, hierarchy, own_files, write_trace

    record = Record(1, "rel", "rsync://up.example:8730/releases/", 1_700_000_000.0,
                    1_700_000_100.0, "success")
    path = write_trace("ubuntu", str(tmp_path), "mirror.example.org", record)
    assert path == tmp_path / ".trace/mirror.example.org"
    time.strptime(path.read_text().strip(), "%a %b %d %H:%M:%S UTC %Y")  # `date -u`
    assert own_files("ubuntu", "h") == (".trace/h",)
    assert arch_configuration(["*.iso"]) == "ALL"
    assert arch_configuration([*arch_excludes(["source", "i386"]), "/x/"]) == (
        "EXCLUDE i386 source")  # what ftpsync writes for ARCH_EXCLUDE="source i386"
    assert own_files("arch", "h") == ("lastsync",) and own_files("", "h") == ()
    # A copy of our own chain (kept by the delete grace) is not chained again.
    ours = hierarchy("", "h", "h", "rsync://up.example/debian/")
    assert ours == "h h h up.example\n"
    assert hierarchy("master m m unknown\n" + ours, "h", "h", "up.example::debian") == (
        "master m m unknown\nh h h up.example\n")


# -- the trace, against the real ftpsync --------------------------------------------------------
def ftpsync_home(base: Path, to: Path, port: int, *, hub: bool = False,
                 extra: str = "") -> Path:
    """A HOME with ``.config/ftpsync/ftpsync.conf`` for the packaged ftpsync."""
    home = base / "home"
    (home / ".config/ftpsync").mkdir(parents=True, exist_ok=True)
    (home / ".config/ftpsync/ftpsync.conf").write_text(
        f'MIRRORNAME="{TEST_HOSTNAME}"\nTRACEHOST="{TEST_HOSTNAME}"\nTO="{to}/"\n'
        f'LOGDIR="{base}/log"\nMAILTO="root"\nRSYNC_HOST="127.0.0.1"\nRSYNC_PATH="debian"\n'
        f'RSYNC_EXTRA="--port={port}"\nUIPSLEEP=1\nUIPRETRIES=1\n'
        f'INFO_MAINTAINER="Mirror Admin <admin@mirror.test>"\nINFO_COUNTRY="DE Germany"\n'
        f'HUB={"true" if hub else "false"}\n{extra}')
    return home


def run_ftpsync(home: Path, *words: str, env: dict[str, str] | None = None,
                ) -> subprocess.CompletedProcess[str]:
    assert FTPSYNC
    return subprocess.run([FTPSYNC, *words], capture_output=True, text=True, timeout=120,
                          env={"PATH": os.environ["PATH"], "HOME": str(home), "LOGNAME": "root",
                               **(env or {})})


@needs_ftpsync
def test_the_trace_has_every_field_ftpsync_writes_for_the_same_tree(
        tmp_path: Path, deb: Path, upstream: DebianLikeTree, rsyncd: Any) -> None:
    daemon = rsyncd([Module("debian", upstream.root)])
    ftp = tmp_path / "ftpsync-tree"
    # One architecture left out, as ftpsync's ARCH_EXCLUDE and as `import ftpsync` maps it.
    home = ftpsync_home(tmp_path / "ftpsync", ftp, daemon.port, extra='ARCH_EXCLUDE="arm64"\n')
    real = run_ftpsync(home, env={"SSH_ORIGINAL_COMMAND": "sync:all"})
    assert real.returncode == 0, (real.stdout, real.stderr)
    config = write_config(tmp_path / "mk.toml", {"deb": {
        "profile": "debian", "dest": str(tmp_path / "mirror"),
        "upstreams": [daemon.url("debian")], "delete_grace": "0s",
        "excludes": arch_excludes(["arm64"]),
        "trace_maintainer": "Mirror Admin <admin@mirror.test>", "trace_country": "DE Germany"}})
    ours = push(config, "sync:all", "deb")
    assert ours.returncode == 0, ours.stderr
    mine, theirs = tmp_path / "mirror", ftp
    assert content(mine) == content(theirs)  # the same tree ...
    assert not any("arm64" in path for path in content(mine))
    trace = f"project/trace/{TEST_HOSTNAME}"
    a, b = (mine / trace).read_text().splitlines(), (theirs / trace).read_text().splitlines()
    for first in (a[0], b[0]):  # ... the checker's strict first line ...
        time.strptime(first, "%a %b %d %H:%M:%S UTC %Y")
    ours_f, theirs_f = fields(mine / trace), fields(theirs / trace)
    # ... every field, in ftpsync's order (the rate only when the whole seconds are not 0) ...
    assert [k for k in ours_f if k != "Average rate"] == [
        k for k in theirs_f if k != "Average rate"]
    assert ("Average rate" in ours_f) == (ours_f["Total time spent in rsync"] != "0")
    assert ours_f["Architectures"] == "amd64"
    assert ours_f["Architectures-Configuration"] == "EXCLUDE arm64"
    for key in ("Archive serial", "Running on host", "Maintainer", "Country", "Trigger",
                "Architectures", "Architectures-Configuration", "Upstream-mirror",
                "Rsync-Transport"):
        assert ours_f[key] == theirs_f[key], key  # ... with the same values
    for key in ("Date", "Date-Started"):  # `date -u -R`
        time.strptime(ours_f[key], "%a, %d %b %Y %H:%M:%S +0000")
    assert theirs_f["Used ftpsync version"] == theirs_f["Creator"].split()[-1]
    # The chain files are byte for byte what ftpsync writes.
    for name in ("_hierarchy", "_hierarchy.mirror", "_traces"):
        assert (mine / "project/trace" / name).read_text() == (
            theirs / "project/trace" / name).read_text(), name


# -- the real runmirrors pushes through a real sshd ---------------------------------------------
class Sshd:
    def __init__(self, base: Path, forced: str) -> None:
        base.mkdir(parents=True)
        self.base = base
        for key in ("host", "pusher"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                            str(base / key)], check=True)
        (base / "authorized_keys").write_text(
            f'command="{forced}",restrict {(base / "pusher.pub").read_text()}')
        (base / "authorized_keys").chmod(0o600)
        self.port = free_port()
        (base / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {base / 'host'}\n"
            f"AuthorizedKeysFile {base / 'authorized_keys'}\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\n"
            # The keys live under /tmp, which StrictModes rejects (world-writable parent).
            f"StrictModes no\nPidFile {base / 'sshd.pid'}\nSetEnv PATH={os.environ['PATH']}\n")
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
        assert SSHD
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(base / "sshd_config")],
                                     stderr=subprocess.DEVNULL)
        wait_for(self.listening, what="sshd listening")

    def listening(self) -> bool:
        import socket

        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def sshd_factory() -> Iterator[Any]:
    started: list[Sshd] = []

    def start(base: Path, forced: str) -> Sshd:
        server = Sshd(base, forced)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def runmirrors_home(base: Path, key: Path, lines: list[str]) -> Path:
    home = base / "home"
    (home / ".config/ftpsync").mkdir(parents=True)
    (home / ".config/ftpsync/runmirrors.mirror").write_text("\n".join(lines) + "\n")
    (home / ".config/ftpsync/runmirrors.conf").write_text(
        # The package's runmirrors needs BASEDIR set (it `cd`s there under `set -u`).
        f'KEYFILE="{key}"\nLOGDIR="{base}/log"\nMAILTO="root"\nPUSHDELAY=30\n'
        f'BASEDIR="{home}"\n'
        'SSH_OPTS="-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null '
        '-o LogLevel=ERROR"\n')
    return home


def run_runmirrors(home: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    assert RUNMIRRORS
    return subprocess.run([RUNMIRRORS, *argv], capture_output=True, text=True, timeout=120,
                          env={"PATH": os.environ["PATH"], "HOME": str(home),
                               "LOGNAME": "root"})


@needs_ftpsync
@needs_sshd
@needs_root
@pytest.mark.privileged
@pytest.mark.slow
def test_the_real_runmirrors_pushes_staged_and_all_through_a_forced_command(
        tmp_path: Path, deb: Path, upstream: DebianLikeTree, sshd_factory: Any) -> None:
    mk = Path(sys.executable).parent / "mirrorkeeper"
    server = sshd_factory(tmp_path / "ssh", f"{mk} -c {deb} trigger deb")
    dest = tmp_path / "mirror"
    staged = runmirrors_home(tmp_path / "staged", tmp_path / "ssh/pusher",
                             [f"staged mk 127.0.0.1 root -p {server.port}"])
    result = run_runmirrors(staged, "-k", "all")
    assert result.returncode == 0, result.stderr
    wait_for(lambda: [r.outcome for r in history(deb)] == ["success", "staged"], timeout=90,
             what="stage 1, then stage 2, pushed by runmirrors")
    assert [e["scope"] for e in trigger_events(tmp_path)] == ["stage1", "stage2"]
    assert content(dest) == content(upstream.root)
    assert (dest / f"project/trace/{TEST_HOSTNAME}").exists()
    upstream.mutate()
    every = runmirrors_home(tmp_path / "all", tmp_path / "ssh/pusher",
                            [f"all mk 127.0.0.1 root -p {server.port}"])
    assert run_runmirrors(every, "-k", "all").returncode == 0
    wait_for(lambda: len([r for r in history(deb) if r.outcome == "success"]) == 2,
             timeout=90, what="the full push")
    assert trigger_events(tmp_path)[-1]["scope"] == "all"
    assert content(dest) == content(upstream.root)
    assert fields(dest / f"project/trace/{TEST_HOSTNAME}")["Trigger"] == "ssh"


# -- hub mode: Mirrorkeeper pushes a downstream that runs the real ftpsync ----------------------
DOWN = "down.test"


def downstream_ftpsync(tmp_path: Path, hub_tree: Path, rsyncd: Any, sshd_factory: Any,
                       ) -> tuple[Path, Sshd]:
    """A downstream mirror: the real ftpsync behind a real sshd forced command, syncing from
    an rsync daemon that serves the hub's tree."""
    assert FTPSYNC
    daemon = rsyncd([Module("debian", hub_tree)])
    down = tmp_path / "down"
    home = ftpsync_home(tmp_path / "downstream", down, daemon.port)
    conf = home / ".config/ftpsync/ftpsync.conf"
    conf.write_text(conf.read_text().replace(TEST_HOSTNAME, DOWN))
    server = sshd_factory(tmp_path / "ssh", f"env HOME={home} LOGNAME=root {FTPSYNC}")
    return down, server


def hub_line(kind: str, name: str, port: int) -> str:
    return (f"{kind} {name} 127.0.0.1 root -p {port} -o StrictHostKeyChecking=no "
            "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR")


def published(root: Path) -> dict[str, bytes]:
    return {k: v for k, v in content(root).items() if not k.startswith("project/trace/")}


@needs_ftpsync
@needs_sshd
@needs_root
@pytest.mark.privileged
@pytest.mark.slow
def test_hub_mode_pushes_a_real_ftpsync_downstream_staged_then_all(
        tmp_path: Path, served: str, upstream: DebianLikeTree, rsyncd: Any,
        sshd_factory: Any) -> None:
    hub = tmp_path / "mirror"
    hub.mkdir()
    down, server = downstream_ftpsync(tmp_path, hub, rsyncd, sshd_factory)
    closed = free_port()  # nothing listens there: a downstream that cannot be reached
    config = write_config(tmp_path / "mirrorkeeper.toml", {"deb": {
        "profile": "debian", "dest": str(hub), "upstreams": [served], "delete_grace": "0s",
        "push_key": str(tmp_path / "ssh/pusher"), "push_delay": "30s",
        "downstreams": [hub_line("staged", "down", server.port)]}})
    first = push(config, "sync:all", "deb")
    assert first.returncode == 0, first.stderr
    record = history(config)[0]
    assert record.outcome == "success"
    [result] = record.downstreams
    assert (result.name, result.kind, result.sent, result.exit_codes, result.error) == (
        "down", "staged", ("sync:archive: sync:stage1", "sync:archive: sync:stage2"), (0, 0), "")
    assert published(down) == published(upstream.root)  # the downstream has the whole tree
    trace = fields(down / f"project/trace/{DOWN}")
    assert trace["Upstream-mirror"] == "127.0.0.1" and trace["Trigger"] == "ssh"
    assert (down / f"project/trace/{DOWN}-stage1").exists()  # it was pushed in two stages
    assert (down / f"project/trace/{TEST_HOSTNAME}").exists()  # our trace went down too ...
    assert (down / "project/trace/_hierarchy").read_text() == (  # ... and the chain with it
        f"{TEST_HOSTNAME} {TEST_HOSTNAME} {TEST_HOSTNAME} 127.0.0.1\n"
        f"{DOWN} {DOWN} {DOWN} 127.0.0.1\n")

    upstream.mutate()
    config.write_text(config.read_text().replace(
        repr([hub_line("staged", "down", server.port)]).replace("'", '"'),
        repr([hub_line("all", "down", server.port),
              hub_line("all", "gone", closed)]).replace("'", '"')))
    assert [d for d in load_config(config).mirrors["deb"].settings.downstreams] == [
        hub_line("all", "down", server.port), hub_line("all", "gone", closed)]
    second = push(config, "sync:all", "deb")
    assert second.returncode == 0, second.stderr
    record = history(config)[0]
    by_name = {d.name: d for d in record.downstreams}
    assert by_name["down"].sent == ("sync:archive: sync:all",) and not by_name["down"].error
    assert by_name["gone"].exit_codes == (255,) and "did not reach" in by_name["gone"].error
    assert "downstream.unreachable" in second.stderr  # the finding, raised as an alert
    shown = subprocess.run([*python_cli(), "-c", str(config), "history", "deb", "--json"],
                           capture_output=True, text=True, timeout=60, check=True)
    assert [(d["name"], d["exit_codes"], d["error"] is None)
            for d in json.loads(shown.stdout)[0]["downstreams"]] == [
        ("down", [0], True), ("gone", [255], False)]
    assert published(down) == published(upstream.root)
    assert not (down / f"project/trace/{DOWN}-stage1").exists()  # a full push removes it
    assert fields(down / f"project/trace/{DOWN}")["Archive serial"] == "2"


@needs_ftpsync
@needs_sshd
@needs_root
@pytest.mark.privileged
@pytest.mark.slow
def test_a_multi_hop_push_from_the_real_runmirrors_through_us_to_a_real_ftpsync(
        tmp_path: Path, served: str, upstream: DebianLikeTree, rsyncd: Any,
        sshd_factory: Any) -> None:
    """runmirrors → (sshd) Mirrorkeeper as a hub → (sshd) ftpsync: the mhop push brings every
    hop stage 1 first, and stage 2 only once the whole tree below has it."""
    hub = tmp_path / "mirror"
    hub.mkdir()
    down, below = downstream_ftpsync(tmp_path, hub, rsyncd, sshd_factory)
    config = write_config(tmp_path / "mirrorkeeper.toml", {"deb": {
        "profile": "debian", "dest": str(hub), "upstreams": [served], "delete_grace": "0s",
        "push_key": str(tmp_path / "ssh/pusher"), "push_delay": "30s",
        "downstreams": [hub_line("staged", "down", below.port)]}})
    mk = Path(sys.executable).parent / "mirrorkeeper"
    us = sshd_factory(tmp_path / "ssh-hub", f"{mk} -c {config} trigger deb")
    home = runmirrors_home(tmp_path / "top", tmp_path / "ssh-hub/pusher",
                           [f"mhop hub 127.0.0.1 root -p {us.port}"])
    assert run_runmirrors(home).returncode == 0  # its default kind is mhop
    wait_for(lambda: [r.outcome for r in history(config)] == ["success", "staged"], timeout=90,
             what="the hub's stage 1 (mhop) and stage 2")
    assert [(e["scope"], e["mhop"]) for e in trigger_events(tmp_path)] == [
        ("stage1", True), ("stage2", True)]
    staged, done = history(config)[1], history(config)[0]
    assert [d.sent for d in staged.downstreams] == [("sync:archive: sync:stage1",)]
    assert [d.sent for d in done.downstreams] == [("sync:archive: sync:stage2",)]
    assert all(d.exit_codes == (0,) for r in (staged, done) for d in r.downstreams)
    assert published(down) == published(upstream.root)
    assert fields(down / f"project/trace/{DOWN}")["Archive serial"] == "1"
    assert (down / "project/trace/_hierarchy").read_text().splitlines() == [
        f"{TEST_HOSTNAME} {TEST_HOSTNAME} {TEST_HOSTNAME} 127.0.0.1",
        f"{DOWN} {DOWN} {DOWN} 127.0.0.1"]
