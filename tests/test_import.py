"""``mirrorkeeper import ftpsync|tunasync``: the shipped and documented example configs go in,
a config that ``config check`` accepts comes out, and every source setting is either mapped
or listed as not mapped with a reason. ftpsync's own example is read from the installed
package; tunasync's documented worker config (docs/zh_CN/get_started.md of tuna/tunasync) is
quoted below, with mirror entries in the shapes of its docs/zh_CN/workers.conf.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mirrorkeeper.config.load import load_config
from mirrorkeeper.demo.rsyncd import Module
from mirrorkeeper.demo.tree import DebianLikeTree
from mirrorkeeper.migrate.ftpsync import parse_assignments
from mirrorkeeper.store import Store

from .conftest import TEST_HOSTNAME, CliResult, write_config
from .test_ftpsync_protocol import content, fields, ftpsync_home, needs_ftpsync, run_ftpsync

FTPSYNC_SAMPLE = Path("/usr/share/doc/ftpsync/examples/ftpsync.conf.sample")
needs_sample = pytest.mark.skipif(not FTPSYNC_SAMPLE.exists(),
                                  reason="needs Debian's ftpsync package (its example config): "
                                         "`sh scripts/bootstrap.sh --test`")

#: tunasync's documented worker config (get_started.md), as published.
TUNASYNC_GET_STARTED = """\
[global]
name = "test_worker"
log_dir = "/tmp/tunasync/log/tunasync/{{.Name}}"
mirror_dir = "/tmp/tunasync"
concurrent = 10
interval = 120

[manager]
api_base = "http://localhost:12345"
token = ""
ca_cert = ""

[cgroup]
enable = false
base_path = "/sys/fs/cgroup"
group = "tunasync"

[server]
hostname = "localhost"
listen_addr = "127.0.0.1"
listen_port = 6000
ssl_cert = ""
ssl_key = ""

[[mirrors]]
name = "elvish"
provider = "rsync"
upstream = "rsync://rsync.elv.sh/elvish/"
use_ipv6 = false

rsync_success_exit_codes = [23, 24]
"""

#: Mirrors in the shapes workers.conf shows: every provider and key kind it uses.
TUNASYNC_MIRRORS = """\
[[mirrors]]
name = "ubuntu"
provider = "two-stage-rsync"
stage1_profile = "debian"
upstream = "rsync://archive.ubuntu.com/ubuntu/"
rsync_options = [ "--delete-excluded" ]
memory_limit = "256M"

[[mirrors]]
name = "zabbix"
provider = "rsync"
upstream = "rsync://repo.zabbix.com/mirror/"
rsync_options = [ "--chmod=o+r,Do+x,Fa-x" ]
exclude_file = "EXCLUDES"
use_ipv6 = true
interval = 1440

[[mirrors]]
name = "bioconductor"
provider = "rsync"
upstream = "master.bioconductor.org:./"
rsync_options = [ "--rsh=ssh -i /root/id_rsa -o PasswordAuthentication=no -l sync" ]

[[mirrors]]
name = "anaconda"
provider = "command"
upstream = "https://repo.continuum.io/"
command = "/home/scripts/anaconda.py --delete"
size_pattern = "Total size is ([0-9\\\\.]+[KMGTP]?)"
interval = 720
docker_image = "tunathu/tunasync-scripts:latest"

[[mirrors]]
name = "clojars"
provider = "command"
upstream = "s3://clojars-repo-production/"
command = "/home/scripts/s3.sh"
docker_image = "tunathu/ftpsync:latest"

        [mirrors.env]
        TUNASYNC_S3_ENDPOINT = "https://s3.dualstack.us-east-2.amazonaws.com"
"""


def base_config(tmp_path: Path) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    return write_config(tmp_path / "mirrorkeeper.toml", {})


def said(output: str) -> tuple[dict[str, str], dict[str, str]]:
    """The report's mapped and not-mapped settings: source -> where / why."""
    mapped: dict[str, str] = {}
    skipped: dict[str, str] = {}
    part: dict[str, str] | None = None
    for line in output.splitlines():
        if line == "# Mapped:":
            part = mapped
        elif line == "# Not mapped:":
            part = skipped
        elif line.startswith("#   ") and part is not None:
            key, _sep, rest = line[4:].partition(" -> " if part is mapped else ": ")
            part[key] = rest
        elif not line.startswith("#"):
            part = None
    return mapped, skipped


# -- ftpsync ------------------------------------------------------------------------------------
@needs_sample
def test_the_shipped_ftpsync_example_imports_into_a_config_that_checks(
        tmp_path: Path, mk: Callable[..., CliResult]) -> None:
    config = base_config(tmp_path)
    printed = mk("-c", str(config), "import", "ftpsync", str(FTPSYNC_SAMPLE))
    assert printed.code == 0, printed.err
    mapped, skipped = said(printed.out)
    assert "RSYNC_HOST" in skipped and "RSYNC_PATH" in skipped  # set, but empty / unused
    assert "TO (ftpsync's default)" in mapped
    config.write_text(config.read_text() + printed.out)  # printed text appends as it is
    checked = mk("-c", str(config), "config", "check")
    assert checked.code == 0, checked.err
    assert load_config(config).mirrors["debian"].dest == "/srv/mirrors/debian"

    # Every assignment of the example, uncommented: each is mapped or said not to be.
    every = tmp_path / "ftpsync.conf"
    every.write_text(re.sub(r"(?m)^# ?([A-Z_0-9]+=)", r"\1", FTPSYNC_SAMPLE.read_text()))
    names, shell, _other = parse_assignments(every.read_text())
    assert {"MIRRORNAME", "MAILTO"} <= set(shell) and "INFO_MAINTAINER" in names
    config = base_config(tmp_path / "every")
    result = mk("-c", str(config), "import", "ftpsync", "--name", "deb", str(every))
    assert result.code == 0, result.err
    mapped, skipped = said(result.out)
    reported = " ".join([*mapped, *skipped])
    for key in [*names, *shell]:
        if names.get(key, "x"):  # an empty value that changes nothing need not be said
            assert key in reported, key
    assert "needs the shell" in skipped["MIRRORNAME"]
    assert load_config(_appended(mk, config, every)).mirrors["deb"].settings.trace_country == "DE"


def _appended(mk: Callable[..., CliResult], config: Path, source: Path) -> Path:
    result = mk("-c", str(config), "import", "ftpsync", "--name", "deb", "--append", str(source))
    assert result.code == 0, result.err
    assert mk("-c", str(config), "config", "check").code == 0
    return config


@needs_ftpsync
def test_a_real_ftpsync_mirror_moves_over_with_its_history(
        tmp_path: Path, upstream: DebianLikeTree, rsyncd: Any,
        mk: Callable[..., CliResult]) -> None:
    """ftpsync has been keeping the mirror; after the import Mirrorkeeper syncs the same tree
    from the same upstream, and the history starts with ftpsync's last sync."""
    daemon = rsyncd([Module("debian", upstream.root)])
    tree = tmp_path / "srv-debian"
    home = ftpsync_home(tmp_path / "ftpsync", tree, daemon.port,
                        extra='RSYNC_BW=5000\nEXCLUDE="--exclude=*.iso"\nHOOK1="true"\n')
    assert run_ftpsync(home, "sync:all").returncode == 0
    theirs = fields(tree / f"project/trace/{TEST_HOSTNAME}")
    config = base_config(tmp_path)
    conf = home / ".config/ftpsync/ftpsync.conf"
    result = mk("-c", str(config), "import", "ftpsync", "--append", str(conf))
    assert result.code == 0, result.err
    mapped, skipped = said(result.out)
    assert "HOOK1" in skipped and "MAILTO" in skipped and "trace" in mapped
    mirror = load_config(config).mirrors["debian"]
    s = mirror.settings
    assert mirror.dest == str(tree)
    assert s.upstreams == (daemon.url("debian"),)
    assert (s.bwlimit, s.excludes, s.upstream_busy_wait, s.upstream_busy_retries) == (
        5000, ("*.iso",), 1.0, 1)
    assert s.trace_maintainer == "Mirror Admin <admin@mirror.test>"
    store = Store.open(load_config(config).settings.state_dir)
    try:
        [past] = store.history("debian", limit=5)
    finally:
        store.close()
    assert past.outcome == "success" and past.upstream == "ftpsync: 127.0.0.1"
    from email.utils import parsedate_to_datetime

    assert past.finished_at == parsedate_to_datetime(theirs["Date"]).timestamp()
    change = upstream.mutate()
    synced = mk("-c", str(config), "sync", "debian", "--quiet")
    assert synced.code == 0, synced.err
    mine, wanted = content(tree), content(upstream.root)
    assert wanted.items() <= mine.items()
    assert set(mine) - set(wanted) == set(change.removed)  # the profile's delete grace holds them
    ours = fields(tree / f"project/trace/{TEST_HOSTNAME}")
    assert ours["Creator"].startswith("mirrorkeeper") and ours["Archive serial"] == "2"
    # Importing again does not add the mirror twice, and writes nothing.
    again = mk("-c", str(config), "import", "ftpsync", "--append", str(conf))
    assert again.code == 78 and "already exists" in again.err


# -- tunasync -----------------------------------------------------------------------------------
def test_the_documented_tunasync_worker_config_imports_into_a_config_that_checks(
        tmp_path: Path, mk: Callable[..., CliResult]) -> None:
    (tmp_path / "excludes.txt").write_text("# comment\n/old/\n*.tmp\n")
    worker = tmp_path / "worker.conf"
    worker.write_text(TUNASYNC_GET_STARTED + "\n"
                      + TUNASYNC_MIRRORS.replace("EXCLUDES", str(tmp_path / "excludes.txt")))
    config = base_config(tmp_path)
    printed = mk("-c", str(config), "import", "tunasync", str(worker))
    assert printed.code == 0, printed.err
    mapped, skipped = said(printed.out)
    for key in ("global.name", "global.concurrent", "[manager]", "[server]", "[cgroup]",
                "mirrors.elvish.rsync_success_exit_codes", "mirrors.ubuntu.memory_limit",
                "mirrors.ubuntu.rsync_options --delete-excluded", "mirrors.bioconductor",
                "mirrors.anaconda", "mirrors.clojars"):
        assert key in skipped, key
    assert "rsync only" in skipped["mirrors.anaconda"]
    assert "not an rsync daemon" in skipped["mirrors.bioconductor"]
    for key in ("global.mirror_dir", "mirrors.elvish", "mirrors.ubuntu",
                "mirrors.ubuntu.stage1_profile", "mirrors.zabbix.exclude_file",
                "mirrors.zabbix.use_ipv6", "mirrors.zabbix.interval"):
        assert key in mapped, key
    assert "of the `ubuntu` profile" in mapped["mirrors.ubuntu"]
    assert "PROFILES_DIR/elvish.toml" in mapped["mirrors.elvish"]
    appended = mk("-c", str(config), "import", "tunasync", "--append", str(worker))
    assert appended.code == 0, appended.err
    checked = mk("-c", str(config), "config", "check")
    assert checked.code == 0, checked.err
    loaded = load_config(config)
    assert sorted(loaded.mirrors) == ["elvish", "ubuntu", "zabbix"]
    elvish, ubuntu, zabbix = (loaded.mirrors[n] for n in ("elvish", "ubuntu", "zabbix"))
    assert elvish.profile == "elvish" and elvish.dest == "/tmp/tunasync/elvish"
    assert elvish.settings.upstreams == ("rsync://rsync.elv.sh/elvish/",)
    assert elvish.settings.schedule == "every 120m"  # the global interval, in minutes
    assert (tmp_path / "profiles/elvish.toml").exists()
    assert ubuntu.profile == "ubuntu" and "InRelease" in ubuntu.settings.stage2
    assert zabbix.settings.excludes == ("/old/", "*.tmp")
    assert zabbix.settings.rsync_options == ("--chmod=o+r,Do+x,Fa-x", "--ipv6")
    assert zabbix.settings.schedule == "every 1440m"


def test_append_refuses_what_would_break_the_config_and_leaves_nothing_behind(
        tmp_path: Path, mk: Callable[..., CliResult]) -> None:
    worker = tmp_path / "worker.conf"
    worker.write_text(TUNASYNC_GET_STARTED)
    config = base_config(tmp_path)
    config.write_text(config.read_text() + '\n[mirrors.elvish]\nprofile = "alpine"\n'
                      'dest = "/srv/elvish"\n')
    before = config.read_text()
    refused = mk("-c", str(config), "import", "tunasync", "--append", str(worker))
    assert refused.code == 78 and "already exists" in refused.err
    assert config.read_text() == before
    assert not (tmp_path / "profiles/elvish.toml").exists()
    nothing = tmp_path / "none.conf"
    nothing.write_text('[[mirrors]]\nname = "x"\nprovider = "command"\ncommand = "x.sh"\n')
    empty = mk("-c", str(config), "import", "tunasync", "--append", str(nothing))
    assert empty.code == 64 and "nothing to append" in empty.err


RUNMIRRORS_SAMPLES = Path("/usr/share/doc/ftpsync/examples")


@needs_sample
def test_a_hub_brings_its_runmirrors_list_along(tmp_path: Path,
                                                mk: Callable[..., CliResult]) -> None:
    """HUB=true: the shipped runmirrors examples (every example line of the mirror list, the
    config's assignments uncommented) become downstreams, each line mapped or said not to be."""
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "ftpsync.conf").write_text('TO="/srv/debian"\nRSYNC_HOST="up.example.org"\n'
                                      'HUB=true\n')
    examples = re.findall(r"(?m)^# ((?:all|staged|mhop) [\w.]+ [\w.]+ \w+.*)$",
                          (RUNMIRRORS_SAMPLES / "runmirrors.mirror.sample").read_text())
    assert len(examples) == 6
    (etc / "runmirrors.mirror").write_text("\n".join(["# the examples", *examples,
                                                      "DELAY 600"]) + "\n")
    (etc / "runmirrors.conf").write_text(re.sub(
        r"(?m)^# ?([A-Z_]+=)", r"\1",
        (RUNMIRRORS_SAMPLES / "runmirrors.conf.sample").read_text()) + "PUSHDELAY=60\n")
    config = base_config(tmp_path)
    result = mk("-c", str(config), "import", "ftpsync", "--append", str(etc / "ftpsync.conf"))
    assert result.code == 0, result.err
    mapped, skipped = said(result.out)
    assert mapped["HUB, runmirrors mirror list"] == "downstreams (2 lines)"
    assert "PROTO KEYFILE" in skipped["runmirrors all eu.puccini puccini.debian.org archvsync 2"]
    assert "a second line" in skipped["runmirrors staged eu.puccini puccini.debian.org archvsync"]
    assert "staged downstreams wait" in skipped["runmirrors DELAY 600"]
    assert "absolute path" in skipped["runmirrors KEYFILE"]
    s = load_config(config).mirrors["debian"].settings
    assert s.downstreams == ("all eu.puccini puccini.debian.org archvsync -p 2222",
                             "staged eu.powell powell.debian.org archvsync")
    assert s.push_delay == 60.0 and s.push_key is None
