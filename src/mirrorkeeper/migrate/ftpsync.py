"""``ftpsync.conf`` (shell variables) to a ``[mirrors.NAME]`` table, and ftpsync's last trace to
a run in the history, so the mirror's age goes on from ftpsync's last sync.

The file is never run: plain ``NAME=value`` assignments are read with shell quoting; a value
that needs the shell (``$VAR``, `` `cmd` ``, ``$(cmd)``) is not guessed but listed as not
mapped, with the fix.
"""

from __future__ import annotations

import email.utils
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from ..config.options import check_rsync_options
from ..plan.downstreams import parse_downstream
from .result import Imported

#: ftpsync's defaults (20180513) for the settings an import must know.
DEFAULT_TO = "/srv/mirrors/debian/"
DEFAULT_PATH = "debian"
_ASSIGNMENT = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)
_EXPANSION = re.compile(r"[$`]")

#: Settings with nothing to carry over, and why.
NOT_MAPPED = {
    "MAILTO": "alerts go to [[alerts.plugins]] (the e-mail plugin takes the addresses); "
              "see docs/alerting.md",
    "HUB": "false: no downstream mirrors to push",
    "LOGDIR": "[global] log_dir holds every mirror's logs (one log per run)",
    "LOG": "[global] log_dir holds every mirror's logs (one log per run)",
    "LOGROTATE": "run logs are kept by count and age: [global] keep_run_logs, "
                 "keep_run_logs_days",
    "ERRORSONLY": "alerts are findings with severities; plugins choose min_severity",
    "FULLLOGS": "every run keeps its full rsync log (`mirrorkeeper logs NAME`)",
    "LOCKTIMEOUT": "Mirrorkeeper's lock is a kernel flock that a crash cannot leave behind",
    "TRACEHOST": "the trace's `Running on host` is [global] hostname",
    "RSYNC_OPTIONS": "the profile's options stand (ftpsync's man page: better don't change "
                     "them); add allowed extras with rsync_options",
    "RSYNC_OPTIONS1": "stage 1 is the profile's stage2 patterns held back; override stage2 and "
                      "stage1_include if you must",
    "RSYNC_OPTIONS2": "stage 2 is Mirrorkeeper's own (delayed updates, guarded deletions, "
                      "max-delete bound: max_delete_min, max_delete_fraction)",
    "RSYNC_TRANSPORT": "Mirrorkeeper talks to rsync daemons (rsync://, host::module) directly",
    "RSYNC_SSL": "rsync over TLS is not supported; use a plain rsync:// upstream",
    "RSYNC_SSL_PORT": "rsync over TLS is not supported",
    "RSYNC_SSL_CAPATH": "rsync over TLS is not supported",
    "RSYNC_SSL_METHOD": "rsync over TLS is not supported",
    "RSYNC_PROXY": "an HTTP CONNECT proxy for rsync is not supported",
    "RSYNC_PASSWORD": "a secret stays out of the config: write it to a file of mode 0600 and "
                      "set password_file",
    "ARCH_INCLUDE": "an include-only architecture list cannot be expressed with excludes; list "
                    "the architectures to leave out (as ARCH_EXCLUDE) instead",
    "CALLBACKUSER": "Mirrorkeeper does not call back after a push",
    "CALLBACKHOST": "Mirrorkeeper does not call back after a push",
    "CALLBACKKEY": "Mirrorkeeper does not call back after a push",
    "BASEDIR": "no install directory: Mirrorkeeper is a Python package",
    "PROGRAM": "log lines name the mirror and run themselves",
}
for _n in range(1, 6):
    NOT_MAPPED[f"HOOK{_n}"] = ("no hooks: alert plugins get every finding, `mirrorkeeper "
                               "history --json` every run; run follow-up work from a plugin")


def parse_assignments(text: str) -> tuple[dict[str, str], list[str], list[str]]:
    """(variables with plain values, variables whose values need the shell, other shell code)
    of a shell config, in file order. Nothing is executed."""
    plain: dict[str, str] = {}
    shell: list[str] = []
    other: list[str] = []
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        raw = [(token, lexer.lineno) for token in lexer]
    except ValueError as exc:  # an unclosed quote: say so instead of guessing
        return plain, shell, [f"cannot be read as shell words: {exc}"]
    for token, _line in raw:
        if token == "export":
            continue
        found = _ASSIGNMENT.match(token)
        if not found:
            other.append(token)
            continue
        name, value = found.groups()
        # shlex keeps `$` and backquotes as they are: a value holding one needs the shell (a
        # single-quoted `$` is literal to the shell, but rare enough to ask the admin about).
        if _EXPANSION.search(value):
            shell.append(name)
            plain.pop(name, None)
        else:
            plain[name] = value
            if name in shell:
                shell.remove(name)
    return plain, shell, other


def _words(value: str) -> list[str]:
    try:
        return shlex.split(value)
    except ValueError:
        return value.split()


def _extra(extra: str, imported: Imported) -> tuple[int | None, list[str]]:
    """RSYNC_EXTRA: ``--port=N`` goes into the URL, allowed options into rsync_options."""
    port: int | None = None
    options: list[str] = []
    words = _words(extra)
    index = 0
    while index < len(words):
        word = words[index]
        if word.startswith("--port="):
            port = int(word.split("=", 1)[1]) if word.split("=", 1)[1].isdigit() else None
        elif word == "--port" and index + 1 < len(words) and words[index + 1].isdigit():
            index += 1
            port = int(words[index])
        else:
            problems = check_rsync_options([word])
            if problems:
                imported.skip(f"RSYNC_EXTRA {word}",
                              f"{problems[0][1]}; {problems[0][2]}".strip("; "))
            else:
                options.append(word)
        index += 1
    return port, options


def _excludes(value: str) -> list[str]:
    """EXCLUDE's ``--exclude=X`` / ``--exclude X`` words as patterns."""
    words, patterns = _words(value), []
    index = 0
    while index < len(words):
        word = words[index]
        if word.startswith("--exclude="):
            patterns.append(word.split("=", 1)[1])
        elif word == "--exclude" and index + 1 < len(words):
            index += 1
            patterns.append(words[index])
        index += 1
    return patterns


def arch_excludes(arches: list[str]) -> list[str]:
    """ftpsync's ``ARCH_EXCLUDE`` filter rules as exclude patterns (its ``arch_imexclude``)."""
    patterns: list[str] = []
    for arch in arches:
        if arch == "source":
            patterns += ["/dists/**/source/", "/pool/**/*.tar.*", "/pool/**/*.diff.*",
                         "/pool/**/*.dsc"]
        else:
            patterns += [f"/dists/**/binary-{arch}/", f"/dists/**/installer-{arch}/",
                         f"/dists/**/Contents-{arch}.gz", f"/dists/**/Contents-udeb-{arch}.gz",
                         f"/dists/**/Contents-{arch}.diff/", f"/indices/**/arch-{arch}.files",
                         f"/indices/**/arch-{arch}.list.gz", f"/pool/**/*_{arch}.deb",
                         f"/pool/**/*_{arch}.udeb", f"/pool/**/*_{arch}.changes"]
    return patterns


def archive_of(path: Path) -> str:
    """``ftpsync-NAME.conf`` is the config of ``sync:archive:NAME``; ``ftpsync.conf`` of the
    main archive (empty)."""
    stem = path.name.removesuffix(".conf")
    return stem[len("ftpsync-"):] if stem.startswith("ftpsync-") else ""


def from_ftpsync(text: str, *, name: str, profile: str) -> tuple[Imported, str | None]:
    """The mirror table for an ftpsync config; also the MIRRORNAME it names (None: not a
    plain value), which names its trace file."""
    imported = Imported()
    plain, shell, other = parse_assignments(text)
    table: dict[str, object] = {"profile": profile}
    for key in shell:
        imported.skip(key, "its value needs the shell ($VAR, `cmd`): not evaluated; set the "
                           "matching Mirrorkeeper key by hand")
    if other:
        imported.skip("shell code", f"{len(other)} word(s) that are not plain assignments "
                      f"(e.g. {other[0][:40]!r}) are not run")
    to = plain.get("TO", DEFAULT_TO if "TO" not in shell else None)
    if to:
        table["dest"] = to
        imported.map("TO" if "TO" in plain else "TO (ftpsync's default)", f"dest = {to!r}")
    else:
        table["dest"] = DEFAULT_TO
        imported.skip("TO", f"not a plain value; dest set to ftpsync's default {DEFAULT_TO}: "
                            "check it")
    port, options = _extra(plain.get("RSYNC_EXTRA", ""), imported)
    host, path, user = (plain.get("RSYNC_HOST", ""), plain.get("RSYNC_PATH", DEFAULT_PATH),
                        plain.get("RSYNC_USER", ""))
    source = plain.get("RSYNC_SOURCE", "")
    if source:
        table["upstreams"] = [source]
        imported.map("RSYNC_SOURCE", f"upstreams = [{source!r}]")
    elif host:
        url = (f"rsync://{user + '@' if user else ''}{host}{f':{port}' if port else ''}"
               f"/{path.strip('/')}/")
        table["upstreams"] = [url]
        imported.map("RSYNC_HOST, RSYNC_PATH, RSYNC_USER, RSYNC_EXTRA --port",
                     f"upstreams = [{url!r}]")
    elif "RSYNC_HOST" in plain:
        imported.skip("RSYNC_HOST", f"empty: the `{profile}` profile's upstreams stand "
                                    "(`mirrorkeeper profiles " + profile + "`)")
    if options:
        table["rsync_options"] = options
        imported.map("RSYNC_EXTRA", f"rsync_options = {options!r}")
    bw = plain.get("RSYNC_BW", "")
    if bw.isdigit() and int(bw) > 0:
        table["bwlimit"] = int(bw)
        imported.map("RSYNC_BW", f"bwlimit = {bw} (KiB/s)")
    elif bw:
        imported.skip("RSYNC_BW", "0 or not a number: no limit")
    excludes = _excludes(plain.get("EXCLUDE", ""))
    arch = _words(plain.get("ARCH_EXCLUDE", ""))
    excludes += arch_excludes(arch)
    if excludes:
        table["excludes"] = excludes
        if "EXCLUDE" in plain:
            imported.map("EXCLUDE", "excludes")
        if arch:
            imported.map("ARCH_EXCLUDE", "excludes (ftpsync's per-architecture rules); files "
                                         "of excluded architectures already mirrored stay: "
                                         "Mirrorkeeper never deletes excluded files")
    for key, target in (("INFO_MAINTAINER", "trace_maintainer"), ("INFO_SPONSOR", "trace_sponsor"),
                        ("INFO_COUNTRY", "trace_country"), ("INFO_LOCATION", "trace_location"),
                        ("INFO_THROUGHPUT", "trace_throughput")):
        if plain.get(key):
            table[target] = plain[key]
            imported.map(key, target)
    if plain.get("UIPSLEEP", "").isdigit():
        table["upstream_busy_wait"] = f"{plain['UIPSLEEP']}s"
        imported.map("UIPSLEEP", "upstream_busy_wait")
    if plain.get("UIPRETRIES", "").isdigit():
        table["upstream_busy_retries"] = int(plain["UIPRETRIES"])
        imported.map("UIPRETRIES", "upstream_busy_retries")
    if plain.get("MIRRORNAME"):
        imported.map("MIRRORNAME", f"[global] hostname = {plain['MIRRORNAME']!r} (names the "
                                   "trace and marker files; set it there)")
    if plain.get("RSYNC"):
        imported.map("RSYNC", f"[global] rsync = {plain['RSYNC']!r} (set it there)")
    handled = {"TO", "RSYNC_EXTRA", "RSYNC_HOST", "RSYNC_PATH", "RSYNC_USER", "RSYNC_SOURCE",
               "RSYNC_BW", "EXCLUDE", "ARCH_EXCLUDE", "INFO_MAINTAINER", "INFO_SPONSOR",
               "INFO_COUNTRY", "INFO_LOCATION", "INFO_THROUGHPUT", "UIPSLEEP", "UIPRETRIES",
               "MIRRORNAME", "RSYNC"}
    for key, value in plain.items():
        if key in handled:
            continue
        if key == "HUB" and value == "true":
            continue  # see from_runmirrors
        if key in NOT_MAPPED:
            if value or key in ("HUB",):
                imported.skip(key, NOT_MAPPED[key])
        else:
            imported.skip(key, "not an ftpsync setting Mirrorkeeper knows")
    if "RSYNC_PATH" in plain and (source or not host):
        imported.skip("RSYNC_PATH", "only used with RSYNC_HOST")
    imported.mirrors[name] = table
    mirrorname = plain.get("MIRRORNAME") if "MIRRORNAME" not in shell else None
    return imported, mirrorname


def from_runmirrors(imported: Imported, name: str, conf: str | None, mirrors: str | None,
                    where: str) -> None:
    """ftpsync's ``HUB=true``: runmirrors' mirror list becomes ``downstreams`` (its lines are
    kept as they are), its KEYFILE ``push_key`` and PUSHDELAY ``push_delay``."""
    table = imported.mirrors[name]
    if mirrors is None:
        imported.skip("HUB", f"true, but no runmirrors mirror list next to it ({where}); "
                             "list the downstreams in downstreams")
        return
    lines: list[str] = []
    seen: set[str] = set()
    for raw in mirrors.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.split()[0] == "DELAY":
            imported.skip(f"runmirrors {line}", "no pauses between pushes: staged "
                                                "downstreams wait for each other instead")
            continue
        down = parse_downstream(line)
        if isinstance(down, str):
            imported.skip(f"runmirrors {line}", down)
        elif down.name in seen:
            imported.skip(f"runmirrors {line}", f"a second line for `{down.name}`: the first "
                                                "one is kept")
        else:
            seen.add(down.name)
            lines.append(line)
    if lines:
        table["downstreams"] = lines
        imported.map("HUB, runmirrors mirror list", f"downstreams ({len(lines)} lines)")
    plain, _shell, _other = parse_assignments(conf or "")
    key = plain.get("KEYFILE", ".ssh/pushmirror")
    if key.startswith("/"):
        table["push_key"] = key
        imported.map("runmirrors KEYFILE", f"push_key = {key!r}")
    else:
        imported.skip("runmirrors KEYFILE", f"`{key}` is relative to the ftpsync user's home: "
                                            "set push_key to its absolute path")
    if plain.get("PUSHDELAY", "").isdigit():
        table["push_delay"] = f"{plain['PUSHDELAY']}s"
        imported.map("runmirrors PUSHDELAY", "push_delay")
    if plain.get("SSH_OPTS"):
        imported.skip("runmirrors SSH_OPTS", "each downstream line takes its own ssh options; "
                                             "host keys stay checked (known_hosts)")


@dataclass(frozen=True)
class PastRun:
    """ftpsync's last successful sync, as its trace tells it."""

    started_at: float
    finished_at: float
    upstream: str
    bytes_received: int


def _when(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def past_run(text: str) -> PastRun | None:
    """The run an ftpsync trace records (None: not a trace with a ``Date``)."""
    fields: dict[str, str] = {}
    for line in text.splitlines()[1:]:
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    finished = _when(fields.get("Date"))
    if finished is None:
        return None
    started = _when(fields.get("Date-Started")) or finished
    received = fields.get("Total bytes received in rsync", "0")
    return PastRun(started_at=min(started, finished), finished_at=finished,
                   upstream=fields.get("Upstream-mirror", "unknown"),
                   bytes_received=int(received) if received.isdigit() else 0)
