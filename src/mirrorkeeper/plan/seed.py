"""First-seed detection and the argv of the seeding streams and listing (pure).

A mirror that never synced successfully and holds less than ``seed_below`` of the upstream's
files is *seeded*: its tree is split into ``seed_parallel`` shares (:mod:`.shares`), each
copied by one rsync with ``--files-from`` at the same time, before the ordinary stages run
over the whole tree for consistency and deletions. A seed stream uses stage 1's options
exactly — the same filters, so the index files (``stage2`` patterns) and the update signal
still arrive only at the end — and never deletes.
"""

from __future__ import annotations

from .argv import LIST_DELETIONS, SyncPlan

#: Options of a stage's argv that a listing of the same tree keeps: what reaches the daemon
#: and what filters the tree. The output options are the listing's own.
_LISTING_KEEPS = ("--exclude=", "--include=", "--timeout=", "--contimeout=", "--sockopts=",
                  "--password-file=", "--port=", "--address=", "--protocol=", "--copy-links",
                  "--copy-dirlinks", "--copy-unsafe-links", "--ipv4", "--ipv6")
SEED_STAGE = "seed"


def wants_seed(parallel: int, had_success: bool) -> bool:
    """Whether to look at all (a listing costs a tree walk upstream)."""
    return parallel > 1 and not had_success


def is_far_behind(local_files: int, upstream_files: int, below: float) -> bool:
    """The mirror holds fewer than ``below`` of the upstream's files."""
    return upstream_files > 0 and local_files < below * upstream_files


def big_enough(size_bytes: int, min_gib: float) -> bool:
    """An upstream worth seeding: its transfer dwarfs the listing and the second walk."""
    return size_bytes >= min_gib * 2**30


def _prefix(plan: SyncPlan) -> list[str]:
    """The first stage's argv without source, dest and anything that deletes."""
    first = plan.stages[0]
    words = list(first.argv[:-2])
    if first.deletes:
        words = [w for w in words if w not in LIST_DELETIONS and w != "--delay-updates"]
    return words


def stream_argv(plan: SyncPlan, files_from: str) -> tuple[str, ...]:
    """One seeding stream: stage 1's rsync over the paths in ``files_from`` (NUL-separated;
    a directory named there comes whole, as ``--recursive`` is set)."""
    first = plan.stages[0]
    return (*_prefix(plan), f"--files-from={files_from}", "--from0", *first.argv[-2:])


def listing_argv(plan: SyncPlan) -> tuple[str, ...]:
    """``rsync --list-only`` of the tree the seed would copy (same filters)."""
    prefix = _prefix(plan)
    keep = [w for w in prefix[1:] if w.startswith(_LISTING_KEEPS)]
    return (prefix[0], "--list-only", "--recursive", "--no-motd", "--no-human-readable",
            "--no-inc-recursive", *keep, plan.stages[0].argv[-2])
