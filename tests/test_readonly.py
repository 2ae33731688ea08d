"""Commands that only look write nothing: no store, no WAL files, no event log, no migration.
The same commands as another uid that may only read are in tests/test_deploy.py."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

from mirrorkeeper.config.load import load_config
from mirrorkeeper.store import Store
from mirrorkeeper.store.store import HEAD_REVISION

from .accounts import tree_listing
from .conftest import CliResult

READERS = (("status",), ("status", "--json"), ("history", "deb"), ("alerts", "list"),
           ("nagios-config",), ("check", "deb"), ("check", "--all"))


def test_readers_on_a_fresh_config_create_nothing(tmp_path: Path, mirror_config: Path,
                                                  mk: Callable[..., CliResult]) -> None:
    for args in READERS:
        result = mk("-c", str(mirror_config), *args)
        assert result.code in (0, 2), (args, result.out, result.err)  # 2: never synced
    assert mk("-c", str(mirror_config), "status", "--json").json()[0]["state"] == "never synced"
    assert not (tmp_path / "state").exists() and not (tmp_path / "logs").exists()


def journal_mode(db: Path) -> str:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        conn.close()


def test_a_writer_leaves_the_store_at_rest_and_readers_leave_it_alone(
        tmp_path: Path, mirror_config: Path, mk: Callable[..., CliResult]) -> None:
    assert mk("-c", str(mirror_config), "sync", "deb", "--quiet").code == 0
    state, db = tmp_path / "state", tmp_path / "state" / "mirrorkeeper.db"
    # One file, in rollback-journal mode: read access alone can read it.
    assert not Path(f"{db}-wal").exists() and not Path(f"{db}-shm").exists()
    assert journal_mode(db) == "delete"
    before = tree_listing(state), tree_listing(tmp_path / "logs")
    for args in READERS:
        assert mk("-c", str(mirror_config), *args).code == 0, args
    assert (tree_listing(state), tree_listing(tmp_path / "logs")) == before
    # While a writer has it open it is in WAL mode; a reader still reads and leaves it so.
    writer = Store.open(state)
    try:
        writer.history("deb")
        assert journal_mode(db) == "wal" and Path(f"{db}-shm").exists()
        assert mk("-c", str(mirror_config), "check", "deb").code == 0
        assert mk("-c", str(mirror_config), "sync", "deb", "--quiet").code == 0  # closes, but
        assert journal_mode(db) == "wal"  # the other writer is still there: WAL stays
    finally:
        writer.close()
    assert journal_mode(db) == "delete"


def test_a_store_that_needs_migrating_is_said_so_and_left_alone(
        tmp_path: Path, mirror_config: Path, mk: Callable[..., CliResult]) -> None:
    assert mk("-c", str(mirror_config), "sync", "deb", "--quiet").code == 0
    db = tmp_path / "state" / "mirrorkeeper.db"
    store = Store.open(load_config(mirror_config).settings.state_dir)
    with store.engine.begin() as conn:  # as a store written by the previous release reads
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0003'")
    store.close()
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    status = mk("-c", str(mirror_config), "status")
    assert status.code == 73 and "Traceback" not in status.err
    assert (f"cannot use {db} as the store: its schema is at revision 0003, this Mirrorkeeper "
            f"reads {HEAD_REVISION}, and a read-only command does not migrate") in status.err
    assert "fix: let a writer migrate it" in status.err
    check = mk("-c", str(mirror_config), "check", "deb")
    assert check.code == 3 and "its schema is at revision 0003" in check.out
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest
