"""Bad input gets a clear error, never a traceback; upstreams and plugins are untrusted.

Each test drives the real CLI (in-process), real rsync daemons on 127.0.0.1, the real daemon
process or the real plugin executables, with the input an admin or an upstream could give.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import signal
import socket
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mirrorkeeper.alerts.payload import payload
from mirrorkeeper.alerts.plugins import run_plugin
from mirrorkeeper.config.load import load_config
from mirrorkeeper.config.spec import PluginSpec
from mirrorkeeper.demo.rsyncd import Module, RsyncDaemon, free_port
from mirrorkeeper.demo.tree import DebianLikeTree
from mirrorkeeper.plan.argv import build_plan

from .conftest import CliResult, SmtpServer, python_cli, wait_for, write_config
from .test_daemon import RunningDaemon, finished, start_daemon

__all__ = ["start_daemon"]  # a fixture, imported for pytest

Mk = Callable[..., CliResult]
Daemons = Callable[[list[Module]], RsyncDaemon]


def clean(result: CliResult) -> CliResult:
    """Whatever went wrong, no traceback reaches the user."""
    assert "Traceback" not in result.out + result.err, result.err
    return result


def jsonl_plugin(path: Path, log: Path) -> Path:
    """Append an [alerts] table whose plugin writes every notification to ``log``."""
    path.write_text(path.read_text() + f"""
[[alerts.plugins]]
name = "log"
command = ["mirrorkeeper-alert-jsonl", "{log}"]
min_severity = "info"
""")
    return path


def sent(log: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


# -- 14: files that are not UTF-8 text ------------------------------------------------------------
def test_a_binary_config_or_profile_is_a_clear_error(tmp_path: Path, mk: Mk) -> None:
    binary = tmp_path / "mk.toml"
    binary.write_bytes(b"[global]\nhostname = \"m\"\n\x89PNG\r\n\x1a\n\xff\x00")
    for args in (("config", "check"), ("sync", "--all"), ("status",),
                 ("init", "debian", "--dest", str(tmp_path / "d"))):
        result = clean(mk("-c", str(binary), *args))
        assert result.code == 78, (args, result.err)
        assert f"{binary}: is not UTF-8 text: byte 0x89 on line 3 cannot be decoded" in result.err
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "inhouse.toml").write_bytes(b"upstreams = [\"rsync://h/m/\"]\n\xfe\xff")
    config = write_config(tmp_path / "ok.toml", {
        "in": {"profile": "inhouse", "dest": str(tmp_path / "in")}})
    result = clean(mk("-c", str(config), "config", "check"))
    assert result.code == 78
    assert f"{profiles / 'inhouse.toml'}: is not UTF-8 text: byte 0xfe on line 2" in result.err
    listed = clean(mk("-c", str(config), "profiles"))
    assert listed.code == 0 and "inhouse" in listed.out and "INVALID" in listed.out
    assert clean(mk("-c", str(config), "profiles", "inhouse")).code == 78


# -- 15: one broken profile stops only the mirrors that use it ------------------------------------
BROKEN_PROFILE = 'description = "in-house"\nupstreams = ["rsync://h/m/"]\nstage_2 = ["x"]\n'


def test_one_broken_profile_stops_only_its_mirrors(tmp_path: Path, served: str, mk: Mk) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    broken = profiles / "inhouse.toml"
    broken.write_text(BROKEN_PROFILE)
    config = write_config(tmp_path / "mk.toml", {
        "deb": {"profile": "debian", "dest": str(tmp_path / "deb"), "upstreams": [served],
                "delete_grace": "0s"},
        "inhouse": {"profile": "inhouse", "dest": str(tmp_path / "inhouse")}})
    problem = f"{broken}: stage_2: unknown key — did you mean `stage2`?"
    # `profiles` reads the configured directory and lists the broken file with its problems.
    listed = clean(mk("-c", str(config), "profiles"))
    assert listed.code == 0 and problem in listed.err
    assert re.search(r"inhouse\s.*INVALID", listed.out)
    entries = {p["name"]: p for p in clean(mk("-c", str(config), "profiles", "--json")).json()}
    assert entries["inhouse"]["valid"] is False and entries["inhouse"]["problems"] == [problem]
    assert entries["debian"]["valid"] is True
    # The other mirror keeps syncing; the broken one is refused with the reason.
    assert clean(mk("-c", str(config), "sync", "deb", "-q")).code == 0
    refused = clean(mk("-c", str(config), "sync", "inhouse"))
    assert refused.code == 78
    assert "mirrors.inhouse.profile: profile `inhouse` does not validate" in refused.err
    assert problem in refused.err
    every = clean(mk("-c", str(config), "sync", "--all", "-q"))
    assert every.code == 78 and "deb — run 2: success" in every.out and problem in every.err
    check = clean(mk("-c", str(config), "config", "check"))
    assert check.code == 78 and problem in check.err
    assert clean(mk("-c", str(config), "status")).code == 0
    # An admin's file that replaces a shipped profile never falls back to the shipped one.
    (profiles / "ubuntu.toml").write_text('upstreams = "rsync://internal.example.org/ubuntu/"\n')
    replaced = write_config(tmp_path / "ubu.toml", {
        "ubu": {"profile": "ubuntu", "dest": str(tmp_path / "ubu")}})
    loaded = load_config(replaced)
    assert "ubu" not in loaded.mirrors and loaded.broken["ubu"].profile == "ubuntu"


def test_the_daemon_alerts_on_a_broken_profile_and_syncs_the_rest(
        tmp_path: Path, served: str, start_daemon: Callable[[Path, int], RunningDaemon]) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    broken = profiles / "inhouse.toml"
    broken.write_text(BROKEN_PROFILE)
    port = free_port()
    config = write_config(tmp_path / "mk.toml", {
        "deb": {"profile": "debian", "dest": str(tmp_path / "deb"), "upstreams": [served]},
        "inhouse": {"profile": "inhouse", "dest": str(tmp_path / "inhouse")}})
    config.write_text(config.read_text() + '[daemon]\ntick = "1s"\njitter = "0s"\n'
                      f'poll_interval = "0s"\n[web]\nlisten = "127.0.0.1:{port}"\n')
    log = tmp_path / "alerts.jsonl"
    jsonl_plugin(config, log)
    daemon = start_daemon(config, port)

    def alerts(resolved: bool) -> list[dict[str, Any]]:
        return [a for a in sent(log) if (a["mirror"], a["code"], a["resolved"])
                == ("inhouse", "config.profile_invalid", resolved)]

    wait_for(lambda: bool(alerts(False)), what="the config.profile_invalid alert")
    wait_for(lambda: len(finished(config, "deb")) == 1, timeout=60, what="deb synced")
    (alert,) = alerts(False)
    assert alert["severity"] == "error"
    assert "profile `inhouse` does not validate" in alert["summary"]
    assert "stage_2: unknown key" in alert["summary"]
    assert finished(config, "deb")[0].outcome == "success"
    assert finished(config, "inhouse") == []
    # Fixed and reloaded: the alert resolves and the mirror syncs.
    broken.write_text(f'description = "in-house"\nupstreams = ["{served}"]\n')
    assert daemon.proc.pid
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: bool(alerts(True)), what="the alert resolved")
    wait_for(lambda: len(finished(config, "inhouse")) == 1, timeout=60, what="inhouse synced")
    code, err = daemon.stop()
    assert code == 0 and "Traceback" not in err


# -- 16: every problem in one pass ----------------------------------------------------------------
def test_every_problem_of_a_config_is_reported_in_one_pass(tmp_path: Path, mk: Mk) -> None:
    path = tmp_path / "mk.toml"
    path.write_text("""
[global]
state_dir = "state"
log_dir = "logs"
hostname = "mirror.test"

[mirrors.a]
profile = "debian"
dest = "/srv/a"
schedul = "6h"
bwlimit = "fast"
max_delete_fraction = 2.0
upstreams = ["ftp.example.org:/debian"]

[mirrors.b]
profile = "debain"
dest = "/srv/a/b"
timeout = "soon"

[mirrors.c]
profile = "ubuntu"
dest = "/srv/c"
stage2 = "Packages*"
rsync_options = ["-n"]
""")
    result = clean(mk("-c", str(path), "config", "check"))
    assert result.code == 78
    for line in (
        "mirrors.a.schedul: unknown key — did you mean `schedule`?",  # names
        "mirrors.a.bwlimit: should be a whole number (got 'fast')",  # types
        "mirrors.a.max_delete_fraction: must be above 0 and at most 1",  # values
        "mirrors.a.upstreams.0: `ftp.example.org:/debian` uses rsync over ssh",
        "mirrors.b.profile: no profile `debain` — did you mean `debian`?",
        "mirrors.b.timeout: 'soon' is not a duration",
        "mirrors.b.dest: overlaps mirror `a` (/srv/a)",  # across mirrors
        "mirrors.c.stage2: should be a list (got 'Packages*')",
        "mirrors.c.rsync_options.0: `-n` makes a dry run",
    ):
        assert f"{path}: {line}" in result.err, (line, result.err)
    assert "the configuration has 9 problem(s)" in result.err
    # A profile file too: unknown keys, types and values at once.
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "x.toml").write_text('upstreams = ["rsync://h/m/"]\nstage_2 = ["a"]\n'
                                     'bwlimit = "x"\nmax_delete_fraction = 3.0\n')
    config = write_config(tmp_path / "p.toml", {})
    result = clean(mk("-c", str(config), "config", "check"))
    for line in ("stage_2: unknown key", "bwlimit: should be a whole number (got 'x')",
                 "max_delete_fraction: must be above 0 and at most 1"):
        assert f"{profiles / 'x.toml'}: {line}" in result.err, (line, result.err)


# -- 17: hostname ---------------------------------------------------------------------------------
def test_a_hostname_that_is_a_path_never_reaches_a_sync(tmp_path: Path, served: str,
                                                        mk: Mk) -> None:
    config = write_config(tmp_path / "mk.toml", {"deb": {
        "profile": "debian", "dest": str(tmp_path / "mirror"), "upstreams": [served]}},
        {"hostname": "../../../escaped"})
    result = clean(mk("-c", str(config), "config", "check"))
    assert result.code == 78
    assert f"{config}: global.hostname: `../../../escaped` is not a host name" in result.err
    assert clean(mk("-c", str(config), "sync", "deb", "-q")).code == 78
    assert not (tmp_path / "escaped").exists()  # the trace went nowhere, let alone outside
    assert not (tmp_path / "mirror").exists()


@pytest.mark.parametrize("hostname", ["a/b", "..", "-x", "x..y", "a b", "x" * 64, "x.", "é"])
def test_hostname_must_be_a_host_name(tmp_path: Path, mk: Mk, hostname: str) -> None:
    config = write_config(tmp_path / "mk.toml", {}, {"hostname": hostname})
    result = clean(mk("-c", str(config), "config", "check"))
    assert result.code == 78
    assert f"{config}: global.hostname: `{hostname}` is not a host name" in result.err


def test_a_real_host_name_is_accepted(tmp_path: Path, mk: Mk) -> None:
    for hostname in ("mirror-1.example.org", "localhost", "x" * 63):
        config = write_config(tmp_path / "mk.toml", {}, {"hostname": hostname})
        assert clean(mk("-c", str(config), "config", "check")).code == 0


# -- 18: password and token files ----------------------------------------------------------------
def test_a_password_file_others_can_read(tmp_path: Path, upstream: DebianLikeTree,
                                         rsyncd: Daemons, mk: Mk) -> None:
    secrets = tmp_path / "rsyncd.secrets"
    secrets.write_text("mirror:right\n")
    secrets.chmod(0o600)
    daemon = rsyncd([Module("debian", upstream.root, {"auth users": "mirror",
                                                      "secrets file": str(secrets)})])
    password = tmp_path / "password"
    password.write_text("right\n")
    password.chmod(0o644)
    config = write_config(tmp_path / "mk.toml", {"deb": {
        "profile": "debian", "dest": str(tmp_path / "mirror"), "delete_grace": "0s",
        "upstreams": [daemon.url("debian").replace("rsync://", "rsync://mirror@"),
                      "rsync://127.0.0.1:9/debian/"],
        "password_file": str(password), "retry_backoff": "0.1s"}})
    jsonl_plugin(config, tmp_path / "alerts.jsonl")
    check = clean(mk("-c", str(config), "config", "check"))
    assert check.code == 78
    assert (f"{config}: mirrors.deb.password_file: {password} can be read or written by others "
            f"(mode 0644); rsync refuses such a password file — chmod o-rwx {password}"
            in check.err)
    run = clean(mk("-c", str(config), "sync", "deb", "-q", "--json"))
    assert run.code == 1
    attempts = run.json()["attempts"]
    assert len(attempts) == 1  # a local problem: no retry, no other upstream
    assert attempts[0]["code"] == "config.password_file"
    assert "password file must not be other-accessible" in attempts[0]["detail"]
    (alert,) = sent(tmp_path / "alerts.jsonl")
    assert (alert["code"], alert["severity"]) == ("config.password_file", "critical")
    assert "password file must not be other-accessible" in alert["summary"]
    password.unlink()
    assert f"{password} does not exist" in clean(mk("-c", str(config), "config", "check")).err
    password.write_text("right\n")
    password.chmod(0o600)
    if os.geteuid() == 0:  # rsync run by root also wants root to own it
        os.chown(password, 65534, -1)
        check = clean(mk("-c", str(config), "config", "check"))
        assert f"{password} is owned by uid 65534" in check.err
        os.chown(password, 0, -1)
    assert clean(mk("-c", str(config), "config", "check")).code == 0
    assert clean(mk("-c", str(config), "sync", "deb", "-q")).code == 0


def test_a_relative_password_file_is_relative_to_the_config(tmp_path: Path) -> None:
    config = write_config(tmp_path / "mk.toml", {"deb": {
        "profile": "debian", "dest": str(tmp_path / "m"), "password_file": "secret"}})
    assert load_config(config).mirrors["deb"].settings.password_file == str(tmp_path / "secret")


def web_config(tmp_path: Path, token: Path) -> Path:
    config = write_config(tmp_path / "mk.toml", {})
    config.write_text(config.read_text() + f'[web]\nlisten = "127.0.0.1:{free_port()}"\n'
                      f'token_file = "{token}"\n')
    return config


def test_a_token_file_that_would_refuse_every_action(tmp_path: Path, mk: Mk) -> None:
    token = tmp_path / "token"
    config = web_config(tmp_path, token)
    for text, bits, why in ((None, 0, f"{token} does not exist"),
                            ("s3cret\n", 0o644,
                             f"{token} can be read or written by others (mode 0644)"),
                            ("\n", 0o600, f"{token} is empty: every action would be refused")):
        if text is not None:
            token.write_text(text)
            token.chmod(bits)
        check = clean(mk("-c", str(config), "config", "check"))
        assert check.code == 78 and f"{config}: web.token_file: {why}" in check.err
        # The daemon says so at start, instead of serving 401s.
        started = subprocess.run([*python_cli(), "-c", str(config), "daemon"],
                                 capture_output=True, text=True, timeout=30)
        assert started.returncode == 78, started.stderr
        assert f"web.token_file: {why}" in started.stderr and "Traceback" not in started.stderr
    token.write_text("s3cret\n")
    assert clean(mk("-c", str(config), "config", "check")).code == 0


# -- 19: a failed run says why --------------------------------------------------------------------
def summary_row(out: str, name: str) -> str:
    return next(line for line in out.splitlines() if re.match(rf"^\W*{name}\s", line))


def test_a_failed_run_says_why_in_rsyncs_words(tmp_path: Path, mk: Mk) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "plain.toml").write_text('upstreams = ["rsync://h/m/"]\n')  # no update signal
    unresolvable = {"upstreams": ["rsync://nosuchhost.invalid/debian/"],
                    "attempts_per_upstream": 1}
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    config = write_config(tmp_path / "mk.toml", {
        "deb": {"profile": "debian", "dest": str(tmp_path / "deb"), **unresolvable},
        "plain": {"profile": "plain", "dest": str(tmp_path / "plain"), **unresolvable},
        "blocked": {"profile": "debian", "dest": str(blocker / "mirror")}})
    log = tmp_path / "alerts.jsonl"
    jsonl_plugin(config, log)
    for mirror in ("deb", "plain"):  # the pre-flight probe's failure, and a stage's
        result = clean(mk("-c", str(config), "sync", mirror, "-q"))
        assert result.code == 1
        assert "Name or service not known" in summary_row(result.out, "cause")
        assert "none" not in summary_row(result.out, "errors")
        alert = sent(log)[-1]
        assert alert["mirror"] == mirror and alert["code"] == "upstream.unreachable"
        assert "Name or service not known" in alert["summary"]
        assert "Name or service not known" in alert["details"]["rsync_error"]
    blocked = clean(mk("-c", str(config), "sync", "blocked", "-q"))
    assert blocked.code == 1 and "exit None" not in blocked.out
    assert "not started: cannot create destination" in summary_row(blocked.out, "stage1")
    assert "cannot create destination" in summary_row(blocked.out, "cause")
    as_json = clean(mk("-c", str(config), "sync", "plain", "--json")).json()
    assert "Name or service not known" in as_json["attempts"][0]["detail"]


# -- 20: modes from the upstream ------------------------------------------------------------------
def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_an_upstream_cannot_plant_setuid_files_or_open_directories(
        tmp_path: Path, upstream: DebianLikeTree, served: str, mirror_config: Path,
        mk: Mk) -> None:
    root = upstream.root
    (root / "tools").mkdir()
    planted = {"tools/suid": 0o4755, "tools/sgid": 0o2755, "tools/install.sh": 0o755,
               "tools/private": 0o600, "tools/open": 0o666, "tools/sticky": 0o1644}
    for name, bits in planted.items():
        (root / name).write_text("#!/bin/sh\n")
        (root / name).chmod(bits)
    (root / "incoming").mkdir(mode=0o777)
    (root / "incoming").chmod(0o777)
    (root / "shared").mkdir()
    (root / "shared").chmod(0o3775)
    assert mode(root / "tools/suid") == 0o4755  # really planted, as root can
    assert clean(mk("-c", str(mirror_config), "sync", "deb", "-q")).code == 0
    mirror = tmp_path / "mirror"
    expected = {"tools/suid": 0o755, "tools/sgid": 0o755, "tools/install.sh": 0o755,
                "tools/private": 0o644, "tools/open": 0o644, "tools/sticky": 0o644,
                "incoming": 0o755, "shared": 0o755, "tools": 0o755}
    assert {name: mode(mirror / name) for name in expected} == expected
    # A mirror an older version synced with the upstream's modes is repaired on the next run.
    (mirror / "tools/suid").chmod(0o4755)
    (mirror / "incoming").chmod(0o777)
    assert clean(mk("-c", str(mirror_config), "sync", "deb", "-q")).code == 0
    assert (mode(mirror / "tools/suid"), mode(mirror / "incoming")) == (0o755, 0o755)
    # An admin's --chmod replaces the default rather than adding to it.
    from mirrorkeeper.plan.argv import DEFAULT_CHMOD

    own = write_config(tmp_path / "own.toml", {"own": {
        "profile": "debian", "dest": str(tmp_path / "own"), "upstreams": [served],
        "delete_grace": "0s", "rsync_options": ["--chmod=D750,F640"]}})
    plan = build_plan(load_config(own).mirrors["own"], served)
    assert [a for a in plan.stages[0].argv if a.startswith("--chmod")] == ["--chmod=D750,F640"]
    default_plan = build_plan(load_config(mirror_config).mirrors["deb"], served)
    assert [a for a in default_plan.stages[1].argv if a.startswith("--chmod")] == [DEFAULT_CHMOD]
    assert clean(mk("-c", str(own), "sync", "own", "-q")).code == 0
    assert (mode(tmp_path / "own/tools/suid"), mode(tmp_path / "own/incoming")) == (0o640, 0o750)


# -- 21: plugins forward no control characters ----------------------------------------------------
FORGED = ("disk full\nMar  1 00:00:00 mirror1 sshd[1]: Accepted password for root\r"
          "[1] PROCESS_SERVICE_CHECK_RESULT;mirror1;x;0;OK\r\nBcc: victim@example.org\x1b[2J")
ALERT = {"id": 7, "mirror": "debian", "severity": "critical", "code": "local.disk_full",
         "summary": FORGED, "details": {"rsync_error": FORGED}, "run_id": 3,
         "upstream": "rsync://a/debian/", "first_seen": 1.0e9, "last_seen": 1.0e9 + 60}


def inert(text: str) -> None:
    assert not any(ch in text for ch in "\n\r\x1b"), repr(text)
    assert "disk full\\nMar  1" in text and "\\x1b[2J" in text  # shown, not obeyed or lost


def test_syslog_gets_one_line(tmp_path: Path) -> None:
    path = str(tmp_path / "log.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        server.settimeout(10)
        spec = PluginSpec(name="syslog", command=("mirrorkeeper-alert-syslog", "--socket", path))
        assert run_plugin(spec, payload(ALERT, host="h")) is None
        message = server.recv(9000).decode()
        server.settimeout(0.5)
        with pytest.raises(TimeoutError):
            server.recv(9000)  # one datagram, nothing more
    assert message.startswith("<26>")
    inert(message)


def test_nagios_gets_one_command(tmp_path: Path) -> None:
    fifo = tmp_path / "nagios.cmd"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        spec = PluginSpec(name="nagios", command=(
            "mirrorkeeper-alert-nagios", "--command-file", str(fifo), "--host", "mirror1"))
        assert run_plugin(spec, payload(ALERT, host="h")) is None
        line = os.read(reader, 8192).decode()
    finally:
        os.close(reader)
    assert line.endswith("\n") and line.count("PROCESS_SERVICE_CHECK_RESULT") == 2
    inert(line[:-1])


def test_email_headers_cannot_be_injected_and_the_mail_goes_out(smtp: SmtpServer) -> None:
    spec = PluginSpec(name="mail", command=("mirrorkeeper-alert-email", "--to",
                                            "ops@example.org", "--smtp", f"127.0.0.1:{smtp.port}"))
    assert run_plugin(spec, payload(ALERT, host="h")) is None  # delivered, not retried
    received = smtp.received
    (mail,) = received
    assert mail.rcpt_tos == ["ops@example.org"]
    message = email.message_from_bytes(mail.content, policy=email.policy.default)
    assert message["Bcc"] is None and "victim" not in str(message["To"])
    inert(str(message["Subject"]))  # the injected text is in the subject, inert
    assert "\\r\\nBcc: victim@example.org" in str(message["Subject"])


def test_jsonl_carries_no_control_characters(tmp_path: Path) -> None:
    log = tmp_path / "alerts.jsonl"
    spec = PluginSpec(name="log", command=("mirrorkeeper-alert-jsonl", str(log)))
    assert run_plugin(spec, payload(ALERT, host="h")) is None
    (line,) = log.read_text().splitlines()
    alert = json.loads(line)
    inert(alert["summary"])
    inert(alert["details"]["rsync_error"])
