"""One attempt of a ``method = "filelist"`` mirror (I/O): fetch the lists, plan, transfer,
delete, and put the lists in place last.

fetch the upstream's lists into our state (one small transfer) → the same bytes as the
mirror's copies: done, a no-change run → else parse (a list that does not parse: full rsync)
→ walk the mirror once → :func:`~mirrorkeeper.filelist.compare.plan_transfer` → stage 1:
content with ``--files-from`` → stage 2: indexes (``repodata/``…) with ``--delay-updates`` →
deletions through the same planner, guards and grace as any run → the lists into the mirror,
the update signal last. A transfer that did not end cleanly leaves the mirror's old lists in
place, so the next run compares against them again and retries what is missing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..classify.judge import Verdict
from ..config.spec import Config, MirrorSpec
from ..filelist.compare import Local, ModuleList, Patterns, Plan, dropped, plan_transfer
from ..filelist.format import DIGEST_LENGTHS, Malformed, files_lines, parse
from ..logs import event
from ..plan.argv import (
    COMMON_OPTIONS,
    StagePlan,
    SyncPlan,
    chmod_options,
    connection_options,
    max_delete_bound,
)
from ..record import Attempt, StageResult
from ..record.run import FILELIST_STAGE
from ..rsync.tally import StageTally
from .preflight import MTIME_SLACK_SECONDS
from .trace import trace_path

if TYPE_CHECKING:
    from .run import _RunContext

Done = Callable[[Verdict, str, int | None], Attempt]
#: Why a file-list run became a full rsync: (finding code, reason).
Fallback = tuple[str, str]


def state_dir(config: Config, mirror: MirrorSpec) -> Path:
    """Our working place for ``mirror``'s lists: outside the mirror, never served."""
    return Path(config.settings.state_dir) / "filelists" / mirror.name


def _last_full_file(config: Config, mirror: MirrorSpec) -> Path:
    return state_dir(config, mirror) / "last-full"


def last_full(config: Config, mirror: MirrorSpec) -> float | None:
    """When the last full rsync of ``mirror`` succeeded (None: never, as far as we know)."""
    try:
        return float(_last_full_file(config, mirror).read_text().strip())
    except (OSError, ValueError):
        return None


def record_full(config: Config, mirror: MirrorSpec, when: float) -> None:
    path = _last_full_file(config, mirror)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".new")
    temporary.write_text(f"{when:.0f}\n")
    os.replace(temporary, path)


def full_reason(config: Config, mirror: MirrorSpec, now: float) -> Fallback | None:
    """Why this run must be a full rsync whatever the lists say, or None."""
    s = mirror.settings
    lacking = [p for p in s.filelist if not Path(mirror.dest, p).is_file()]
    if lacking:
        return ("filelist.full", f"first sync: the mirror has no {lacking[0]} yet")
    previous = last_full(config, mirror)
    if previous is None:
        return ("filelist.full", "no full rsync of this mirror is recorded yet (full_every)")
    if now - previous >= s.full_every:
        days = (now - previous) / 86400
        return ("filelist.full", f"full_every is due: the last full rsync was {days:.1f} "
                                 "days ago")
    return None


DIRECTORY, LINK = Local("d", 0), Local("l", 0)


def walk(root: str, start: str = "", *, recursive: bool = True) -> dict[str, Local]:
    """The mirror's tree below ``start`` (relative to ``root``), one ``scandir`` pass, symlinks
    not followed; with ``recursive`` False, that directory's own entries only."""
    found: dict[str, Local] = {}
    pending = [start]
    while pending:
        relative = pending.pop()
        try:
            with os.scandir(os.path.join(root, relative) if relative else root) as it:
                entries = list(it)
        except OSError:
            continue
        for entry in entries:
            path = f"{relative}/{entry.name}" if relative else entry.name
            try:  # the type from the directory itself; a stat only for a file's size
                if entry.is_dir(follow_symlinks=False):
                    found[path] = DIRECTORY
                    if recursive:
                        pending.append(path)
                elif entry.is_symlink():
                    found[path] = LINK
                else:
                    found[path] = Local("f", entry.stat(follow_symlinks=False).st_size)
            except OSError:
                continue
    return found


def look(root: str, lists: list[ModuleList]) -> tuple[dict[str, Local], bool]:
    """What the planner needs of the mirror's tree, and whether it trusts the previous lists:
    the whole tree when a module has no previous list; else only the paths the lists dropped
    (to delete them) — the rest is as the previous lists say, which the last complete run left
    in place. (On a Fedora-like tree a 1% publish touches nearly every ``Packages/<letter>/``
    directory, so even walking the changed directories would walk most of the tree.) The full
    rsync (first sync, ``full_every``) is what compares the whole tree."""
    if any(m.old is None for m in lists):
        return walk(root), False
    local: dict[str, Local] = {}
    for path in dropped(lists):
        if path in local:
            continue
        try:
            info = os.lstat(os.path.join(root, path))
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode):
            local[path] = DIRECTORY
            local.update(walk(root, path))  # what it holds goes with it
        else:
            local[path] = LINK if stat.S_ISLNK(info.st_mode) else Local("f", info.st_size)
    return local, True


def _digests(root: str, lists: list[ModuleList], local: dict[str, Local],
             ) -> dict[str, dict[str, str]]:
    """Our digests of the files the lists carry checksums of (a few index files)."""
    out: dict[str, dict[str, str]] = {}
    for module in lists:
        for algorithm, sums in module.new.checksums.items():
            if algorithm not in DIGEST_LENGTHS:
                continue
            for path in sums:
                full = f"{module.prefix}/{path}" if module.prefix else path
                if local.get(full, Local("d", 0)).kind != "f":
                    continue
                digest = hashlib.new(algorithm.lower())
                try:
                    with open(os.path.join(root, full), "rb") as handle:
                        while block := handle.read(1 << 16):
                            digest.update(block)
                except OSError:
                    continue
                out.setdefault(full, {})[algorithm] = digest.hexdigest()
    return out


def _seed(fetched: Path, dest: str, lists: tuple[str, ...]) -> None:
    """Start the fetch from the mirror's own copies: an unchanged list then costs rsync's
    quick check, no transfer."""
    for name in lists:
        staged, mine = fetched / name, Path(dest, name)
        if not staged.is_file() and mine.is_file():
            staged.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(mine, staged)
    fetched.mkdir(parents=True, exist_ok=True)


def _files_from(path: Path, names: tuple[str, ...] | list[str]) -> None:
    """A NUL-separated list: any byte but NUL may be in a name."""
    path.write_bytes(b"".join(os.fsencode(n) + b"\0" for n in names))


def transfer_options(mirror: MirrorSpec, upstream: str) -> list[str]:
    """The stages' options for a ``--files-from`` transfer: the common ones but recursion
    (only the named paths move), ``--from0`` for any name."""
    s = mirror.settings
    args = [o for o in COMMON_OPTIONS if o != "--recursive"]
    args += connection_options(s, upstream)
    if s.bwlimit:
        args.append(f"--bwlimit={s.bwlimit}")
    args += chmod_options(s)
    args += s.rsync_options
    args.append("--from0")
    return args


def _source(upstream: str) -> str:
    return upstream if upstream.endswith("/") else upstream + "/"


def filelist_attempt(
    config: Config, mirror: MirrorSpec, upstream: str, number: int, run: _RunContext,
    last_total: int | None, stages: list[StageResult], skipped: list[str], done: Done,
) -> Attempt | Fallback:
    """One attempt by the lists: its :class:`Attempt`, or why a full rsync must run instead."""
    from .run import _apply_deletions, _run_stage  # the run loop imports this module lazily

    s = mirror.settings
    work = state_dir(config, mirror)
    fetched_dir = work / "fetched"
    _seed(fetched_dir, mirror.dest, s.filelist)
    _files_from(work / "lists.from", list(s.filelist))
    dest = mirror.dest.rstrip("/") + "/"
    own_trace = trace_path(s.trace, config.settings.hostname)
    fetch = StagePlan(FILELIST_STAGE, (
        config.settings.rsync, "--times", "--no-motd", "--out-format=%i %n%L", "--stats",
        "--no-human-readable", *connection_options(s, upstream), "--from0",
        "--delete-missing-args",  # a list the upstream lacks disappears here too
        f"--files-from={work / 'lists.from'}", _source(upstream), str(fetched_dir) + "/",
    ), deletes=False)
    bound = max_delete_bound(s, last_total)
    plan = SyncPlan(mirror=mirror.name, upstream=upstream, dest=dest, stages=(),
                    max_delete=bound, no_output_timeout=s.no_output_timeout)
    run.runlog.note(f"attempt {number} from {upstream} by file list "
                    f"({', '.join(s.filelist)}; max-delete {bound})")
    result, verdict, _tally = _run_stage(plan, fetch, 0, 1, number, run, last_total, stages)
    missing = [p for p in s.filelist if not (fetched_dir / p).is_file()]
    if missing and result.exit_code in (0, 23, 24):
        stages.pop()  # not a failure of this upstream: the full rsync decides
        return ("filelist.unusable", f"{upstream} has no {missing[0]}")
    if verdict.category != "ok":
        skipped.extend(["stage1", "stage2"])
        return done(verdict, FILELIST_STAGE, result.exit_code)

    # No change: the very bytes the mirror already holds.
    ours = [Path(dest, p) for p in s.filelist]
    theirs = [fetched_dir / p for p in s.filelist]
    for mine, new, name in zip(ours, theirs, s.filelist, strict=True):
        if mine.is_file() and new.stat().st_mtime + MTIME_SLACK_SECONDS < mine.stat().st_mtime:
            stages[-1] = replace(result, files_total=last_total or 0)
            skipped.extend(["stage1", "stage2"])
            return done(Verdict("upstream", "upstream.stale",
                                f"its {name} is older than ours; syncing would roll the "
                                "mirror back"), FILELIST_STAGE, result.exit_code)
    if all(m.is_file() and m.read_bytes() == n.read_bytes() for m, n in zip(ours, theirs,
                                                                          strict=True)):
        stages[-1] = replace(result, files_total=last_total or 0,
                             size_bytes=run.last_size or 0)
        run.runlog.note("no change: the upstream's file lists are the ones the mirror has")
        event("filelist.no_change", lists=list(s.filelist))
        return done(Verdict("ok", None, "no change"), FILELIST_STAGE, result.exit_code)

    lists: list[ModuleList] = []
    for mine, new, name in zip(ours, theirs, s.filelist, strict=True):
        parsed = parse(new.read_text(encoding="utf-8", errors="surrogateescape"))
        if isinstance(parsed, Malformed):
            stages.pop()
            return ("filelist.unusable", f"{upstream}'s {name} is unusable: {parsed.reason}")
        old = None  # the mirror's copy, if it is complete: else the whole tree is compared
        if mine.is_file():
            old = files_lines(mine.read_text(encoding="utf-8", errors="surrogateescape"))
        prefix = name.rsplit("/", 1)[0] if "/" in name else ""
        lists.append(ModuleList(prefix, parsed, old))

    started = time.time()
    local, trust = look(dest, lists)
    for module in lists:  # the files the lists carry checksums of are always checked
        for sums in module.new.checksums.values():
            for path in sums:
                full = f"{module.prefix}/{path}" if module.prefix else path
                if full not in local and os.path.isfile(os.path.join(dest, full)):
                    local[full] = Local("f", os.path.getsize(os.path.join(dest, full)))
    keep = [*s.filelist, *([own_trace] if own_trace else [])]
    decided = plan_transfer(
        lists, local, local_digests=_digests(dest, lists, local), stage2=Patterns(s.stage2),
        excludes=Patterns([*s.excludes, ".~tmp~/", *(f"/{p}" for p in keep)]), keep=keep,
        trust_previous=trust)
    stages[-1] = replace(result, files_total=decided.files_total + len(s.filelist),
                         size_bytes=decided.bytes_total)
    _note_plan(run, decided, time.time() - started, len(local),
               "what the lists dropped" if trust else "the whole tree")
    return _transfer(config, mirror, upstream, number, run, decided, plan, stages, skipped,
                     done, theirs, ours, _run_stage, _apply_deletions)


def _note_plan(run: _RunContext, decided: Plan, seconds: float, local_count: int,
               looked: str) -> None:
    run.runlog.note(
        f"file lists: {decided.files_total} entries ({decided.bytes_total} bytes) upstream; "
        f"{local_count} entries looked at here ({looked}; {seconds:.1f}s); to transfer "
        f"{decided.files_to_transfer} files ({decided.bytes_to_transfer} bytes): "
        f"{decided.changed} changed in the list, {decided.missing} missing here, "
        f"{decided.differing} differing here, {decided.partners} hard-link partners; "
        f"{len(decided.candidates)} no longer listed")
    event("filelist.plan", files_total=decided.files_total, bytes_total=decided.bytes_total,
          files_to_transfer=decided.files_to_transfer,
          bytes_to_transfer=decided.bytes_to_transfer, changed=decided.changed,
          missing=decided.missing, differing=decided.differing, partners=decided.partners,
          candidates=len(decided.candidates), seconds=round(seconds, 3))


def _weights(decided: Plan) -> tuple[float, float]:
    """Each stage's share of the bar, from the bytes and names it will move: known before it
    starts, so the bar does not guess."""
    first = decided.bytes_to_transfer - decided.index_bytes + len(decided.content)
    second = decided.index_bytes + len(decided.indexes)
    if first + second <= 0:
        return (0.5, 0.5)
    raw = (max(first / (first + second), 0.05), max(second / (first + second), 0.05))
    return (raw[0] / sum(raw), raw[1] / sum(raw))


def _transfer(
    config: Config, mirror: MirrorSpec, upstream: str, number: int, run: _RunContext,
    decided: Plan, plan: SyncPlan, stages: list[StageResult], skipped: list[str], done: Done,
    theirs: list[Path], ours: list[Path], run_stage: Callable[..., tuple[StageResult, Verdict,
                                                                          StageTally]],
    apply_deletions: Callable[..., Verdict],
) -> Attempt:
    s = mirror.settings
    work = state_dir(config, mirror)
    source = _source(upstream)
    options = transfer_options(mirror, upstream)
    planned = []
    for name, paths, extra in (("stage1", decided.content, []),
                               ("stage2", decided.indexes, ["--delay-updates"])):
        listing = work / f"{name}.from"
        _files_from(listing, paths)
        planned.append(StagePlan(name, (config.settings.rsync, *options, *extra,
                                        f"--files-from={listing}", source, plan.dest),
                                 deletes=False, files_from=True))
    plan = replace(plan, stages=tuple(planned))
    saved_weights, run.weights = run.weights, _weights(decided)
    merged = StageTally(listing=True, candidate_limit=plan.max_delete + 1)
    clean = True
    failed = 0
    last: StageResult | None = None
    try:
        for index, stage in enumerate(plan.stages):
            if run.stop.is_set():
                from ..stop import stopped_by
                skipped.extend(x.name for x in plan.stages[index:])
                return done(Verdict("interrupted", "run.interrupted", stopped_by(run.stop)),
                            stage.name, None)
            last, verdict, tally = run_stage(plan, stage, index, len(plan.stages), number,
                                             run, decided.files_total, stages)
            clean = clean and last.exit_code == 0
            failed += last.files_failed
            merged.error_paths += tally.error_paths
            merged.error_paths_complete &= tally.error_paths_complete
            merged.unattributed_errors += tally.unattributed_errors
            if verdict.category != "ok":
                rest = [x.name for x in plan.stages[index + 1:]]
                skipped.extend(rest)
                return done(verdict, stage.name, last.exit_code)
    finally:
        run.weights = saved_weights
    assert last is not None
    merged.candidates = list(decided.candidates)
    merged.candidates_total = len(decided.candidates)
    # The deletion planner trusts the run as a whole: every stage's failures, the whole tree.
    whole = replace(last, files_failed=failed, files_total=decided.files_total)
    verdict = apply_deletions(plan, whole, merged, run, decided.files_total)
    if verdict.category != "ok":
        return done(verdict, "stage2", last.exit_code)
    if not clean:
        run.runlog.note("the transfer did not end cleanly: the mirror keeps its previous file "
                        "lists, so the next run compares against them and retries")
        return done(verdict, "stage2", last.exit_code)
    # The lists last, the update signal (the first list) last of all.
    for new, mine in reversed(list(zip(theirs, ours, strict=True))):
        temporary = mine.with_name(f".{mine.name}.mirrorkeeper-new")
        try:
            mine.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(new, temporary)
            os.replace(temporary, mine)
        except OSError as exc:
            problem = f"cannot put {mine.name} in place: {exc.strerror or exc}"
            run.runlog.note(problem)
            return done(Verdict("local", "local.not_writable", problem), "stage2", None)
    run.runlog.note(f"{', '.join(s.filelist)} put in place, last of all")
    return done(verdict, "stage2", last.exit_code)
