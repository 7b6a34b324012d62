"""The retention task (daily on beat) and ``cocreate privacy purge`` to run it by hand."""

from __future__ import annotations

import logging

import click
from celery import shared_task
from flask import current_app
from flask.cli import with_appcontext

from portal.core.db import db, new_session
from portal.core.tasks import RETRY_POLICY
from portal.privacy import retention

log = logging.getLogger(__name__)


@shared_task(name="portal.privacy.purge_expired", **RETRY_POLICY)
def purge_expired() -> dict[str, int]:
    """Idempotent: a retry after a crash finds the rows already deleted gone."""
    with new_session() as session:
        counts = retention.purge(
            session, current_app.config, after_batch=lambda _kind, _done: session.commit()
        )
        session.commit()
    log.info("retention: purged %s", counts)
    return counts


BEAT_SCHEDULE = {
    "privacy-purge-expired": {"task": "portal.privacy.purge_expired", "schedule": 24 * 3600.0},
}


@click.group("privacy")
def privacy_group() -> None:
    """Personal data: retention."""


@privacy_group.command("purge")
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@with_appcontext
def purge_command(dry_run: bool) -> None:
    """Delete activity, search log and sent mail older than the retention settings."""
    config = current_app.config
    days = retention.retention_days(config)
    counts = retention.purge(
        db.session,
        config,
        dry_run=dry_run,
        after_batch=lambda _kind, _done: db.session.commit(),
    )
    if dry_run:
        db.session.rollback()
    else:
        db.session.commit()
    verb = "would delete" if dry_run else "deleted"
    for kind, count in counts.items():
        kept = f"kept {days[kind]} days" if days[kind] else "kept forever"
        click.echo(f"{kind:<12} {verb} {count:>8}  ({kept})")
