"""Roadmap claims under gunicorn on PostgreSQL, with the ``/healthz`` baseline of the same run.

1. Exact counts: 250 users send 500 vote/unvote requests at the same moment to gunicorn with 4
   sync workers, each user's own requests in order, everyone else's interleaved. Every idea's
   ``vote_count`` must equal its vote rows and the truth computed from the requests (each
   user's last action per idea), with no 5xx.
2. The board: 10,000 ideas and 200,000 votes, sorted by trending (and top), measured against
   ``/healthz`` interleaved (see ``http_pages.py``). Target: >= 0.30 of the baseline.

Run: ``.venv/bin/python bench/roadmap.py`` (same options as ``http_pages.py``, plus
``--ideas``, ``--votes``, ``--users``, ``--requests``).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import http_pages as hp

BOARD_TARGET = 0.30
HOT_IDEAS = 5


def seed(config: dict[str, Any], ideas: int, votes: int, users: int) -> tuple[list[int], list[str]]:
    """Bulk rows straight into the tables (the services would take an hour for 200k votes),
    counters and trending recomputed in SQL; then ``users`` API tokens and a few fresh "hot"
    ideas nobody voted on yet. Returns (hot idea ids, write tokens)."""
    from sqlalchemy import func, insert, select, update

    from portal.accounts.service import create_api_token
    from portal.app import create_app
    from portal.core.db import db, utcnow
    from portal.core.identity import Organization, User
    from portal.roadmap import service
    from portal.roadmap.models import Idea, IdeaVote

    app = create_app(config)
    with app.app_context():
        session = db.session
        org = session.scalar(select(Organization).where(Organization.kind == "customer"))
        now = utcnow()
        voters_needed = max(users, -(-votes // max(1, ideas // 2)))
        user_rows = [
            {
                "email": f"bench{i}@bench.example",
                "display_name": f"Bench {i}",
                "password_hash": "!",
                "locale": "en",
                "timezone": "UTC",
                "active": True,
                "trust_level": 3,
                "organization_id": org.id,
                "created_at": now,
            }
            for i in range(voters_needed)
        ]
        session.execute(insert(User), user_rows)
        user_ids = list(
            session.scalars(select(User.id).where(User.email.like("bench%@bench.example")))
        )
        start = time.perf_counter()
        idea_rows = [
            {
                "organization_id": org.id,
                "author_id": user_ids[i % len(user_ids)],
                "title": f"Bench idea number {i} about dashboards and exports",
                "description_source": "A bench idea.",
                "description_html": "<p>A bench idea.</p>",
                "product_area": "dashboards",
                "status": "open",
                "published": True,
                "vote_count": 0,
                "comment_count": 0,
                "trending": 0.0,
                "created_at": now - timedelta(hours=1 + (i * 37) % (24 * 120)),
                "updated_at": now,
            }
            for i in range(ideas)
        ]
        for chunk in range(0, len(idea_rows), 5000):
            session.execute(insert(Idea), idea_rows[chunk : chunk + 5000])
        idea_ids = list(session.scalars(select(Idea.id).order_by(Idea.id)))[-ideas:]
        rng = random.Random(7)
        per_user = -(-votes // len(user_ids))
        batch: list[dict[str, Any]] = []
        made = 0
        for user_id in user_ids:
            if made >= votes:
                break
            for idea_id in rng.sample(idea_ids, min(per_user, len(idea_ids), votes - made)):
                batch.append(
                    {
                        "idea_id": idea_id,
                        "user_id": user_id,
                        "organization_id": org.id,
                        "importance": 2,
                        "created_at": now - timedelta(hours=rng.randint(1, 24 * 60)),
                    }
                )
                made += 1
            if len(batch) >= 20000:
                session.execute(insert(IdeaVote), batch)
                batch = []
        if batch:
            session.execute(insert(IdeaVote), batch)
        session.execute(
            update(Idea).values(
                vote_count=select(func.count()).where(IdeaVote.idea_id == Idea.id).scalar_subquery()
            )
        )
        service.refresh_trending(session)
        session.commit()
        print(
            f"seeded {ideas} ideas, {made} votes, {len(user_ids)} users "
            f"in {time.perf_counter() - start:.1f}s",
            flush=True,
        )
        author = session.get(User, user_ids[0])
        hot = [
            service.submit_idea(session, author, f"Hot idea {n} for concurrent votes", "Body").id
            for n in range(HOT_IDEAS)
        ]
        tokens = [
            create_api_token(session, session.get(User, user_id), "bench", "write")[1]
            for user_id in user_ids[:users]
        ]
        session.commit()
        db.session.remove()
        db.engine.dispose()
    return hot, tokens


def start_gunicorn(port: int, env: dict[str, str], log_path: Path, workers: int) -> Any:
    command = [
        hp.find_gunicorn(),
        "-w",
        str(workers),
        "-k",
        "sync",
        "-b",
        f"127.0.0.1:{port}",
        "--backlog",
        "2048",
        "--log-level",
        "warning",
        "wsgi:app",
    ]
    log = log_path.open("wb")
    try:
        return subprocess.Popen(
            command,
            cwd=hp.ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()


def concurrent_votes(port: int, hot: list[int], tokens: list[str], requests: int) -> bool:
    """Each user sends its share of vote/unvote requests in order; users run in parallel."""
    rng = random.Random(11)
    plans: list[tuple[str, list[tuple[str, int]]]] = []
    per_user = max(1, requests // len(tokens))
    for token in tokens:
        plans.append(
            (token, [(rng.choice(("POST", "DELETE")), rng.choice(hot)) for _ in range(per_user)])
        )
    statuses: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(min(len(plans), 100))

    def run(plan: tuple[str, list[tuple[str, int]]]) -> None:
        token, steps = plan
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=5)
        for method, idea_id in steps:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            body = json.dumps({"importance": 2}) if method == "POST" else None
            conn.request(method, f"/api/v1/ideas/{idea_id}/vote", body, headers)
            response = conn.getresponse()
            response.read()
            conn.close()
            with lock:
                statuses.append(response.status)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=100) as pool:
        list(pool.map(run, plans))
    elapsed = time.perf_counter() - start
    truth = dict.fromkeys(hot, 0)
    for _token, steps in plans:
        last: dict[int, str] = {}
        for method, idea_id in steps:
            last[idea_id] = method
        for idea_id, method in last.items():
            truth[idea_id] += method == "POST"
    counts, rows = _counts(hot)
    server_errors = sum(1 for s in statuses if s >= 500)
    ok = (
        counts == truth == rows
        and server_errors == 0
        and len(statuses) == sum(len(s) for _t, s in plans)
    )
    print(
        f"\nconcurrent votes: {len(statuses)} requests from {len(plans)} users in {elapsed:.1f}s "
        f"({len(statuses) / elapsed:.0f} req/s), statuses {sorted(set(statuses))}, 5xx {server_errors}",
        flush=True,
    )
    print(f"{'idea':>8} {'truth':>6} {'vote_count':>10} {'rows':>6}")
    for idea_id in hot:
        print(f"{idea_id:>8} {truth[idea_id]:>6} {counts[idea_id]:>10} {rows[idea_id]:>6}")
    print(f"EXACT COUNTS: {'PASS' if ok else 'FAIL'}", flush=True)
    return ok


def _counts(hot: list[int]) -> tuple[dict[int, int], dict[int, int]]:
    from sqlalchemy import create_engine, func, select

    from portal.roadmap.models import Idea, IdeaVote

    engine = create_engine(ARGS.database_url)
    with engine.connect() as connection:
        counts = dict(
            connection.execute(select(Idea.id, Idea.vote_count).where(Idea.id.in_(hot))).all()
        )
        rows = dict.fromkeys(hot, 0)
        rows.update(
            connection.execute(
                select(IdeaVote.idea_id, func.count())
                .where(IdeaVote.idea_id.in_(hot))
                .group_by(IdeaVote.idea_id)
            ).all()
        )
    engine.dispose()
    return counts, rows


ARGS: Any = None


def main(argv: list[str] | None = None) -> int:
    global ARGS
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = {"--ideas": 10_000, "--votes": 200_000, "--users": 250, "--requests": 500}
    for name in list(extra):
        if name in argv:
            at = argv.index(name)
            extra[name] = int(argv[at + 1])
            del argv[at : at + 2]
    args = hp.parse_args(argv)
    ARGS = args
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, hp._interrupt)
    secret_key = secrets.token_hex(32)
    workdir = Path(tempfile.mkdtemp(prefix="cocreate-roadmap-bench-"))
    instance = workdir / "instance"
    log_path = workdir / "gunicorn.log"
    config = hp.app_config(args.database_url, instance, secret_key)
    proc = None
    created = False
    try:
        print(f"database: {args.database_url} (recreated)", flush=True)
        hp.create_database(args.database_url)
        created = True
        hp.migrate_and_load_demo(args.database_url, config)
        hot, tokens = seed(config, extra["--ideas"], extra["--votes"], extra["--users"])
        env = hp.server_env(args.database_url, instance, secret_key)

        port = hp.free_port()
        proc = start_gunicorn(port, env, log_path, workers=4)
        hp.wait_healthy(port, proc, log_path)
        print(f"gunicorn -w 4 -k sync on 127.0.0.1:{port} (pid {proc.pid})", flush=True)
        exact = concurrent_votes(port, hot, tokens, extra["--requests"])
        hp.stop_gunicorn(proc)
        proc = None

        port = hp.free_port()
        proc = hp.start_gunicorn(port, env, log_path)
        hp.wait_healthy(port, proc, log_path)
        print(f"\ngunicorn -w 1 -k sync on 127.0.0.1:{port} (pid {proc.pid})", flush=True)
        endpoints = [
            hp.Endpoint("/healthz", "/healthz", target=None),
            hp.Endpoint("board trending", "/roadmap/?sort=trending", target=BOARD_TARGET),
            hp.Endpoint("board top", "/roadmap/?sort=top", target=BOARD_TARGET),
        ]
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
        if not exact:
            print("SUMMARY: FAIL - vote counts were not exact", flush=True)
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
