"""Fold one stage's events into counters (pure; memory bounded whatever the file count)."""

from __future__ import annotations

from collections import Counter

from .parse import (
    FILE_ERROR_KINDS,
    DryRun,
    Error,
    Event,
    ExitLine,
    Item,
    Progress,
    Stat,
    Unparsed,
)

SAMPLE_LIMIT = 20


class StageTally:
    """Counts and the last progress of one rsync stage; keeps at most ``sample_limit`` lines."""

    def __init__(self, sample_limit: int = SAMPLE_LIMIT) -> None:
        self.sample_limit = sample_limit
        self.stats: dict[str, float] = {}
        self.items: Counter[str] = Counter()
        #: Itemized regular files received (``>f``): rsync's stats must say the same.
        self.items_received = 0
        self.errors: Counter[str] = Counter()
        self.error_samples: list[str] = []
        self.files_failed = 0
        self.unparsed = 0
        self.last_progress: Progress | None = None
        self.exit_line: ExitLine | None = None
        #: "DRY RUN" or "BATCH ONLY" when rsync said it changed nothing.
        self.dry_run: str | None = None

    def _sample(self, text: str) -> None:
        if len(self.error_samples) < self.sample_limit:
            self.error_samples.append(text)

    def add(self, event: Event) -> None:
        if isinstance(event, Progress):
            self.last_progress = event
        elif isinstance(event, Item):
            self.items[event.kind] += 1
            if event.transferred and event.kind == "file":
                self.items_received += 1
        elif isinstance(event, Stat):
            self.stats[event.name] = event.value
        elif isinstance(event, Error):
            self.errors[event.kind] += 1
            if event.kind in FILE_ERROR_KINDS and event.path is not None:
                self.files_failed += 1
            self._sample(event.message)
        elif isinstance(event, ExitLine):
            self.exit_line = event
            self._sample(f"rsync: {event.message} (code {event.code})")
        elif isinstance(event, DryRun):
            self.dry_run = event.marker
        elif isinstance(event, Unparsed):
            self.unparsed += 1
            self.errors["unparsed"] += 1
            self._sample(event.text)

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
