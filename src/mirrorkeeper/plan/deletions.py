"""Which of the files the upstream dropped the mirror deletes now (pure).

rsync's deleting stage runs with ``--max-delete=0 --ignore-errors --debug=DEL2``: it names every
file and directory the upstream no longer lists, deletes none, and lists them even when the
upstream had I/O errors (which would make a plain ``--delete`` skip *all* deletions, forever, on
an upstream that always has a few unreadable files). This module decides:

- nothing at all when the listing cannot be trusted: an error that names no file, more failed
  files than ``failure_ratio_info`` allows, or more candidates than the max-delete bound
  (a truncated upstream looks exactly like a mass deletion);
- never a file under a path the upstream reported an error for: an unreadable directory is
  listed empty, so its files look deleted upstream when they are not;
- never a file before ``delete_grace`` has passed since the mirror first saw it dropped, so a
  client holding the previous index still finds what it names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..config.spec import SyncSettings
from ..rsync.parse import DeleteCandidate


@dataclass(frozen=True)
class DeletionPlan:
    #: Paths to delete now, children before their directories.
    delete: tuple[str, ...] = ()
    #: Every candidate the mirror keeps for now, with when it was first seen dropped.
    keep: Mapping[str, float] = field(default_factory=dict)
    #: How many of ``keep`` an upstream error protects, and how many wait for the grace.
    protected: int = 0
    waiting: int = 0
    #: Why nothing at all is deleted this run (None: the plan ran).
    skipped: str | None = None
    #: The candidates exceed the max-delete bound: a guard, not a skip.
    mass_delete: bool = False
    candidates: int = 0


def _tails(error_paths: Iterable[str]) -> set[str]:
    """Every trailing part of each error path. rsync names a sender's file relative to the
    module (``"/pool/a" (in debian)``) or absolutely (a local upstream); either way one of its
    tails is the path relative to our transfer root. Over-matching only keeps files longer."""
    tails: set[str] = set()
    for raw in error_paths:
        parts = [p for p in raw.strip().strip("/").split("/") if p and p != "."]
        for start in range(len(parts)):
            tails.add("/".join(parts[start:]))
    return tails


def _protected(path: str, tails: set[str]) -> bool:
    parts = path.split("/")
    return any("/".join(parts[:end]) in tails for end in range(1, len(parts) + 1))


def plan_deletions(
    candidates: Sequence[DeleteCandidate],
    candidates_total: int,
    *,
    settings: SyncSettings,
    bound: int,
    pending: Mapping[str, float],
    now: float,
    error_paths: Sequence[str] = (),
    error_paths_complete: bool = True,
    unattributed_errors: int = 0,
    failure_ratio: float = 0.0,
) -> DeletionPlan:
    """Decide the deletions of one run from rsync's candidates and the pending ones."""
    first_seen = {c.path: pending.get(c.path, now) for c in candidates}
    if candidates_total == 0:
        return DeletionPlan()
    if candidates_total > bound or candidates_total > len(candidates):
        return DeletionPlan(keep=first_seen, mass_delete=True, candidates=candidates_total)
    skipped = None
    if unattributed_errors or not error_paths_complete:
        skipped = (f"rsync reported {unattributed_errors or 'too many'} errors that name no "
                   "file, so the upstream's file list may be incomplete")
    elif failure_ratio > settings.failure_ratio_info:
        skipped = (f"{failure_ratio:.3%} of the files failed, above failure_ratio_info "
                   f"({settings.failure_ratio_info:.3%}): the upstream's list is not trusted")
    if skipped:
        return DeletionPlan(keep=first_seen, skipped=skipped, candidates=candidates_total)
    tails = _tails(error_paths)
    keep: dict[str, float] = {}
    delete: list[str] = []
    protected = waiting = 0
    for c in candidates:
        if tails and _protected(c.path, tails):
            keep[c.path] = first_seen[c.path]
            protected += 1
        elif now - first_seen[c.path] < settings.delete_grace:
            keep[c.path] = first_seen[c.path]
            waiting += 1
        else:
            delete.append(c.path)
    # A directory whose contents stay must stay too.
    kept_dirs = {"/".join(p.split("/")[:i]) for p in keep for i in range(1, p.count("/") + 1)}
    held_dirs = [p for p in delete if p in kept_dirs]
    if held_dirs:
        delete = [p for p in delete if p not in kept_dirs]
        keep.update((p, first_seen[p]) for p in held_dirs)
        waiting += len(held_dirs)
    delete.sort(key=lambda p: (-p.count("/"), p))
    return DeletionPlan(delete=tuple(delete), keep=keep, protected=protected, waiting=waiting,
                        candidates=candidates_total)
