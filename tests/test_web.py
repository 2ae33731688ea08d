"""The web app through Starlette's TestClient, on a real store (SQLite) and a real queue file.

The daemon object is built but not run: the API's reads, the token checks, the compatibility
formats and the path rules do not need its loop.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from mirrorkeeper.config.load import load_config
from mirrorkeeper.config.problems import ConfigError
from mirrorkeeper.daemon.service import Daemon
from mirrorkeeper.record import RunRecord, StageResult
from mirrorkeeper.store import Store
from mirrorkeeper.store.alerts import AlertStore
from mirrorkeeper.store.schema import runs as runs_table
from mirrorkeeper.web.app import create_app

from .conftest import write_config

TOKEN = "tok-123"
#: What a browser on the mirror host sends as Host: a name the web answers to.
BASE = "http://127.0.0.1:8118"


def record(mirror: str, run_id: int, started: float, outcome: str = "success",
           duration: float = 60.0, log_path: str = "") -> RunRecord:
    stage = StageResult(name="single", argv=("rsync",), started_at=started,
                        finished_at=started + duration, exit_code=0 if outcome == "success"
                        else 23, bytes_received=1_000_000, size_bytes=5_000_000_000,
                        files_total=50_000, files_transferred=120)
    return RunRecord(run_id, mirror, "rsync://up.example/debian/", started, started + duration,
                     outcome, (stage,), log_path=log_path)


def seed(store: Store, mirror: str, count: int, end: float, step: float = 3600.0) -> None:
    for i in range(count):
        started = end - (count - i) * step
        run_id = store.start_run(mirror, "rsync://up.example/debian/", started)
        store.finish_run(record(mirror, run_id, started,
                                outcome="failed" if i == count - 1 and mirror == "bad"
                                else "success"))


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[TestClient, Daemon, Path]]:
    (tmp_path / "token").write_text(TOKEN)
    path = write_config(tmp_path / "mk.toml", {
        name: {"profile": "debian", "dest": str(tmp_path / name),
               "upstreams": ["rsync://up.example/debian/"]}
        for name in ("good", "bad", "never")})
    path.write_text(path.read_text() + f'\n[web]\ntoken_file = "{tmp_path / "token"}"\n'
                    'site_url = "https://mirror.example"\nsite_abbr = "EX"\n')
    daemon = Daemon(load_config(path))
    now = time.time()
    seed(daemon.store, "good", 30, now)
    seed(daemon.store, "bad", 5, now)
    with TestClient(create_app(daemon), base_url=BASE) as client:
        yield client, daemon, tmp_path
    daemon.close()


def test_status_api_lists_every_mirror_with_its_state(
        setup: tuple[TestClient, Daemon, Path]) -> None:
    client, _, _ = setup
    rows = {r["mirror"]: r for r in client.get("/api/status").json()}
    assert set(rows) == {"good", "bad", "never"}
    assert rows["good"]["outcome"] == "success" and rows["good"]["age_seconds"] < 3600
    assert rows["bad"]["outcome"] == "failed" and rows["never"]["state"] == "never synced"
    assert rows["good"]["files_total"] == 50_000


def test_tunasync_jobs_and_mirrorz(setup: tuple[TestClient, Daemon, Path]) -> None:
    client, _, _ = setup
    jobs = {j["name"]: j for j in client.get("/jobs").json()}
    assert jobs["good"]["status"] == "success" and jobs["bad"]["status"] == "failed"
    assert jobs["never"]["status"] == "none"
    assert jobs["never"]["last_update_ts"] == -62135596800
    assert jobs["bad"]["last_update_ts"] > 0  # its earlier successes still count
    assert jobs["good"]["size"] == "4.66G"
    reply = client.get("/mirrorz.json")
    assert reply.headers["access-control-allow-origin"] == "*"
    doc = reply.json()
    assert doc["site"] == {"url": "https://mirror.example", "abbr": "EX"}
    status = {m["cname"]: m["status"] for m in doc["mirrors"]}
    assert re.fullmatch(r"S\d{10}X\d{10}", status["good"])  # X: the next scheduled run
    assert re.fullmatch(r"F\d{10}O\d{10}X\d{10}", status["bad"])
    assert re.fullmatch(r"UX\d{10}", status["never"])  # never ran: due now


def test_series_is_downsampled_on_the_server(setup: tuple[TestClient, Daemon, Path]) -> None:
    client, daemon, _ = setup
    seed(daemon.store, "good", 2000, time.time() - 40 * 86400, step=600)  # dense, older
    year = client.get("/api/mirrors/good/series?range=year&points=100").json()
    width = (year["end"] - year["start"]) / 100  # 2,030 runs fall into buckets this wide
    assert year["runs"] == 2030 and len(year["time"]) == 6
    assert all(b - a >= width / 2 for a, b in zip(year["time"], year["time"][1:], strict=False))
    assert client.get("/api/mirrors/good/series?range=month").json()["runs"] == 30
    day = client.get("/api/mirrors/good/series?range=day").json()
    assert day["runs"] == len(day["time"]) in (23, 24)  # few enough to pass through
    assert day["duration_seconds"][0] == 60.0
    assert client.get("/api/mirrors/good/series?range=decade").status_code == 400
    assert client.get("/api/mirrors/good/series?points=many").status_code == 400
    assert len(client.get("/api/mirrors/good/runs?limit=5").json()) == 5
    assert client.get("/api/mirrors/good/runs?before=x").status_code == 400
    assert client.get("/api/mirrors/nope/series").status_code == 404


def test_actions_need_the_token(setup: tuple[TestClient, Daemon, Path]) -> None:
    client, daemon, _ = setup
    assert client.post("/api/mirrors/good/sync").status_code == 401
    assert client.post("/api/mirrors/good/sync",
                       headers={"Authorization": "Bearer nope"}).status_code == 401
    assert daemon.queue.pending() == []
    reply = client.post("/api/mirrors/good/sync", headers={"Authorization": f"Bearer {TOKEN}"})
    assert reply.status_code == 202
    assert daemon.queue.pending() == [("good", "push")]
    # The HTML form: the token as a field, then back to the mirror's page.
    form = client.post("/api/mirrors/bad/sync", data={"token": TOKEN}, follow_redirects=False)
    assert form.status_code == 303 and form.headers["location"] == "/mirrors/bad"
    assert daemon.queue.pending()[-1] == ("bad", "push")


def test_acknowledge_an_alert(setup: tuple[TestClient, Daemon, Path]) -> None:
    client, daemon, _ = setup
    alerts = AlertStore(daemon.store.engine)
    now = time.time()
    alert_id = alerts.insert({"mirror": "bad", "code": "upstream.unreachable",
                              "severity": "error", "summary": "all upstreams failed",
                              "first_seen": now, "last_seen": now})
    page = client.get("/alerts").text
    assert "all upstreams failed" in page and 'name="token"' in page
    assert client.post(f"/api/alerts/{alert_id}/ack").status_code == 401
    reply = client.post(f"/api/alerts/{alert_id}/ack",
                        headers={"Authorization": f"Bearer {TOKEN}"})
    assert reply.json() == {"id": alert_id, "acked": True}
    assert alerts.get(alert_id)["acked_at"] is not None  # type: ignore[index]
    listed = client.get("/api/alerts").json()
    assert listed[0]["acked_at"] is not None
    overview = {r["mirror"]: r for r in client.get("/api/status").json()}
    assert overview["bad"]["severity"] == "error" and overview["bad"]["open_alerts"] == 1


def test_without_a_token_file_actions_are_off(tmp_path: Path) -> None:
    path = write_config(tmp_path / "mk.toml", {"m": {"profile": "debian",
                                                     "dest": str(tmp_path / "m")}})
    daemon = Daemon(load_config(path))
    try:
        with TestClient(create_app(daemon), base_url=BASE) as client:
            reply = client.post("/api/mirrors/m/sync", headers={"Authorization": "Bearer x"})
            assert reply.status_code == 403 and "token_file" in reply.text
            assert "Sync now" not in client.get("/mirrors/m").text
    finally:
        daemon.close()


def test_run_logs_are_served_only_from_the_log_directory(
        setup: tuple[TestClient, Daemon, Path]) -> None:
    client, daemon, tmp_path = setup
    log_dir = tmp_path / "logs" / "runs" / "good"
    log_dir.mkdir(parents=True)
    inside = log_dir / "run.log"
    inside.write_text(">f+++++++++ pool/main/a.deb\n")
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve")
    now = time.time()
    good_id = daemon.store.start_run("good", "u", now)
    daemon.store.finish_run(record("good", good_id, now, log_path=str(inside)))
    evil_id = daemon.store.start_run("good", "u", now)
    daemon.store.finish_run(record("good", evil_id, now, log_path=str(secret)))
    assert client.get(f"/api/runs/{good_id}/log").text == ">f+++++++++ pool/main/a.deb\n"
    assert client.get(f"/api/runs/{evil_id}/log").status_code == 404
    assert "do not serve" not in client.get(f"/runs/{evil_id}").text
    assert client.get("/api/runs/999999").status_code == 404
    assert client.get("/static/../mk.toml").status_code == 404
    detail = client.get(f"/api/runs/{good_id}").json()
    assert detail["run_id"] == good_id and detail["files_total"] == 50_000


def test_pages_work_without_javascript(setup: tuple[TestClient, Daemon, Path]) -> None:
    client, _, _ = setup
    overview = client.get("/").text
    assert overview.count("<tr data-mirror=") == 3
    assert overview.count("<polyline") == 2  # sparklines for the mirrors with history
    mirror = client.get("/mirrors/good").text
    assert mirror.count('<tr class="outcome-success">') == 30 and "Sync now" in mirror
    assert client.get("/mirrors/nope").status_code == 404
    script = client.get("/static/uPlot.iife.min.js")
    assert script.status_code == 200 and script.text.startswith("/*! https://github.com/leeoniya")


def test_live_progress_streams_as_server_sent_events(
        setup: tuple[TestClient, Daemon, Path]) -> None:
    client, daemon, _ = setup
    from mirrorkeeper.record.progress import LiveProgress

    run_id = daemon.store.start_run("good", "u", time.time())
    daemon.store.update_live("good", run_id, LiveProgress("stage1", 0, 2, 42.5, 1000, 10.0, 5.0,
                                                          None, None, False))
    with daemon.store.engine.begin() as conn:  # the sync "holds the lock" only in the store
        conn.execute(runs_table.update().where(runs_table.c.id == run_id).values(pid=None))
    with client.stream("GET", "/api/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data: "):
                snapshot = json.loads(line[6:])
                break
        daemon.stop.set()  # ends the stream after this event
    assert set(snapshot["mirrors"]) == {"good", "bad", "never"}


def test_prometheus_metrics_endpoint(setup: tuple[TestClient, Daemon, Path]) -> None:
    client, _, _ = setup
    text = client.get("/metrics").text
    assert re.search(r'^mirrorkeeper_files_total\{mirror="good"\} 50000\.0$', text, re.M)
    assert re.search(r'^mirrorkeeper_success\{mirror="bad"\} 0\.0$', text, re.M)
    assert 'mirror="never"' not in text.split("mirrorkeeper_age_seconds")[-1].split("#")[0]


def test_public_status_documents_are_built_once_per_interval(
        setup: tuple[TestClient, Daemon, Path]) -> None:
    client, daemon, _ = setup
    first = client.get("/jobs").text
    seed(daemon.store, "never", 1, time.time())  # a new run...
    assert client.get("/jobs").text == first  # ...not seen within the 5 s
    with TestClient(create_app(daemon, public_cache_seconds=0), base_url=BASE) as fresh:
        jobs = {j["name"]: j for j in fresh.get("/jobs").json()}
        assert jobs["never"]["status"] == "success"
        assert fresh.get("/mirrorz.json").headers["access-control-allow-origin"] == "*"


def test_files_waiting_for_deletion_show_on_the_api_and_the_page(
        setup: tuple[TestClient, Daemon, Path]) -> None:
    client, daemon, _ = setup
    daemon.store.set_pending_deletions("good", {"pool/a.deb": 1000.0, "pool/b.deb": 2000.0})
    rows = {r["mirror"]: r for r in client.get("/api/status").json()}
    assert rows["good"]["pending_deletions"] == 2 and rows["bad"]["pending_deletions"] == 0
    assert rows["good"]["pending_deletions_since"] == "1970-01-01T00:16:40Z"
    page = client.get("/mirrors/good").text
    assert "2 files the upstream dropped wait for deletion" in page
    assert "wait for deletion" not in client.get("/mirrors/bad").text


def test_ids_too_large_for_the_store_are_404_not_500(
        setup: tuple[TestClient, Daemon, Path]) -> None:
    client, _, _ = setup
    huge = "99999999999999999999999"
    for path in (f"/api/runs/{huge}", f"/api/runs/{huge}/log", f"/runs/{huge}",
                 f"/api/runs/{2**63}", "/api/runs/9223372036854775807"):
        reply = client.get(path)
        assert reply.status_code == 404, (path, reply.text)
        assert "Traceback" not in reply.text
    reply = client.post(f"/api/alerts/{huge}/ack", headers={"Authorization": f"Bearer {TOKEN}"})
    assert reply.status_code == 404
    assert client.get(f"/api/mirrors/good/runs?before={huge}").status_code == 200
    assert client.get(f"/api/mirrors/good/runs?limit={'9' * 5000}").status_code == 400


def test_every_response_carries_the_security_headers_and_the_pages_fit_the_csp(
        setup: tuple[TestClient, Daemon, Path]) -> None:
    client, daemon, _ = setup
    run_id = daemon.store.run_rows("good", 1)[0]["id"]
    for path in ("/", "/mirrors/good", f"/runs/{run_id}", "/alerts", "/api/status",
                 "/static/dashboard.js", "/nope"):
        reply = client.get(path)
        assert reply.headers["x-content-type-options"] == "nosniff", path
        assert reply.headers["x-frame-options"] == "DENY"
        csp = dict(part.strip().split(" ", 1) for part in
                   reply.headers["content-security-policy"].split(";"))
        assert csp["frame-ancestors"] == "'none'" and csp["default-src"] == "'none'"
        assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
        assert "unsafe" not in reply.headers["content-security-policy"]
        if path.startswith("/") and reply.headers["content-type"].startswith("text/html"):
            page = reply.text  # nothing inline that the policy would block
            assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), path
            assert not re.search(r"<style|\sstyle=|\son[a-z]+=", page), path


def host_check_client(tmp_path: Path, web: str) -> tuple[TestClient, Daemon]:
    path = write_config(tmp_path / "mk.toml", {"m": {"profile": "debian",
                                                     "dest": str(tmp_path / "m")}})
    path.write_text(path.read_text() + "\n[web]\n" + web)
    daemon = Daemon(load_config(path))
    return TestClient(create_app(daemon), base_url="http://localhost"), daemon


def test_unknown_host_names_are_refused(tmp_path: Path) -> None:
    """DNS rebinding: a browser that was sent here under a foreign name says so in Host."""
    client, daemon = host_check_client(
        tmp_path, 'listen = "192.0.2.10:8118"\nsite_url = "https://Mirror.Example.org"\n')
    try:
        with client:
            for host in ("localhost", "localhost:8118", "127.0.0.1:8118", "[::1]:8118",
                         "192.0.2.10:8118", "mirror.example.org", "MIRROR.example.org.:443"):
                assert client.get("/api/status", headers={"host": host}).status_code == 200, host
            for host in ("evil.example", "mirror.example.org.evil.example", "127.0.0.2",
                         "localhost:x", "[::1", ""):
                reply = client.get("/api/status", headers={"host": host})
                assert reply.status_code == 400, host
                assert "allowed_hosts" in reply.text
                assert reply.headers["x-frame-options"] == "DENY"
            post = client.post("/api/mirrors/m/sync", headers={"host": "evil.example"})
            assert post.status_code == 400
    finally:
        daemon.close()


def test_allowed_hosts_adds_names_and_is_checked(tmp_path: Path) -> None:
    client, daemon = host_check_client(
        tmp_path, 'allowed_hosts = ["status.example.net", "2001:db8::7"]\n')
    try:
        with client:
            for host in ("status.example.net", "[2001:db8::7]:8118", "127.0.0.1"):
                assert client.get("/api/status", headers={"host": host}).status_code == 200, host
            assert client.get("/api/status", headers={"host": "example.net"}).status_code == 400
    finally:
        daemon.close()
    bad = tmp_path / "mk.toml"
    bad.write_text(bad.read_text().replace('"status.example.net"', '"http://x.example/"'))
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert "web.allowed_hosts.0" in str(info.value.problems[0])


def test_a_wildcard_listen_or_a_name_counts_as_beyond_loopback() -> None:
    """The daemon warns at start (event ``web.exposed``) when this is true of its listen host."""
    from mirrorkeeper.web.hosts import beyond_loopback

    assert [beyond_loopback(h) for h in ("127.0.0.1", "127.3.0.1", "[::1]", "localhost")] == [
        False] * 4
    assert all(beyond_loopback(h) for h in ("0.0.0.0", "[::]", "192.0.2.1", "mirror.example"))


def test_every_page_shows_a_run_finished_elsewhere_at_once(
        setup: tuple[TestClient, Daemon, Path]) -> None:
    """The shared snapshot is read again as soon as anyone commits: a sync in another process
    (its own connection to the store) shows on the next request, whatever was read before."""
    client, daemon, _ = setup
    pages = ("/", "/api/status", "/api/mirrors/never", "/metrics", "/mirrors/never")
    before = {path: client.get(path).text for path in pages}
    elsewhere = Store.open(daemon.config.settings.state_dir)  # as `mirrorkeeper sync` does
    try:
        seed(elsewhere, "never", 1, time.time())
        rows = {r["mirror"]: r for r in client.get("/api/status").json()}
        assert rows["never"]["outcome"] == "success" and rows["never"]["state"] == "idle"
        assert client.get("/api/mirrors/never").json()["files_total"] == 50_000
        assert re.search(r'^mirrorkeeper_success\{mirror="never"\} 1\.0$',
                         client.get("/metrics").text, re.M)
        assert "never synced" in before["/"] and "never synced" not in client.get("/").text
        assert "No runs yet." not in client.get("/mirrors/never").text
        elsewhere.set_pending_deletions("never", {"pool/z.deb": 1000.0})
        rows = {r["mirror"]: r for r in client.get("/api/status").json()}
        assert rows["never"]["pending_deletions"] == 1
    finally:
        elsewhere.close()
