"""Sustained load on the whole stack: gunicorn + PostgreSQL + Redis + Celery workers, with wrk.

What it measures
    A mix of signed-in customer traffic, closed loop (each wrk connection sends its next request
    when the last one is answered), stepped over connection counts (default 1, 2, 4, 8, 16, 32):

    * 70% browsing: the question list (sorts, tag filter, page 2), question pages, the
      knowledge base (home, categories, articles), the roadmap board (trending, top, new) and
      idea pages, the template gallery and template pages;
    * 20% search: English and Chinese queries, whole words and typed prefixes;
    * 10% writes through the JSON API with personal access tokens: votes on questions, answers
      and roadmap ideas (60% of the writes; a repeated question/answer vote retracts it, an
      idea vote is cast or removed at random) and posts (40%: answers, and new questions).

    Browsing and search carry the session cookies of demo customers signed in through the real
    sign-in form (English and Chinese interface). Writes come from ``--load-users`` extra
    customers at trust level 4, round-robin, so that no account exceeds the moderation post
    limits of ``moderation.rules.DEFAULT_RATE_LIMITS`` (TL4: 20 posts a minute, 1,000 a day)
    and no account has two writes in flight. Every step reports requests/s, p50/p95/p99
    latency, errors (socket errors and 4xx/5xx answers), the achieved mix and the Celery
    backlog at the end of the step; before the mix, the same gunicorn's ``/healthz`` is
    measured with the same connections: the baseline.

    The answer is the highest-throughput step with p95 <= 200 ms and no error.

How to run
    Needs PostgreSQL, Redis and ``wrk`` (``apt-get install wrk``)::

        .venv/bin/python bench/load.py                       # ~4 minutes
        .venv/bin/python bench/load.py --steps 4,8 --duration 10
        .venv/bin/python bench/load.py --help

    The database named by ``--database-url`` is dropped, recreated and dropped again at the end;
    the Redis database of ``--redis-url`` (default 14) is FLUSHED before and after: give the
    bench one of its own. Setup: ``cocreate db upgrade`` and ``cocreate demo load`` (run with
    ``COCREATE_ENV=development``: production refuses the demo's published passwords), the load
    users and their tokens, then everything runs with ``COCREATE_ENV=production``, a random
    secret key, the Redis broker and Redis rate-limit storage (limits on; the sign-in limit of
    10 a minute per address is respected by signing in at most 8 customers), gunicorn
    ``-w 2*cores+1 -k sync`` and two Celery workers as in the README (``-Q celery`` and
    ``-Q search --concurrency 1``). Ctrl-C, SIGTERM and errors stop every process, flush Redis
    and drop the database.

Reading the figures
    wrk is closed-loop (no coordinated-omission correction) and shares the CPUs with the
    server, PostgreSQL and the workers; on a busy machine every figure drops. Compare the mix
    with the baseline of the same step, and rerun when the load average is above the CPU count.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common as common
import http_pages as hp

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/cocreate_bench_load"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
P95_TARGET_MS = 200.0
MAX_RUN_SECONDS = 60  # one wrk run, whatever the arguments say
# Demo customers that browse (English and Chinese interface). At most 8 sign in: the sign-in
# form allows 10 POSTs a minute per address and the limiter stays on.
BROWSERS = (
    "alice@acme.example",
    "wang@huaxin.example",
    "bob@acme.example",
    "li@huaxin.example",
    "gina@globex.example",
    "zhao@chenguang.example",
    "peter@initech.example",
    "sun@chenguang.example",
)
LOAD_TRUST_LEVEL = 4
SEARCH_QUERIES = (
    "dashboard",
    "report template",
    "scheduled report",
    "SSO login",
    "saml",
    "CSV import",
    "API token",
    "user permission",
    "alert rule",
    "slow after the upgrade",
    "audit changes",
    "workspaces",
    "read-only share",
    "naming",
    "dashb",
    "permis",
    "仪表板",
    "报表模板",
    "定时报表",
    "单点登录",
    "数据导入",
    "数据权限",
    "客户成功",
    "审计日志",
    "工作区",
    "导出",
    "加载很慢",
    "分享",
    "数量上限",
    "报表",
)
# Within each category, in percent; the categories themselves are 70 / 20 / 10.
BROWSE_WEIGHTS = {"list": 28, "question": 36, "kb": 14, "roadmap": 14, "gallery": 8}
WRITE_KINDS = ("qvote", "avote", "ivote", "answer", "ask")  # 30 / 15 / 15 / 30 / 10 of writes
CATEGORIES = ("browse", "search", *WRITE_KINDS)


@dataclass
class Targets:
    browse: list[str] = field(default_factory=list)  # 1,000 weighted slots
    search: list[str] = field(default_factory=list)
    vote_questions: list[int] = field(default_factory=list)
    vote_answers: list[int] = field(default_factory=list)
    ideas: list[int] = field(default_factory=list)
    open_questions: list[int] = field(default_factory=list)


@dataclass
class Run:
    requests: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    socket_errors: int
    status_errors: int
    statuses: dict[int, int]
    categories: dict[str, int]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        bad_answers = sum(n for status, n in self.statuses.items() if status >= 400)
        return self.socket_errors + max(self.status_errors, bad_answers)


@dataclass
class Step:
    connections: int
    baseline: Run
    mix: Run
    backlog: int  # Celery messages waiting when the mix ended


# --------------------------------------------------------------------------- setup


def environments(args: argparse.Namespace, instance: Path, secret_key: str) -> tuple[dict, dict]:
    """(production, setup): the server and workers get the first; the demo loader the second."""
    production = hp.server_env(args.database_url, instance, secret_key)
    production.update(
        COCREATE_RATELIMIT_ENABLED="1",
        COCREATE_BROKER_URL=args.redis_url,
        COCREATE_RATELIMIT_STORAGE_URI=args.redis_url,
    )
    setup = dict(production)
    setup.update(
        COCREATE_ENV="development",
        COCREATE_BROKER_URL="",  # index the demo content in the loader itself
        COCREATE_RATELIMIT_ENABLED="0",
        COCREATE_RATELIMIT_STORAGE_URI="",
    )
    return production, setup


def cocreate(env: dict[str, str], *arguments: str) -> None:
    done = subprocess.run(
        [common.venv_tool("cocreate"), *arguments],
        cwd=common.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"cocreate {' '.join(arguments)} failed:\n{done.stdout}{done.stderr}")


def seed(config: dict[str, Any], users: int) -> tuple[list[str], Targets]:
    """``users`` customers at trust level 4 spread over the customer organizations, each with
    a write token (bulk rows: hashing passwords would take minutes, and they never sign in),
    and the ids the writes aim at, all authored by demo users (nobody votes on their own)."""
    from sqlalchemy import insert, select

    from portal.accounts.service import create_api_token
    from portal.app import create_app
    from portal.core.db import db, utcnow
    from portal.core.identity import Organization, Role, User, UserRole
    from portal.qa.models import Answer, Question
    from portal.roadmap.models import Idea
    from portal.roadmap.service import CLOSED_STATUSES

    app = create_app(config)
    with app.app_context():
        session = db.session
        orgs = list(
            session.scalars(
                select(Organization.id).where(Organization.kind == "customer").order_by("id")
            )
        )
        now = utcnow()
        session.execute(
            insert(User),
            [
                {
                    "email": f"load{i}@load.example",
                    "display_name": f"Load {i}",
                    "password_hash": "!",
                    "locale": "zh" if i % 3 == 0 else "en",
                    "timezone": "UTC",
                    "active": True,
                    "email_confirmed_at": now,
                    "trust_level": LOAD_TRUST_LEVEL,
                    "organization_id": orgs[i % len(orgs)],
                    "created_at": now,
                }
                for i in range(users)
            ],
        )
        load_users = list(
            session.scalars(
                select(User).where(User.email.like("load%@load.example")).order_by(User.id)
            )
        )
        session.execute(
            insert(UserRole), [{"user_id": u.id, "role": Role.MEMBER.value} for u in load_users]
        )
        tokens = [create_api_token(session, u, "load", "write")[1] for u in load_users]
        session.commit()

        public = (
            Question.published.is_(True),
            Question.is_private.is_(False),
            Question.duplicate_of_id.is_(None),
        )
        targets = Targets()
        targets.vote_questions = list(session.scalars(select(Question.id).where(*public)))
        targets.open_questions = list(
            session.scalars(
                select(Question.id).where(*public, Question.status.in_(("open", "accepted")))
            )
        )
        targets.vote_answers = list(
            session.scalars(
                select(Answer.id)
                .join(Question, Answer.question_id == Question.id)
                .where(*public, Answer.published.is_(True), Answer.author_id.is_not(None))
            )
        )
        targets.ideas = list(
            session.scalars(
                select(Idea.id).where(
                    Idea.published.is_(True),
                    Idea.merged_into_id.is_(None),
                    Idea.status.not_in(CLOSED_STATUSES),
                )
            )
        )
        db.session.remove()
        db.engine.dispose()
    return tokens, targets


def browse_candidates(config: dict[str, Any], question_ids: list[int]) -> dict[str, list[str]]:
    """Paths per browsing group; checked over HTTP afterwards."""
    from sqlalchemy import select

    from portal.app import create_app
    from portal.core.db import db
    from portal.gallery.models import Template
    from portal.kb.models import Article, Category
    from portal.roadmap.models import Idea

    app = create_app(config)
    with app.app_context():
        session = db.session
        articles = list(session.scalars(select(Article.id).where(Article.published.is_(True))))
        categories = list(session.scalars(select(Category.slug)))
        ideas = list(session.scalars(select(Idea.id).where(Idea.published.is_(True))))
        templates = list(session.scalars(select(Template.id).where(Template.listed.is_(True))))
        db.session.remove()
        db.engine.dispose()
    return {
        "list": [
            "/questions/",
            "/questions/?sort=votes",
            "/questions/?sort=active",
            "/questions/?sort=unanswered",
            "/questions/?tag=dashboards",
            "/questions/tagged/sso",
            "/questions/?page=2",
        ],
        "question": [f"/questions/{i}" for i in question_ids],
        "kb": ["/kb/"]
        + [f"/kb/categories/{urllib.parse.quote(s)}" for s in categories]
        + [f"/kb/articles/{i}" for i in articles],
        "roadmap": ["/roadmap/?sort=trending", "/roadmap/?sort=top", "/roadmap/?sort=new"]
        + [f"/roadmap/ideas/{i}" for i in ideas],
        "gallery": ["/gallery/"] + [f"/gallery/templates/{i}" for i in templates],
    }


def check_paths(
    port: int, cookie: str, paths: list[str], timings: list[float]
) -> tuple[list[str], list[str]]:
    """(answering 200, the others with their status): only pages that work go into the mix,
    so an error under load is a load error, not a bad URL. Each request's time (one at a
    time, cold caches) goes to ``timings``: where the time goes before any concurrency."""
    good, bad = [], []
    for path in paths:
        began = time.perf_counter()
        status, _headers, body = hp.request(port, "GET", path, headers={"Cookie": cookie})
        timings.append(time.perf_counter() - began)
        if status == 200 and b'data-testid="bell"' in body:
            good.append(path)
        else:
            bad.append(f"{path} ({status})")
    return good, bad


def print_timings(group: str, timings: list[float]) -> None:
    if timings:
        ordered = sorted(timings)
        print(
            f"  {group:<9} {len(ordered):>3} paths, one request each: median "
            f"{statistics.median(ordered) * 1000:6.1f} ms, max {ordered[-1] * 1000:6.1f} ms",
            flush=True,
        )


def weighted_slots(groups: dict[str, list[str]], weights: dict[str, int], slots: int) -> list[str]:
    """``slots`` paths: each group gets its weight's share, spread evenly over its paths."""
    rng = random.Random(2026)
    total = sum(weights[g] for g in groups if groups[g])
    out: list[str] = []
    for group, paths in groups.items():
        if not paths:
            continue
        share = round(slots * weights[group] / total)
        out += [paths[i % len(paths)] for i in range(share)]
    rng.shuffle(out)
    return out


def check_writes(port: int, token: str, targets: Targets) -> None:
    """One of each write before the load: a refused write is a setup error, not a load error.
    The votes are cast and taken back, so the counters end where they started."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    question, answer, idea = targets.vote_questions[0], targets.vote_answers[0], targets.ideas[0]
    calls = [
        ("POST", f"/api/v1/questions/{question}/vote", {"value": 1}, 200),
        ("POST", f"/api/v1/questions/{question}/vote", {"value": 1}, 200),
        ("POST", f"/api/v1/answers/{answer}/vote", {"value": 1}, 200),
        ("POST", f"/api/v1/answers/{answer}/vote", {"value": 0}, 200),
        ("POST", f"/api/v1/ideas/{idea}/vote", {"importance": 2}, 200),
        ("DELETE", f"/api/v1/ideas/{idea}/vote", None, 200),
        (
            "POST",
            f"/api/v1/questions/{targets.open_questions[0]}/answers",
            {"body": "Setup check: the load generator can post an answer."},
            201,
        ),
    ]
    for method, path, body, expected in calls:
        status, _headers, answer_body = hp.request(
            port,
            method,
            path,
            body=json.dumps(body) if body is not None else None,
            headers=headers,
        )
        if status != expected:
            raise RuntimeError(f"{method} {path} answered {status}: {answer_body[:300]!r}")


def integrity(config: dict[str, Any]) -> str:
    """What the writes left behind: posts by the load users (published or held), and every
    vote counter against its rows (concurrent votes must not lose or double a count)."""
    from sqlalchemy import func, select

    from portal.app import create_app
    from portal.core.db import db
    from portal.core.identity import User
    from portal.qa.models import Answer, Question, Vote
    from portal.roadmap.models import Idea, IdeaVote

    app = create_app(config)
    with app.app_context():
        session = db.session
        loaders = select(User.id).where(User.email.like("load%@load.example"))

        def posts(model: Any) -> tuple[int, int]:
            rows = dict(
                session.execute(
                    select(model.published, func.count())
                    .where(model.author_id.in_(loaders))
                    .group_by(model.published)
                ).all()
            )
            return rows.get(True, 0), rows.get(False, 0)

        def drift(model: Any, counter: Any, rows: Any) -> int:
            return session.scalar(
                select(func.count()).select_from(model).where(counter != rows.scalar_subquery())
            )

        answers, questions = posts(Answer), posts(Question)
        off = (
            drift(
                Question,
                Question.score,
                select(func.coalesce(func.sum(Vote.value), 0)).where(
                    Vote.question_id == Question.id
                ),
            ),
            drift(
                Answer,
                Answer.score,
                select(func.coalesce(func.sum(Vote.value), 0)).where(Vote.answer_id == Answer.id),
            ),
            drift(
                Idea,
                Idea.vote_count,
                select(func.count()).select_from(IdeaVote).where(IdeaVote.idea_id == Idea.id),
            ),
        )
        db.session.remove()
        db.engine.dispose()
    return (
        f"posted by the load users: {answers[0]} answers and {questions[0]} questions published, "
        f"{answers[1] + questions[1]} held for review; counters that differ from their rows: "
        f"question scores {off[0]}, answer scores {off[1]}, idea votes {off[2]}"
    )


# --------------------------------------------------------------------------- wrk


REPORT_LUA = r"""
local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
  table.insert(threads, thread)
end

statuses = {}

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

local function merge(name)
  local out = {}
  for _, t in ipairs(threads) do
    local part = t:get(name) or {}
    for k, v in pairs(part) do out[k] = (out[k] or 0) + v end
  end
  local items = {}
  for k, v in pairs(out) do items[#items + 1] = string.format('"%s": %d', tostring(k), v) end
  return "{" .. table.concat(items, ", ") .. "}"
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'LOAD_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p95_us": %d, ' ..
    '"p99_us": %d, "socket": %d, "status": %d, "statuses": %s, "categories": %s}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), e.connect + e.read + e.write + e.timeout, e.status,
    merge("statuses"), merge("categories")))
end
"""

MIX_LUA = r"""
local UA = {user_agent}
local browse = {browse}
local search = {search}
local cookies = {cookies}
local tokens = {tokens}
local vote_questions = {vote_questions}
local vote_answers = {vote_answers}
local ideas = {ideas}
local open_questions = {open_questions}
local areas = {{"dashboards", "reports", "data-import", "api", "sso", "permissions", "alerts"}}
local en_body = "We see the same here (%s). Turning on the result cache and splitting the " ..
  "dashboard into two tabs brought the load time down from 20 to 3 seconds."
local zh_body = "我们也遇到过同样的问题（%s）。开启结果缓存并把仪表板拆成两个标签页之后，" ..
  "加载时间从二十秒降到了三秒左右。"

categories = {{}}
local mine = {{}}
local turn = 0
local seq = 0
local tag = "run"

local function pick(t) return t[math.random(#t)] end
local function count(name) categories[name] = (categories[name] or 0) + 1 end

function init(args)
  local nthreads = tonumber(args[1]) or 1
  tag = args[2] or tag
  math.randomseed(tid * 7919 + os.time())
  -- Each thread writes as its own users, one after the other: no user has two writes in
  -- flight and each posts at most (post rate / users) times a minute.
  for i = tid, #tokens, nthreads do mine[#mine + 1] = tokens[i] end
end

function request()
  local r = math.random(1000)
  if r <= 700 then
    count("browse")
    return wrk.format("GET", pick(browse), {{["Cookie"] = pick(cookies), ["User-Agent"] = UA}})
  elseif r <= 900 then
    count("search")
    return wrk.format("GET", pick(search), {{["Cookie"] = pick(cookies), ["User-Agent"] = UA}})
  end
  turn = turn % #mine + 1
  local headers = {{
    ["Authorization"] = "Bearer " .. mine[turn],
    ["Content-Type"] = "application/json",
    ["User-Agent"] = UA,
  }}
  local w = r - 900  -- 1..100 within the writes
  seq = seq + 1
  local mark = string.format("%s-%d-%d", tag, tid, seq)
  if w <= 30 then
    count("qvote")
    return wrk.format("POST", "/api/v1/questions/" .. pick(vote_questions) .. "/vote",
      headers, '{{"value": 1}}')
  elseif w <= 45 then
    count("avote")
    return wrk.format("POST", "/api/v1/answers/" .. pick(vote_answers) .. "/vote",
      headers, '{{"value": 1}}')
  elseif w <= 60 then
    count("ivote")
    local path = "/api/v1/ideas/" .. pick(ideas) .. "/vote"
    if math.random(2) == 1 then
      return wrk.format("POST", path, headers, '{{"importance": 2}}')
    end
    return wrk.format("DELETE", path, headers)
  elseif w <= 90 then
    count("answer")
    local body = string.format(seq % 3 == 0 and zh_body or en_body, mark)
    return wrk.format("POST", "/api/v1/questions/" .. pick(open_questions) .. "/answers",
      headers, '{{"body": "' .. body .. '"}}')
  end
  count("ask")
  local area = pick(areas)
  return wrk.format("POST", "/api/v1/questions", headers, string.format(
    '{{"title": "Load test question %s about %s", "body": "How do others set up %s? (%s)", ' ..
    '"tags": ["%s"], "product_area": "%s"}}', mark, area, area, mark, area, area))
end
"""


def write_scripts(
    workdir: Path, targets: Targets, cookies: list[str], tokens: list[str]
) -> tuple[Path, Path]:
    report = workdir / "report.lua"
    report.write_text(REPORT_LUA, encoding="utf-8")
    mix = workdir / "mix.lua"
    mix.write_text(
        MIX_LUA.format(
            user_agent=common.lua_string(hp.USER_AGENT),
            browse=common.lua_table(targets.browse),
            search=common.lua_table(targets.search),
            cookies=common.lua_table(cookies),
            tokens=common.lua_table(tokens),
            vote_questions=common.lua_table(targets.vote_questions),
            vote_answers=common.lua_table(targets.vote_answers),
            ideas=common.lua_table(targets.ideas),
            open_questions=common.lua_table(targets.open_questions),
        )
        + REPORT_LUA,
        encoding="utf-8",
    )
    return report, mix


def wrk(
    port: int, script: Path, connections: int, seconds: float, path: str, *lua_args: str
) -> Run:
    seconds = max(1, min(round(seconds), MAX_RUN_SECONDS))
    threads = max(1, min(2, connections))
    command = [
        shutil.which("wrk") or "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        "-H",
        f"User-Agent: {hp.USER_AGENT}",
        f"http://127.0.0.1:{port}{path}",
        "--",
        str(threads),
        *lua_args,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 30, check=False
    )
    match = re.search(r"^LOAD_JSON (\{.*\})$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}{done.stderr}")
    data = json.loads(match.group(1))
    return Run(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p95_ms=data["p95_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        socket_errors=data["socket"],
        status_errors=data["status"],
        statuses={int(k): v for k, v in data["statuses"].items()},
        categories=data["categories"],
    )


# --------------------------------------------------------------------------- Celery backlog


def backlog(redis_client: Any) -> int:
    """Messages waiting in the two queues plus those taken but not yet acknowledged."""
    return redis_client.llen("celery") + redis_client.llen("search") + redis_client.hlen("unacked")


def settle(redis_client: Any, seconds: float) -> int:
    """Give the workers up to ``seconds`` to finish the previous step's tasks, so every step
    starts from a quiet machine; returns what is still waiting."""
    deadline = time.monotonic() + seconds
    waiting = backlog(redis_client)
    while waiting and time.monotonic() < deadline:
        time.sleep(0.5)
        waiting = backlog(redis_client)
    return waiting


# --------------------------------------------------------------------------- report


def print_step(step: Step) -> None:
    mix = step.mix
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(mix.statuses.items()))
    issued = max(1, sum(mix.categories.values()))  # sent, including those still in flight
    share = ", ".join(f"{name} {mix.categories.get(name, 0) / issued:.0%}" for name in CATEGORIES)
    print(
        f"  c={step.connections:<3} /healthz {step.baseline.rps:7.1f} req/s "
        f"(p95 {step.baseline.p95_ms:.1f} ms, errors {step.baseline.errors})  "
        f"mix {mix.rps:6.1f} req/s p50 {mix.p50_ms:.0f} p95 {mix.p95_ms:.0f} "
        f"p99 {mix.p99_ms:.0f} ms, errors {mix.errors}, Celery backlog {step.backlog}\n"
        f"         statuses {{{statuses}}}; mix {share}",
        flush=True,
    )


def report(steps: list[Step], args: argparse.Namespace) -> None:
    header = (
        f"{'step':>4} {'conns':>5} {'mix rps':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
        f"{'errors':>6} {'backlog':>7} {'base rps':>9} {'ratio':>6}  ok"
    )
    print()
    print(
        f"gunicorn -w {args.workers} -k sync; {args.load_users} writers at TL{LOAD_TRUST_LEVEL}, "
        f"{args.browsers} signed-in readers; {args.duration:g} s mix / "
        f"{args.baseline_duration:g} s /healthz per step; load average "
        f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    print(header)
    print("-" * len(header))
    for number, step in enumerate(steps, 1):
        mix, base = step.mix, step.baseline
        ok = mix.p95_ms <= P95_TARGET_MS and mix.errors == 0
        ratio = mix.rps / base.rps if base.rps else 0.0
        print(
            f"{number:>4} {step.connections:>5} {mix.rps:>8.1f} {mix.p50_ms:>7.1f} "
            f"{mix.p95_ms:>7.1f} {mix.p99_ms:>7.1f} {mix.errors:>6} {step.backlog:>7} "
            f"{base.rps:>9.1f} {ratio:>6.2f}  {'yes' if ok else 'no'}"
        )
    passing = [s for s in steps if s.mix.p95_ms <= P95_TARGET_MS and s.mix.errors == 0]
    print()
    if not passing:
        print(
            f"SUMMARY: no step held p95 <= {P95_TARGET_MS:.0f} ms with 0 errors "
            f"(steps: {', '.join(str(s.connections) for s in steps)} connections)"
        )
        return
    best = max(passing, key=lambda s: s.mix.rps)
    print(
        f"SUMMARY: sustained {best.mix.rps:.0f} req/s of the 70/20/10 mix at {best.connections} "
        f"connections (p95 {best.mix.p95_ms:.0f} ms, p99 {best.mix.p99_ms:.0f} ms, 0 errors); "
        f"/healthz {best.baseline.rps:.0f} req/s at the same connections "
        f"(ratio {best.mix.rps / best.baseline.rps:.2f})"
    )


def show_tracebacks(logs: list[Path]) -> None:
    for log in logs:
        found = common.tracebacks(log)
        if found:
            print(f"\n{len(found)} traceback(s) in {log.name}; the first:\n{found[0]}", flush=True)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument(
        "--redis-url", default=DEFAULT_REDIS_URL, help="a Redis database of its own: FLUSHED"
    )
    parser.add_argument("--steps", default="1,2,4,8,16,32", help="connection counts")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of mix per step")
    parser.add_argument("--baseline-duration", type=float, default=5.0, help="/healthz, per step")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of mix before step 1")
    parser.add_argument("--settle", type=float, default=15.0, help="max wait for the workers")
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1) + 1)
    parser.add_argument("--load-users", type=int, default=200, help="writers (TL4 tokens)")
    parser.add_argument("--browsers", type=int, default=len(BROWSERS), help="signed-in readers")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database")
    args = parser.parse_args(argv)
    args.steps = sorted({max(1, min(int(s), 256)) for s in args.steps.split(",") if s.strip()})
    args.duration = max(2.0, min(args.duration, MAX_RUN_SECONDS))
    args.baseline_duration = max(1.0, min(args.baseline_duration, MAX_RUN_SECONDS))
    args.warmup = max(0.0, min(args.warmup, 30.0))
    args.settle = max(0.0, min(args.settle, 120.0))
    args.workers = max(1, min(args.workers, 32))
    args.load_users = max(10, min(args.load_users, 5000))
    args.browsers = max(1, min(args.browsers, len(BROWSERS)))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)\nSUMMARY: ERROR - no measurement")
        return 0
    import redis

    common.interrupt_on_signals()
    secret_key = secrets.token_hex(32)
    workdir = Path(tempfile.mkdtemp(prefix="cocreate-load-"))
    instance = workdir / "instance"
    logs = {name: workdir / f"{name}.log" for name in ("gunicorn", "celery", "search")}
    production, setup_env = environments(args, instance, secret_key)
    config = hp.app_config(args.database_url, instance, secret_key)
    redis_client = redis.Redis.from_url(args.redis_url)
    procs: dict[str, subprocess.Popen] = {}
    created = False
    steps: list[Step] = []
    try:
        started = time.monotonic()
        print(f"database: {args.database_url} (recreated); Redis {args.redis_url} (flushed)")
        redis_client.flushdb()
        hp.create_database(args.database_url)
        created = True
        cocreate(setup_env, "db", "upgrade")
        cocreate(setup_env, "demo", "load", "--accounts", "0")  # CS data: not in the mix
        tokens, targets = seed(config, args.load_users)
        groups = browse_candidates(config, targets.vote_questions)
        print(
            f"setup: demo + {len(tokens)} writers in {time.monotonic() - started:.0f} s; "
            f"{len(targets.vote_questions)} questions, {len(targets.vote_answers)} answers, "
            f"{len(targets.ideas)} open ideas",
            flush=True,
        )

        procs["celery"] = common.start_process(
            common.celery_worker_command("celery"), production, logs["celery"]
        )
        procs["search"] = common.start_process(
            common.celery_worker_command("search", 1), production, logs["search"]
        )
        port = hp.free_port()
        gunicorn = procs["gunicorn"] = common.start_process(
            common.gunicorn_command(port, args.workers), production, logs["gunicorn"]
        )
        hp.wait_healthy(port, gunicorn, logs["gunicorn"])
        print(
            f"gunicorn -w {args.workers} -k sync on 127.0.0.1:{port}; Celery workers -Q celery "
            f"and -Q search --concurrency 1 on {args.redis_url}; COCREATE_ENV=production, "
            "rate limits on (Redis)",
            flush=True,
        )

        cookies = [hp.sign_in(port, email, hp.DEMO_PASSWORD) for email in BROWSERS[: args.browsers]]
        checked: dict[str, list[str]] = {}
        groups["search"] = [f"/search?q={urllib.parse.quote(q)}" for q in SEARCH_QUERIES]
        for group, paths in groups.items():
            timings: list[float] = []
            checked[group], bad = check_paths(port, cookies[0], paths, timings)
            print_timings(group, timings)
            if bad:
                print(f"  left out of the mix ({group}): {', '.join(bad)}", flush=True)
        targets.search = checked.pop("search")
        targets.browse = weighted_slots(checked, BROWSE_WEIGHTS, 1000)
        check_writes(port, tokens[0], targets)
        report_script, mix_script = write_scripts(workdir, targets, cookies, tokens)
        print(
            f"mix: {len(set(targets.browse))} pages, {len(targets.search)} queries "
            f"({sum(1 for q in SEARCH_QUERIES if not q.isascii())} Chinese), writes by "
            f"{len(tokens)} users at trust level {LOAD_TRUST_LEVEL} (moderation limit 20 posts "
            "a minute each; no setting changed)",
            flush=True,
        )

        run_tag = secrets.token_hex(3)
        if args.warmup:
            wrk(port, mix_script, 4, args.warmup, "/", f"{run_tag}w")
        for number, connections in enumerate(args.steps, 1):
            settle(redis_client, args.settle)
            baseline = wrk(port, report_script, connections, args.baseline_duration, "/healthz")
            mix = wrk(port, mix_script, connections, args.duration, "/", f"{run_tag}s{number}")
            step = Step(connections, baseline, mix, backlog(redis_client))
            steps.append(step)
            print_step(step)
            if gunicorn.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({gunicorn.returncode})")
        left = settle(redis_client, args.settle)
        report(steps, args)
        print(integrity(config))
        if left:
            print(f"NOTE: {left} Celery messages still waiting {args.settle:g} s after the load")
        dead = [name for name, proc in procs.items() if proc.poll() is not None]
        if dead:
            print(f"NOTE: exited during the run: {', '.join(dead)}")
        print(f"total {time.monotonic() - started:.0f} s", flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        if steps:
            report(steps, args)
    except Exception as error:  # a measurement: report, clean up, exit 0
        traceback.print_exc()
        print(f"benchmark failed: {type(error).__name__}: {error}", file=sys.stderr)
        print("SUMMARY: ERROR - no measurement", flush=True)
    finally:
        common.ignore_interrupts()
        for proc in reversed(procs.values()):
            common.stop_process(proc)
        show_tracebacks(list(logs.values()))
        try:
            redis_client.flushdb()
        except Exception as error:
            print(f"could not flush {args.redis_url}: {error}", file=sys.stderr)
        if created and not args.keep_db:
            try:
                hp.drop_database(args.database_url)
            except Exception as error:
                print(f"could not drop the bench database: {error}", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
