"""Stats streaming to real sockets on this machine: a Graphite plaintext TCP listener, a StatsD
UDP socket and a UNIX stream socket that answers PUTVAL as collectd's unixsock plugin does.
Every byte of the wire format is checked."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mirrorkeeper.metrics import wire

from .conftest import CliResult, write_config


class Listener:
    """Accepts connections and keeps every byte received, answering each line if asked."""

    def __init__(self, sock: socket.socket, reply: bytes | None = None) -> None:
        self.sock, self.reply, self.data = sock, reply, bytearray()
        self.sock.listen(5)
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(0.2)
            with conn:
                while not self.stopping:
                    try:
                        chunk = conn.recv(65536)
                    except TimeoutError:
                        continue
                    if not chunk:
                        break
                    self.data.extend(chunk)
                    if self.reply:
                        conn.sendall(self.reply * chunk.count(b"\n"))

    def lines(self) -> list[str]:
        return self.data.decode().splitlines(keepends=True)

    def stop(self) -> None:
        self.stopping = True
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def graphite() -> Iterator[Listener]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    listener = Listener(sock)
    yield listener
    listener.stop()


@pytest.fixture
def collectd(tmp_path: Path) -> Iterator[tuple[Listener, Path]]:
    path = tmp_path / "collectd-unixsock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    listener = Listener(sock, reply=b"0 Success: 1 value has been dispatched.\n")
    yield listener, path
    listener.stop()


def test_wire_formats() -> None:
    values = {"duration_seconds": 12.5, "files_total": 4000}
    assert wire.graphite("mk", "mirror1.example.org", "debian", values, 1700000000) == [
        "mk.mirror1_example_org.debian.duration_seconds 12.5 1700000000\n",
        "mk.mirror1_example_org.debian.files_total 4000 1700000000\n"]
    assert wire.statsd("mk", "h", "debian", values) == ["mk.h.debian.duration_seconds:12.5|g",
                                                        "mk.h.debian.files_total:4000|g"]
    assert wire.collectd("h", "deb.ian", {"age_seconds": 60}, 1700000000, 5) == [
        'PUTVAL "h/mirrorkeeper-deb_ian/gauge-age_seconds" interval=5 1700000000:60\n']


def test_sync_streams_progress_and_totals(tmp_path: Path, served: str, graphite: Listener,
                                          collectd: tuple[Listener, Path],
                                          mk: Callable[..., CliResult]) -> None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(5)
    collectd_listener, collectd_path = collectd
    path = write_config(tmp_path / "mk.toml", {"deb": {
        "profile": "debian", "dest": str(tmp_path / "mirror"), "upstreams": [served],
        "bwlimit": 1200}}, global_={"hostname": "mirror1.example.org"})
    path.write_text(path.read_text() + f"""
[metrics]
graphite = "tcp://127.0.0.1:{graphite.sock.getsockname()[1]}"
statsd = "udp://127.0.0.1:{udp.getsockname()[1]}"
collectd_socket = "{collectd_path}"
interval = "1s"
""")
    result = mk("-c", str(path), "sync", "deb", "--json")
    assert result.code == 0, result.err
    run = result.json()
    time.sleep(0.3)
    line = re.compile(r"^mirrorkeeper\.mirror1_example_org\.deb\.([a-z_]+) (-?[\d.]+) (\d+)\n$")
    got: dict[str, list[float]] = {}
    for text in graphite.lines():
        m = line.match(text)
        assert m, repr(text)
        got.setdefault(m.group(1), []).append(float(m.group(2)))
        assert abs(int(m.group(3)) - time.time()) < 120
    assert len(got["progress_percent"]) >= 2  # streamed while the sync ran
    assert got["progress_percent"] == sorted(got["progress_percent"])
    for key in ("files_total", "files_transferred", "files_deleted", "files_failed",
                "bytes_transferred", "size_bytes", "exit_code"):
        assert got[key] == [run[key]], key
    assert got["duration_seconds"][0] == pytest.approx(run["duration_seconds"], abs=0.01)
    assert got["age_seconds"][0] >= 0 and got["success"] == [1]
    datagrams = []
    try:
        while True:
            datagrams.append(udp.recv(1024).decode())
    except TimeoutError:
        pass
    finally:
        udp.close()
    assert f"mirrorkeeper.mirror1_example_org.deb.files_total:{run['files_total']}|g" in datagrams
    assert all(re.match(r"^mirrorkeeper\.mirror1_example_org\.deb\.[a-z_]+:-?[\d.]+\|g$", d)
               for d in datagrams)
    putvals = collectd_listener.lines()
    assert ('PUTVAL "mirror1.example.org/mirrorkeeper-deb/gauge-files_total" interval=1 '
            in "".join(putvals))
    assert all(re.match(r'^PUTVAL "mirror1\.example\.org/mirrorkeeper-deb/gauge-[a-z_]+" '
                        r"interval=1 \d+:-?[\d.]+\n$", p) for p in putvals)


def test_dead_endpoints_never_slow_or_fail_a_sync(tmp_path: Path, served: str,
                                                  mk: Callable[..., CliResult]) -> None:
    path = write_config(tmp_path / "mk.toml", {"deb": {
        "profile": "debian", "dest": str(tmp_path / "mirror"), "upstreams": [served]}})
    path.write_text(path.read_text() + f"""
[metrics]
graphite = "tcp://127.0.0.1:9"
collectd_socket = "{tmp_path / 'no-such-socket'}"
""")
    started = time.monotonic()
    result = mk("-c", str(path), "sync", "deb", "--quiet")
    assert result.code == 0
    assert time.monotonic() - started < 15
    events = [json.loads(x) for x in (tmp_path / "logs" / "events.jsonl").read_text().splitlines()]
    unreachable = [e for e in events if e["event"] == "metrics.unreachable"]
    assert sorted(e["endpoint"] for e in unreachable) == ["collectd", "graphite"]  # once each


def test_collectd_exec_prints_putval(mirror_config: Path, mk: Callable[..., CliResult]) -> None:
    mk("-c", str(mirror_config), "sync", "deb", "--quiet")
    out = mk("-c", str(mirror_config), "collectd-exec", "--once").out
    lines = out.splitlines()
    assert any("/mirrorkeeper-deb/gauge-age_seconds" in x for x in lines)
    assert any(x.endswith(":0") and "gauge-running" in x for x in lines)
    assert all(x.startswith("PUTVAL ") for x in lines)


def test_bad_metrics_config(tmp_path: Path, mk: Callable[..., CliResult]) -> None:
    path = write_config(tmp_path / "mk.toml", {})
    path.write_text(path.read_text() + '[metrics]\ngraphite = "graphite:2003"\n')
    result = mk("-c", str(path), "config", "check")
    assert result.code == 78
    assert "metrics.graphite: `graphite:2003` is not an endpoint — use tcp://HOST:PORT or " \
           "udp://HOST:PORT" in result.err


def test_prometheus_textfile(mirror_config: Path, tmp_path: Path,
                             mk: Callable[..., CliResult]) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    prom = tmp_path / "textfile" / "mirrorkeeper.prom"
    prom.parent.mkdir()
    mirror_config.write_text(mirror_config.read_text()
                             + f'[metrics]\nprometheus_textfile = "{prom}"\n')
    run = mk("-c", str(mirror_config), "sync", "deb", "--json").json()
    families = {f.name: f for f in text_string_to_metric_families(prom.read_text())}
    def value(name: str) -> float:
        (sample,) = families[name].samples
        assert sample.labels == {"mirror": "deb"}
        return sample.value
    assert value("mirrorkeeper_files_total") == run["files_total"]
    assert value("mirrorkeeper_files_transferred") == run["files_transferred"]
    assert value("mirrorkeeper_success") == 1
    assert 0 <= value("mirrorkeeper_age_seconds") < 60
    assert families["mirrorkeeper_age_seconds"].documentation == (
        "Seconds since the last successful sync")
