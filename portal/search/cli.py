"""``cocreate search``: rebuild, check and optimize the index (the lead attaches the group)."""

from __future__ import annotations

import os
import sys

import click
from flask.cli import with_appcontext

from portal.core.db import db
from portal.search import index


@click.group("search")
def search_group() -> None:
    """The full-text search index."""


@search_group.command("reindex")
@click.option(
    "--procs", type=int, default=os.cpu_count() or 1, show_default=True, help="Indexing processes."
)
@click.option(
    "--limitmb", type=int, default=256, show_default=True, help="Memory per indexing process (MB)."
)
@with_appcontext
def reindex(procs: int, limitmb: int) -> None:
    """Rebuild the index from the database into a fresh directory and swap it in."""
    with click.progressbar(length=1, label="Indexing", file=sys.stderr) as bar:
        last = 0

        def progress(done: int, total: int) -> None:
            nonlocal last
            bar.length = max(total, 1)
            bar.update(done - last)
            last = done

        stats = index.reindex(db.session, progress, procs=procs, limitmb=limitmb)
    db.session.rollback()  # reads only
    click.echo(
        f"Indexed {stats.documents} documents in {stats.seconds:.1f} s "
        f"({stats.rate:.0f} docs/s) into {stats.directory}"
        + (f"; caught up {stats.caught_up} changed meanwhile." if stats.caught_up else ".")
    )


@search_group.command("check")
@click.option("--verbose", "-v", is_flag=True, help="List the ids, not just the counts.")
@with_appcontext
def check(verbose: bool) -> None:
    """Compare the index with the database; exit 1 when it is out of date."""
    report = index.check(db.session)
    db.session.rollback()
    if report.error:
        click.echo(f"Index cannot be opened: {report.error}", err=True)
    click.echo(
        f"expected {report.expected}, indexed {report.indexed}: missing {len(report.missing)}, "
        f"stale {len(report.stale)}, extra {len(report.extra)}"
    )
    if verbose:
        for label, ids in (
            ("missing", report.missing),
            ("stale", report.stale),
            ("extra", report.extra),
        ):
            for key in ids:
                click.echo(f"{label} {key}")
    if not report.ok:
        click.echo("The index is out of date: run `cocreate search reindex`.", err=True)
        raise SystemExit(1)
    click.echo("The index is up to date.")


@search_group.command("optimize")
@with_appcontext
def optimize() -> None:
    """Merge the index into one segment (faster queries)."""
    index.optimize()
    click.echo("Index optimized.")
