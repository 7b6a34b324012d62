"""Concurrency on PostgreSQL through the public surface: 50 threads, each with its own test
client and its own signed-in user, vote, accept, moderate and import at the same moment.

The normal ``session`` fixture wraps a test in one rolled-back transaction, which would
serialize everything; these tests run an app on a sibling database whose engine has a pool
big enough for every thread, and every request commits for real. What must hold: counts equal
the rows, each moderation item is decided exactly once (the loser reads "Already decided by"),
concurrent imports create no duplicate accounts, and no response is a 5xx.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from cs_metrics import service as cs_service
from cs_metrics.models import (
    AccountProfile,
    HealthAlert,
    HealthSnapshot,
    ImportJob,
    RecomputeRun,
    UsageEvent,
)
from moderation.models import AuditEntry, ModerationItem
from portal import migrate
from portal.accounts import service as accounts_service
from portal.app import create_app
from portal.core.db import make_engine, utcnow
from portal.core.identity import Organization, Role, User
from portal.qa import service as qa_service
from portal.qa.models import Answer, Question, Reputation, Vote
from portal.roadmap import service as roadmap_service
from portal.roadmap.models import Idea, IdeaVote
from tests import factories
from tests.conftest import TEST_DATABASE_URL, login, sibling_database, test_config
from tests.factories import UserFactory, staff
from tests.services import missing

pytestmark = pytest.mark.reliability

THREADS = 50


# --- harness ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_root: Path) -> Iterator[Flask]:
    """An app on its own PostgreSQL database, committing for real, pool sized for 50 threads."""
    if not TEST_DATABASE_URL.startswith("postgresql"):
        missing("concurrency tests need PostgreSQL: set TEST_DATABASE_URL=postgresql+psycopg://...")
    url = sibling_database(TEST_DATABASE_URL, "concurrency", tmp_root)
    migrate.upgrade(url)
    app = create_app(test_config(url, tmp_root, UPLOAD_DIR=str(tmp_root / "cc-uploads")))
    app.extensions["cocreate_engine"].dispose()
    engine = make_engine(url, pool_size=THREADS + 10, max_overflow=20, pool_timeout=60)
    app.extensions["cocreate_engine"] = engine
    app.extensions["cocreate_sessionmaker"] = sessionmaker(bind=engine, expire_on_commit=False)
    yield app
    engine.dispose()
    parsed = make_url(url)
    admin = make_engine(
        parsed.set(database="postgres").render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
    admin.dispose()


@contextmanager
def writing(app: Flask) -> Iterator[Session]:
    """Set-up data through the services, committed (the factories write through it too)."""
    with app.app_context():
        session = app.extensions["cocreate_sessionmaker"]()
        factories.bind(session)
        try:
            yield session
            session.commit()
        finally:
            session.close()


@contextmanager
def reading(app: Flask) -> Iterator[Session]:
    with app.app_context():
        session = app.extensions["cocreate_sessionmaker"]()
        try:
            yield session
        finally:
            session.close()


@dataclass
class Storm:
    """What a burst of concurrent requests did."""

    name: str
    threads: int = 0
    requests: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, what: str, response: Any) -> Any:
        with self.lock:
            self.requests += 1
            if response.status_code >= 500:
                self.failures.append(f"{what}: {response.status_code}")
        return response

    def report(self) -> None:
        rate = self.requests / self.seconds if self.seconds else 0.0
        print(
            f"\n{self.name}: {self.threads} threads, {self.requests} requests in "
            f"{self.seconds:.2f}s ({rate:.0f}/s), failures {len(self.failures)}"
        )


class Caller:
    """One thread's client: every response is recorded, and a 5xx fails the storm."""

    def __init__(self, app: Flask, user: User, storm: Storm) -> None:
        self.client: FlaskClient = login(app.test_client(), user)
        self.storm = storm

    def post(self, url: str, **kwargs: Any) -> Any:
        return self.storm.record(f"POST {url}", self.client.post(url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.storm.record(f"GET {url}", self.client.get(url, **kwargs))


def run_storm(
    app: Flask, name: str, users: list[User], work: Callable[[int, Caller], None]
) -> Storm:
    """Start ``work`` for every user at the same instant (a barrier), each in its own thread
    with its own client; an exception in a thread (a propagated server error) is a failure."""
    storm = Storm(name, threads=len(users))
    barrier = threading.Barrier(len(users))

    def run(i: int, user: User) -> None:
        caller = Caller(app, user, storm)
        barrier.wait()
        try:
            work(i, caller)
        except Exception as error:  # noqa: BLE001 - reported, and fails the test
            with storm.lock:
                storm.failures.append(f"thread {i}: {type(error).__name__}: {error}")

    threads = [threading.Thread(target=run, args=(i, u)) for i, u in enumerate(users)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    storm.seconds = time.perf_counter() - started
    storm.report()
    assert not any(t.is_alive() for t in threads), "a thread hung (deadlock?)"
    assert not storm.failures, "\n".join(f[:1500] for f in storm.failures[:5])
    return storm


def members(n: int, **kwargs: Any) -> list[User]:
    return [UserFactory(trust_level=3, **kwargs) for _ in range(n)]


# --- (1) votes on one idea, one question, one answer -----------------------------------------


def test_fifty_users_vote_unvote_and_revote_at_once_and_counts_equal_rows(live: Flask) -> None:
    with writing(live) as s:
        voters = members(THREADS)
        idea = roadmap_service.submit_idea(
            s, UserFactory(trust_level=3), "Export dashboards on a schedule", "Every Monday."
        )
        asker, answerer = UserFactory(trust_level=3), UserFactory(trust_level=3)
        question = qa_service.ask(s, asker, "How do I schedule an export?", "Every Monday.")
        s.flush()
        reply = qa_service.answer(s, answerer, question.id, "Use the schedule menu.")
        s.flush()
        idea_id, question_id, answer_id = idea.id, question.id, reply.id
        asker_id, answerer_id = asker.id, answerer.id
    assert idea.published and question.published and reply.published

    def work(i: int, c: Caller) -> None:
        c.post(f"/roadmap/ideas/{idea_id}/vote", data={"importance": "2"})
        c.post(f"/questions/{question_id}/vote", data={"value": "1"})
        c.post(f"/questions/answers/{answer_id}/vote", data={"value": "1"})
        if i % 3 == 0:  # change of mind: un-vote, retract, vote down instead
            c.post(f"/roadmap/ideas/{idea_id}/unvote")
            c.post(f"/questions/{question_id}/vote", data={"value": "0"})
            c.post(f"/questions/answers/{answer_id}/vote", data={"value": "-1"})
        if i % 6 == 0:  # and back again
            c.post(f"/roadmap/ideas/{idea_id}/vote", data={"importance": "3"})
            c.post(f"/questions/{question_id}/vote", data={"value": "1"})
            c.post(f"/roadmap/ideas/{idea_id}/vote", data={"importance": "3"})  # twice: harmless

    run_storm(live, "votes", voters, work)

    changed = len([i for i in range(THREADS) if i % 3 == 0])
    back = len([i for i in range(THREADS) if i % 6 == 0])
    with reading(live) as s:
        idea_rows = s.scalar(select(func.count()).where(IdeaVote.idea_id == idea_id))
        assert idea_rows == THREADS - changed + back
        assert s.get(Idea, idea_id).vote_count == idea_rows
        question_rows = s.scalar(
            select(func.sum(Vote.value)).where(Vote.question_id == question_id)
        )
        assert question_rows == THREADS - changed + back
        assert s.get(Question, question_id).score == question_rows
        answer_score = s.scalar(select(func.sum(Vote.value)).where(Vote.answer_id == answer_id))
        assert answer_score == (THREADS - changed) - changed
        assert s.get(Answer, answer_id).score == answer_score
        points = dict(s.execute(select(Reputation.user_id, Reputation.points)).all())
        assert points[asker_id] == qa_service.UPVOTE_POINTS["question"] * question_rows
        assert points[answerer_id] == (
            qa_service.UPVOTE_POINTS["answer"] * (THREADS - changed)
            + qa_service.DOWNVOTE_POINTS * changed
        )


# --- (2) accepts while others vote; two moderators on the same items --------------------------


def test_accepts_while_others_vote_keep_scores_and_reputation_exact(live: Flask) -> None:
    askers_n = 10
    with writing(live) as s:
        askers = members(askers_n)
        voters = members(THREADS - askers_n)
        answerers = members(2 * askers_n)
        questions: list[tuple[int, int, int]] = []  # question, first answer, second answer
        for n, asker in enumerate(askers):
            q = qa_service.ask(s, asker, f"Where is report number {n}?", f"Report {n} is gone.")
            s.flush()
            first = qa_service.answer(s, answerers[2 * n], q.id, f"Report {n}: look in Archive.")
            second = qa_service.answer(s, answerers[2 * n + 1], q.id, f"Report {n}: search it.")
            s.flush()
            questions.append((q.id, first.id, second.id))
        rows = s.execute(select(Answer.id, Answer.author_id)).all()
        answer_author = dict(rows)
    votes_per_answer: dict[int, int] = {a: 0 for _, a1, a2 in questions for a in (a1, a2)}
    plan: dict[int, list[int]] = {}
    for j in range(len(voters)):
        picked = [questions[j % askers_n], questions[(j + 3) % askers_n]]
        plan[j] = [a for _, a1, a2 in picked for a in (a1, a2)]
        for a in plan[j]:
            votes_per_answer[a] += 1

    def work(i: int, c: Caller) -> None:
        if i < askers_n:
            question_id, first, second = questions[i]
            for answer_id in (first, second, first, second):  # switch three times, end on second
                c.post(f"/questions/{question_id}/accept", data={"answer_id": str(answer_id)})
            return
        for answer_id in plan[i - askers_n]:
            c.post(f"/questions/answers/{answer_id}/vote", data={"value": "1"})

    run_storm(live, "accepts and votes", [*askers, *voters], work)

    with reading(live) as s:
        points = dict(s.execute(select(Reputation.user_id, Reputation.points)).all())
        for question_id, first, second in questions:
            assert s.get(Question, question_id).accepted_answer_id == second
            for answer_id in (first, second):
                rows = s.scalar(select(func.sum(Vote.value)).where(Vote.answer_id == answer_id))
                assert rows == votes_per_answer[answer_id]
                assert s.get(Answer, answer_id).score == rows
                expected = qa_service.UPVOTE_POINTS["answer"] * rows
                if answer_id == second:
                    expected += qa_service.ACCEPT_POINTS
                assert points.get(answer_author[answer_id], 0) == expected


def test_two_moderators_deciding_the_same_items_decide_each_exactly_once(live: Flask) -> None:
    items_n = THREADS // 2
    with writing(live) as s:
        vendor = factories.VendorFactory()
        mona = staff(Role.MODERATOR, organization=vendor, display_name="Mona Moderator")
        otto = staff(Role.MODERATOR, organization=vendor, display_name="Otto Other")
        authors = [UserFactory(trust_level=0) for _ in range(items_n)]
        s.flush()
        for n, author in enumerate(authors):
            accounts_service.update_about(s, author, f"I build dashboards, story {n}.")
        s.flush()
        item_ids = list(
            s.scalars(
                select(ModerationItem.id)
                .where(ModerationItem.author_id.in_([a.id for a in authors]))
                .where(ModerationItem.state == "pending")
                .order_by(ModerationItem.id)
            )
        )
    assert len(item_ids) == items_n
    outcomes: dict[int, list[str]] = {item_id: [] for item_id in item_ids}
    outcomes_lock = threading.Lock()

    def work(i: int, c: Caller) -> None:
        item_id = item_ids[i // 2]
        if i % 2 == 0:
            response = c.post(f"/moderation/items/{item_id}/approve", follow_redirects=True)
        else:
            response = c.post(
                f"/moderation/items/{item_id}/reject",
                data={"reason": "Please leave out the story."},
                follow_redirects=True,
            )
        page = response.get_data(as_text=True)
        said = [m for m in ("Approved.", "Rejected.", "Already decided by") if m in page]
        with outcomes_lock:
            outcomes[item_id].extend(said)

    users = [mona if i % 2 == 0 else otto for i in range(2 * items_n)]
    run_storm(live, "two moderators", users, work)

    with reading(live) as s:
        for item_id in item_ids:
            decisions = s.scalars(
                select(AuditEntry.action).where(
                    AuditEntry.item_id == item_id,
                    AuditEntry.action.in_(["published", "rejected"]),
                )
            ).all()
            assert len(decisions) == 1, (item_id, decisions)
            state = s.get(ModerationItem, item_id).state
            assert state == {"published": "published", "rejected": "rejected"}[decisions[0]]
            said = sorted(outcomes[item_id])
            winner = "Approved." if state == "published" else "Rejected."
            assert said == sorted([winner, "Already decided by"]), (item_id, said)


# --- (3) CSV imports concurrently with each other and with recompute --------------------------


SHARED_ACCOUNTS = 100
OWN_ACCOUNTS = 20
IMPORTERS = 8
DAYS = 3


def accounts_csv(t: int) -> str:
    lines = ["external_id,name,arr,renewal_date"]
    lines += [f"SHARED-{n},Shared {n},{1000 + n},2027-01-01" for n in range(SHARED_ACCOUNTS)]
    lines += [f"OWN-{t}-{n},Own {t} {n},{2000 + n},2027-02-01" for n in range(OWN_ACCOUNTS)]
    return "\n".join(lines) + "\n"


def renamed_csv(t: int) -> str:
    """The shared accounts renamed, each file in its own order (row locks taken in different
    orders are how deadlocks start)."""
    order = list(range(SHARED_ACCOUNTS))
    order = order[t * 13 % SHARED_ACCOUNTS :] + order[: t * 13 % SHARED_ACCOUNTS]
    if t % 2:
        order.reverse()
    lines = ["external_id,name,arr,renewal_date"]
    lines += [f"SHARED-{n},Shared {n} v{t},{3000 + t},2027-03-01" for n in order]
    return "\n".join(lines) + "\n"


def usage_csv(t: int, first_day: date) -> str:
    lines = ["account_id,day,metric,value"]
    for n in range(SHARED_ACCOUNTS):
        for d in range(DAYS):
            day = first_day + timedelta(days=d)
            lines.append(f"SHARED-{n},{day.isoformat()},logins,{t * 10 + d}")
    for n in range(OWN_ACCOUNTS):
        lines.append(f"OWN-{t}-{n},{first_day.isoformat()},exports_{t},{n}")
    return "\n".join(lines) + "\n"


def test_concurrent_imports_and_recompute_create_no_duplicates_and_count_exactly(
    live: Flask,
) -> None:
    with writing(live):
        vendor = factories.VendorFactory()
        csms = [staff(Role.CSM, organization=vendor) for _ in range(IMPORTERS)]
        recomputers = [staff(Role.CSM, organization=vendor) for _ in range(2)]
    jobs: list[str] = []
    recomputes: list[int] = []

    def upload(c: Caller, kind: str, body: str) -> None:
        data = {"kind": kind, "file": (io.BytesIO(body.encode()), f"{kind}.csv")}
        response = c.post("/cs/imports", data=data, content_type="multipart/form-data")
        assert response.status_code == 302, response.status_code
        jobs.append(response.headers["Location"])

    def recompute() -> None:
        with live.app_context():
            session = live.extensions["cocreate_sessionmaker"]()
            try:
                result = cs_service.recompute(session)
                session.commit()
                recomputes.append(result.accounts)
            finally:
                session.close()

    def accounts(i: int, c: Caller) -> None:
        if i < IMPORTERS:
            upload(c, "accounts", accounts_csv(i))
        else:
            for _ in range(3):
                recompute()

    run_storm(live, "account imports + recompute", [*csms, *recomputers], accounts)

    first_day = utcnow().date() - timedelta(days=DAYS)

    def usage(i: int, c: Caller) -> None:
        if i < IMPORTERS:
            upload(c, "usage_events", usage_csv(i, first_day))
        else:
            for _ in range(3):
                recompute()

    run_storm(live, "usage imports + recompute", [*csms, *recomputers], usage)

    def renames(i: int, c: Caller) -> None:
        if i < IMPORTERS:
            upload(c, "accounts", renamed_csv(i))
        else:
            recompute()

    run_storm(live, "account renames + recompute", [*csms, *recomputers], renames)

    client = login(live.test_client(), csms[0])
    statuses = [client.get(job + "/status.json").get_json() for job in jobs]
    failed = [s["id"] for s in statuses if s["status"] != "done"]
    with reading(live) as s:
        reasons = [(j.id, j.kind, (j.report or {}).get("file_error")) for j in
                   s.scalars(select(ImportJob).where(ImportJob.id.in_(failed)))]  # fmt: skip
    assert not reasons, reasons
    rows = sorted(s["rows_done"] for s in statuses)
    assert rows == sorted(
        [SHARED_ACCOUNTS + OWN_ACCOUNTS] * IMPORTERS
        + [SHARED_ACCOUNTS * DAYS + OWN_ACCOUNTS] * IMPORTERS
        + [SHARED_ACCOUNTS] * IMPORTERS
    )
    expected_accounts = SHARED_ACCOUNTS + IMPORTERS * OWN_ACCOUNTS
    with reading(live) as s:
        imported = select(AccountProfile).where(
            AccountProfile.external_id.like("SHARED-%") | AccountProfile.external_id.like("OWN-%")
        )
        assert s.scalar(select(func.count()).select_from(imported.subquery())) == expected_accounts
        orgs = s.scalar(
            select(func.count())
            .select_from(Organization)
            .where(Organization.slug.like("shared-%") | Organization.slug.like("own-%"))
        )
        assert orgs == expected_accounts  # no organization left behind by a lost race
        usage_rows = s.scalar(select(func.count()).select_from(UsageEvent))
        assert usage_rows == SHARED_ACCOUNTS * DAYS + IMPORTERS * OWN_ACCOUNTS
        today = utcnow().date()
        snapshots = s.scalar(
            select(func.count()).select_from(HealthSnapshot).where(HealthSnapshot.day == today)
        )
        customers = s.scalar(
            select(func.count()).select_from(Organization).where(Organization.kind == "customer")
        )
        assert snapshots <= customers
        finished = s.scalar(
            select(func.count()).select_from(ImportJob).where(ImportJob.status == "done")
        )
        assert finished == 3 * IMPORTERS
        names = s.scalars(select(Organization.name).where(Organization.slug.like("shared-%"))).all()
        assert len({n.rsplit(" v", 1)[-1] for n in names}) >= 1
        assert all(" v" in n for n in names)  # every shared account renamed by one import
    print(f"imports: {len(jobs)} jobs, {len(recomputes)} recomputes, accounts {expected_accounts}")


# --- (5) "Recompute now" pressed by several CSMs at once ------------------------------------

FALLING_ACCOUNTS = 30
RECOMPUTERS = 6


def test_recomputes_asked_for_at_once_take_turns_and_each_alert_opens_once(live: Flask) -> None:
    """Every account's usage fell two months in a row, so a run opens that rule's alert for
    every account that has none. After a first run, the CSMs close those alerts, and six press
    "Recompute now" at once: the day's snapshots are unchanged, so the runs write none (whose
    upserts would have made them wait for each other) and all find no open alert. Run side by
    side, each opened the alerts and the others failed on the one-open-alert index (seen with
    the runs' lock taken out); they must take turns, every run finish, and no request 5xx."""
    today = utcnow().date()
    with writing(live) as s:
        vendor = factories.VendorFactory()
        csms = [staff(Role.CSM, organization=vendor) for _ in range(RECOMPUTERS)]
        falling = []
        for i in range(FALLING_ACCOUNTS):
            org = factories.OrganizationFactory(name=f"Falling {i}", slug=f"falling-{i}")
            s.add(AccountProfile(organization_id=org.id, external_id=f"FALL-{i}"))
            for days_ago, value in ((65, 300.0), (35, 200.0), (5, 100.0)):  # m2 > m1 > m0
                s.add(UsageEvent(organization_id=org.id, day=today - timedelta(days=days_ago),
                                 metric="logins", value=value))  # fmt: skip
            falling.append(org.id)
    first = login(live.test_client(), csms[0]).post("/cs/recompute")
    assert first.status_code == 302
    with writing(live) as s:
        s.execute(
            update(HealthAlert)
            .where(HealthAlert.organization_id.in_(falling))
            .values(status="closed", closed_at=utcnow())
        )
    runs: list[str] = []

    def press(i: int, c: Caller) -> None:
        response = c.post("/cs/recompute")
        assert response.status_code == 302, response.status_code
        runs.append(response.headers["Location"])

    run_storm(live, "recompute now x6", csms, press)

    client = login(live.test_client(), csms[0])
    for url in set(runs):  # inline tasks: every run has finished when its request answered
        status = client.get(url + "/status.json").get_json()
        assert status["status"] == "done", status
    with reading(live) as s:
        failed = s.scalars(select(RecomputeRun).where(RecomputeRun.status != "done")).all()
        assert not failed, [(r.id, r.status, r.error) for r in failed]
        opened = s.execute(
            select(HealthAlert.organization_id, HealthAlert.kind, func.count())
            .where(HealthAlert.organization_id.in_(falling), HealthAlert.status == "open")
            .group_by(HealthAlert.organization_id, HealthAlert.kind)
        ).all()
        assert {org for org, _kind, _n in opened} == set(falling)  # the rule did fire
        snapshots = s.scalar(
            select(func.count())
            .select_from(HealthSnapshot)
            .where(HealthSnapshot.organization_id.in_(falling), HealthSnapshot.day == today)
        )
        assert snapshots == FALLING_ACCOUNTS
    print(f"recompute now: {len(runs)} requests, {len(set(runs))} runs")
