"""Network namespaces for partition tests: a server's and a fleet host's, joined by a veth
pair on a private /30 that exists only between them. Cutting the link (``ip link set DEV
down``) is a real partition: packets are dropped, no connection is reset, and a client learns
of it only through its own timeouts, as across a failed switch.

Only root may make namespaces; :func:`missing_netns_tools` says why a test must skip.
Everything is removed by :meth:`Partition.remove` (the test's finalizer), even after a failure,
along with any process still running inside.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess


def missing_netns_tools() -> str | None:
    """Why namespaces cannot be made here (None: they can)."""
    if os.geteuid() != 0:
        return "makes network namespaces (ip netns add): needs root"
    if shutil.which("ip") is None:
        return "needs iproute2's ip"
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True,
                          timeout=30)


class Partition:
    """Namespaces ``server`` and ``host`` with ``server_ip`` and ``host_ip`` on one /30."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.server, self.host = f"mk-srv-{tag}", f"mk-host-{tag}"
        self.server_dev, self.host_dev = f"mks{tag}", f"mkh{tag}"  # at most 15 characters
        third = int(tag[:2], 16)
        fourth = int(tag[2:4], 16) & 0xFC  # a /30: .0 network, .1 and .2 hosts, .3 broadcast
        self.net = f"10.199.{third}.{fourth}/30"
        self.server_ip = f"10.199.{third}.{fourth + 1}"
        self.host_ip = f"10.199.{third}.{fourth + 2}"
        self._made: list[str] = []

    def make(self) -> Partition:
        for ns in (self.server, self.host):
            _ip("netns", "add", ns)
            self._made.append(ns)
        _ip("link", "add", self.server_dev, "type", "veth", "peer", "name", self.host_dev)
        _ip("link", "set", self.server_dev, "netns", self.server)
        _ip("link", "set", self.host_dev, "netns", self.host)
        for ns, dev, addr in ((self.server, self.server_dev, self.server_ip),
                              (self.host, self.host_dev, self.host_ip)):
            _ip("-n", ns, "addr", "add", f"{addr}/30", "dev", dev)
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", dev, "up")
        return self

    def exec_argv(self, ns: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", ns, *argv]

    def cut(self) -> None:
        """The link goes down on both sides: packets in flight and after are lost."""
        _ip("-n", self.host, "link", "set", self.host_dev, "down")
        _ip("-n", self.server, "link", "set", self.server_dev, "down")

    def heal(self) -> None:
        _ip("-n", self.server, "link", "set", self.server_dev, "up")
        _ip("-n", self.host, "link", "set", self.host_dev, "up")

    def reachable(self) -> bool | None:
        """One ping from the host's namespace to the server's (None: no ping here)."""
        if shutil.which("ping") is None:
            return None
        return subprocess.run(self.exec_argv(self.host, [
            "ping", "-c", "1", "-W", "1", self.server_ip]), capture_output=True,
            timeout=10).returncode == 0

    def remove(self) -> None:
        """Kill what still runs inside, then delete the namespaces (and the veth pair)."""
        for ns in reversed(self._made):
            pids = _ip("netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            _ip("netns", "del", ns, check=False)
        self._made.clear()
