"""HTTP throughput of real pages against the trivial ``/healthz`` endpoint, through gunicorn.

What it measures
    Requests per second (and p50/p95 latency) that ONE gunicorn sync worker serves for:

    * ``/healthz``            the trivial endpoint: the baseline (routing, hooks, WSGI, HTTP);
    * ``/``                   the home page, anonymous;
    * ``/sign-in``            the sign-in page (GET: form, CSRF token, session cookie);
    * ``/ (signed in)``       the home page as the demo user alice@acme.example.

    Each page's rate is reported as a ratio to the baseline; the target is >= 0.30 (a page may
    cost at most about 3x a request that does nothing). The script always exits 0: it is a
    measurement, not a test. The last line starts with ``SUMMARY:``.

How to run
    PostgreSQL must be reachable (default ``postgresql+psycopg://postgres@127.0.0.1:5432``)::

        .venv/bin/python bench/http_pages.py
        .venv/bin/python bench/http_pages.py --duration 10 --rounds 5 --generator python
        .venv/bin/python bench/http_pages.py --profile 300   # also cProfile the pages in-process

    It drops and recreates the database named in ``--database-url`` (default
    ``cocreate_bench``), migrates it, loads the demo data, starts gunicorn
    (``-w 1 -k sync``, loopback, a free port, ``COCREATE_ENV=production``, rate limits off),
    runs the load, stops gunicorn and drops the database, also on errors and Ctrl-C.

    Load generator: ``wrk`` when it is on PATH (``apt-get install wrk``), otherwise a Python
    client (threads, one http.client connection each). The same generator is used for every
    endpoint in a run, so the ratios are comparable; absolute numbers are not comparable
    between generators or machines. Every endpoint gets a warm-up, then the endpoints are run
    in interleaved rounds. A page's ratio is computed per round (page vs the /healthz run of
    the same round) and the median over rounds is reported, with the min-max range.

Why the baseline is in the same run
    Absolute requests/second depend on the machine, its load, the CPU governor, the Python
    build and the generator. Measuring ``/healthz`` in the same process, with the same
    generator, interleaved with the pages, cancels all of that out: the ratio says how much
    the page itself (templates, session, CSRF, i18n, database) costs, and it is stable enough
    to compare across machines and commits.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import html.parser
import http.client
import io
import json
import os
import pstats
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/cocreate_bench"
DEMO_EMAIL = "alice@acme.example"
DEMO_PASSWORD = "cocreate-demo-2026"  # noqa: S105 - the published demo sign-in
USER_AGENT = "cocreate-bench/1"  # fixed: Flask-Login's session protection hashes it
TARGET = 0.30
MAX_SECONDS = 120  # hard cap for one load run, whatever the arguments say

sys.path.insert(0, str(ROOT))


@dataclass
class Endpoint:
    label: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    target: float | None = TARGET


@dataclass
class Sample:
    rps: float
    p50_ms: float | None
    p95_ms: float | None
    requests: int
    errors: int  # socket errors + non-2xx/3xx answers


# --------------------------------------------------------------------------- database


def _maintenance_engine(database_url: str) -> tuple[Any, str]:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if not url.database:
        raise SystemExit("--database-url must name a database")
    engine = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    return engine, url.database


def _quoted(engine: Any, name: str) -> str:
    return engine.dialect.identifier_preparer.quote_identifier(name)


def create_database(database_url: str) -> None:
    from sqlalchemy import text

    engine, name = _maintenance_engine(database_url)
    try:
        with engine.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {_quoted(engine, name)} WITH (FORCE)"))
            conn.execute(text(f"CREATE DATABASE {_quoted(engine, name)}"))
    finally:
        engine.dispose()


def drop_database(database_url: str) -> None:
    from sqlalchemy import text

    engine, name = _maintenance_engine(database_url)
    try:
        with engine.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {_quoted(engine, name)} WITH (FORCE)"))
    finally:
        engine.dispose()


def app_config(database_url: str, instance: Path, secret_key: str) -> dict[str, Any]:
    """Overrides for an in-process app that match what gunicorn gets from the environment."""
    return {
        "ENV": "production",
        "SECRET_KEY": secret_key,
        "DATABASE_URL": database_url,
        "INSTANCE_PATH": str(instance),
        "RATELIMIT_ENABLED": False,
        "BROKER_URL": "",
    }


def migrate_and_load_demo(database_url: str, config: dict[str, Any]) -> None:
    from portal import migrate
    from portal.app import create_app
    from portal.core.db import db
    from portal.demo import load_demo

    migrate.upgrade(database_url)
    app = create_app(config)
    with app.app_context():
        load_demo(db.session)
        db.session.commit()
        db.session.remove()
        db.engine.dispose()


# --------------------------------------------------------------------------- gunicorn


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(database_url: str, instance: Path, secret_key: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("COCREATE_") and k not in {"FLASK_DEBUG", "FLASK_ENV"}
    }
    env.update(
        COCREATE_ENV="production",
        COCREATE_SECRET_KEY=secret_key,
        COCREATE_DATABASE_URL=database_url,
        COCREATE_INSTANCE_PATH=str(instance),
        COCREATE_RATELIMIT_ENABLED="0",
        COCREATE_BROKER_URL="",
        PYTHONUNBUFFERED="1",
    )
    return env


def find_gunicorn() -> str:
    for candidate in (
        ROOT / ".venv" / "bin" / "gunicorn",
        Path(sys.executable).parent / "gunicorn",
    ):
        if candidate.exists():
            return str(candidate)
    return shutil.which("gunicorn") or "gunicorn"


def start_gunicorn(port: int, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    command = [
        find_gunicorn(),
        "-w",
        "1",
        "-k",
        "sync",
        "-b",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "wsgi:app",
    ]
    log = log_path.open("wb")
    try:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: we can stop master and worker
        )
    finally:
        log.close()


def stop_gunicorn(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def wait_healthy(port: int, proc: subprocess.Popen[bytes], log_path: Path, timeout=30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited ({proc.returncode}):\n{_tail(log_path)}")
        try:
            status, _headers, _body = request(port, "GET", "/healthz", timeout=2)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"/healthz did not answer within {timeout:.0f}s:\n{_tail(log_path)}")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------- plain HTTP


def request(
    port: int,
    method: str,
    path: str,
    body: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"User-Agent": USER_AGENT, **(headers or {})})
        response = conn.getresponse()
        return response.status, response.msg, response.read()
    finally:
        conn.close()


def _cookies(headers: http.client.HTTPMessage) -> dict[str, str]:
    """name -> value from Set-Cookie; attributes (Secure, HttpOnly...) are ignored on purpose."""
    found = {}
    for raw in headers.get_all("Set-Cookie") or []:
        name, _, rest = raw.partition("=")
        found[name.strip()] = rest.split(";", 1)[0].strip()
    return found


class _CsrfFinder(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.token: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "input" and values.get("name") == "csrf_token" and self.token is None:
            self.token = values.get("value")


def sign_in(port: int, email: str, password: str) -> str:
    """Sign in like a browser would; return the Cookie header value for later requests."""
    status, headers, body = request(port, "GET", "/sign-in")
    if status != 200:
        raise RuntimeError(f"GET /sign-in answered {status}")
    jar = _cookies(headers)
    finder = _CsrfFinder()
    finder.feed(body.decode("utf-8", "replace"))
    if not finder.token or "session" not in jar:
        raise RuntimeError("no csrf_token input or no session cookie on /sign-in")
    form = urllib.parse.urlencode(
        {"csrf_token": finder.token, "email": email, "password": password, "next": ""}
    )
    status, headers, _body = request(
        port,
        "POST",
        "/sign-in",
        body=form,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": _cookie_header(jar),
        },
    )
    if status not in (302, 303):
        raise RuntimeError(f"POST /sign-in answered {status}, not a redirect")
    jar.update(_cookies(headers))
    cookie = _cookie_header(jar)
    status, _headers, body = request(port, "GET", "/", headers={"Cookie": cookie})
    if status != 200 or b'data-testid="bell"' not in body:
        raise RuntimeError(f"home page with the session cookie is not signed in ({status})")
    return cookie


def _cookie_header(jar: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in jar.items())


# --------------------------------------------------------------------------- generators


class WrkGenerator:
    name = "wrk"
    # Prints one JSON line at the end; latency is in microseconds.
    SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p95_us": %d, ' ..
    '"errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""

    def __init__(self, binary: str, connections: int, threads: int, workdir: Path) -> None:
        self.binary = binary
        self.connections = connections
        self.threads = max(1, min(threads, connections))
        self.script = workdir / "report.lua"
        self.script.write_text(self.SCRIPT)

    def run(self, port: int, endpoint: Endpoint, seconds: float) -> Sample:
        seconds = max(1, min(round(seconds), MAX_SECONDS))
        command = [
            self.binary,
            f"-t{self.threads}",
            f"-c{self.connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(self.script),
            "-H",
            f"User-Agent: {USER_AGENT}",
        ]
        for name, value in endpoint.headers.items():
            command += ["-H", f"{name}: {value}"]
        command.append(f"http://127.0.0.1:{port}{endpoint.path}")
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + 30, check=False
        )
        match = re.search(r"^BENCH_JSON (\{.*\})$", done.stdout, re.MULTILINE)
        if done.returncode != 0 or match is None:
            raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}{done.stderr}")
        data = json.loads(match.group(1))
        return Sample(
            rps=data["requests"] / (data["duration_us"] / 1e6),
            p50_ms=data["p50_us"] / 1000,
            p95_ms=data["p95_us"] / 1000,
            requests=data["requests"],
            errors=data["errors"],
        )


class PythonGenerator:
    """N threads, each with one http.client connection (reopened when the server closes it,
    as gunicorn's sync worker does after every response)."""

    name = "python (threads + http.client)"

    def __init__(self, connections: int) -> None:
        self.connections = connections

    def run(self, port: int, endpoint: Endpoint, seconds: float) -> Sample:
        seconds = max(0.5, min(seconds, MAX_SECONDS))
        headers = {"User-Agent": USER_AGENT, **endpoint.headers}
        latencies: list[list[float]] = [[] for _ in range(self.connections)]
        errors = [0] * self.connections
        start_gate = threading.Barrier(self.connections + 1)
        stop_at: list[float] = [0.0]

        def worker(index: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            mine = latencies[index]
            start_gate.wait()
            try:
                while (now := time.perf_counter()) < stop_at[0]:
                    try:
                        conn.request("GET", endpoint.path, headers=headers)
                        response = conn.getresponse()
                        response.read()
                        if response.status >= 400:
                            errors[index] += 1
                        if response.will_close:
                            conn.close()
                    except (OSError, http.client.HTTPException):
                        errors[index] += 1
                        conn.close()
                    mine.append(time.perf_counter() - now)
            finally:
                conn.close()

        threads = [
            threading.Thread(target=worker, args=(i,), daemon=True) for i in range(self.connections)
        ]
        for thread in threads:
            thread.start()
        began = time.perf_counter()
        stop_at[0] = began + seconds
        start_gate.wait()
        for thread in threads:
            thread.join(seconds + 30)
        elapsed = time.perf_counter() - began
        merged = sorted(x for per_thread in latencies for x in per_thread)
        if not merged:
            return Sample(0.0, None, None, 0, sum(errors))
        return Sample(
            rps=len(merged) / elapsed,
            p50_ms=_percentile(merged, 50) * 1000,
            p95_ms=_percentile(merged, 95) * 1000,
            requests=len(merged),
            errors=sum(errors),
        )


def _percentile(ordered: list[float], pct: float) -> float:
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def pick_generator(choice: str, connections: int, threads: int, workdir: Path) -> Any:
    wrk = shutil.which("wrk")
    if choice == "wrk" and wrk is None:
        raise SystemExit("--generator wrk: wrk is not installed (apt-get install wrk)")
    if choice in ("auto", "wrk") and wrk is not None:
        return WrkGenerator(wrk, connections, threads, workdir)
    if choice == "auto":
        print("wrk not found on PATH: using the Python generator.", flush=True)
    return PythonGenerator(connections)


# --------------------------------------------------------------------------- measurement


def measure(
    port: int, generator: Any, endpoints: list[Endpoint], args: argparse.Namespace
) -> dict[str, list[Sample]]:
    for endpoint in endpoints:
        generator.run(port, endpoint, args.warmup)
    results: dict[str, list[Sample]] = {e.label: [] for e in endpoints}
    for round_no in range(1, args.rounds + 1):
        for endpoint in endpoints:
            sample = generator.run(port, endpoint, args.duration)
            results[endpoint.label].append(sample)
            print(
                f"  round {round_no}/{args.rounds}  {endpoint.label:<16} "
                f"{sample.rps:9.1f} req/s  errors={sample.errors}",
                flush=True,
            )
    return results


def median_sample(samples: list[Sample]) -> Sample:
    ordered = sorted(samples, key=lambda s: s.rps)
    middle = ordered[len(ordered) // 2]
    return Sample(
        rps=statistics.median(s.rps for s in samples),
        p50_ms=middle.p50_ms,
        p95_ms=middle.p95_ms,
        requests=sum(s.requests for s in samples),
        errors=sum(s.errors for s in samples),
    )


def report(endpoints: list[Endpoint], results: dict[str, list[Sample]], generator: Any) -> None:
    """Ratios are taken round by round (page and baseline measured seconds apart), then the
    median over rounds: that cancels most of the drift of a busy machine."""
    base_samples = results[endpoints[0].label]
    base = median_sample(base_samples)
    rounds = len(base_samples)
    header = (
        f"{'endpoint':<16} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'ratio':>7} "
        f"{'range':>11} {'target':>7} {'errors':>7}  result"
    )
    print()
    print(
        f"generator: {generator.name}; median of {rounds} interleaved rounds; "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    print(header)
    print("-" * len(header))
    verdicts = []
    for endpoint in endpoints:
        samples = results[endpoint.label]
        sample = median_sample(samples)
        per_round = [
            s.rps / b.rps if b.rps else 0.0 for s, b in zip(samples, base_samples, strict=True)
        ]
        ratio = statistics.median(per_round)
        spread = f"{min(per_round):.2f}-{max(per_round):.2f}"
        if endpoint.target is None:
            target, verdict = "-", "baseline"
        else:
            target = f">={endpoint.target:.2f}"
            ok = ratio >= endpoint.target and sample.errors == 0
            verdict = "PASS" if ok else "FAIL"
            verdicts.append((endpoint.label, verdict, ratio))
        p50 = f"{sample.p50_ms:.2f}" if sample.p50_ms is not None else "-"
        p95 = f"{sample.p95_ms:.2f}" if sample.p95_ms is not None else "-"
        print(
            f"{endpoint.label:<16} {sample.rps:>9.1f} {p50:>8} {p95:>8} {ratio:>7.2f} "
            f"{spread:>11} {target:>7} {sample.errors:>7}  {verdict}"
        )
    rates = [s.rps for s in base_samples]
    drift = (max(rates) - min(rates)) / base.rps if base.rps else 0.0
    if drift > 0.20:
        print(
            f"NOTE: /healthz varied by {drift:.0%} between rounds: the machine is busy. "
            "Trust the ratios only roughly; rerun with more --rounds on a quiet machine."
        )
    failed = [label for label, verdict, _ in verdicts if verdict == "FAIL"]
    ratios = ", ".join(f"{label} {ratio:.2f}" for label, _, ratio in verdicts)
    # Each page has its own target (the CS and moderation scripts pass theirs).
    targets = sorted({e.target for e in endpoints if e.target is not None})
    wanted = "/".join(f"{t:.2f}" for t in targets)
    print()
    print(
        f"SUMMARY: {'PASS' if not failed else 'FAIL'} - "
        f"{len(verdicts) - len(failed)}/{len(verdicts)} pages at >= {wanted}x /healthz "
        f"({base.rps:.0f} req/s); ratios: {ratios}"
        + (f"; below target: {', '.join(failed)}" if failed else "")
    )


def profile_pages(config: dict[str, Any], count: int, cookie: str | None) -> None:
    """cProfile ``count`` in-process requests per page through ``app.test_client()``."""
    from portal.app import create_app

    app = create_app(config)
    pages: list[tuple[str, str, dict[str, str]]] = [
        ("/healthz", "/healthz", {}),
        ("/", "/", {}),
        ("/sign-in", "/sign-in", {}),
    ]
    if cookie:
        pages.append(("/ (signed in)", "/", {"Cookie": cookie}))
    client = app.test_client(use_cookies=False)
    environ = {"REMOTE_ADDR": "127.0.0.1"}
    for label, path, headers in pages:
        headers = {"User-Agent": USER_AGENT, **headers}
        for _ in range(20):  # warm-up: template compilation, connection pool
            client.get(path, headers=headers, environ_base=environ)
        profiler = cProfile.Profile()
        began = time.perf_counter()
        profiler.enable()
        for _ in range(count):
            client.get(path, headers=headers, environ_base=environ)
        profiler.disable()
        per_request = (time.perf_counter() - began) / count * 1000
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(25)
        stats.sort_stats("tottime").print_stats(15)
        print(f"\n===== profile {label}: {per_request:.2f} ms/request in-process (profiled)")
        print(out.getvalue())
    with app.app_context():
        from portal.core.db import db

        db.session.remove()
        db.engine.dispose()


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds per endpoint")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--no-signed-in", action="store_true", help="skip the signed-in page")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="also cProfile N requests per page"
    )
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database")
    args = parser.parse_args(argv)
    args.rounds = max(1, min(args.rounds, 9))
    args.connections = max(1, min(args.connections, 64))
    args.duration = max(1.0, min(args.duration, MAX_SECONDS))
    args.warmup = max(0.5, min(args.warmup, 30.0))
    return args


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM behaves like Ctrl-C, so the finally blocks stop gunicorn and drop the database.
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    signal.signal(signal.SIGTERM, _interrupt)
    secret_key = secrets.token_hex(32)
    workdir = Path(tempfile.mkdtemp(prefix="cocreate-bench-"))
    instance = workdir / "instance"
    log_path = workdir / "gunicorn.log"
    config = app_config(args.database_url, instance, secret_key)
    proc: subprocess.Popen[bytes] | None = None
    created = False
    try:
        print(f"database: {args.database_url} (recreated)", flush=True)
        create_database(args.database_url)
        created = True
        migrate_and_load_demo(args.database_url, config)

        port = free_port()
        proc = start_gunicorn(port, server_env(args.database_url, instance, secret_key), log_path)
        wait_healthy(port, proc, log_path)
        print(f"gunicorn -w 1 -k sync on 127.0.0.1:{port} (pid {proc.pid})", flush=True)

        endpoints = [
            Endpoint("/healthz", "/healthz", target=None),
            Endpoint("/", "/"),
            Endpoint("/sign-in", "/sign-in"),
        ]
        for endpoint in endpoints:
            status, _headers, _body = request(port, "GET", endpoint.path)
            if status != 200:
                raise RuntimeError(f"GET {endpoint.path} answered {status}:\n{_tail(log_path)}")
        cookie = None
        if not args.no_signed_in:
            try:
                cookie = sign_in(port, DEMO_EMAIL, DEMO_PASSWORD)
                # Informational: the issue sets the target for the anonymous home and sign-in pages.
                endpoints.append(
                    Endpoint("/ (signed in)", "/", headers={"Cookie": cookie}, target=None)
                )
            except (RuntimeError, OSError) as error:
                print(f"signed-in home page skipped: {error}", flush=True)

        generator = pick_generator(args.generator, args.connections, args.threads, workdir)
        print(
            f"load: {generator.name}, {args.connections} connections, {args.warmup:g}s warm-up, "
            f"{args.rounds} x {args.duration:g}s per endpoint, interleaved",
            flush=True,
        )
        results = measure(port, generator, endpoints, args)
        report(endpoints, results, generator)
        if args.profile > 0:
            profile_pages(config, min(args.profile, 5000), cookie)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
    except Exception as error:  # a measurement: report, clean up, exit 0
        traceback.print_exc()
        print(f"benchmark failed: {type(error).__name__}: {error}", file=sys.stderr)
        print("SUMMARY: ERROR - no measurement", flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip cleanup
        if proc is not None:
            stop_gunicorn(proc)
        if created and not args.keep_db:
            try:
                drop_database(args.database_url)
            except Exception as error:
                print(f"could not drop the bench database: {error}", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
