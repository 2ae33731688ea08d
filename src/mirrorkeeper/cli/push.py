"""``mirrorkeeper trigger``: the receiving end of a push, as ftpsync's forced command.

The words come from ``SSH_ORIGINAL_COMMAND`` (what the pusher's ``runmirrors`` sent) and from
the forced command line (the admin's, which win). Like ftpsync, the push first touches the
mirror's ``Archive-Update-Required`` marker, so a run going on now goes round once more and
the push is never lost. A staged push (``sync:stage1`` / ``sync:stage2``) runs here and now:
the pusher waits for each stage of all its staged downstreams before it sends stage 2. A full
push is queued with the daemon when one runs, else it runs here too.
"""

from __future__ import annotations

import os

import click

from ..config.problems import ConfigError
from ..exitcodes import Exit
from ..logs import event
from ..plan.push import parse_push
from .signals import SignalStop


def run_trigger(ctx: click.Context, name: str | None, flags: tuple[str, ...],
                signals: SignalStop) -> int:
    from ..daemon.queue import open_queue
    from ..daemon.service import daemon_running
    from ..sync.run import request_update
    from .common import UsageProblem, err_console, load, not_runnable
    from .sync import MAX_LOGGED_COMMAND, _sync_mirrors

    if name is not None and name.startswith("sync:"):  # no NAME: the first word is a flag
        flags, name = (name, *flags), None
    config = load(ctx)
    command = os.environ.get("SSH_ORIGINAL_COMMAND")
    client = os.environ.get("SSH_CONNECTION")
    request = parse_push(command or "", " ".join(flags))
    name = name or request.archive
    if not name:
        raise UsageProblem("name the mirror (`mirrorkeeper trigger NAME` in the forced "
                           "command), or let the pusher say `sync:archive:NAME`")
    if name in config.broken:
        raise ConfigError(not_runnable(config, config.broken[name]))
    mirror = config.mirrors.get(name)
    if mirror is None or not mirror.enabled:
        raise UsageProblem(f"no enabled mirror `{name}` in {config.path}")
    # Whoever holds the key chooses the command line: log a bounded prefix, and its length.
    event("trigger", mirror=name,
          ssh_command=command[:MAX_LOGGED_COMMAND] if command is not None else None,
          ssh_command_length=len(command) if command is not None else None,
          ssh_client=client[:MAX_LOGGED_COMMAND] if client is not None else None,
          scope=request.scope, mhop=request.mhop, callback=request.callback,
          archive=request.archive, unknown=[w[:64] for w in request.unknown[:10]])
    for word in request.unknown[:10]:
        err_console.print(f"mirrorkeeper: unknown option {word[:64]!r} ignored", markup=False)
    if request.callback:
        err_console.print("mirrorkeeper: sync:callback asked for, but Mirrorkeeper does not "
                          "call back; ignored", markup=False)
    marker = request_update(config, mirror)  # first: never lose a push
    origin = "ssh" if command is not None else "push"
    host = config.host_of(mirror)
    if request.scope == "all" and (config.fleet is not None
                                   or daemon_running(config.settings.state_dir)):
        # In a fleet the mirror's host's daemon takes it from its queue (it runs there only).
        queue = open_queue(config, host)
        try:
            queue.enqueue(name, "push", urgent=True)
        finally:
            queue.close()
        click.echo(f"{name}: sync queued with the daemon"
                   + (f" of fleet host {host}" if config.fleet is not None else ""))
        return signals.exit_status or Exit.OK
    if host != config.host:
        raise UsageProblem(f"mirror `{name}` is synced by fleet host {host}, not this one "
                           f"({config.host}); a staged push goes to that host")
    click.echo(f"{name}: no daemon is running; syncing now" if request.scope == "all"
               else f"{name}: {request.scope} of a staged push, now")
    code = _sync_mirrors(config, [mirror], signals, quiet=True, as_json=False,
                         scope=request.scope, trigger=origin, mhop=request.mhop)
    if code == Exit.LOCKED and marker is not None:
        click.echo(f"{name}: a run is going on; it goes round once more for this push "
                   f"({marker.name})")
    return code
