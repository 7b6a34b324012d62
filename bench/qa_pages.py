"""Q&A pages under gunicorn against the ``/healthz`` baseline of the same run.

The demo data (organizations, users, about a hundred questions with answers, votes and
acceptances in English and Chinese) is loaded into a fresh PostgreSQL database; then one sync
gunicorn worker serves, and the question list (newest, and the votes tab with a tag filter), a
question page and, when the search page exists, ``/search?q=...`` are measured interleaved with
``/healthz`` (see ``http_pages.py`` for the method). Targets: list >= 0.30, search >= 0.15.

Run: ``.venv/bin/python bench/qa_pages.py`` (same options as ``http_pages.py``).
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

import http_pages as hp

LIST_TARGET = 0.30
SEARCH_TARGET = 0.15


def load_qa_demo(config: dict[str, Any]) -> int:
    """The Q&A demo on top of the base demo (skipped if portal.demo already loaded it);
    returns the id of a published public question with answers, for the page row."""
    from sqlalchemy import select

    from portal.app import create_app
    from portal.core.db import db
    from portal.core.identity import User
    from portal.qa.demo import load_demo
    from portal.qa.models import Question

    app = create_app(config)
    with app.app_context():
        users = {u.email: u for u in db.session.scalars(select(User))}
        load_demo(db.session, users)
        db.session.commit()
        question_id = db.session.scalar(
            select(Question.id)
            .where(Question.published.is_(True), Question.is_private.is_(False))
            .order_by(Question.answer_count.desc(), Question.id)
            .limit(1)
        )
        db.session.remove()
        db.engine.dispose()
    return int(question_id or 1)


def main(argv: list[str] | None = None) -> int:
    args = hp.parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, hp._interrupt)
    secret_key = secrets.token_hex(32)
    workdir = Path(tempfile.mkdtemp(prefix="cocreate-qa-bench-"))
    instance = workdir / "instance"
    log_path = workdir / "gunicorn.log"
    config = hp.app_config(args.database_url, instance, secret_key)
    proc: subprocess.Popen[bytes] | None = None
    created = False
    try:
        print(f"database: {args.database_url} (recreated)", flush=True)
        hp.create_database(args.database_url)
        created = True
        hp.migrate_and_load_demo(args.database_url, config)
        question_id = load_qa_demo(config)

        port = hp.free_port()
        env = hp.server_env(args.database_url, instance, secret_key)
        proc = hp.start_gunicorn(port, env, log_path)
        hp.wait_healthy(port, proc, log_path)
        print(f"gunicorn -w 1 -k sync on 127.0.0.1:{port} (pid {proc.pid})", flush=True)

        endpoints = [
            hp.Endpoint("/healthz", "/healthz", target=None),
            hp.Endpoint("/questions/", "/questions/", target=LIST_TARGET),
            hp.Endpoint(
                "list votes+tag", "/questions/?sort=votes&tag=dashboards", target=LIST_TARGET
            ),
            hp.Endpoint("question page", f"/questions/{question_id}", target=None),
        ]
        status, _headers, _body = hp.request(port, "GET", "/search?q=dashboard")
        if status == 200:
            endpoints.append(hp.Endpoint("/search?q=", "/search?q=dashboard", target=SEARCH_TARGET))
            endpoints.append(
                hp.Endpoint("/search?q=中文", "/search?q=%E6%8A%A5%E8%A1%A8", target=SEARCH_TARGET)
            )
        else:
            print(f"/search answered {status}: not measured", flush=True)
        for endpoint in endpoints:
            status, _headers, _body = hp.request(port, "GET", endpoint.path)
            if status != 200:
                raise RuntimeError(f"GET {endpoint.path} answered {status}:\n{hp._tail(log_path)}")

        generator = hp.pick_generator(args.generator, args.connections, args.threads, workdir)
        print(
            f"load: {generator.name}, {args.connections} connections, {args.warmup:g}s warm-up, "
            f"{args.rounds} x {args.duration:g}s per endpoint, interleaved",
            flush=True,
        )
        results = hp.measure(port, generator, endpoints, args)
        hp.report(endpoints, results, generator)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
    except Exception as error:  # a measurement: report, clean up, exit 0
        traceback.print_exc()
        print(f"benchmark failed: {type(error).__name__}: {error}", file=sys.stderr)
        print("SUMMARY: ERROR - no measurement", flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if proc is not None:
            hp.stop_gunicorn(proc)
        if created and not args.keep_db:
            try:
                hp.drop_database(args.database_url)
            except Exception as error:
                print(f"could not drop the bench database: {error}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
