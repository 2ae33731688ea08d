"""Hub mode: which downstream mirrors to push after a run, and with which words. Pure.

A downstream is one line of ``runmirrors``' mirror list, kept in its syntax so an existing
``runmirrors.mirror`` moves over as it is::

    TYPE NAME HOST USER [-ssh options...]     (staged eu.puccini puccini.debian.org archvsync)
    TYPE NAME ssh+ftpsync://USER@HOST[/ARCHIVE]

``TYPE`` is ``all`` (one ``sync:all``, fire and forget), ``staged`` (``sync:stage1`` to every
staged downstream, wait until all have finished it or ``push_delay`` passed, then
``sync:stage2``) or ``mhop`` (staged, and told ``sync:mhop`` so it first pushes its own
downstreams' stage 1 before it answers). What is pushed depends on what this run was
(runmirrors' ``-k``): ``all`` after a full run, ``stage2`` after a stage-2 push (stage 1 went
out with the mhop push before), ``mhop`` after a stage-1 push that said ``sync:mhop``.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from .push import push_words

TYPES = ("all", "staged", "mhop")
_URL = re.compile(r"^([a-z.+]+)://(?:([^@/]+)@)?([^/]+)(/.*)?$")


@dataclass(frozen=True)
class Downstream:
    kind: str  #: all, staged or mhop
    name: str
    host: str
    user: str
    #: Extra ssh options of this downstream (``-p 2222``), as words.
    ssh_options: tuple[str, ...] = ()
    #: The archive to name in ``sync:archive:`` (runmirrors' ``PUSHARCHIVE``).
    archive: str = ""


def parse_downstream(line: str) -> Downstream | str:
    """The downstream of one mirror-list line, or why the line is not one."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        return f"cannot be split into words: {exc}"
    if len(words) < 3:
        return "needs TYPE NAME HOST USER (or TYPE NAME ssh+ftpsync://USER@HOST)"
    kind, name, host = words[0], words[1], words[2]
    if kind not in TYPES:
        return f"`{kind}` is not a push type: use all, staged or mhop"
    url = _URL.match(host)
    if url:
        scheme, user, hostname, path = url.groups()
        if scheme != "ssh+ftpsync":
            return f"`{scheme}://` is not a push URL: use ssh+ftpsync://USER@HOST[/ARCHIVE]"
        if not user:
            return "the ssh+ftpsync:// URL needs a user: ssh+ftpsync://USER@HOST"
        return Downstream(kind, name, hostname, user, tuple(words[3:]),
                          (path or "").lstrip("/"))
    if len(words) < 4:
        return "needs a user after the host: TYPE NAME HOST USER"
    extra = tuple(words[4:])
    if extra and not extra[0].startswith("-"):
        if extra[0] in ("1", "2") and len(extra) <= 2:  # runmirrors' old `PROTO KEYFILE`
            return "the `PROTO KEYFILE` form is not supported: use `-i KEYFILE` instead"
        return f"`{extra[0]}`: extra ssh options start with '-'"
    return Downstream(kind, name, host, words[3], extra)


@dataclass(frozen=True)
class PushStep:
    """The words to send one downstream, in order; staged ones wait for their siblings'
    stage 1 between the first and the second word list."""

    downstream: Downstream
    first: str
    #: None: nothing after the wait (``all`` pushes, and mhop pushes that end at stage 1).
    second: str | None
    #: Whether this downstream's first push is a stage 1 that its staged siblings wait for.
    staged: bool


def plan_pushes(downstreams: list[Downstream], kind: str, archive: str = "") -> list[PushStep]:
    """What to send each downstream after a run of ``kind`` (``all``, ``stage2`` or ``mhop``),
    as runmirrors' ``signal`` does (called from ftpsync, ``-f``)."""
    steps: list[PushStep] = []
    for down in downstreams:
        if kind == "mhop" and down.kind == "all":
            continue  # an mhop push only prepares the staged tree below
        target = down.archive or archive
        mhop = kind == "mhop" and down.kind == "mhop"
        if down.kind == "all":
            steps.append(PushStep(down, push_words("all", archive=target), None, False))
        elif kind == "stage2":  # stage 1 went out with the mhop push before
            steps.append(PushStep(down, push_words("stage2", archive=target), None, False))
        else:
            second = None if kind == "mhop" else push_words("stage2", archive=target)
            steps.append(PushStep(down, push_words("stage1", archive=target, mhop=mhop),
                                  second, True))
    return steps


def ssh_argv(down: Downstream, words: str, *, key: str | None, ssh: str = "ssh",
             connect_timeout: int = 45) -> list[str]:
    """The ssh command of one push: batch mode (no prompt ever), runmirrors' timeouts, the
    push key, then the downstream's own options. Host keys are checked (runmirrors turns
    that off by default; a downstream that needs it says so in its own options)."""
    argv = [ssh, "-n", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={connect_timeout}",
            "-o", "ServerAliveInterval=45", "-o", "PasswordAuthentication=no",
            "-l", down.user]
    if key:
        argv += ["-i", key]
    argv += [*down.ssh_options, "--", down.host, words]
    return argv
