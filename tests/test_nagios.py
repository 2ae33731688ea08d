"""``mirrorkeeper check`` run as Nagios runs a plugin: a subprocess, its exit status, its one
status line and perfdata (Monitoring Plugins development guidelines)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mirrorkeeper.config.load import load_config
from mirrorkeeper.daemon.poller import poll_signal
from mirrorkeeper.demo.tree import DebianLikeTree
from mirrorkeeper.store import Store

from .conftest import TEST_HOSTNAME, CliResult, python_cli, write_config

STATUS = re.compile(r"^MIRRORKEEPER (OK|WARNING|CRITICAL|UNKNOWN) - [^|]+( \| (?P<perf>.+))?$")
# A label is quoted when it has to be; a value, an optional unit, then warn;crit;min;max.
PERF = re.compile(r"^('[^'=]+'|[^'= ]+)=-?[\d.]+(s|%|B|)?(;[\d.:~@-]*){0,4}$")


def check(config: Path, *args: str) -> tuple[int, list[str]]:
    proc = subprocess.run([*python_cli(), "-c", str(config), "check", *args],
                          capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout.splitlines()


def assert_guidelines(line: str) -> None:
    match = STATUS.match(line)
    assert match, line
    for token in (match.group("perf") or "").split():
        assert PERF.match(token), token


def test_ok_after_a_successful_sync(mirror_config: Path, mk: Callable[..., CliResult]) -> None:
    assert mk("-c", str(mirror_config), "sync", "deb", "--quiet").code == 0
    code, lines = check(mirror_config, "deb")
    assert code == 0 and len(lines) == 1
    assert_guidelines(lines[0])
    assert re.match(r"^MIRRORKEEPER OK - deb synced \d+s ago \| deb_age=\d+s;43200;86400;0 ",
                    lines[0]), lines[0]
    assert "deb_failure_ratio=0.0;;;0" in lines[0] and "deb_free=" in lines[0]
    code, lines = check(mirror_config, "deb", "-w", "0", "-c", "3600")
    assert code == 1 and lines[0].startswith("MIRRORKEEPER WARNING - deb synced")
    assert re.search(r"deb_age=\d+s;0;3600;0", lines[0]), lines[0]


def test_never_synced_is_critical(mirror_config: Path) -> None:
    code, lines = check(mirror_config, "deb")
    assert code == 2 and lines[0].startswith("MIRRORKEEPER CRITICAL - deb never synced")
    assert_guidelines(lines[0])


def test_open_alerts_set_the_state(tmp_path: Path, served: str,
                                   mk: Callable[..., CliResult]) -> None:
    good = write_config(tmp_path / "mk.toml", {"deb": {
        "profile": "debian", "dest": str(tmp_path / "mirror"), "upstreams": [served]}})
    assert mk("-c", str(good), "sync", "deb", "--quiet").code == 0
    down = write_config(tmp_path / "mk.toml", {"deb": {
        "profile": "debian", "dest": str(tmp_path / "mirror"), "attempts_per_upstream": 1,
        "upstreams": ["rsync://127.0.0.1:9/debian/"]}})
    mk("-c", str(down), "sync", "deb", "--quiet")
    code, lines = check(down, "deb")
    assert code == 1, lines  # an error alert is a Nagios WARNING
    assert lines[0].startswith("MIRRORKEEPER WARNING - deb: upstream.unreachable (error)")
    empty = tmp_path / "empty"
    empty.mkdir()
    local = write_config(tmp_path / "mk.toml", {"deb": {
        "profile": "debian", "dest": str(tmp_path / "mirror"), "upstreams": [str(empty)]}})
    mk("-c", str(local), "sync", "deb", "--quiet")
    code, lines = check(local, "deb")
    assert code == 2 and "guard.upstream_empty (critical)" in lines[0]
    assert_guidelines(lines[0])


def test_all_mirrors_and_unknowns(tmp_path: Path, mirror_config: Path,
                                  mk: Callable[..., CliResult]) -> None:
    text = mirror_config.read_text() + (
        f'[mirrors.arch]\nprofile = "arch"\ndest = "{tmp_path / "arch"}"\nenabled = false\n')
    mirror_config.write_text(text)
    mk("-c", str(mirror_config), "sync", "deb", "--quiet")
    code, lines = check(mirror_config, "--all")
    assert code == 0
    assert lines[0] == lines[0].split(" | ")[0]  # multi-line: perfdata after the long output
    assert "OK: deb synced" in "\n".join(lines) and "arch" not in "\n".join(lines[:-1])
    assert check(mirror_config, "nope") == (3, ["MIRRORKEEPER UNKNOWN - no mirror nope"])
    assert check(tmp_path / "missing.toml", "deb")[0] == 3
    generated = mk("-c", str(mirror_config), "nagios-config", "--host", "mirror1").out
    assert generated.count("define service {") == 1  # enabled mirrors only
    assert "check_command           check_mirrorkeeper!deb" in generated
    assert f"-c {mirror_config} check $ARG1$" in generated


def test_upstream_signal_age_and_lag_from_the_latest_poll(
        mirror_config: Path, upstream: DebianLikeTree, mk: Callable[..., CliResult]) -> None:
    assert mk("-c", str(mirror_config), "sync", "deb", "--quiet").code == 0
    config = load_config(mirror_config)
    store = Store.open(config.settings.state_dir)
    try:
        poll_signal(config, config.mirrors["deb"], store)
        code, lines = check(mirror_config, "deb")
        assert code == 0 and "deb_behind_upstream=0s;;;0" in lines[0], lines[0]
        upstream.mutate(add=1, change=0, remove=0)  # the next publish, an hour later
        poll_signal(config, config.mirrors["deb"], store)
    finally:
        store.close()
    code, lines = check(mirror_config, "deb")
    assert_guidelines(lines[0])
    assert "deb_behind_upstream=3600s;;;0" in lines[0], lines[0]
    age = re.search(r"deb_upstream_age=(\d+)s", lines[0])
    assert age and abs(int(age.group(1)) - (time.time() - upstream.publish_time)) < 60


def test_nagios_config_runs_the_mirrorkeeper_that_made_it_on_a_host_it_defines(
        mirror_config: Path) -> None:
    """No /usr/bin/mirrorkeeper that the guide never installs, no host Nagios does not know."""
    script = Path(sys.executable).parent / "mirrorkeeper"  # a console script, as installed
    made = subprocess.run([str(script), "-c", str(mirror_config), "nagios-config"],
                          capture_output=True, text=True, check=True).stdout
    assert f"    command_line    {script} -c {mirror_config} check $ARG1$\n" in made
    host = re.search(r"define host \{\n    use +linux-server\n    host_name +(\S+)\n", made)
    assert host and host.group(1) == TEST_HOSTNAME, made
    assert set(re.findall(r"host_name +(\S+)", made)) == {TEST_HOSTNAME}
    module = subprocess.run([*python_cli(), "-c", str(mirror_config), "nagios-config"],
                            capture_output=True, text=True, check=True).stdout
    assert f"command_line    {sys.executable} -m mirrorkeeper -c {mirror_config} " in module
    # A host Nagios already has: the services go there, and no second definition of it.
    named = subprocess.run([str(script), "-c", str(mirror_config), "nagios-config", "--host",
                            "mirror1", "--command", "/usr/local/bin/mirrorkeeper"],
                           capture_output=True, text=True, check=True).stdout
    assert "define host" not in named and "host_name               mirror1" in named
    assert "command_line    /usr/local/bin/mirrorkeeper -c " in named
