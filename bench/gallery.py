"""Gallery claims, each against its baseline in the same run.

1. Upload of a 20 MB file through ``portal.gallery.uploads.receive`` (chunked copy with the
   size limit, SHA-256, content checks, atomic rename into content-addressed storage):
   * throughput vs ``shutil.copyfileobj`` of the same bytes to a file on the same disk;
     target >= 0.5;
   * peak Python memory growth (tracemalloc) during the upload; target <= 2 chunk sizes plus
     a fixed overhead (the overhead measured on a 64 KB upload is reported beside it).
2. The gallery page with 5,000 listed templates under one gunicorn sync worker, against
   ``/healthz`` interleaved in the same run (method and options of ``http_pages.py``);
   target >= 0.30. The SQL statement count of the page is measured in-process on page 1 and
   on page 200 of the same data and with 50 vs 5,000 templates: it must not change.

Run: ``.venv/bin/python bench/gallery.py`` (PostgreSQL reachable; same options as
``http_pages.py``; ``--uploads-only`` skips part 2). Always exits 0; last line ``SUMMARY:``.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import tracemalloc
from pathlib import Path
from typing import Any

import http_pages as hp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZE = 20 * 1024 * 1024
TEMPLATES = 5_000
UPLOAD_RATIO_TARGET = 0.5
PAGE_TARGET = 0.30


def _csv_file(path: Path, size: int) -> None:
    """A realistic UTF-8 CSV (mixed ASCII and Chinese) of exactly ``size`` bytes."""
    rng = random.Random(7)
    rows = []
    total = 0
    header = "store,city,month,revenue,备注\n"
    rows.append(header)
    total += len(header.encode())
    while total < size:
        line = f"{rng.randint(1, 9999)},上海,2026-{rng.randint(1, 12):02d},{rng.random() * 1e6:.2f},正常\n"
        rows.append(line)
        total += len(line.encode())
    data = "".join(rows).encode()[:size]
    data = data[: data.rfind(b"\n") + 1]
    path.write_bytes(data.ljust(size, b"\n"))


def bench_uploads(workdir: Path) -> dict[str, Any]:
    from portal.core.storage import LocalStorage
    from portal.gallery import uploads

    source = workdir / "source.csv"
    _csv_file(source, SIZE)
    small = workdir / "small.csv"
    small.write_bytes(source.read_bytes()[: 64 * 1024].rsplit(b"\n", 1)[0] + b"\n")
    copies, receives = [], []
    for round_number in range(5):
        store = LocalStorage(workdir / f"store-{round_number}")
        target = workdir / f"copy-{round_number}.csv"
        start = time.perf_counter()
        with source.open("rb") as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst)
            dst.flush()
            os.fsync(dst.fileno())
        copies.append(time.perf_counter() - start)
        start = time.perf_counter()
        with source.open("rb") as src:
            upload = uploads.receive(src, "source.csv", store, max_bytes=SIZE + 1)
        with store.open(upload.key) as stored:
            os.fsync(stored.fileno())
        receives.append(time.perf_counter() - start)
        target.unlink()
        shutil.rmtree(store.root)

    def peak(path: Path) -> int:
        store = LocalStorage(workdir / "store-mem")
        with path.open("rb") as src:
            tracemalloc.start()
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            uploads.receive(src, path.name, store, max_bytes=SIZE + 1)
            peak_bytes = tracemalloc.get_traced_memory()[1] - base
            tracemalloc.stop()
        shutil.rmtree(store.root)
        return peak_bytes

    overhead = peak(small)
    big = peak(source)
    copy_s, receive_s = statistics.median(copies), statistics.median(receives)
    return {
        "copy_mb_s": SIZE / copy_s / 1e6,
        "receive_mb_s": SIZE / receive_s / 1e6,
        "ratio": copy_s / receive_s,
        "peak_20mb": big,
        "peak_64kb": overhead,
        "chunk": uploads.CHUNK_SIZE,
        "growth_ok": big <= 2 * uploads.CHUNK_SIZE + overhead,
    }


def seed_templates(config: dict[str, Any], count: int) -> None:
    """``count`` listed templates with one version each, tags, ratings and downloads, written
    in bulk (the service path is measured by the tests; this only needs the rows)."""
    from sqlalchemy import func, insert, select, text

    from portal.app import create_app
    from portal.core.db import db, utcnow
    from portal.core.identity import Organization, User
    from portal.gallery.models import Download, Template, TemplateTag, TemplateVersion

    app = create_app(config)
    rng = random.Random(11)
    with app.app_context():
        orgs = list(db.session.scalars(select(Organization.id)))
        users = list(db.session.execute(select(User.id, User.organization_id)))
        now = utcnow()
        industries = ["retail", "saas", "finance", "manufacturing", "healthcare", "general"]
        templates = []
        for n in range(count):
            author_id, org_id = users[n % len(users)]
            rating_count = rng.randint(0, 40)
            rating_sum = sum(rng.randint(3, 5) for _ in range(rating_count))
            templates.append(
                {
                    "organization_id": org_id,
                    "author_id": author_id,
                    "title": f"Bench template {n} {industries[n % 6]} report",
                    "description_source": "A bench template.",
                    "description_html": "<p>A bench template.</p>",
                    "category": ["report", "dashboard", "solution"][n % 3],
                    "industry": industries[n % 6],
                    "license": "CC-BY-4.0",
                    "visibility": "public" if n % 10 else "organization",
                    "published": True,
                    "listed": True,
                    "latest_version": "1.0.0",
                    "product_range": ">=5.0, <6",
                    "product_min": 5_000_000,
                    "product_max": 6_000_000,
                    "rating_count": rating_count,
                    "rating_sum": rating_sum,
                    "bayes_score": (15 + rating_sum) / (5 + rating_count),
                    "download_count": 0,
                    "org_count": rng.randint(0, len(orgs)),
                    "created_at": now,
                    "updated_at": now,
                }
            )
        before = db.session.scalar(select(func.max(Template.id))) or 0
        db.session.execute(insert(Template), templates)
        ids = list(db.session.scalars(select(Template.id).where(Template.id > before)))
        db.session.execute(
            insert(TemplateTag),
            [{"template_id": i, "tag": t} for i in ids for t in ("kpi", f"t{i % 50}")],
        )
        db.session.execute(
            insert(TemplateVersion),
            [
                {
                    "template_id": i,
                    "version": "1.0.0",
                    "version_key": 1_000_000,
                    "changelog_source": "",
                    "changelog_html": "",
                    "manifest": {},
                    "product_range": ">=5.0, <6",
                    "file_key": "sha256/00/" + "0" * 64,
                    "file_sha256": "0" * 64,
                    "file_size": 1,
                    "file_name": "x.json",
                    "file_kind": "json",
                    "preview": {},
                    "published": True,
                    "created_at": now,
                }
                for i in ids
            ],
        )
        db.session.execute(
            insert(Download),
            [
                {
                    "template_id": rng.choice(ids),
                    "organization_id": rng.choice(orgs),
                    "user_id": None,
                    "created_at": now,
                }
                for _ in range(20_000)
            ],
        )
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            # Fresh planner statistics, as autovacuum would gather after a bulk load.
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("ANALYZE"))
        db.session.remove()
        db.engine.dispose()


def statement_counts(config: dict[str, Any]) -> dict[str, int]:
    from sqlalchemy import event

    from portal.app import create_app
    from portal.core.db import db

    app = create_app({**config, "TESTING": True, "RATELIMIT_ENABLED": False})
    counts: dict[str, int] = {}
    with app.app_context():
        engine = db.engine
    client = app.test_client()
    for label, url in (
        ("page 1", "/gallery/"),
        ("page 200", "/gallery/?page=200"),
        ("top rated", "/gallery/?sort=top&industry=retail"),
        ("tag", "/gallery/?tag=t7&sort=newest"),
    ):
        client.get(url)
        statements: list[str] = []

        def listener(*args: Any, _into: list[str] = statements) -> None:
            _into.append(args[2])

        event.listen(engine, "before_cursor_execute", listener)
        status = client.get(url).status_code
        event.remove(engine, "before_cursor_execute", listener)
        counts[label] = len(statements) if status == 200 else -status
    return counts


def main(argv: list[str] | None = None) -> int:
    uploads_only = "--uploads-only" in (argv or sys.argv[1:])
    args = hp.parse_args([a for a in (argv or sys.argv[1:]) if a != "--uploads-only"])
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, hp._interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="cocreate-gallery-bench-"))
    summary: list[str] = []
    proc: subprocess.Popen[bytes] | None = None
    created = False
    try:
        result = bench_uploads(workdir)
        print("\n20 MB upload (median of 5) vs shutil.copyfileobj, same disk")
        print(f"  copyfileobj        {result['copy_mb_s']:8.1f} MB/s")
        print(
            f"  uploads.receive    {result['receive_mb_s']:8.1f} MB/s   ratio {result['ratio']:.2f} (target >= {UPLOAD_RATIO_TARGET})"
        )
        print(
            f"  peak memory growth {result['peak_20mb'] / 1024:8.1f} KiB for 20 MB; {result['peak_64kb'] / 1024:.1f} KiB for 64 KB (fixed overhead); chunk {result['chunk'] // 1024} KiB"
        )
        ratio_ok = "OK" if result["ratio"] >= UPLOAD_RATIO_TARGET else "MISS"
        memory_ok = "OK" if result["growth_ok"] else "MISS"
        summary.append(
            f"upload ratio {result['ratio']:.2f} {ratio_ok}; "
            f"peak {result['peak_20mb'] // 1024} KiB {memory_ok}"
        )
        if uploads_only:
            return 0

        secret_key = secrets.token_hex(32)
        instance = workdir / "instance"
        log_path = workdir / "gunicorn.log"
        config = hp.app_config(args.database_url, instance, secret_key)
        print(f"\ndatabase: {args.database_url} (recreated)", flush=True)
        hp.create_database(args.database_url)
        created = True
        hp.migrate_and_load_demo(args.database_url, config)
        seed_templates(config, 50)
        few = statement_counts(config)
        seed_templates(config, TEMPLATES - 50)
        many = statement_counts(config)
        print(f"\nSQL statements per gallery page: 50 templates {few}; 5,000 templates {many}")
        constant = few == many and len(set(many.values())) <= 2
        summary.append(f"statements {'constant' if constant else 'NOT constant'}")

        port = hp.free_port()
        env = hp.server_env(args.database_url, instance, secret_key)
        proc = hp.start_gunicorn(port, env, log_path)
        hp.wait_healthy(port, proc, log_path)
        endpoints = [
            hp.Endpoint("/healthz", "/healthz", target=None),
            hp.Endpoint("/gallery/ popular", "/gallery/", target=PAGE_TARGET),
            hp.Endpoint(
                "/gallery/ top+industry", "/gallery/?sort=top&industry=retail", target=PAGE_TARGET
            ),
            hp.Endpoint("/gallery/ newest+tag", "/gallery/?sort=newest&tag=t7", target=PAGE_TARGET),
        ]
        for endpoint in endpoints:
            status, _h, _b = hp.request(port, "GET", endpoint.path)
            if status != 200:
                raise RuntimeError(f"GET {endpoint.path} answered {status}:\n{hp._tail(log_path)}")
        generator = hp.pick_generator(args.generator, args.connections, args.threads, workdir)
        results = hp.measure(port, generator, endpoints, args)
        hp.report(endpoints, results, generator)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
    except Exception as error:  # a measurement: report, clean up, exit 0
        traceback.print_exc()
        summary.append(f"ERROR {type(error).__name__}: {error}")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if proc is not None:
            hp.stop_gunicorn(proc)
        if created and not args.keep_db:
            try:
                hp.drop_database(args.database_url)
            except Exception as error:
                print(f"could not drop the bench database: {error}", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)
        print("SUMMARY (gallery): " + "; ".join(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
