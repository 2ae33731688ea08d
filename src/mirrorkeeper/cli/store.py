"""``mirrorkeeper store``: the store itself, as opposed to the mirrors in it."""

from __future__ import annotations

import click

from ..exitcodes import Exit
from .common import UsageProblem, console


@click.group("store")
def store_group() -> None:
    """The run history's store: move it into a fleet's PostgreSQL."""


@store_group.command("migrate")
@click.option("--from", "source", required=True, metavar="URL",
              help="The store to copy, e.g. sqlite:////var/lib/mirrorkeeper/mirrorkeeper.db")
@click.option("--to", "dest", required=True, metavar="URL",
              help="The fleet store, e.g. postgresql+psycopg://mirrorkeeper@db/mirrorkeeper")
@click.option("--host", default=None, metavar="NAME",
              help="Record the runs under this fleet host name ([fleet] host).")
def migrate_cmd(source: str, dest: str, host: str | None) -> int:
    """Copy one host's history (runs, alerts, polls, snapshots) into another store, both
    brought to the newest schema first. Nothing is copied if the destination already holds
    runs of the same mirrors; the source is only read."""
    import sqlalchemy as sa

    from ..store import Store
    from ..store.transfer import move_history

    if source == dest:
        raise UsageProblem("--from and --to name the same store")
    try:
        sa.engine.make_url(source)
        sa.engine.make_url(dest)
    except sa.exc.ArgumentError as exc:
        raise UsageProblem(f"{exc}; a store URL looks like sqlite:////path/mirrorkeeper.db "
                           "or postgresql+psycopg://USER@HOST/DB") from exc
    src, dst = Store.from_url(source), Store.from_url(dest)
    try:
        moved = move_history(src.engine, dst.engine, host)
    finally:
        src.close()
        dst.close()
    if moved.clashes:
        raise UsageProblem(f"nothing copied: {dst.engine.url.render_as_string()} already holds "
                           f"runs of {', '.join(moved.clashes)}; moving them again would "
                           "double their history")
    console.print("copied " + ", ".join(f"{n} {t}" for t, n in moved.rows.items()))
    return Exit.OK
