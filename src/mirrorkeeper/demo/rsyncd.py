"""A real rsync daemon on 127.0.0.1 (``rsync --daemon --no-detach``) serving modules we choose."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType


@dataclass
class Module:
    name: str
    path: Path
    options: dict[str, str] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RsyncDaemon:
    """Start with ``with RsyncDaemon(workdir, [Module(...)]) as d:``; URLs via ``d.url(name)``."""

    def __init__(self, workdir: Path, modules: list[Module], rsync: str = "rsync") -> None:
        self.workdir = Path(workdir)
        self.modules = modules
        self.rsync = rsync
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "rsyncd.log"

    def url(self, module: str) -> str:
        return f"rsync://127.0.0.1:{self.port}/{module}/"

    def _config(self) -> str:
        lines = [f"log file = {self.log_path}", "use chroot = false", "max connections = 20",
                 "reverse lookup = no", ""]
        for module in self.modules:
            lines += [f"[{module.name}]", f"path = {module.path}", "read only = true",
                      "list = true"]
            is_root = os.geteuid() == 0
            defaults = {"uid": "root", "gid": "root"} if is_root else {}
            for key, value in {**defaults, **module.options}.items():
                lines.append(f"{key} = {value}")
            lines.append("")
        return "\n".join(lines)

    def start(self, timeout: float = 10.0) -> RsyncDaemon:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "rsyncd.conf"
        conf.write_text(self._config())
        for _ in range(5):
            self.port = free_port()
            self.proc = subprocess.Popen(
                [self.rsync, "--daemon", "--no-detach", f"--config={conf}",
                 "--address=127.0.0.1", f"--port={self.port}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break  # port taken between free_port() and bind: try another
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                        return self
                except OSError:
                    time.sleep(0.05)
            self.stop()
        raise RuntimeError(f"rsync daemon did not start; see {self.log_path}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def __enter__(self) -> RsyncDaemon:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
