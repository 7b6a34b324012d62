"""CS CSV import speed: ``cs_metrics.service.run_import`` vs PostgreSQL ``COPY`` of the same file.

A usage-events CSV of 200,000 rows (1,000 accounts x 100 days x 2 metrics) is imported by the
service exactly as the task does (validation pass, then upserts in one transaction with progress
committed per batch), then the same file is loaded with ``COPY ... FROM STDIN (FORMAT csv)``
into a typed temporary table: the floor for getting those bytes into PostgreSQL. Targets from
the issue: >= 20,000 rows/s and >= 0.3 of COPY. A second run of the import (every row already
present, nothing to change) is shown too, and the same file loaded by SQL alone (COPY, then one
``INSERT ... SELECT ... ON CONFLICT`` into the real table): what the database itself needs.
Last, the same rows with their account ids resolved, COPY'd straight into the real table (its
unique key, day index and foreign key): the database's own bulk load into the destination,
shown beside the target's baseline, not instead of it.

Run: ``.venv/bin/python bench/cs_import.py`` (PostgreSQL at 127.0.0.1:5432, user postgres; the
database ``cs_bench`` is dropped and recreated).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RATE_TARGET = 20_000
COPY_TARGET = 0.3


def make_csv(accounts: int, days: int) -> bytes:
    start = date(2026, 1, 1)
    lines = ["account_id,day,metric,value"]
    for a in range(accounts):
        for d in range(days):
            day = (start + timedelta(days=d)).isoformat()
            lines.append(f"ACC-{a:05d},{day},logins,{(a * 7 + d) % 97}")
            lines.append(f'ACC-{a:05d},{day},api_calls,"{(a * 13 + d) * 11 % 9000 + 1000:,}"')
    return ("\n".join(lines) + "\n").encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/cs_bench")
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--days", type=int, default=100)
    args = parser.parse_args()

    import psycopg
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from cs_metrics import service
    from portal import migrate
    from portal.app import create_app
    from portal.core.db import db, make_engine, new_session

    url = make_url(args.url)
    admin = make_engine(url.set(database="postgres").render_as_string(False),
                        isolation_level="AUTOCOMMIT")  # fmt: skip
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{url.database}"'))
    admin.dispose()
    migrate.upgrade(args.url)

    tmp = Path(tempfile.mkdtemp(prefix="cs-bench-"))
    app = create_app({
        "DATABASE_URL": args.url, "SECRET_KEY": "bench-" + "x" * 40, "BROKER_URL": "",
        "UPLOAD_DIR": str(tmp), "SEARCH_INDEX_DIR": str(tmp / "search"),
        "INSTANCE_PATH": str(tmp / "instance"),
    })  # fmt: skip
    data = make_csv(args.accounts, args.days)
    rows = data.count(b"\n") - 1
    accounts_csv = "external_id,name\n" + "".join(
        f"ACC-{a:05d},Account {a}\n" for a in range(args.accounts)
    )

    def run(kind: str, payload: bytes) -> tuple[float, str]:
        with app.app_context():
            job = service.queue_import(db.session, kind, f"{kind}.csv", io.BytesIO(payload),
                                       max_bytes=None)  # fmt: skip
            db.session.commit()
            started = time.perf_counter()
            finished = service.run_import(new_session, job.id)
            return time.perf_counter() - started, finished.status

    _, status = run("accounts", accounts_csv.encode())
    assert status == "done", status
    first, status = run("usage_events", data)
    assert status == "done", status
    again, status = run("usage_events", data)
    assert status == "done", status

    conninfo = url.set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            "CREATE TEMP TABLE copy_usage (account text, day date, metric text, value text)"
        )
        started = time.perf_counter()
        with conn.cursor().copy("COPY copy_usage FROM STDIN (FORMAT csv, HEADER true)") as copy:
            for i in range(0, len(data), 1 << 20):
                copy.write(data[i : i + (1 << 20)])
        conn.commit()
        copy_s = time.perf_counter() - started
        copied = conn.execute("SELECT count(*) FROM copy_usage").fetchone()[0]
        # The same file loaded by SQL alone, no validation and no Python per row, into the
        # empty real table (three indexes, a foreign key): the floor for any import design.
        conn.execute("TRUNCATE copy_usage, cs_usage_events")  # rolled back below
        started = time.perf_counter()
        with conn.cursor().copy("COPY copy_usage FROM STDIN (FORMAT csv, HEADER true)") as copy:
            for i in range(0, len(data), 1 << 20):
                copy.write(data[i : i + (1 << 20)])
        conn.execute(
            "INSERT INTO cs_usage_events (organization_id, day, metric, value) "
            "SELECT a.organization_id, u.day, u.metric, replace(u.value, ',', '')::float8 "
            "FROM copy_usage u JOIN cs_accounts a ON a.external_id = u.account "
            "ON CONFLICT (organization_id, day, metric) DO UPDATE SET value = excluded.value "
            "WHERE cs_usage_events.value IS DISTINCT FROM excluded.value"
        )
        sql_s = time.perf_counter() - started
        conn.rollback()
        # The database's own bulk load into the same destination: the same rows with their
        # account ids resolved and numbers plain (prepared here, not timed), COPY'd straight
        # into the empty real table, its indexes and foreign key checked as it loads.
        org_of = dict(conn.execute("SELECT external_id, organization_id FROM cs_accounts"))
        resolved = io.StringIO()
        for line in data.decode().splitlines()[1:]:
            account, day, metric, value = next(csv.reader([line]))
            resolved.write(f"{org_of[account]},{day},{metric},{value.replace(',', '')}\n")
        resolved_bytes = resolved.getvalue().encode()
        conn.execute("TRUNCATE cs_usage_events")  # rolled back below
        started = time.perf_counter()
        with conn.cursor().copy(
            "COPY cs_usage_events (organization_id, day, metric, value) FROM STDIN (FORMAT csv)"
        ) as copy:
            for i in range(0, len(resolved_bytes), 1 << 20):
                copy.write(resolved_bytes[i : i + (1 << 20)])
        table_copy_s = time.perf_counter() - started
        conn.rollback()
    assert copied == rows, (copied, rows)

    print(f"{rows:,} usage rows, {len(data) / 1e6:.1f} MB, PostgreSQL")
    print(f"{'what':<34} {'seconds':>8} {'rows/s':>10} {'vs COPY':>8}")
    for label, seconds in (
        ("COPY into a temp table (baseline)", copy_s),
        ("COPY + SQL upsert, no validation", sql_s),
        ("COPY into the real table itself", table_copy_s),
        ("run_import, new rows", first),
        ("run_import, same file again", again),
    ):
        print(f"{label:<34} {seconds:>8.2f} {rows / seconds:>10,.0f} {copy_s / seconds:>8.2f}")
    print(
        f"run_import against COPY into the real table (ids resolved, its indexes and foreign "
        f"key): {table_copy_s / first:.2f}"
    )
    ok = rows / first >= RATE_TARGET and copy_s / first >= COPY_TARGET
    print(
        f"SUMMARY: import {rows / first:,.0f} rows/s (target {RATE_TARGET:,}), "
        f"{copy_s / first:.2f} of COPY (target {COPY_TARGET}): {'met' if ok else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
