"""A real PostgreSQL 15 and a real redis-server for the fleet tests, each started here in a
temporary directory (unix sockets only, no TCP port) and stopped when the test module ends.

PostgreSQL's ``initdb`` refuses to run as root, so as root the cluster belongs to ``nobody``
(the directory is handed to it); as any other user it is that user's. ~1 s to first query.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def missing_fleet_tools() -> list[str]:
    """What the fleet tests need and this machine lacks (packages and Python modules)."""
    missing = []
    if not (PG_BIN / "initdb").exists():
        missing.append("postgresql-15")
    if shutil.which("redis-server") is None:
        missing.append("redis-server")
    for module, package in (("redis", "redis"), ("psycopg", "psycopg[binary]")):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"{package} (pip install -e '.[fleet]')")
    return missing


def _as_owner(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "nobody", "--", *argv] if os.geteuid() == 0 else argv


class Postgres:
    """``listen``: also listen on this TCP address (trusting ``trust_net``), inside the network
    namespace ``netns`` when one is given (see tests/netns.py); the unix socket stays."""

    def __init__(self, listen: str = "", trust_net: str = "", netns: str | None = None,
                 ) -> None:
        # Not under pytest's tmp_path: as root that is 0700, where ``nobody`` cannot reach.
        self.dir = Path(tempfile.mkdtemp(prefix="mk-pg-"))
        self.data = self.dir / "data"
        self.sock = self.dir / "sock"
        self.user = "mk"
        self.listen, self.trust_net, self.netns = listen, trust_net, netns

    def start(self) -> Postgres:
        self.sock.mkdir(parents=True)
        if os.geteuid() == 0:
            os.chmod(self.dir, 0o755)
            shutil.chown(self.dir, "nobody")
            shutil.chown(self.sock, "nobody")
        subprocess.run(_as_owner([str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust",
                                  "-U", self.user, "--no-sync", "-E", "UTF8"]),
                       check=True, capture_output=True)
        if self.trust_net:
            with open(self.data / "pg_hba.conf", "a", encoding="utf-8") as hba:
                hba.write(f"host all all {self.trust_net} trust\n")
        self.resume()
        return self

    def tcp_url(self, database: str) -> str:
        """The URL of ``database`` over TCP, for a client in the server's network."""
        return f"postgresql+psycopg://{self.user}@{self.listen}:5432/{database}"

    def create_database(self) -> str:
        """A fresh database; its SQLAlchemy URL."""
        name = "t" + uuid.uuid4().hex[:12]
        subprocess.run([str(PG_BIN / "psql"), "-h", str(self.sock), "-U", self.user,
                        "-d", "postgres", "-qc", f"CREATE DATABASE {name}"],
                       check=True, capture_output=True)
        return self.url(name)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@/{database}?host={self.sock}"

    def pause(self) -> None:
        """Stop the server, keeping its data (``resume`` starts it again)."""
        subprocess.run(_as_owner([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m",
                                  "fast", "-w", "stop"]), check=True, capture_output=True)

    def resume(self) -> None:
        argv = _as_owner([
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"), "-w",
            "-o", f"-c listen_addresses='{self.listen}' -c unix_socket_directories={self.sock} "
                  "-c fsync=off -c max_connections=200", "start"])
        if self.netns is not None:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        subprocess.run(argv, check=True, capture_output=True)

    def stop(self) -> None:
        subprocess.run(_as_owner([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m",
                                  "immediate", "stop"]), capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


class Redis:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.sock = workdir / "redis.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.sock}"

    def start(self) -> Redis:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", "0", "--unixsocket", str(self.sock),
             "--unixsocketperm", "777", "--dir", str(self.dir), "--save", "",
             "--appendonly", "no", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self.sock.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.sock.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    server = Postgres().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    server = Redis(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()
