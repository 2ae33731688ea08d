"""The local spool of a fleet host: run records that could not reach the fleet store, one JSON
file per run under ``STATE_DIR/spool``, replayed into the store when it is back.

A file is written to a temporary name, fsynced, renamed into place and its directory fsynced:
a crash leaves either the whole file or none (a leftover ``.tmp`` is ignored and cleared). The
name starts with the run's start time, so sorting the names replays the runs in the order they
ran; it ends with the run's uuid, so a run written twice (a hub's second write) is one file.
A file that does not parse is moved aside into ``spool/bad`` with a log line, never read again
and never in the way of the others.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..logs import event
from ..record import RunRecord
from .store import record_from_values, run_values

SPOOL_DIR = "spool"
BAD_DIR = "bad"
#: The layout of a spool file; a newer one than this code reads is set aside, not guessed.
FORMAT = 1


class BadSpoolFile(Exception):
    """A spool file that cannot be read as a run (truncated, not JSON, wrong fields)."""


@dataclass(frozen=True)
class SpooledRun:
    """One run's end as the store would have written it."""

    uuid: str
    #: The fleet host and process that ran it.
    host: str
    pid: int | None
    #: The record; its ``run_id`` is the store's when the run started with the store up,
    #: else a provisional negative one (the store gives it an id on replay).
    record: RunRecord
    #: Finding codes already sent straight through the plugins (not to be sent again).
    sent: tuple[str, ...] = ()


def spool_dir(state_dir: str | Path) -> Path:
    return Path(state_dir) / SPOOL_DIR


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def name_of(self, run: SpooledRun) -> str:
        return f"{run.record.started_at:017.6f}-{run.uuid}.json"

    def write(self, run: SpooledRun) -> Path:
        """Write ``run`` atomically (replacing an earlier write of the same run); its path.
        Raises OSError when the state disk cannot take it."""
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.path / self.name_of(run)
        temporary = target.with_name(f".{target.name}.tmp")
        data = {"format": FORMAT, "uuid": run.uuid, "host": run.host, "pid": run.pid,
                "sent": list(run.sent), "run_id": run.record.run_id, "mirror": run.record.mirror,
                "started_at": run.record.started_at, **run_values(run.record)}
        with open(temporary, "w", encoding="utf-8") as out:
            json.dump(data, out, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
        _fsync_dir(self.path)
        return target

    def pending(self) -> list[Path]:
        """The spooled runs, oldest first (none when the spool was never used)."""
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return []
        return [self.path / n for n in sorted(names)
                if n.endswith(".json") and not n.startswith(".")]

    def __len__(self) -> int:
        return len(self.pending())

    def read(self, path: Path) -> SpooledRun:
        """The run in ``path``; raises :class:`BadSpoolFile` for anything but a whole one."""
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise BadSpoolFile(f"cannot read {path.name}: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BadSpoolFile(f"{path.name} is not a spooled run of format {FORMAT}")
        try:
            record = record_from_values(int(data["run_id"]), data)
            return SpooledRun(uuid=str(data["uuid"]), host=str(data["host"]),
                              pid=data["pid"], record=record,
                              sent=tuple(str(c) for c in data.get("sent", [])))
        except (KeyError, TypeError, ValueError) as exc:
            raise BadSpoolFile(f"{path.name} lacks a run's fields: {exc!r}") from exc

    def done(self, path: Path) -> None:
        """The run in ``path`` is in the store: forget it."""
        path.unlink(missing_ok=True)

    def set_aside(self, path: Path, why: str) -> Path:
        """Move a file that cannot be replayed out of the way, keeping it for a human."""
        bad = self.path / BAD_DIR
        bad.mkdir(exist_ok=True)
        target = bad / f"{path.name}.{int(time.time())}"
        os.replace(path, target)
        event("spool.bad_file", level=logging.ERROR, path=str(path), moved_to=str(target),
              why=why)
        return target

    def clear_leftovers(self) -> None:
        """Temporary files a crash left mid-write (their run was never fully spooled)."""
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return
        for name in names:
            if name.startswith(".") and name.endswith(".tmp"):
                (self.path / name).unlink(missing_ok=True)
