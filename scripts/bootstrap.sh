#!/bin/sh
# Install what Mirrorkeeper's make targets need on a Debian-like machine: rsync, make and
# Python's venv module; with --test also what the tests run for real: Chromium and ChromeDriver
# (the dashboard), collectd, carbon-cache and a Nagios 4 core (the monitoring), sshd (push
# triggers through an ssh forced command), Debian's ftpsync (its trace and runmirrors' pushes,
# for the interop tests), apt-ftparchive and gpg (the apt-client consistency tests build and
# sign a real archive), zfs-fuse and btrfs-progs (the snapshot tests run a file-backed ZFS
# pool and a btrfs loop device), and redis-server and PostgreSQL 15 (fleet mode: a shared store
# and queues). Installs nothing that is already there; needs root only to install.
set -eu

need=""
if [ "${1:-}" = "--test" ]; then
    command -v chromium >/dev/null 2>&1 || need="$need chromium"
    command -v chromedriver >/dev/null 2>&1 || need="$need chromium-driver"
    [ -x /usr/sbin/collectd ] || need="$need collectd-core"
    command -v carbon-cache >/dev/null 2>&1 || need="$need graphite-carbon"
    [ -x /usr/sbin/nagios4 ] || need="$need nagios4-core"
    [ -x /usr/sbin/sshd ] || need="$need openssh-server"
    command -v ftpsync >/dev/null 2>&1 || need="$need ftpsync"  # push interop: ftpsync, runmirrors
    command -v apt-ftparchive >/dev/null 2>&1 || need="$need apt-utils"
    command -v gpg >/dev/null 2>&1 || need="$need gpg"
    command -v gpg-agent >/dev/null 2>&1 || need="$need gpg-agent"  # signing needs the agent
    command -v zfs-fuse >/dev/null 2>&1 || [ -x /usr/sbin/zfs-fuse ] || need="$need zfs-fuse"
    command -v mkfs.btrfs >/dev/null 2>&1 || [ -x /usr/sbin/mkfs.btrfs ] || need="$need btrfs-progs"
    # fleet mode: a shared PostgreSQL store and Redis queues (tests/test_fleet.py)
    command -v redis-server >/dev/null 2>&1 || need="$need redis-server"
    [ -x /usr/lib/postgresql/15/bin/initdb ] || need="$need postgresql-15"
    # fleet partition tests: PostgreSQL and a host daemon in network namespaces (as root)
    command -v ip >/dev/null 2>&1 || need="$need iproute2"
    command -v ping >/dev/null 2>&1 || need="$need iputils-ping"
fi
command -v rsync >/dev/null 2>&1 || need="$need rsync"
command -v make >/dev/null 2>&1 || need="$need make"
if ! command -v python3 >/dev/null 2>&1; then
    need="$need python3 python3-venv"
elif ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    need="$need python3-venv"
fi

if [ -n "$need" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "bootstrap: missing:$need — run as root, or install them with your package manager" >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "bootstrap: missing:$need and no apt-get here; install them by hand" >&2
        exit 1
    fi
    echo "bootstrap: installing$need"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086 # word splitting of the package list is intended
    apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

python3 - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"bootstrap: Python 3.11 or newer is needed, this is {sys.version.split()[0]}")
PY
