"""Real users for the deploy tests: accounts made with ``useradd`` (and removed after), commands
run as them with ``runuser``, and a Mirrorkeeper they can execute.

pytest's temporary directories are 0700 root, and this interpreter may live where other users
cannot go (pyenv under /root). So the tests work in a 0755 directory of their own, and
:func:`runnable_bin` gives a ``bin`` with Mirrorkeeper's console scripts that any user can run:
this venv's own when it is reachable, else a venv over the system's Python of the same version
that sees this venv's packages (and the checkout, through the editable install's ``.pth``).
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import pytest

#: The marker every test that needs root and real accounts carries.
privileged = [
    pytest.mark.privileged,
    pytest.mark.skipif(os.geteuid() != 0, reason="creates users and runs commands as them: "
                       "needs root"),
    pytest.mark.skipif(not all(shutil.which(p) for p in ("useradd", "userdel", "runuser",
                                                         "setpriv")),
                       reason="needs useradd, userdel, runuser and setpriv (passwd, util-linux)"),
]


def privileged_test(test: Callable[..., None]) -> Callable[..., None]:
    """The :data:`privileged` marks on one test."""
    for mark in reversed(privileged):
        test = mark(test)
    return test


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int

    @property
    def group(self) -> str:
        return grp.getgrgid(self.gid).gr_name


def _retry(argv: list[str]) -> None:
    """useradd and friends refuse while another process holds /etc/passwd's lock."""
    for attempt in range(20):
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode == 0:
            return
        if "lock" not in proc.stderr.lower() or attempt == 19:
            raise AssertionError(f"{argv}: {proc.stderr}")
        time.sleep(0.2)


class Accounts:
    """Makes system users with a group of their own; :meth:`remove_all` deletes them."""

    def __init__(self) -> None:
        self.made: list[str] = []
        self.tag = uuid.uuid4().hex[:6]

    def create(self, role: str, groups: tuple[str, ...] = ()) -> Account:
        name = f"mk{role}{self.tag}"[:31]
        argv = ["useradd", "--system", "--user-group", "--no-create-home",
                "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"]
        if groups:
            argv += ["--groups", ",".join(groups)]
        _retry([*argv, name])
        self.made.append(name)
        entry = pwd.getpwnam(name)
        return Account(name, entry.pw_uid, entry.pw_gid)

    def add_to_group(self, account: Account, group: str) -> None:
        _retry(["usermod", "--append", "--groups", group, account.name])

    def remove_all(self) -> None:
        for name in reversed(self.made):
            subprocess.run(["userdel", name], capture_output=True, check=False)
            subprocess.run(["groupdel", name], capture_output=True, check=False)


@pytest.fixture
def accounts() -> Iterator[Accounts]:
    made = Accounts()
    try:
        yield made
    finally:
        made.remove_all()


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory every user may enter (pytest's own are 0700), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="mk-deploy-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def as_user(account: Account | str, argv: list[str], timeout: float = 120,
            **kwargs: object) -> subprocess.CompletedProcess[str]:
    """``argv`` as ``account`` (its groups from /etc/group, as a login would have them)."""
    name = account if isinstance(account, str) else account.name
    return subprocess.run(["runuser", "-u", name, "--", *argv], capture_output=True, text=True,
                          timeout=timeout, **kwargs)  # type: ignore[call-overload]


def setpriv(account: Account) -> list[str]:
    """The argv prefix that *execs* ``argv`` as ``account`` (runuser stays as a parent and
    answers SIGTERM for its child): for a long-running process the test signals."""
    return ["setpriv", f"--reuid={account.uid}", f"--regid={account.gid}", "--init-groups",
            "--"]


def _others_can_run(python: str) -> bool:
    probe = subprocess.run(["runuser", "-u", "nobody", "--", python, "-c",
                            "import mirrorkeeper"], capture_output=True)
    return probe.returncode == 0


def _console_scripts(bin_dir: Path, python: Path) -> None:
    for ep in entry_points(group="console_scripts"):
        if ep.dist is None or ep.dist.name != "mirrorkeeper":
            continue
        module, _, func = ep.value.partition(":")
        script = bin_dir / ep.name
        script.write_text(f"#!{python}\nimport sys\nfrom {module} import {func}\n"
                          f"sys.exit({func}())\n")
        script.chmod(0o755)


@pytest.fixture(scope="session")
def runnable_bin() -> Iterator[Path]:
    """A ``bin`` directory whose ``mirrorkeeper`` (and alert plugins) any user can run."""
    here = Path(sys.executable).parent
    if _others_can_run(sys.executable):
        yield here
        return
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(f"python{version}", path="/usr/bin:/usr/local/bin:/bin")
    if system is None or not _others_can_run_plain(system):
        pytest.skip(f"this Python ({sys.executable}) is out of other users' reach and there is "
                    f"no system python{version} they could run instead")
    base = Path(tempfile.mkdtemp(prefix="mk-python-"))
    base.chmod(0o755)
    try:
        venv = base / "venv"
        subprocess.run([system, "-m", "venv", "--without-pip", str(venv)], check=True)
        site = venv / "lib" / f"python{version}" / "site-packages"
        (site / "mirrorkeeper-tests.pth").write_text(
            f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
        _console_scripts(venv / "bin", venv / "bin" / "python")
        subprocess.run(["chmod", "-R", "a+rX", str(base)], check=True)
        if not _others_can_run(str(venv / "bin" / "python")):
            pytest.skip("other users cannot import mirrorkeeper from this checkout "
                        f"({Path(__file__).parent.parent}): make it world-readable")
        yield venv / "bin"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _others_can_run_plain(python: str) -> bool:
    return subprocess.run(["runuser", "-u", "nobody", "--", python, "-c", "pass"],
                          capture_output=True).returncode == 0


def tree_listing(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every file under ``root`` with its owner, mode and size (to prove a reader wrote
    nothing)."""
    found = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        found[str(path.relative_to(root))] = (st.st_uid, st.st_mode, st.st_size)
    return found
