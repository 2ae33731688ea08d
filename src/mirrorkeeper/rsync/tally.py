"""Fold one stage's events into counters (pure; memory bounded whatever the file count)."""

from __future__ import annotations

import re
from collections import Counter

from .parse import (
    FILE_ERROR_KINDS,
    ITEM_FIRST,
    ITEM_LINE,
    DeleteCandidate,
    DryRun,
    Error,
    Event,
    ExitLine,
    Item,
    Progress,
    Stat,
    Unparsed,
    item_kind,
    leading_progress,
    parse_line,
    progress_from,
)

SAMPLE_LIMIT = 20
#: Paths of per-file errors kept for protecting deletions; past this, no deletion is trusted.
ERROR_PATH_LIMIT = 10_000
_HELD = re.compile(r"\((\d+) skipped\)")


class StageTally:
    """Counts and the last progress of one rsync stage; keeps at most ``sample_limit`` lines.

    A *listing* stage runs with ``--max-delete=0 --debug=DEL2``: rsync names what it would
    delete and deletes nothing. Its candidates are kept (at most ``candidate_limit``; past the
    max-delete bound nothing is deleted anyway), with every path an error named, so that no file
    is deleted because the upstream failed to list it.
    """

    def __init__(self, sample_limit: int = SAMPLE_LIMIT, *, listing: bool = False,
                 candidate_limit: int = 0) -> None:
        self.sample_limit = sample_limit
        self.listing = listing
        self.candidate_limit = candidate_limit
        self.candidates: list[DeleteCandidate] = []
        self.candidates_total = 0
        #: Deletions rsync held back at our request (its "N skipped").
        self.held = 0
        self.error_paths: list[str] = []
        self.error_paths_complete = True
        #: Errors that name no path: the listing may lack files we cannot tell.
        self.unattributed_errors = 0
        self.stats: dict[str, float] = {}
        self.items: Counter[str] = Counter()
        #: Itemized regular files received (``>f``): rsync's stats must say the same.
        self.items_received = 0
        self.errors: Counter[str] = Counter()
        self.error_samples: list[str] = []
        self.files_failed = 0
        self.unparsed = 0
        self._progress: Progress | re.Match[str] | None = None
        self.exit_line: ExitLine | None = None
        #: "DRY RUN" or "BATCH ONLY" when rsync said it changed nothing.
        self.dry_run: str | None = None

    def _sample(self, text: str) -> None:
        if len(self.error_samples) < self.sample_limit:
            self.error_samples.append(text)

    @property
    def last_progress(self) -> Progress | None:
        """The newest progress update, built when asked for, not for each of rsync's lines."""
        if isinstance(self._progress, re.Match):
            self._progress = progress_from(self._progress)
        return self._progress

    def feed(self, line: str) -> bool:
        """Count one line of rsync's output; True if it carried a progress update.

        The hot path of a large sync (two lines per file): an itemized line only bumps two
        counters and a progress update is kept as its match, so neither allocates an event.
        Everything else goes through :func:`~mirrorkeeper.rsync.parse.parse_line`.
        """
        first = line[:1]
        if first in ITEM_FIRST and ITEM_LINE.match(line):
            kind = item_kind(line)
            self.items[kind] += 1
            if kind == "file" and first in "<>":
                self.items_received += 1
            return False
        matches, rest = leading_progress(line)
        if matches:
            self._progress = matches[-1]
        if rest or not matches:
            self.add(parse_line(rest))
        return bool(matches)

    def add(self, event: Event) -> None:
        if isinstance(event, Progress):
            self._progress = event
        elif isinstance(event, Item):
            self.items[event.kind] += 1
            if event.transferred and event.kind == "file":
                self.items_received += 1
        elif isinstance(event, Stat):
            self.stats[event.name] = event.value
        elif isinstance(event, DeleteCandidate):
            self.candidates_total += 1
            if len(self.candidates) < self.candidate_limit:
                self.candidates.append(event)
        elif isinstance(event, Error):
            if self.listing and self._expected_in_listing(event):
                return
            if self.listing:  # only a listing stage protects paths from deletion
                self._note_for_deletions(event)
            self.errors[event.kind] += 1
            if event.kind in FILE_ERROR_KINDS and event.path is not None:
                self.files_failed += 1
            self._sample(event.message)
        elif isinstance(event, ExitLine):
            self.exit_line = event
            if self.listing and event.code == 25:
                return  # the --max-delete=0 we asked for
            self._sample(f"rsync: {event.message} (code {event.code})")
        elif isinstance(event, DryRun):
            self.dry_run = event.marker
        elif isinstance(event, Unparsed):
            self.unparsed += 1
            self.errors["unparsed"] += 1
            self._sample(event.text)

    def _note_for_deletions(self, event: Error) -> None:
        if event.path is None:
            if event.kind != "max_delete":
                self.unattributed_errors += 1
        elif len(self.error_paths) < ERROR_PATH_LIMIT:
            self.error_paths.append(event.path)
        else:
            self.error_paths_complete = False

    def _expected_in_listing(self, event: Error) -> bool:
        """What ``--max-delete=0`` makes rsync say, which is no error of the transfer."""
        if event.kind == "max_delete":
            m = _HELD.search(event.message)
            self.held = int(m.group(1)) if m else self.held
            return True
        return event.message.startswith("cannot delete non-empty directory: ")

    def stat(self, name: str) -> int:
        return int(self.stats.get(name, 0))

    @property
    def stats_files_transferred(self) -> int | None:
        """``Number of regular files transferred`` from the stats block; None without one."""
        value = self.stats.get("files_transferred")
        return None if value is None else int(value)

    @property
    def files_transferred(self) -> int:
        """rsync's own count when the stats block arrived, else the itemized lines we saw."""
        if "files_transferred" in self.stats:
            return self.stat("files_transferred")
        return self.items_received

    @property
    def files_deleted(self) -> int:
        if "files_deleted" in self.stats:
            return self.stat("files_deleted")
        return self.items["deleted"]
