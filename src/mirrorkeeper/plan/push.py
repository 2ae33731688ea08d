"""What a push asks for: ftpsync's ``sync:*`` words, read the way ftpsync reads them. Pure.

An upstream's ``runmirrors`` logs in with a key whose forced command starts the sync, and the
words it sent arrive in ``SSH_ORIGINAL_COMMAND``: always ``sync:archive:NAME`` (empty NAME is
the main archive), then ``sync:all``, ``sync:stage1`` or ``sync:stage2``, and maybe
``sync:mhop`` and ``sync:callback``. Words given on the forced command line itself are read
after the pushed ones, so the admin's say wins (as in ftpsync). Unknown words are kept, to be
logged and ignored, never to fail a push: a push is never ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The scopes a run can have: every stage, or one of the two halves of a staged push.
SCOPES = ("all", "stage1", "stage2")


@dataclass(frozen=True)
class PushRequest:
    #: ``all`` (both stages), ``stage1`` (no indexes, no deletions) or ``stage2`` (the rest).
    scope: str = "all"
    #: ``sync:mhop``: a multi-hop push (a hub first pushes its own staged downstreams).
    mhop: bool = False
    #: ``sync:callback``: tell the pusher when done (ftpsync's CALLBACKHOST).
    callback: bool = False
    #: ``sync:archive:NAME``; None when not said, "" for the main archive.
    archive: str | None = None
    #: Words that are not ftpsync's, in order.
    unknown: tuple[str, ...] = ()


def parse_push(*commands: str) -> PushRequest:
    """The request of the words in ``commands`` (each a whitespace-separated command line),
    later ones overriding earlier ones, as ftpsync's ``check_commandline`` does.

    ftpsync's flags are additive: ``sync:stage1 sync:stage2`` together ask for both stages,
    which is ``all``; ``sync:all`` after a stage word turns ``all`` back on."""
    stage1 = stage2 = False
    every = True
    mhop = callback = False
    archive: str | None = None
    unknown: list[str] = []
    for command in commands:
        for word in command.split():
            if word == "sync:stage1":
                stage1, every = True, False
            elif word == "sync:stage2":
                stage2, every = True, False
            elif word == "sync:all":
                every = True
            elif word == "sync:mhop":
                mhop = True
            elif word == "sync:callback":
                callback = True
            elif word.startswith("sync:archive:"):
                archive = word[len("sync:archive:"):]
            else:
                unknown.append(word)
    scope = "all" if every or (stage1 and stage2) else "stage1" if stage1 else "stage2"
    return PushRequest(scope=scope, mhop=mhop, callback=callback, archive=archive,
                       unknown=tuple(unknown))


def push_words(scope: str, *, archive: str = "", mhop: bool = False,
               callback: bool = False) -> str:
    """The command a hub sends downstream, word for word as ``runmirrors`` builds it: the
    archive word always comes first (an empty one is the main archive; ``ssh`` needs some
    command), then the callback and mhop words, then the stage."""
    words = [f"sync:archive:{archive}"]
    if callback:
        words.append("sync:callback")
    if mhop:
        words.append("sync:mhop")
    words.append(f"sync:{scope}")
    return " ".join(words)
