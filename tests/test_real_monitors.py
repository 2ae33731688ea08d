"""The monitoring systems admins run, for real: Debian's collectd (unixsock + csv plugins),
graphite-carbon's carbon-cache writing whisper files, and a Nagios 4 core that runs
``mirrorkeeper check`` and takes the alert plugin's passive results.

Each starts in a second or two on loopback, with its files in the test's directory.
`sh scripts/bootstrap.sh --test` installs them; without them these tests skip and say why.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mirrorkeeper.config.load import load_config
from mirrorkeeper.demo.rsyncd import free_port
from mirrorkeeper.record import RunRecord
from mirrorkeeper.store import Store

from .accounts import (
    Accounts,
    accounts,
    as_user,
    privileged_test,
    runnable_bin,
    setpriv,
    shared,
)
from .conftest import TEST_HOSTNAME, wait_for, write_config
from .test_daemon import listening

__all__ = ["accounts", "runnable_bin", "shared"]  # fixtures, imported for pytest


def program(name: str) -> str | None:
    """A server's path; Debian puts collectd and nagios4 in /usr/sbin, off a user's PATH."""
    return shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")


def needs(*programs: str) -> pytest.MarkDecorator:
    missing = [p for p in programs if program(p) is None]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)}: "
                              "`sh scripts/bootstrap.sh --test` installs them")


def started(argv: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    argv = [program(argv[0]) or argv[0], *argv[1:]]
    return subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stopped(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def config_with(tmp_path: Path, served: str, extra: str) -> Path:
    path = write_config(tmp_path / "mirrorkeeper.toml", {"deb": {
        "profile": "debian", "dest": str(tmp_path / "deb"), "upstreams": [served]}})
    path.write_text(path.read_text() + "\n" + textwrap.dedent(extra))
    return path


# -- collectd ------------------------------------------------------------------------------------
@pytest.fixture
def collectd(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A collectd with the unixsock and csv plugins; returns (socket, csv directory)."""
    base = tmp_path / "collectd"
    base.mkdir()
    sock, csv = base / "collectd.sock", base / "csv"
    (base / "collectd.conf").write_text(textwrap.dedent(f"""\
        Hostname "{TEST_HOSTNAME}"
        FQDNLookup false
        Interval 1
        BaseDir "{base}"
        PIDFile "{base}/collectd.pid"
        PluginDir "/usr/lib/collectd"
        TypesDB "/usr/share/collectd/types.db"
        LoadPlugin unixsock
        LoadPlugin csv
        <Plugin unixsock>
          SocketFile "{sock}"
        </Plugin>
        <Plugin csv>
          DataDir "{csv}"
          StoreRates false
        </Plugin>
        """))
    proc = started(["collectd", "-f", "-C", str(base / "collectd.conf")], base)
    try:
        wait_for(sock.exists, timeout=15, what="collectd's socket")
        yield sock, csv
    finally:
        stopped(proc)


def last_csv_value(csv: Path, mirror: str, metric: str) -> float | None:
    files = sorted((csv / TEST_HOSTNAME / f"mirrorkeeper-{mirror}").glob(f"gauge-{metric}-*"))
    if not files:
        return None
    rows = files[-1].read_text().splitlines()[1:]  # "epoch,value"
    return float(rows[-1].split(",")[1]) if rows else None


@needs("collectd")
def test_real_collectd_records_the_run_and_its_progress(
        tmp_path: Path, served: str, collectd: tuple[Path, Path]) -> None:
    sock, csv = collectd
    config = config_with(tmp_path, served, f"""
        [metrics]
        collectd_socket = "{sock}"
        interval = "1s"
        """)
    record = sync_now_with_sink(config)
    wait_for(lambda: last_csv_value(csv, "deb", "files_total") is not None,
             what="collectd wrote files_total")
    assert last_csv_value(csv, "deb", "files_total") == record.files_total
    assert last_csv_value(csv, "deb", "files_transferred") == record.files_transferred
    assert last_csv_value(csv, "deb", "success") == 1
    assert last_csv_value(csv, "deb", "progress_percent") is not None  # streamed during it


def sync_now_with_sink(config_path: Path) -> RunRecord:
    """One run through the job layer, as `sync` and the daemon do, with the metrics sink."""
    import threading

    from mirrorkeeper.job import run_job
    from mirrorkeeper.metrics.sink import MetricsSink

    config = load_config(config_path)
    store = Store.open(config.settings.state_dir)
    sink = MetricsSink(config)
    try:
        return run_job(config, config.mirrors["deb"], store, stop=threading.Event(),
                       sink=sink).record
    finally:
        sink.close()
        store.close()


# -- carbon-cache --------------------------------------------------------------------------------
@pytest.fixture
def carbon(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """carbon-cache with a plaintext receiver on a free port; returns (port, whisper dir)."""
    base = tmp_path / "carbon"
    conf = base / "conf"
    conf.mkdir(parents=True)
    port = free_port()
    whisper = base / "storage" / "whisper"
    (conf / "carbon.conf").write_text(textwrap.dedent(f"""\
        [cache]
        STORAGE_DIR = {base}/storage/
        LOCAL_DATA_DIR = {whisper}/
        WHITELISTS_DIR = {base}/storage/lists/
        CONF_DIR = {conf}/
        LOG_DIR = {base}/log/
        PID_DIR = {base}/run/
        USER =
        MAX_CACHE_SIZE = inf
        MAX_UPDATES_PER_SECOND = inf
        MAX_CREATES_PER_MINUTE = inf
        LINE_RECEIVER_INTERFACE = 127.0.0.1
        LINE_RECEIVER_PORT = {port}
        ENABLE_UDP_LISTENER = False
        PICKLE_RECEIVER_INTERFACE = 127.0.0.1
        PICKLE_RECEIVER_PORT = {free_port()}
        CACHE_QUERY_INTERFACE = 127.0.0.1
        CACHE_QUERY_PORT = {free_port()}
        WHISPER_AUTOFLUSH = True
        """))
    (conf / "storage-schemas.conf").write_text("[all]\npattern = .*\nretentions = 1s:1h\n")
    proc = started(["carbon-cache", f"--config={conf / 'carbon.conf'}", "--nodaemon", "start"],
                   base)

    try:
        wait_for(lambda: listening(port), timeout=20, what="carbon-cache listening")
        yield port, whisper
    finally:
        stopped(proc)


def whisper_values(path: Path) -> list[float]:
    out = subprocess.run(["whisper-fetch", f"--from={int(time.time()) - 600}", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return [float(v) for _, v in (line.split("\t") for line in out.splitlines())
            if v != "None"]


@needs("carbon-cache", "whisper-fetch")
def test_real_carbon_cache_stores_the_run_in_whisper(
        tmp_path: Path, served: str, carbon: tuple[int, Path]) -> None:
    port, whisper = carbon
    config = config_with(tmp_path, served, f"""
        [metrics]
        graphite = "tcp://127.0.0.1:{port}"
        prefix = "mk"
        """)
    record = sync_now_with_sink(config)
    mirror_dir = whisper / "mk" / TEST_HOSTNAME.replace(".", "_") / "deb"
    wait_for(lambda: (mirror_dir / "files_total.wsp").exists(), what="the whisper file")
    wait_for(lambda: bool(whisper_values(mirror_dir / "files_total.wsp")), what="a value")
    assert whisper_values(mirror_dir / "files_total.wsp")[-1] == record.files_total
    assert whisper_values(mirror_dir / "bytes_transferred.wsp")[-1] == record.bytes_transferred
    assert (mirror_dir / "age_seconds.wsp").exists()


# -- Nagios 4 --------------------------------------------------------------------------------------
#: What a Nagios install has besides Mirrorkeeper's file: Debian's stock templates in short
#: (``linux-server``, ``generic-service``), no host — ``nagios-config`` brings it.
OBJECTS = """\
define timeperiod {
    timeperiod_name always
    alias always
    sunday 00:00-24:00
    monday 00:00-24:00
    tuesday 00:00-24:00
    wednesday 00:00-24:00
    thursday 00:00-24:00
    friday 00:00-24:00
    saturday 00:00-24:00
}
define command {
    command_name noop
    command_line /bin/true
}
define contact {
    contact_name admin
    host_notifications_enabled 0
    service_notifications_enabled 0
    host_notification_period always
    service_notification_period always
    host_notification_options n
    service_notification_options n
    host_notification_commands noop
    service_notification_commands noop
}
define host {
    name linux-server
    register 0
    check_command noop
    max_check_attempts 1
    check_period always
    notification_period always
    contacts admin
}
define service {
    name generic-service
    register 0
    max_check_attempts 1
    check_interval 5
    retry_interval 1
    check_period always
    notification_period always
    contacts admin
}
"""


def service_status(status_file: Path, service: str) -> dict[str, str]:
    if not status_file.exists():
        return {}
    for block in status_file.read_text().split("servicestatus {")[1:]:
        fields = dict(line.strip().split("=", 1) for line in block.split("}")[0].splitlines()
                      if "=" in line)
        if fields.get("service_description") == service:
            return fields
    return {}


def nagios_cfg(base: Path, objects: list[Path], user: str, group: str) -> Path:
    command_file = base / "rw" / "nagios.cmd"
    path = base / "nagios.cfg"
    path.write_text("".join(f"cfg_file={o}\n" for o in objects) + textwrap.dedent(f"""\
        log_file={base}/var/nagios.log
        object_cache_file={base}/var/objects.cache
        precached_object_file={base}/var/objects.precache
        resource_file={base}/resource.cfg
        status_file={base}/var/status.dat
        status_update_interval=1
        nagios_user={user}
        nagios_group={group}
        check_external_commands=1
        command_file={command_file}
        query_socket={base}/rw/nagios.qh
        lock_file={base}/var/nagios.lock
        temp_file={base}/var/nagios.tmp
        temp_path={base}/var
        check_result_path={base}/spool
        state_retention_file={base}/var/retention.dat
        retain_state_information=0
        use_syslog=0
        enable_notifications=0
        accept_passive_service_checks=1
        max_service_check_spread=1
        check_result_reaper_frequency=1
        enable_environment_macros=0
        illegal_macro_output_chars=`~$&|'"<>
        """))
    (base / "resource.cfg").write_text("")
    return path


def verified(cfg: Path, *as_user: str) -> str:
    verify = subprocess.run([*as_user, program("nagios4") or "nagios4", "-v", str(cfg)],
                            capture_output=True, text=True)
    assert verify.returncode == 0 and "Total Errors:   0" in verify.stdout, verify.stdout
    assert "Total Warnings: 0" in verify.stdout, verify.stdout
    return verify.stdout


@needs("nagios4")
@pytest.mark.skipif(not Path("/etc/nagios4/objects/templates.cfg").exists(),
                    reason="needs Debian's stock Nagios objects (/etc/nagios4/objects)")
def test_nagios_config_fits_debians_stock_nagios(tmp_path: Path, served: str) -> None:
    """What `nagios-config` prints, with its defaults, next to Debian's own objects: the host
    and its template are known, nothing is defined twice — 0 errors, 0 warnings."""
    config = config_with(tmp_path, served, "")
    generated = subprocess.run([str(Path(sys.executable).parent / "mirrorkeeper"), "-c",
                                str(config), "nagios-config"],
                               capture_output=True, text=True, check=True).stdout
    (tmp_path / "mirrorkeeper.cfg").write_text(generated)
    for sub in ("var", "spool", "rw"):
        (tmp_path / sub).mkdir()
    stock = [Path("/etc/nagios4/objects") / f"{name}.cfg"
             for name in ("commands", "contacts", "timeperiods", "templates", "localhost")]
    cfg = nagios_cfg(tmp_path, [*stock, tmp_path / "mirrorkeeper.cfg"], "root", "root")
    cfg.write_text("cfg_dir=/etc/nagios-plugins/config\n" + cfg.read_text())
    verified(cfg)


@needs("nagios4")
@privileged_test
def test_real_nagios_runs_the_check_and_takes_the_alert_plugins_results(
        accounts: Accounts, shared: Path, runnable_bin: Path, served: str) -> None:
    """Nagios as its own unprivileged user, in the `mirrorkeeper` group (docs/deploy.md), with
    `nagios-config`'s defaults: it runs the check, and the alert plugin, run by the
    mirrorkeeper user, reaches the same service through Nagios' command pipe."""
    svc = accounts.create("svc")
    nag = accounts.create("nag", groups=(svc.group,))  # adduser nagios mirrorkeeper
    accounts.add_to_group(svc, nag.group)  # adduser mirrorkeeper www-data: the pipe's group
    state, mirrors, base = shared / "state", shared / "srv", shared / "nagios"
    for path in (state, shared / "logs"):
        subprocess.run(["install", "-d", "-o", svc.name, "-g", svc.group, "-m", "0750",
                        str(path)], check=True)
    subprocess.run(["install", "-d", "-o", svc.name, "-g", svc.group, str(mirrors)], check=True)
    for sub in ("var", "spool"):
        subprocess.run(["install", "-d", "-o", nag.name, "-g", nag.group, str(base / sub)],
                       check=True)
    subprocess.run(["install", "-d", "-o", nag.name, "-g", nag.group, "-m", "2710",
                    str(base / "rw")], check=True)  # as Debian's /var/lib/nagios4/rw
    command_file = base / "rw" / "nagios.cmd"
    mk = str(runnable_bin / "mirrorkeeper")
    config = write_config(shared / "mirrorkeeper.toml", {
        "deb": {"profile": "debian", "dest": str(mirrors / "deb"), "upstreams": [served]},
        "broken": {"profile": "debian", "dest": str(mirrors / "broken"),
                   "upstreams": [served.replace("/debian/", "/nosuchmodule/")],
                   "attempts_per_upstream": 1}},
        {"state_dir": str(state), "log_dir": str(shared / "logs")})
    config.write_text(config.read_text() + textwrap.dedent(f"""
        [[alerts.plugins]]
        name = "nagios"
        command = ["{runnable_bin / 'mirrorkeeper-alert-nagios'}", "--command-file",
                   "{command_file}"]
        min_severity = "warning"
        """))
    (base / "objects.cfg").write_text(OBJECTS)
    generated = subprocess.run([mk, "-c", str(config), "nagios-config"], capture_output=True,
                               text=True, check=True)  # the defaults
    assert f"command_line    {mk} -c {config} check $ARG1$" in generated.stdout
    (base / "mirrorkeeper.cfg").write_text(generated.stdout)
    cfg = nagios_cfg(base, [base / "objects.cfg", base / "mirrorkeeper.cfg"], nag.name,
                     nag.group)
    verified(cfg, *setpriv(nag))
    synced = as_user(svc, [mk, "-c", str(config), "sync", "deb", "--quiet"])
    assert synced.returncode == 0, synced.stdout + synced.stderr
    nagios = subprocess.Popen([*setpriv(nag), program("nagios4") or "nagios4", str(cfg)],
                              cwd=base, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(command_file.exists, what="Nagios' command pipe")
        now = int(time.time())
        with open(command_file, "w") as pipe:
            pipe.write(f"[{now}] SCHEDULE_FORCED_SVC_CHECK;{TEST_HOSTNAME};mirror deb;{now}\n")
        status = base / "var" / "status.dat"
        wait_for(lambda: service_status(status, "mirror deb").get("has_been_checked") == "1"
                 and service_status(status, "mirror deb").get("last_check") != "0",
                 what="Nagios ran the check")
        deb = service_status(status, "mirror deb")
        assert deb["current_state"] == "0", deb
        assert deb["plugin_output"].startswith("MIRRORKEEPER OK - deb synced"), deb
        assert "deb_age=" in deb["performance_data"]
        # A real failure, classified and alerted through the shipped plugin: passive result.
        sync = as_user(svc, [mk, "-c", str(config), "sync", "broken", "--quiet"])
        assert sync.returncode == 1, sync.stderr
        assert "Traceback" not in sync.stderr, sync.stderr
        wait_for(lambda: service_status(status, "mirror broken").get("check_type") == "1",
                 what="the passive result arrived")
        broken = service_status(status, "mirror broken")
        assert broken["current_state"] in ("1", "2"), broken
        assert broken["plugin_output"].startswith("MIRRORKEEPER "), broken
        assert "upstream" in broken["plugin_output"], broken
    finally:
        stopped(nagios)
