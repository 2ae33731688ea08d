"""Every finding code, its default severity and what it means — the one list to read.

Codes are stable: alert plugins, rules and dashboards match on them. Add, never rename.
"""

from __future__ import annotations

from dataclasses import dataclass

from .findings import Severity as S


@dataclass(frozen=True)
class Code:
    severity: S
    meaning: str
    #: Rules may not lower these: the staleness watchdog, a full disk, a tripped guard.
    protected: bool = False


CODES: dict[str, Code] = {
    # The upstream side. ERROR when every upstream failed; WARNING when a fallback worked.
    "upstream.unreachable": Code(S.ERROR, "connection refused, no route, or name not resolved"),
    "upstream.timeout": Code(S.ERROR, "the upstream stopped sending (rsync timeout or our "
                                      "no-output watchdog)"),
    "upstream.module_missing": Code(S.ERROR, "the rsync daemon has no such module"),
    "upstream.auth": Code(S.CRITICAL, "the rsync daemon refused our credentials"),
    "upstream.protocol": Code(S.ERROR, "the connection broke or the protocol failed"),
    "upstream.stale": Code(S.WARNING, "an upstream's update signal is older than ours; it was "
                                      "skipped"),
    "upstream.empty": Code(S.WARNING, "an upstream served far fewer files than the mirror has; "
                                      "it was skipped"),
    "upstream.max_connections": Code(S.ERROR, "the rsync daemon refused the connection "
                                              "(`@ERROR: max connections (N) reached`) through "
                                              "every retry; info when a retry got through"),
    "upstream.fallback": Code(S.WARNING, "an upstream failed and another one worked"),
    "upstream.busy": Code(S.ERROR, "the upstream stayed mid-update (a foreign "
                                   "Archive-Update-in-Progress marker) through every retry"),
    # The profile.
    "profile.signal_missing": Code(S.WARNING, "the upstream lacks the profile's update-signal "
                                              "file but has content: synced without it"),
    "profile.signal_unparsable": Code(S.WARNING, "the update-signal file's content is not of "
                                                 "the profile's signal_kind; its mtime stood in"),
    # The file-list method.
    "filelist.full": Code(S.INFO, "a file-list mirror ran a full two-stage rsync as planned: "
                                  "its first sync, or full_every was due"),
    "filelist.unusable": Code(S.WARNING, "the upstream's file list was missing, incomplete "
                                         "or malformed: a full two-stage rsync ran instead"),
    # The transfer.
    "transfer.partial": Code(S.INFO, "a few files could not be transferred (failure ratio "
                                     "within the info bound)"),
    "transfer.failure_ratio": Code(S.ERROR, "a large share of the files could not be "
                                            "transferred; severity grows with the ratio"),
    "transfer.vanished": Code(S.INFO, "files vanished upstream during the transfer"),
    "transfer.deletions_skipped": Code(S.WARNING, "files the upstream dropped could not be "
                                                  "deleted safely this run (upstream errors, "
                                                  "failure ratio); critical once it persists "
                                                  "for deletions_skipped_critical_after runs",
                                       protected=True),
    "local.delete_failed": Code(S.WARNING, "files the upstream dropped could not be deleted "
                                           "here (permissions, a file in the way)"),
    # This machine.
    "local.disk_full": Code(S.CRITICAL, "no space (or quota) left on the mirror's filesystem",
                            protected=True),
    "local.not_writable": Code(S.CRITICAL, "the destination cannot be created or written",
                               protected=True),
    "local.rsync_missing": Code(S.CRITICAL, "the rsync binary cannot be run", protected=True),
    # The configuration: a human must fix a file before the mirror can sync again.
    "config.profile_invalid": Code(S.ERROR, "the mirror's profile file (or one it extends) "
                                            "does not validate: the mirror is not synced, the "
                                            "other mirrors are"),
    "config.password_file": Code(S.CRITICAL, "rsync refused the password_file (others may read "
                                             "it, root does not own it, or it is missing)",
                                 protected=True),
    # Guards that kept the mirror intact.
    "guard.mass_delete": Code(S.CRITICAL, "stage 2 would delete more than the bound allows; "
                                          "deletions stopped", protected=True),
    "guard.upstream_stale": Code(S.CRITICAL, "every usable upstream is older than the mirror; "
                                             "syncing would roll it back", protected=True),
    "guard.upstream_empty": Code(S.CRITICAL, "every usable upstream is empty or truncated; "
                                             "stage 2 would wipe the mirror", protected=True),
    # Snapshots (ZFS / btrfs; docs/snapshots.md).
    "snapshot.failed": Code(S.ERROR, "a snapshot could not be made, published, pruned or "
                                     "rolled back to; the sync itself stands"),
    "snapshot.last_good": Code(S.WARNING, "a guard tripped after the run wrote into the "
                                          "mirror; the finding names the snapshot holding the "
                                          "last good state and the rollback command"),
    "snapshot.rolled_back": Code(S.INFO, "the mirror was returned to a snapshot (by "
                                         "`mirrorkeeper rollback` or auto_rollback)"),
    # Hub mode: the mirrors this one pushes.
    "downstream.unreachable": Code(S.WARNING, "a downstream mirror could not be pushed (ssh "
                                              "failed or timed out); its own schedule still "
                                              "syncs it"),
    # The mirror as a whole.
    "mirror.stale": Code(S.CRITICAL, "no successful sync for longer than stale_after",
                         protected=True),
    # Fleet mode: a sync host stopped beating in the shared store.
    "host.down": Code(S.CRITICAL, "a fleet host's daemon has not beaten for longer than "
                                  "[fleet] down_after; its mirrors are not synced",
                      protected=True),
    # Fleet mode: this host cannot reach the fleet store. Sent by the host itself straight
    # through the plugins (the store it would be kept in is the thing that is down); the
    # host's runs go on and are spooled. Resolved when it is back, with the runs replayed.
    "store.unreachable": Code(S.CRITICAL, "a fleet host cannot reach the fleet store; its "
                                          "runs are spooled on the host until it is back"),
    # The run itself.
    "run.interrupted": Code(S.INFO, "the run was stopped by a signal"),
    "run.budget": Code(S.ERROR, "the run's time budget ran out before a sync succeeded"),
    # Fail closed: what we do not understand is reported, never ignored.
    "internal.error": Code(S.ERROR, "an exit status or situation Mirrorkeeper does not know"),
    "internal.unparsed_output": Code(S.WARNING, "rsync printed lines Mirrorkeeper does not "
                                                "understand"),
    # A run that copied nothing must never pass for fresh: every run will do the same until
    # the config (or a wrapper set as `rsync`) changes, so retrying cannot help.
    "internal.dry_run": Code(S.CRITICAL, "rsync made a dry run (or only wrote a batch file): "
                                         "nothing was copied; the run is not a success",
                             protected=True),
    "internal.output_mismatch": Code(S.ERROR, "rsync exited 0 but its stats block is missing "
                                              "or disagrees with the files it itemized"),
}


def default_severity(code: str) -> S:
    return CODES[code].severity if code in CODES else S.ERROR
