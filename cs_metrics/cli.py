"""``cocreate metrics ...``: imports and recomputes run inline, with a progress bar."""

from __future__ import annotations

from datetime import date

import click
from flask.cli import with_appcontext

from cs_metrics import importers, service
from cs_metrics.models import JobStatus
from portal.core.db import db, new_session
from portal.core.errors import DomainError

SHOWN_ERRORS = 20


@click.group("metrics")
def metrics_group() -> None:
    """Customer-success data: CSV imports and health recompute."""


@metrics_group.command("import")
@click.argument("kind", type=click.Choice(sorted(importers.KINDS)))
@click.argument("file", type=click.File("rb"))
@click.option("--skip-invalid", is_flag=True, help="Import the valid rows of a file with errors.")
@click.option("--day-first", is_flag=True, help="Read 01/03/2026 as 1 March (day/month/year).")
@with_appcontext
def import_command(
    kind: str, file: click.utils.LazyFile, skip_invalid: bool, day_first: bool
) -> None:
    """Import FILE (CSV) as KIND; with errors nothing is imported unless --skip-invalid."""
    try:
        job = service.queue_import(
            db.session, kind, getattr(file, "name", "stdin.csv"), file,  # type: ignore[arg-type]
            skip_invalid=skip_invalid, day_first=day_first, max_bytes=None,
        )  # fmt: skip
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        raise click.ClickException(error.message) from None
    with click.progressbar(length=1, label=f"Importing {kind}") as bar:
        seen = 0

        def progress(done: int, total: int) -> None:
            nonlocal seen
            bar.length = max(total, 1)
            bar.update(done - seen)
            seen = done

        job = service.run_import(new_session, job.id, progress_callback=progress)
    report = job.report or {}
    file_error = report.get("file_error")
    if file_error:
        line = f" (line {file_error['line']})" if file_error.get("line") else ""
        click.echo(f"refused: {file_error['message']}{line}; nothing imported.")
    elif not job.rows_total and not job.error_count:
        click.echo("done: the file has no data rows; nothing imported.")
    else:
        click.echo(
            f"{job.status}: {job.rows_total} rows read, {job.rows_valid} valid, "
            f"{job.rows_done} imported, {job.error_count} errors."
        )
    for error in report.get("errors", [])[:SHOWN_ERRORS]:
        click.echo(
            f"line {error['line']}, {error['column'] or '-'}: {error['message']} "
            f"({error['value']!r})",
            err=True,
        )
    if job.status != JobStatus.DONE:
        raise click.ClickException("the file was not imported")


@metrics_group.command("recompute")
@click.option("--day", type=click.DateTime(formats=["%Y-%m-%d"]), help="Default: today (UTC).")
@with_appcontext
def recompute_command(day: object) -> None:
    """Compute every account's health for DAY and raise alerts (waits for a run in progress)."""
    target: date | None = day.date() if day is not None else None  # type: ignore[attr-defined]
    run_id = service.queue_recompute(db.session, day=target).id
    db.session.commit()
    with click.progressbar(length=1, label="Recomputing health") as bar:
        seen = 0

        def progress(done: int, total: int) -> None:
            nonlocal seen
            bar.length = max(total, 1)
            bar.update(done - seen)
            seen = done

        run = service.run_recompute(new_session, run_id, progress)
    summary = run.summary
    bands = ", ".join(f"{k} {v}" for k, v in sorted(summary["bands"].items())) or "none"
    click.echo(
        f"{run.day}: {run.accounts_done} accounts, {summary['scored']} scored, "
        f"{summary['no_data']} without data, {summary['overridden']} overridden ({bands}); "
        f"{run.alerts_raised} alerts raised; model {summary['model_version']}."
    )
