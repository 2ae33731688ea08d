"""Real snapshotting filesystems for the tests: btrfs on a loop device and ZFS through
zfs-fuse, each made and torn down by the test that uses it.

Both need root. Only /dev/loop0-7 exist here and other tests share them, so every loop device
is detached afterwards. zfs-fuse is one daemon per machine: it is started if no one runs it
(and stopped at the end of the session only if this session started it); pools get unique
names and are destroyed before it stops. Where the machine cannot provide a filesystem the
test is skipped with the reason, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

_counter = itertools.count()


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def _must(*argv: str) -> str:
    done = _run(*argv)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def unavailable(kind: str) -> str | None:
    """Why this machine cannot give the test a ``kind`` filesystem, or None."""
    if os.geteuid() != 0:
        return f"{kind} needs root (loop devices, FUSE)"
    if kind == "btrfs":
        if not (shutil.which("mkfs.btrfs") and shutil.which("btrfs") and shutil.which("losetup")):
            return "needs btrfs-progs: run `sh scripts/bootstrap.sh --test`"
        if "btrfs" not in Path("/proc/filesystems").read_text():
            return "the kernel has no btrfs"
        return None
    if not (shutil.which("zfs-fuse") and shutil.which("zpool") and shutil.which("zfs")):
        return "needs zfs-fuse: run `sh scripts/bootstrap.sh --test`"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    return None


def require(kind: str) -> None:
    why = unavailable(kind)
    if why is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{kind}: {why} (CI=true: the bootstrap must provide it)")
    pytest.skip(f"{kind}: {why}")


@dataclass
class SnapFs:
    """One mounted filesystem; :meth:`make_dest` gives a mirror its subvolume / dataset."""

    kind: str
    mountpoint: Path
    pool: str = ""

    def make_dest(self, name: str) -> Path:
        path = self.mountpoint / name
        if self.kind == "btrfs":
            _must("btrfs", "subvolume", "create", str(path))
        else:
            _must("zfs", "create", f"{self.pool}/{name}")
        return path


@contextlib.contextmanager
def btrfs_mounted(tmp_path: Path, options: str = "") -> Iterator[SnapFs]:
    require("btrfs")
    image = tmp_path / "btrfs.img"
    with open(image, "wb") as handle:
        handle.truncate(256 << 20)
    device = _must("losetup", "-f", "--show", str(image)).strip()
    mountpoint = tmp_path / "btrfs"
    mountpoint.mkdir()
    try:
        _must("mkfs.btrfs", "-q", device)
        _must("mount", *(["-o", options] if options else []), device, str(mountpoint))
        yield SnapFs("btrfs", mountpoint)
    finally:
        for _ in range(5):
            if not os.path.ismount(mountpoint) or _run("umount", str(mountpoint)).returncode == 0:
                break
            time.sleep(0.5)
        else:
            _run("umount", "-l", str(mountpoint))
        _run("losetup", "-d", device)


@contextlib.contextmanager
def zfs_daemon_running() -> Iterator[None]:
    """The machine's zfs-fuse daemon: shared if running, else started (and stopped after)."""
    require("zfs")
    if _run("zpool", "list").returncode == 0:
        yield
        return
    daemon = subprocess.Popen(["zfs-fuse", "--no-daemon", "--no-kstat-mount"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while _run("zpool", "list").returncode != 0:
            if daemon.poll() is not None or time.monotonic() > deadline:
                pytest.fail("zfs-fuse did not come up")
            time.sleep(0.2)
        yield
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


@contextlib.contextmanager
def zfs_pool(tmp_path: Path) -> Iterator[SnapFs]:
    """A pool of its own; the daemon must be running (:func:`zfs_daemon_running`)."""
    vdev = tmp_path / "zfs.vdev"
    with open(vdev, "wb") as handle:
        handle.truncate(256 << 20)
    pool = f"mktest{os.getpid()}x{next(_counter)}"
    mountpoint = tmp_path / "zfs"
    _must("zpool", "create", "-m", str(mountpoint), pool, str(vdev))
    try:
        yield SnapFs("zfs", mountpoint, pool)
    finally:
        for _ in range(10):  # "pool is busy" right after a rollback: a second try works
            if _run("zpool", "destroy", "-f", pool).returncode == 0:
                break
            time.sleep(1.0)
