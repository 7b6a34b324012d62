"""The ``cocreate`` command: parse, call a service, commit, echo."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from cs_metrics.cli import metrics_group
from portal import migrate
from portal.app import create_app
from portal.core.db import db
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
@with_appcontext
def demo_load() -> None:
    """Create the demo organizations and users (safe to run again)."""
    from portal.demo import load_demo

    close_database_on_exit()
    sign_ins = load_demo(db.session)
    db.session.commit()
    click.echo("Demo data loaded. Sign in at http://127.0.0.1:5000/sign-in with:")
    width = max(len(email) for _org, email, _role, _pw in sign_ins)
    for org, email, role, password in sign_ins:
        click.echo(f"  {email:<{width}}  {password}  {role:<16} {org}")


cli.add_command(metrics_group)
cli.add_command(search_group)
