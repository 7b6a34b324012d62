"""The ``cocreate`` command: parse, call a service, commit, echo."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from cs_metrics.cli import metrics_group
from portal import migrate
from portal.app import create_app
from portal.core.db import db
from portal.privacy.backup import backup_command, restore_command
from portal.privacy.retention_tasks import privacy_group
from portal.search.cli import search_group


@click.group(cls=FlaskGroup, create_app=create_app, add_version_option=False)
def cli() -> None:
    """Cocreate: customer co-creation community and customer-success portal."""


def close_database_on_exit() -> None:
    """Return the command's pooled connections when it ends (each command builds an app)."""
    engine = current_app.extensions["cocreate_engine"]
    click.get_current_context().call_on_close(engine.dispose)


@cli.group("db")
def db_group() -> None:
    """Database schema migrations."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    close_database_on_exit()
    migrate.upgrade(current_app.config["DATABASE_URL"], revision)
    click.echo(f"Database at {revision}.")


@db_group.command("downgrade")
@click.argument("revision")
@with_appcontext
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION ('base' empties the database)."""
    migrate.downgrade(current_app.config["DATABASE_URL"], revision)
    click.echo(f"Database at {revision}.")


@db_group.command("revision")
@click.option("-m", "--message", required=True, help="What the migration does.")
@with_appcontext
def db_revision(message: str) -> None:
    """Write a new migration from the difference between the models and the database."""
    migrate.revision(current_app.config["DATABASE_URL"], message)


@cli.group("demo")
def demo_group() -> None:
    """Demo data."""


@demo_group.command("load")
@click.option(
    "--accounts",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Customer-success accounts (the first five are the demo organizations).",
)
@with_appcontext
def demo_load(accounts: int) -> None:
    """Create the demo organizations and users, then the customer-success demo data (safe to
    run again)."""
    from cs_metrics import demo as cs_demo
    from portal.core.db import new_session
    from portal.demo import load_demo

    if current_app.config["ENV"] == "production":
        # The demo accounts share a published password: never on a real installation.
        raise click.ClickException("cocreate demo load is refused in production.")
    close_database_on_exit()
    sign_ins = load_demo(db.session)
    db.session.commit()
    click.echo("Demo data loaded. Sign in at http://127.0.0.1:5000/sign-in with:")
    width = max(len(email) for _org, email, _role, _pw in sign_ins)
    for org, email, role, password in sign_ins:
        click.echo(f"  {email:<{width}}  {password}  {role:<16} {org}")
    if accounts:
        result = cs_demo.load(new_session, accounts, progress=_progress_bar)
        bands = ", ".join(f"{k} {v}" for k, v in sorted(result.bands.items())) or "none"
        click.echo(
            f"Customer success: {result.accounts} accounts, "
            f"{sum(result.rows.values()):,} rows imported; health today: {bands}."
        )
        click.echo(f"  CSMs (password {cs_demo.DEMO_PASSWORD}): {', '.join(result.csms)}")


@demo_group.command("csv")
@click.option("--accounts", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--seed", type=int, default=2026, show_default=True)
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
def demo_csv(accounts: int, seed: int, outdir: Path) -> None:
    """Write customer-success demo CSV files (one per import kind) into OUTDIR."""
    from cs_metrics import demo as cs_demo

    for kind, path in cs_demo.write_csv(outdir, accounts, seed=seed).items():
        click.echo(f"  {kind:<14} {path}")


@cli.group("tasks")
def tasks_group() -> None:
    """Background tasks."""


@tasks_group.command("flush")
@with_appcontext
def tasks_flush() -> None:
    """Send again the tasks that have not completed (held ones too), oldest first: those whose
    send failed, and those sent longer than TASK_OUTBOX_GRACE_SECONDS ago."""
    from portal.core.tasks import flush_task_outbox

    close_database_on_exit()
    result = flush_task_outbox(db.session, include_held=True)
    click.echo(f"Sent {result.sent} tasks; {result.waiting} still waiting.")
    click.echo(f"{result.in_flight} sent and not completed yet (each task deletes its row).")
    if result.failed:
        raise click.ClickException(f"{result.failed} could not be sent (is the broker up?).")


def _progress_bar(label: str) -> Callable[[int, int], None]:
    """A click progress bar fed by a service's ``progress(done, total)`` callback."""
    seen = 0
    bar = click.progressbar(length=1, label=label)

    def update(done: int, total: int) -> None:
        nonlocal seen
        bar.length = max(total, 1)
        bar.update(done - seen)
        seen = done
        if done >= total:
            bar.render_finish()

    return update


cli.add_command(metrics_group)
cli.add_command(search_group)
cli.add_command(privacy_group)
cli.add_command(backup_command)
cli.add_command(restore_command)
