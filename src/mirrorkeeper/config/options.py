"""Which extra rsync options a mirror may pass: an allow-list (pure; no I/O).

A deny-list let through every option nobody thought of: ``-nv`` (a dry run recorded as a
success), ``-essh``, ``--remove-sent-files``, ``-M--log-file=...``. So only the options below are
accepted. An option is *safe for a pulling mirror* when it cannot stop files being copied,
cannot write outside the destination, cannot delete, cannot change the output the parser
reads, cannot run a remote shell or write batch or log files, and cannot make a dry run.

Each list item is one argv word, exactly as rsync will see it. Combined short options are split
before checking (``-zS`` is ``-z`` and ``-S``; ``-essh`` is ``-e`` with the value ``ssh``). A
value goes in the same word: ``--port=873``, ``-B8192``. A word with a space in it, or a value in
a word of its own, is refused with the form to write instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .problems import did_you_mean

#: Why a value is refused, or None when it is fine.
ValueCheck = Callable[[str], str | None]


def _non_empty(value: str) -> str | None:
    return "needs a value" if not value else None


def _int_between(low: int, high: int, why: str = "") -> ValueCheck:
    def check(value: str) -> str | None:
        try:
            number = int(value)
        except ValueError:
            return f"takes a whole number, not `{value}`"
        if not low <= number <= high:
            return f"must be between {low} and {high}" + (f": {why}" if why else "")
        return None

    return check


def _partial_dir(value: str) -> str | None:
    """--partial-dir: one hidden name, made in each file's own directory. rsync excludes a
    relative partial-dir from the transfer and from deletion *wherever the name occurs*, so
    ``--partial-dir=pool`` would skip every ``pool/`` upstream; an absolute path or ``..``
    would write outside the mirror; ``.`` would leave half-copied files under their real
    names. A single name starting with a dot (``.rsync-partial``) avoids all three."""
    if "/" in value or not value.startswith(".") or value in (".", ".."):
        return ("must be one hidden directory name such as .rsync-partial: rsync excludes "
                "that name everywhere, and a path could lead outside the mirror")
    return None


@dataclass(frozen=True)
class Allowed:
    """An option that may be passed, and how its value (if it takes one) is checked."""

    takes_value: bool = False
    check: ValueCheck | None = None


_FLAG = Allowed()
_VALUE = Allowed(True, _non_empty)


def _allow(names: str, how: Allowed = _FLAG) -> dict[str, Allowed]:
    return {name: how for name in names.split()}


#: The allow-list, by the name as written (long names, their aliases, short letters).
ALLOWED: dict[str, Allowed] = {
    # Already set on every stage (plan/argv.py COMMON_OPTIONS): repeating them changes nothing.
    **_allow("--recursive -r --links -l --perms -p --times -t --hard-links -H --safe-links "
             "--numeric-ids --no-motd --no-inc-recursive --no-i-r --no-human-readable --no-h"),
    # How rsync decides a file is up to date: these are stricter than the default, never looser.
    **_allow("--checksum -c --ignore-times -I"),
    # A window of 1 s suits filesystems with coarse timestamps; wider would skip files that
    # changed upstream but kept their size. -1 compares nanoseconds.
    **_allow("--modify-window -@", Allowed(True, _int_between(
        -1, 1, "a wider window skips files that changed but kept their size"))),
    # How bytes travel: compression, checksums, the delta algorithm, memory. What is copied,
    # and where it lands, is unchanged.
    **_allow("--compress -z --no-compress --no-z --whole-file -W --no-whole-file --no-W "
             "--fuzzy -y"),
    **_allow("--compress-choice --zc --compress-level --zl --compress-threads --zt "
             "--skip-compress --checksum-choice --cc --block-size -B --max-alloc", _VALUE),
    # How files are written: still complete before they appear under their names.
    **_allow("--sparse -S --preallocate --fsync"),
    **_allow("--partial-dir", Allowed(True, _partial_dir)),
    # Symlinks the sender follows: the result lands as plain files and directories in the
    # mirror; the receiver never follows a link (rsync turns these off on its side).
    **_allow("--copy-links -L --copy-unsafe-links --copy-dirlinks -k"),
    # Metadata only: the content copied is the same. The --no-* of options Mirrorkeeper does
    # not set are no-ops.
    **_allow("--no-perms --no-p --executability -E --omit-dir-times -O --omit-link-times -J "
             "--no-owner --no-o --no-group --no-g --no-devices --no-specials --no-D --drop-D"),
    **_allow("--chmod", _VALUE),
    # How we reach the daemon. The upstream itself, credentials and timeouts are mirror keys.
    **_allow("--ipv4 -4 --ipv6 -6"),
    **_allow("--address --sockopts", _VALUE),
    **_allow("--port", Allowed(True, _int_between(1, 65535))),
    # Working around an upstream's rsync; protocols before rsync 3.0's (30) are not tested
    # with Mirrorkeeper's options.
    **_allow("--protocol", Allowed(True, _int_between(
        30, 99, "older protocols are not tested with Mirrorkeeper's options"))),
}

_KEYS_HINT = ("use the matching mirror key (excludes, stage2, stage1_include, bwlimit, timeout, "
              "contimeout, password_file, max_delete_*) or remove it")
_INPLACE = ("writes into the file clients download while it changes, which stage 2's "
            "--delay-updates refuses")


def _refuse(names: str, why: str, hint: str = "") -> dict[str, tuple[str, str]]:
    return {name: (why, hint) for name in names.split()}


#: Options refused with a reason of their own: the ones an admin plausibly tries. Anything on
#: neither list is refused as not known to be safe.
REFUSED: dict[str, tuple[str, str]] = {
    # Nothing would be copied, but rsync exits 0.
    **_refuse("--dry-run -n", "makes a dry run: nothing would be copied"),
    **_refuse("--list-only", "only lists files: nothing would be copied"),
    **_refuse("--version -V --help", "prints and exits: nothing would be copied"),
    **_refuse("--only-write-batch", "writes a batch file and copies nothing"),
    **_refuse("--write-batch", "writes batch files"),
    **_refuse("--read-batch", "replays a batch file instead of reading the upstream"),
    # The parser reads the output of COMMON_OPTIONS and nothing else.
    **_refuse("--verbose -v --no-verbose --no-v --quiet -q --itemize-changes -i "
              "--no-itemize-changes --no-i --out-format --log-format --info --debug --stderr "
              "--human-readable -h --progress -P --stats --8-bit-output -8 --outbuf",
              "changes the output the parser reads"),
    **_refuse("--log-file --log-file-format",
              "writes a log file of its own; Mirrorkeeper keeps the run log",
              "see `log_dir` and `mirrorkeeper logs`"),
    # Mirrorkeeper talks to rsync daemons (and local directories) only.
    **_refuse("--rsh -e", "runs a remote shell", "use an rsync:// upstream"),
    **_refuse("--rsync-path", "names a program to run on the remote side"),
    **_refuse("--remote-option -M", "passes options to the remote side"),
    **_refuse("--early-input", "sends a local file to the daemon"),
    **_refuse("--blocking-io --no-blocking-io --secluded-args -s --protect-args "
              "--no-secluded-args --old-args --no-old-args --confine-root",
              "only matters to a remote shell, which Mirrorkeeper never runs"),
    **_refuse("--daemon --server --sender --config --detach --no-detach --dparam",
              "is rsync's daemon or server mode, not a client option"),
    # The upstream is read, never changed.
    **_refuse("--remove-source-files --remove-sent-files", "deletes upstream files"),
    # Deletion belongs to stage 2; filters, limits and credentials have mirror keys.
    **_refuse("--del --delete --delete-before --delete-during --delete-delay --delete-after "
              "--delete-excluded --delete-missing-args --max-delete --delay-updates --force "
              "--include --exclude --filter -f -F --include-from --exclude-from --cvs-exclude -C "
              "--timeout --contimeout --bwlimit --password-file",
              "is set by Mirrorkeeper itself", _KEYS_HINT),
    **_refuse("--ignore-errors", "lets stage 2 delete even after I/O errors", _KEYS_HINT),
    # Some files that changed upstream would not be copied.
    **_refuse("--update -u --existing --ignore-non-existing --ignore-existing --size-only "
              "--max-size --min-size --one-file-system -x --files-from --from0 -0 "
              "--prune-empty-dirs -m --ignore-missing-args --dirs -d --old-dirs --old-d "
              "--compare-dest --copy-dest --link-dest",
              "decides which files are copied: some changed files would not be"),
    **_refuse("--stop-after --stop-at --time-limit", "ends the transfer early"),
    **_refuse("--checksum-seed", "fixes the checksum seed, which only batch files need"),
    # Where and how files are written.
    **_refuse("--inplace --append --append-verify --write-devices", _INPLACE),
    **_refuse("--partial", "leaves a half-copied file under its real name when a transfer "
              "stops", "use --partial-dir=.rsync-partial"),
    **_refuse("--temp-dir -T", "writes temporary files outside the mirror (absolute) or where "
              "stage 2 deletes them (relative)"),
    **_refuse("--backup -b --backup-dir --suffix", "keeps replaced files beside or outside "
              "the mirror"),
    **_refuse("--relative -R --no-implied-dirs --mkpath", "changes where files land"),
    **_refuse("--keep-dirlinks -K", "writes through symlinks in the mirror, perhaps outside it"),
    # What a malicious upstream could do with them.
    **_refuse("--trust-sender", "turns off rsync's checks on what the upstream sends"),
    **_refuse("--insecure-links", "follows symlinks an upstream may plant"),
    **_refuse("--munge-links", "rewrites symlink targets: the mirror's links would not work"),
    **_refuse("--owner -o --group -g --devices --specials -D --copy-devices --super "
              "--fake-super --chown --usermap --groupmap --copy-as --acls -A --xattrs -X "
              "--atimes -U --crtimes -N --open-noatime",
              "carries owners, devices or extra metadata from the upstream, which a public "
              "mirror does not take"),
    **_refuse("--archive -a", "adds -o -g -D (owners, groups, devices)",
              "Mirrorkeeper already sets -rlpt; remove it"),
    **_refuse("--iconv", "converts file names: the mirror would not match the upstream byte "
              "for byte"),
    # Turning off what every stage needs.
    **_refuse("--no-times --no-t", "turns off --times: unchanged files would be copied again "
              "and the stale-upstream guard compares times"),
    **_refuse("--no-recursive --no-r", "turns off --recursive: nothing below the top would be "
              "copied"),
    **_refuse("--no-links --no-l", "turns off --links: symlinks would not be copied"),
    **_refuse("--no-hard-links --no-H", "turns off --hard-links: hard links would become "
              "copies"),
    **_refuse("--no-safe-links", "turns off --safe-links: links could point outside the mirror"),
    **_refuse("--no-numeric-ids", "maps the upstream's user names to local ids"),
    **_refuse("--inc-recursive --i-r", "turns off --no-inc-recursive: progress and stage 2 "
              "need the whole file list first"),
}

#: Short options that take a value: the rest of their word is the value (``-B8192``).
VALUE_LETTERS = frozenset("BefMT@")


@dataclass(frozen=True)
class Word:
    """One option as written, with its value if it has one."""

    name: str  # "--port", "-B"
    value: str | None = None


def split_item(item: str) -> list[Word]:
    """The options in one list item that starts with ``-``: a long option with its ``=value``,
    or short options, split, the first that takes a value taking the rest of the word."""
    if item.startswith("--"):
        name, eq, value = item.partition("=")
        return [Word(name, value if eq else None)]
    words: list[Word] = []
    for i, letter in enumerate(item[1:], start=1):
        if letter in VALUE_LETTERS:
            rest = item[i + 1:].removeprefix("=")  # rsync reads -B=8192 as -B8192
            words.append(Word(f"-{letter}", rest or None))
            break
        words.append(Word(f"-{letter}"))
    return words


def _example(name: str, value: str = "") -> str:
    value = value or {"--port": "873", "-B": "8192", "--block-size": "8192",
                      "--partial-dir": ".rsync-partial", "-@": "1",
                      "--modify-window": "1"}.get(name, "VALUE")
    return f"{name}={value}" if name.startswith("--") else f"{name}{value}"


def name_refusal(name: str) -> tuple[str, str] | None:
    """(why, hint) if the option called ``name`` may never be passed, else None."""
    if name in REFUSED:
        return REFUSED[name]
    if name in ALLOWED:
        return None
    if name.startswith("--") and len(name) > 2:
        known = [n for n in ALLOWED if n.startswith("--")]
        return ("is not on the list of options known to be safe for a mirror",
                did_you_mean(name, known) or "see docs/configuration.md")
    return "is not an rsync option", ""


def word_refusal(word: Word) -> tuple[str, str] | None:
    """(why, hint) if ``word`` may not be passed as written, else None."""
    refused = name_refusal(word.name)
    if refused is not None:
        return refused
    allowed = ALLOWED[word.name]
    if not allowed.takes_value:
        return ("takes no value", f"write {word.name}") if word.value is not None else None
    if word.value is None:
        return "needs its value in the same list item", f"write {_example(word.name)}"
    why = allowed.check(word.value) if allowed.check else None
    return (why, "") if why else None


def _shown(word: Word, item: str) -> str:
    """The option's name, and the item it came from when that says more (``-essh``)."""
    plain = item == word.name or (word.name.startswith("--") and item.startswith(word.name + "="))
    return f"`{word.name}`" if plain else f"`{word.name}` (in `{item}`)"


def _item_problems(item: str, waiting: str | None) -> list[tuple[str, str]]:
    """(message, hint) for each reason to refuse one list item. ``waiting`` is the option of
    the previous item when that one lacked its value (so this item is probably the value)."""
    if item.strip() != item or any(c.isspace() for c in item):
        first, _, rest = item.strip().partition(" ")
        words = split_item(first) if first.startswith("-") and first not in ("-", "--") else []
        never = [(f"{_shown(w, first)} {r[0]}", r[1]) for w in words
                 if (r := name_refusal(w.name)) is not None]
        if never:
            return never
        last = words[-1] if words else None
        if not rest.strip():
            hint = f"write `{first}`"
        elif last is None or last.value is not None or not ALLOWED[last.name].takes_value:
            hint = "write each option as a list item of its own"
        else:
            hint = f"write {_example(last.name, rest.strip())}"
        return [(f"`{item}` holds a space: one option per list item", hint)]
    if item == "--":
        return [("`--` ends rsync's options: what follows would be read as a source",
                 "remove it")]
    if not item.startswith("-") or item == "-":
        hint = (f"a value goes in its option's item: write {_example(waiting, item)}" if waiting
                else "sources and destinations come from `upstreams` and `dest`")
        return [(f"`{item}` is not an option", hint)]
    found = [(f"{_shown(w, item)} {r[0]}", r[1]) for w in split_item(item)
             if (r := word_refusal(w)) is not None]
    return list(dict.fromkeys(found))  # -vv is one problem, not two


def _lacks_value(item: str) -> str | None:
    """The allowed option ``item`` ends with, if it takes a value and the item gives none."""
    if not item.startswith("-") or item in ("-", "--") or any(c.isspace() for c in item):
        return None
    last = split_item(item)[-1:]
    if last and last[0].value is None and last[0].name in ALLOWED:
        return last[0].name if ALLOWED[last[0].name].takes_value else None
    return None


def check_rsync_options(options: Sequence[str]) -> list[tuple[int, str, str]]:
    """(index, message, hint) for each refused option in ``options``: several for one item when
    it combines several refused short options (``-nv`` is a dry run *and* verbose)."""
    found: list[tuple[int, str, str]] = []
    for i, item in enumerate(options):
        waiting = _lacks_value(options[i - 1]) if i else None
        found.extend((i, message, hint) for message, hint in _item_problems(item, waiting))
    return found
