"""Moderation speed: the review queue under gunicorn, and ``submit`` with every rule on.

1. The queue page with 10,000 pending items, signed in as a moderator, against the trivial
   ``/healthz`` endpoint of the same gunicorn (one sync worker, PostgreSQL), measured in the
   same run and interleaved (see ``http_pages.py``). Target: ratio >= 0.25. The page keeps its
   rendered body until the queue changes (``--queue-cache-seconds 0`` renders it every time,
   which is what the first view after each decision costs).
2. ``moderation.service.submit`` on a 2 KB post with 1,000 watched words and all rules on,
   in process on the same PostgreSQL database, then on SQLite (the embedded default) seeded
   the same way: median and p95 per item, next to the same-run cost of
   ``rules.evaluate`` alone (the pure part) and of one INSERT + COMMIT of a moderation row (the
   floor any database-backed submit pays). Target from the issue: <= 1 ms median.

Run: ``.venv/bin/python bench/moderation.py`` (PostgreSQL at 127.0.0.1:5432, user postgres).
"""

from __future__ import annotations

import argparse
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import http_pages as hp

QUEUE_ITEMS = 10_000
WORDS = 1_000
SUBMITS = 300
QUEUE_TARGET = 0.25


def seed_queue(database_url: str, config: dict[str, Any]) -> None:
    """10,000 pending items from 200 authors, and 1,000 watched words, in a few statements."""
    from sqlalchemy import insert, select

    from moderation.models import ModerationItem, WatchedWordEntry
    from moderation.service import words_changed
    from portal.app import create_app
    from portal.core.db import db, utcnow
    from portal.core.identity import Organization, User

    rng = random.Random(7)
    app = create_app(config)
    with app.app_context():
        orgs = db.session.scalars(select(Organization.id)).all()
        authors = db.session.scalars(select(User.id).limit(200)).all()
        now = utcnow()
        rows = [
            {
                "kind": "profile_about",
                "object_id": 1_000_000 + i,
                "organization_id": rng.choice(orgs),
                "author_id": rng.choice(authors),
                "state": "pending",
                "held_reasons": ["new_user"],
                "summary": f"Queued text {i}",
                "source": f"Queued **text** number {i} " + "lorem ipsum " * 20,
                "source_digest": f"{i:064d}",
                "preview_html": f"<p>Queued <strong>text</strong> number {i}</p>",
                "submitted_at": now,
                "flag_weight": 0.0,
            }
            for i in range(QUEUE_ITEMS)
        ]
        db.session.execute(insert(ModerationItem), rows)
        db.session.execute(
            insert(WatchedWordEntry),
            [
                {"pattern": w, "action": a, "replacement": "", "is_regex": False}
                for w, a in watched_words()
            ],
        )
        words_changed(db.session)  # a bulk INSERT bypasses the ORM hook that stamps the list
        db.session.commit()
        db.session.remove()
        if db.engine.dialect.name == "postgresql":
            # A live database of this size has been vacuumed and analyzed by autovacuum; a
            # bulk load has not, and its plans (seq scans, heap fetches) would be unrealistic.
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
        db.engine.dispose()


def watched_words() -> list[tuple[str, str]]:
    rng = random.Random(11)
    latin = "abcdefghijklmnopqrstuvwxyz"
    han = "的一是不了人我在有他这为之大来以个中上们到说国和地也子时道出而要于就下得可你年生"
    words = set()
    while len(words) < WORDS:
        if rng.random() < 0.6:
            words.add("".join(rng.choice(latin) for _ in range(rng.randint(5, 9))))
        else:
            words.add("".join(rng.choice(han) for _ in range(rng.randint(2, 4))))
    actions = ["hold", "censor", "replace", "block"]
    return [(w, actions[i % 3]) for i, w in enumerate(sorted(words))]  # no block: posts must pass


def post_text(rng: random.Random) -> str:
    words = [
        "report",
        "dashboard",
        "客户成功",
        "模板",
        "renewal",
        "health",
        "数据",
        "export",
        "filter",
    ]
    text = ""
    while len(text.encode()) < 2048:
        text += " ".join(rng.choice(words) for _ in range(12)) + ". "
    return text


def time_submit(database_url: str, config: dict[str, Any]) -> dict[str, list[float]]:
    """Per post: the service alone (the caller owns the transaction), the service plus the
    caller's COMMIT, and the floor (one INSERT + COMMIT), all in the same loop."""
    from sqlalchemy import delete, event

    from moderation import rules
    from moderation import service as moderation
    from moderation.models import ModerationItem, ModerationSetting
    from portal.accounts.models import UserProfile
    from portal.app import create_app
    from portal.core.db import DirectStatement, db
    from portal.core.identity import User

    app = create_app(config)
    rng = random.Random(3)
    timings: dict[str, list[float]] = {
        "submit": [],
        "submit_commit": [],
        "evaluate": [],
        "insert": [],
        "queries": [],
    }
    with app.app_context():
        session = db.session
        author = session.query(User).filter_by(email="bob@acme.example").one()
        author.trust_level = 0  # every rule applies
        # Limits are checked on every post; set high enough that 300 posts in a row pass.
        session.merge(
            ModerationSetting(key="rules", value={"rate_limits": {"0": [100_000, 100_000]}})
        )
        session.commit()
        # Statements the service sends (BEGIN and COMMIT included), counted per submit.
        statements: list[str] = []
        event.listen(db.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        # submit's own statements go straight to the driver, past that event: count them too.
        run_direct = DirectStatement._run

        def counted(self: DirectStatement, *args: Any, **kwargs: Any) -> Any:
            statements.append(self._statement)
            return run_direct(self, *args, **kwargs)

        DirectStatement._run = counted  # type: ignore[method-assign]
        compiled = moderation.compiled_words(session)  # warm the cache, as a running app has
        settings = moderation.rule_settings(session)
        facts = rules.AuthorFacts(0, False, 0, 0, 0, False)
        for i in range(SUBMITS):
            text = post_text(rng) + f" #{i}"
            started = time.perf_counter()
            rules.evaluate(rules.Submission("profile_about", text), facts, compiled, settings)
            timings["evaluate"].append(time.perf_counter() - started)

            profile = UserProfile(user_id=author.id, about_source=text, about_html=text)
            profile = session.merge(profile)
            session.flush()
            statements_before = len(statements)
            started = time.perf_counter()
            moderation.submit(session, "profile_about", profile, author, text)
            submitted = time.perf_counter()
            session.commit()
            committed = time.perf_counter()
            timings["submit"].append(submitted - started)
            timings["submit_commit"].append(committed - started)
            timings["queries"].append(len(statements) - statements_before)
            session.execute(
                delete(ModerationItem).where(
                    ModerationItem.kind == "profile_about", ModerationItem.object_id == author.id
                )
            )
            session.commit()

            started = time.perf_counter()
            session.add(
                ModerationItem(
                    kind="bench", object_id=i, state="pending", source=text, held_reasons=[]
                )
            )
            session.commit()
            timings["insert"].append(time.perf_counter() - started)
        DirectStatement._run = run_direct  # type: ignore[method-assign]
        db.session.remove()
        db.engine.dispose()
    return timings


def ms(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(pct / 100 * len(ordered)))] * 1000


def measure_queue(
    args: argparse.Namespace,
    config: dict[str, Any],
    instance: Path,
    secret_key: str,
    workdir: Path,
    log_path: Path,
) -> None:
    """The queue against /healthz, with the moderator's signed-in home page beside it: the
    cost every signed-in moderator page pays (session, user, nav counts, layout; the home page
    adds its kept sections) before the queue's own work, so the ratio can be read against what
    is reachable at all."""
    port = hp.free_port()
    env = hp.server_env(args.database_url, instance, secret_key)
    if args.queue_cache_seconds is not None:
        env["COCREATE_MODERATION_QUEUE_CACHE_SECONDS"] = str(args.queue_cache_seconds)
    kept = args.queue_cache_seconds != 0
    proc: subprocess.Popen[bytes] | None = hp.start_gunicorn(port, env, log_path)
    try:
        hp.wait_healthy(port, proc, log_path)
        cookie = hp.sign_in(port, "moderator@vendor.example", hp.DEMO_PASSWORD)
        status, _h, body = hp.request(port, "GET", "/moderation/queue", headers={"Cookie": cookie})
        if status != 200 or b"mod-item" not in body:
            raise RuntimeError(f"queue page answered {status}")
        endpoints = [
            hp.Endpoint("/healthz", "/healthz", target=None),
            hp.Endpoint("/ (moderator)", "/", headers={"Cookie": cookie}, target=None),
            hp.Endpoint(
                "queue (10k, kept)" if kept else "queue (10k, rendered)",
                "/moderation/queue",
                headers={"Cookie": cookie},
                target=QUEUE_TARGET,
            ),
        ]
        generator = hp.pick_generator(args.generator, args.connections, args.threads, workdir)
        results = hp.measure(port, generator, endpoints, args)
        hp.report(endpoints, results, generator)
    finally:
        hp.stop_gunicorn(proc)


def report_submit(timings: dict[str, list[float]], database: str) -> None:
    """The service's own cost is ``submit`` without the COMMIT, which belongs to the caller;
    with the COMMIT it cannot go below the floor, which is printed beside it."""
    print()
    print(
        f"submit on {database}: {SUBMITS} posts of ~2 KB, {WORDS} watched words, "
        "author at trust level 0 (all rules)"
    )
    print(f"{'operation':<48} {'median ms':>10} {'p95 ms':>8}")
    for label, key in [
        ("rules.evaluate (pure)", "evaluate"),
        ("INSERT + COMMIT one row (database floor)", "insert"),
        ("moderation.submit, no COMMIT (the service)", "submit"),
        ("moderation.submit + COMMIT", "submit_commit"),
    ]:
        print(f"{label:<48} {ms(timings[key], 50):>10.3f} {ms(timings[key], 95):>8.3f}")
    queries = statistics.median(timings["queries"])
    median_submit = statistics.median(timings["submit"]) * 1000
    with_commit = statistics.median(timings["submit_commit"]) * 1000
    floor = statistics.median(timings["insert"]) * 1000
    print(f"SQL statements per submit + COMMIT (median): {queries:.0f}")
    print(
        f"submit median {median_submit:.3f} ms without COMMIT, {with_commit:.3f} ms with it "
        f"({with_commit / floor:.1f}x the one-row floor of {floor:.3f} ms); "
        f"target <= 1 ms (service, no COMMIT): {'PASS' if median_submit <= 1 else 'FAIL'}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url", default=hp.DEFAULT_URL.replace("cocreate_bench", "cocreate_bench_mod")
    )
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--skip-queue", action="store_true", help="only time submit")
    parser.add_argument("--skip-submit", action="store_true", help="only measure the queue")
    parser.add_argument(
        "--queue-cache-seconds",
        type=float,
        default=None,
        help="the server's MODERATION_QUEUE_CACHE_SECONDS (default: the app's, 30); "
        "0 renders the queue's body on every request, as after every decision",
    )
    args = parser.parse_args()
    secret_key = secrets.token_hex(32)
    workdir = Path(tempfile.mkdtemp(prefix="cocreate-bench-mod-"))
    instance = workdir / "instance"
    log_path = workdir / "gunicorn.log"
    config = hp.app_config(args.database_url, instance, secret_key)
    created = False
    try:
        hp.create_database(args.database_url)
        created = True
        hp.migrate_and_load_demo(args.database_url, config)
        seed_queue(args.database_url, config)
        print(f"seeded {QUEUE_ITEMS} pending items and {WORDS} watched words", flush=True)

        if not args.skip_queue:
            measure_queue(args, config, instance, secret_key, workdir, log_path)
        if not args.skip_submit:
            report_submit(time_submit(args.database_url, config), "PostgreSQL")
            # The embedded default, seeded the same way: no network round trip per statement.
            sqlite_url = f"sqlite:///{workdir / 'submit.db'}"
            sqlite_config = hp.app_config(sqlite_url, workdir / "instance-sqlite", secret_key)
            hp.migrate_and_load_demo(sqlite_url, sqlite_config)
            seed_queue(sqlite_url, sqlite_config)
            report_submit(time_submit(sqlite_url, sqlite_config), "SQLite")
    except Exception as error:  # a measurement: report and clean up
        traceback.print_exc()
        print(f"benchmark failed: {type(error).__name__}: {error}", file=sys.stderr)
    finally:
        if created:
            try:
                hp.drop_database(args.database_url)
            except Exception as error:  # noqa: BLE001
                print(f"could not drop the bench database: {error}", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
