"""The CSM's worklist: close-the-loop tasks from NPS responses (imported or in-app), the task
page with the customer's open questions and ideas, referrals, improvement items, who may read
and change what, own-book scoping and the CSV exports."""

from __future__ import annotations

import csv
import io
import threading
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from cs_metrics import kpis, worklist
from cs_metrics.models import (
    CsTask,
    ImprovementItem,
    Referral,
    TaskKind,
    TaskStatus,
)
from cs_metrics.settings import set_setting
from portal.core.activity import record_activity, register_verbs
from portal.core.db import utcnow
from portal.core.errors import Conflict, DomainError, NotFound, PermissionDenied
from portal.core.identity import Role
from tests import cs_factories
from tests.conftest import count_statements, login
from tests.cs_factories import AccountFactory, NpsFactory
from tests.factories import OrganizationFactory, UserFactory, staff

FRIDAY = datetime(2026, 3, 6, 10, 0, tzinfo=UTC)
register_verbs("idea.voted", "idea.unvoted")  # the roadmap's verbs, also when it is not loaded


@pytest.fixture(autouse=True)
def _bind(session):
    cs_factories.bind(session)


@pytest.fixture
def csm(session):
    return staff(Role.CSM, display_name="Carla CSM")


@pytest.fixture
def other_csm(session):
    return staff(Role.CSM, display_name="Olaf Other")


@pytest.fixture
def admin(session):
    return staff(Role.VENDOR_ADMIN)


@pytest.fixture
def pm(session):
    return staff(Role.PRODUCT_MANAGER)


@pytest.fixture
def org(session, csm):
    org = OrganizationFactory(name="Acme")
    AccountFactory(organization_id=org.id, csm_id=csm.id)
    return org


@pytest.fixture
def other_org(session, other_csm):
    org = OrganizationFactory(name="Globex")
    AccountFactory(organization_id=org.id, csm_id=other_csm.id)
    return org


def call(app, function, *args, **kwargs):
    with app.app_context():
        return function(*args, **kwargs)


def all_tasks(session) -> list[CsTask]:
    session.expire_all()
    return list(session.scalars(select(CsTask).order_by(CsTask.id)))


def detractor_task(app, session, org, score=2, comment="Support never answers", **kwargs):
    NpsFactory(organization_id=org.id, score=score, comment=comment, **kwargs)
    call(app, worklist.open_loop_tasks, session, utcnow() - timedelta(days=30))
    return all_tasks(session)[-1]


def subject(table: str, id_: int) -> SimpleNamespace:
    """Something the activity log can point at (a question, an idea) without its feature."""
    return SimpleNamespace(__tablename__=table, id=id_)


def read_csv(response) -> list[list[str]]:
    assert response.status_code == 200 and response.mimetype == "text/csv"
    return list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))


# --- close the loop ----------------------------------------------------------------------------


def test_imported_responses_get_tasks_once_detractors_due_in_two_business_days(
    app, session, org, csm
):
    detractor = NpsFactory(organization_id=org.id, score=4, responded_at=FRIDAY)
    promoter = NpsFactory(organization_id=org.id, score=9, responded_at=FRIDAY)
    NpsFactory(organization_id=org.id, score=7, responded_at=FRIDAY)  # passive: nothing
    NpsFactory(organization_id=org.id, score=0, responded_at=FRIDAY - timedelta(days=60))  # old

    assert call(app, worklist.open_loop_tasks, session, FRIDAY - timedelta(days=1)) == 2
    loop, ask = all_tasks(session)
    assert (loop.kind, loop.source_id, loop.assignee_id) == (
        TaskKind.CLOSE_THE_LOOP,
        detractor.id,
        csm.id,
    )
    assert loop.due_on == date(2026, 3, 10)  # Friday -> Tuesday
    assert (ask.kind, ask.source_id, ask.due_on) == (TaskKind.REFERRAL_ASK, promoter.id, None)

    # Idempotent, even once a task is finished.
    call(app, worklist.finish_task, session, csm, loop.id, TaskStatus.DONE, "Called, fixed SSO")
    assert call(app, worklist.open_loop_tasks, session, FRIDAY - timedelta(days=1)) == 0
    assert len(all_tasks(session)) == 2


def test_business_days_setting_and_unassigned_accounts(app, session, admin):
    call(app, set_setting, session, admin, "close_the_loop_business_days", 3)
    orphan = OrganizationFactory()  # no CSM
    NpsFactory(organization_id=orphan.id, score=1, responded_at=FRIDAY)
    call(app, worklist.open_loop_tasks, session, FRIDAY)
    [task] = all_tasks(session)
    assert task.assignee_id is None and task.due_on == date(2026, 3, 11)


def test_two_runs_at_once_open_each_task_once_and_tell_the_csm_once(tmp_root):
    """The nightly run and an on-demand recompute, both past their read before either writes:
    each response still gets one task, and the CSM one notification per task."""
    from sqlalchemy import event
    from sqlalchemy.exc import OperationalError

    from cs_metrics.models import AccountProfile, NpsResponse
    from portal.accounts.service import create_user
    from portal.core.db import db
    from portal.core.notifications import Notification
    from tests.conftest import committing_app, vendor_and_customer

    app = committing_app("loop_race", tmp_root)
    url = app.config["DATABASE_URL"]
    with app.app_context():
        vendor, customer = vendor_and_customer(db.session)
        csm = create_user(
            db.session, vendor, "csm@v.example", "Carla", "long-password-xyz", roles=(Role.CSM,)
        )
        db.session.add(AccountProfile(organization_id=customer.id, csm_id=csm.id))
        db.session.add_all(
            NpsResponse(organization_id=customer.id, score=score, responded_at=utcnow())
            for score in (1, 2, 3, 10)
        )
        db.session.commit()
        csm_id = csm.id

    barrier = threading.Barrier(2, timeout=30)

    def wait_for_the_other(conn, cursor, statement, *args):
        if statement.startswith("INSERT INTO cs_tasks"):
            barrier.wait()  # both runs have read the responses without tasks

    engine = app.extensions["cocreate_engine"]
    event.listen(engine, "before_cursor_execute", wait_for_the_other)
    outcomes: list[object] = []

    def run() -> None:
        with app.app_context():
            try:
                outcomes.append(worklist.open_loop_tasks(db.session, utcnow() - timedelta(days=1)))
                db.session.commit()
            except OperationalError as error:  # SQLite: one writer at a time
                db.session.rollback()
                outcomes.append(type(error))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    event.remove(engine, "before_cursor_execute", wait_for_the_other)
    with app.app_context():
        tasks = db.session.scalars(select(CsTask.kind)).all()
        told = db.session.scalars(
            select(Notification.message).where(Notification.user_id == csm_id)
        ).all()
        db.session.remove()
    engine.dispose()
    assert sorted(tasks) == sorted([TaskKind.CLOSE_THE_LOOP] * 3 + [TaskKind.REFERRAL_ASK])
    assert len(told) == 1 and "3" in told[0]
    if url.startswith("postgresql"):
        # the later run waited for the earlier one's rows, then skipped them all
        assert sorted(outcomes) == [0, 4]
    else:
        assert 4 in outcomes and len(outcomes) == 2


# --- the task page ----------------------------------------------------------------------------


def test_task_page_shows_the_response_and_that_customers_open_questions_and_ideas(
    app, client, session, org, other_org, csm
):
    task = detractor_task(app, session, org)
    member = UserFactory(organization=org)
    colleague = UserFactory(organization=org)
    stranger = UserFactory(organization=other_org)
    record_activity(
        session, member, org, "question.asked", subject("questions", 101), {"private": False}
    )
    record_activity(session, member, org, "question.asked", subject("questions", 102), {})
    record_activity(session, member, org, "question.asked", subject("questions", 103), {})
    record_activity(
        session,
        member,
        org,
        "answer.accepted",
        subject("answers", 9),
        {"question_id": 102, "author_id": 1},
    )
    record_activity(
        session,
        csm,
        csm.organization,
        "question.closed",
        subject("questions", 103),
        {"reason": "x"},
    )
    record_activity(session, stranger, other_org, "question.asked", subject("questions", 201), {})
    record_activity(session, member, org, "idea.voted", subject("ideas", 7), {"importance": 2})
    record_activity(session, colleague, org, "idea.voted", subject("ideas", 7), {})
    record_activity(session, member, org, "idea.voted", subject("ideas", 8), {})
    record_activity(session, member, org, "idea.unvoted", subject("ideas", 8), {})
    record_activity(session, stranger, other_org, "idea.voted", subject("ideas", 9), {})
    session.flush()

    login(client, csm)
    page = client.get(f"/cs/tasks/{task.id}").get_data(as_text=True)
    assert "Support never answers" in page and 'data-testid="nps-score">2<' in page
    due = task.due_on
    assert f"{due:%b} {due.day}, {due.year}" in page and due.isoformat() not in page
    assert "Question #101" in page
    assert "Question #102" not in page  # answered
    assert "Question #103" not in page  # closed
    assert "Question #201" not in page  # another organization's
    assert "Idea #7" in page and "2 voters" in page
    assert "Idea #8" not in page  # vote withdrawn
    assert "Idea #9" not in page  # another organization's

    context = call(app, worklist.customer_context, session, org.id)
    assert [q.id for q in context.open_questions] == [101]
    assert [(i.id, i.voters) for i in context.ideas_voted] == [(7, 2)]


def test_complete_and_cancel_need_an_outcome(app, client, session, org, csm):
    task = detractor_task(app, session, org)
    login(client, csm)
    refused = client.post(f"/cs/tasks/{task.id}/complete", data={"done-outcome": "  "})
    assert refused.status_code == 422 and "This field is required." in refused.get_data(
        as_text=True
    )
    done = client.post(f"/cs/tasks/{task.id}/complete", data={"done-outcome": "Called; fixed SSO"})
    assert done.status_code == 302
    [saved] = all_tasks(session)
    assert (saved.status, saved.outcome, saved.completed_by_id) == (
        "done",
        "Called; fixed SSO",
        csm.id,
    )
    again = client.post(f"/cs/tasks/{task.id}/cancel", data={"cancel-outcome": "dup"})
    assert again.status_code == 409
    second = detractor_task(app, session, org, score=5)
    assert (
        client.post(
            f"/cs/tasks/{second.id}/cancel", data={"cancel-outcome": "Duplicate"}
        ).status_code
        == 302
    )
    assert all_tasks(session)[-1].status == "cancelled"


def test_finishing_a_task_finished_elsewhere_says_so_and_gives_back_the_typed_outcome(
    app, client, session, org, csm, admin
):
    """Two tabs (or two people): one cancels, the other then marks it done with an outcome."""
    task = detractor_task(app, session, org)
    call(app, worklist.finish_task, session, admin, task.id, TaskStatus.CANCELLED, "Duplicate")
    login(client, csm)
    late = client.post(
        f"/cs/tasks/{task.id}/complete", data={"done-outcome": "Called Ann; SSO <fixed>"}
    )
    assert late.status_code == 409
    page = late.get_data(as_text=True)
    assert 'data-testid="task-conflict"' in page and "This task is already finished." in page
    assert "Called Ann; SSO &lt;fixed&gt;" in page  # what was typed, escaped, not lost
    assert 'data-testid="task-outcome">Duplicate<' in page  # and what happened instead
    assert 'data-testid="task-finished-by"' in page
    [saved] = all_tasks(session)
    assert (saved.status, saved.outcome) == ("cancelled", "Duplicate")


def test_task_lists_mine_book_and_overdue_first(
    app, client, session, org, other_org, csm, other_csm
):
    today = utcnow().date()
    late = CsTask(
        organization_id=org.id,
        assignee_id=csm.id,
        title="Late one",
        due_on=today - timedelta(days=3),
    )
    soon = CsTask(
        organization_id=org.id,
        assignee_id=csm.id,
        title="Soon one",
        due_on=today + timedelta(days=1),
    )
    undated = CsTask(organization_id=org.id, assignee_id=csm.id, title="Undated one")
    unassigned = CsTask(organization_id=org.id, assignee_id=None, title="Nobody's")
    theirs = CsTask(organization_id=other_org.id, assignee_id=other_csm.id, title="Their task")
    finished = CsTask(
        organization_id=org.id, assignee_id=csm.id, title="Finished one", status="done"
    )
    session.add_all([undated, soon, late, unassigned, theirs, finished])
    session.flush()

    login(client, csm)
    page = client.get("/cs/tasks").get_data(as_text=True)  # a CSM starts with their own
    assert page.index("Late one") < page.index("Soon one") < page.index("Undated one")
    assert "Nobody" not in page and "Their task" not in page and "Finished one" not in page
    assert "Their task" in client.get("/cs/tasks?scope=book").get_data(as_text=True)
    overdue = client.get("/cs/tasks?state=overdue").get_data(as_text=True)
    assert "Late one" in overdue and "Soon one" not in overdue
    assert "Finished one" in client.get("/cs/tasks?state=done").get_data(as_text=True)
    assert client.get("/cs/tasks?state=bogus&scope=nope&page=x").status_code == 200


# --- referrals -----------------------------------------------------------------------------------


def test_promoter_referral_lifecycle_and_counts_per_csm(app, client, session, org, csm):
    NpsFactory(organization_id=org.id, score=10, contact_email="fan@acme.example")
    call(app, worklist.open_loop_tasks, session, utcnow() - timedelta(days=30))
    [ask] = all_tasks(session)
    assert ask.kind == TaskKind.REFERRAL_ASK

    login(client, csm)
    page = client.get(f"/cs/tasks/{ask.id}").get_data(as_text=True)
    assert "I asked for a referral" in page
    assert (
        client.post(f"/cs/tasks/{ask.id}/referral", data={"ask-notes": "Asked at QBR"}).status_code
        == 302
    )
    [referral] = session.scalars(select(Referral)).all()
    assert (referral.status, referral.csm_id, referral.referrer_email) == (
        "asked",
        csm.id,
        "fan@acme.example",
    )
    assert referral.nps_response_id == ask.source_id
    assert all_tasks(session)[0].status == "done"

    # Received needs the referred company; then it counts for the CSM.
    missing = client.post(f"/cs/referrals/{referral.id}", data={"status": "received"})
    assert missing.status_code == 400 and "Name the referred company." in missing.get_data(
        as_text=True
    )
    ok = client.post(
        f"/cs/referrals/{referral.id}", data={"status": "received", "referred_company": "Initech"}
    )
    assert ok.status_code == 302
    session.expire_all()
    assert referral.received_at is not None
    today = utcnow().date()
    counts = call(app, worklist.referral_counts, session, today, today + timedelta(days=1))
    assert counts == {csm.id: 1}
    assert (
        call(
            app,
            worklist.referral_counts,
            session,
            today + timedelta(days=1),
            today + timedelta(days=2),
        )
        == {}
    )
    assert (
        client.post(f"/cs/referrals/{referral.id}", data={"status": "converted"}).status_code == 302
    )
    back = client.post(f"/cs/referrals/{referral.id}", data={"status": "asked"})
    assert back.status_code == 409
    session.expire_all()
    assert referral.status == "converted"
    assert call(app, worklist.referral_counts, session, today, today + timedelta(days=1)) == {
        csm.id: 1
    }

    # A declined one is not counted; a manual ask from the referrals page.
    assert (
        client.post(
            "/cs/referrals", data={"org_id": str(org.id), "notes": "At the user group"}
        ).status_code
        == 302
    )
    manual = session.scalars(select(Referral).order_by(Referral.id.desc())).first()
    assert client.post(f"/cs/referrals/{manual.id}", data={"status": "declined"}).status_code == 302
    assert call(app, worklist.referral_counts, session, today, today + timedelta(days=1)) == {
        csm.id: 1
    }
    listing = client.get("/cs/referrals?status=converted").get_data(as_text=True)
    assert "Initech" in listing


@pytest.mark.parametrize("email", ["notanemail", "=evil@x.y", "a b@example.com", "@x.example"])
def test_a_referral_with_an_invalid_referrer_email_is_a_form_error(client, session, org, csm,
                                                                  email):  # fmt: skip
    login(client, csm)
    response = client.post("/cs/referrals", data={"org_id": str(org.id), "referrer_email": email})
    assert response.status_code == 400
    assert "Enter a valid email address." in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(Referral)) == 0
    ok = client.post(
        "/cs/referrals", data={"org_id": str(org.id), "referrer_email": "Li@Acme.example"}
    )
    assert ok.status_code == 302
    assert session.scalar(select(Referral.referrer_email)) == "li@acme.example"


# --- improvement items --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "data"),
    [("/cs/improvements/new", {"department": "product", "title": "Bulk export for Acme"}),
     ("/cs/referrals", {"notes": "At the user group"})],
)  # fmt: skip
def test_no_account_chosen_is_a_form_error_and_the_form_is_kept(client, session, org, csm, url,
                                                                data):  # fmt: skip
    login(client, csm)
    for posted in (data, {**data, "org_id": ""}):
        response = client.post(url, data=posted)
        page = response.get_data(as_text=True)
        assert response.status_code == 422, page
        assert "Choose an account." in page and "No such account" not in page
        assert ("Bulk export for Acme" in page) or ("At the user group" in page)
    assert session.scalar(select(func.count()).select_from(ImprovementItem)) == 0
    assert session.scalar(select(func.count()).select_from(Referral)) == 0


def test_improvement_items_lifecycle_and_collaboration_counts(app, client, session, org, csm):
    login(client, csm)
    created = client.post(
        "/cs/improvements/new",
        data={"org_id": str(org.id), "department": "product", "title": "Bulk export for Acme",
              "description": "They export by hand", "owner_name": "Pat PM"},
    )  # fmt: skip
    assert created.status_code == 302
    [item] = session.scalars(select(ImprovementItem)).all()
    assert (item.status, item.csm_id, item.department, item.owner_name) == (
        "open",
        csm.id,
        "product",
        "Pat PM",
    )
    assert "Bulk export for Acme" in client.get(f"/cs/improvements?org_id={org.id}").get_data(
        as_text=True
    )
    assert "Bulk export for Acme" in client.get(f"/cs/improvements?csm_id={csm.id}").get_data(
        as_text=True
    )

    bad = client.post(
        "/cs/improvements/new", data={"org_id": str(org.id), "department": "hr", "title": "x"}
    )
    assert bad.status_code == 422

    client.post(f"/cs/improvements/{item.id}/status", data={"status": "in_progress"})
    session.expire_all()
    assert item.status == "in_progress" and item.closed_at is None
    client.post(f"/cs/improvements/{item.id}/status", data={"status": "closed"})
    session.expire_all()
    assert item.status == "closed" and item.closed_at is not None
    edited = client.post(
        f"/cs/improvements/{item.id}/edit",
        data={"department": "support", "title": "Bulk export (support)", "owner_name": ""},
    )
    assert edited.status_code == 302
    session.expire_all()
    assert (item.department, item.title, item.owner_name) == (
        "support",
        "Bulk export (support)",
        None,
    )

    today = utcnow().date()
    month = kpis.Period(today.replace(day=1), today.replace(day=1) + timedelta(days=32))
    month = kpis.Period(month.start, month.end.replace(day=1))
    items = call(app, worklist.improvement_items, session, month.start, month.end)[csm.id]
    assert items == [kpis.ImprovementItem(opened_on=today, closed_on=today)]
    kpi = kpis.collaboration_kpi(items, month)
    assert kpi.details["closed"] == 1 and kpi.details["opened"] == 1
    assert call(app, worklist.improvement_counts, session, month.start, month.end) == {
        csm.id: (1, 1)
    }
    later = month.end + timedelta(days=40)
    assert call(app, worklist.improvement_items, session, month.end, later) == {}


# --- who may do what ---------------------------------------------------------------------------


def _pages(task_id: int, referral_id: int, item_id: int) -> list[str]:
    return [
        "/cs/tasks", "/cs/tasks.csv", f"/cs/tasks/{task_id}", "/cs/referrals", "/cs/referrals.csv",
        f"/cs/referrals/{referral_id}", "/cs/improvements", "/cs/improvements.csv",
        "/cs/improvements/new", f"/cs/improvements/{item_id}/edit",
    ]  # fmt: skip


def _posts(task_id: int, referral_id: int, item_id: int) -> list[tuple[str, dict]]:
    return [
        (f"/cs/tasks/{task_id}/complete", {"done-outcome": "x"}),
        (f"/cs/tasks/{task_id}/cancel", {"cancel-outcome": "x"}),
        (f"/cs/tasks/{task_id}/referral", {}),
        ("/cs/referrals", {"org_id": "1"}),
        (f"/cs/referrals/{referral_id}", {"status": "declined"}),
        ("/cs/improvements/new", {"org_id": "1", "department": "product", "title": "x"}),
        (f"/cs/improvements/{item_id}/edit", {"department": "product", "title": "x"}),
        (f"/cs/improvements/{item_id}/status", {"status": "closed"}),
    ]


@pytest.fixture
def objects(app, session, org, csm):
    task = detractor_task(app, session, org)
    referral = call(app, worklist.ask_referral, session, csm, org.id)
    item = call(
        app, worklist.create_improvement, session, csm, org.id, department="sales", title="Pricing"
    )
    return task.id, referral.id, item.id


def test_customers_get_403_everywhere_and_anonymous_is_sent_to_sign_in(
    client, session, org, objects
):
    for url in _pages(*objects):
        assert client.get(url).status_code == 302, url
    login(client, UserFactory(organization=org, roles=[Role.ORG_ADMIN]))
    for url in _pages(*objects):
        assert client.get(url).status_code == 403, url
    for url, data in _posts(*objects):
        assert client.post(url, data=data).status_code == 403, url
    assert all_tasks(session)[0].status == "open"


def test_product_managers_read_but_cannot_write(client, session, pm, objects):
    login(client, pm)
    for url in _pages(*objects):
        if url.endswith(("/new", "/edit")):
            assert client.get(url).status_code == 403, url
        else:
            assert client.get(url).status_code == 200, url
    assert "Mark done" not in client.get(f"/cs/tasks/{objects[0]}").get_data(as_text=True)
    for url, data in _posts(*objects):
        assert client.post(url, data=data).status_code == 403, url
    assert all_tasks(session)[0].status == "open"


def test_own_book_hides_other_csms_accounts(app, client, session, admin, org, other_csm, objects):
    call(app, set_setting, session, admin, "own_book_only", True)
    login(client, other_csm)
    task_id, referral_id, item_id = objects
    for url in (
        f"/cs/tasks/{task_id}",
        f"/cs/referrals/{referral_id}",
        f"/cs/improvements/{item_id}/edit",
    ):
        assert client.get(url).status_code == 404, url
    assert (
        client.post(f"/cs/tasks/{task_id}/complete", data={"done-outcome": "x"}).status_code == 404
    )
    assert (
        client.post(f"/cs/improvements/{item_id}/status", data={"status": "closed"}).status_code
        == 404
    )
    assert "Acme" not in client.get("/cs/tasks?scope=book&state=all").get_data(as_text=True)
    assert "Acme" not in client.get("/cs/referrals").get_data(as_text=True)
    assert "Pricing" not in client.get("/cs/improvements").get_data(as_text=True)
    assert len(read_csv(client.get("/cs/tasks.csv?scope=book&state=all"))) == 1  # header only
    with pytest.raises(NotFound):
        call(
            app,
            worklist.create_improvement,
            session,
            other_csm,
            org.id,
            department="sales",
            title="x",
        )
    # The admin still sees everything.
    login(client, admin)
    assert client.get(f"/cs/tasks/{task_id}").status_code == 200


def test_services_check_roles_and_inputs(app, session, org, csm, pm, objects):
    task_id, referral_id, item_id = objects
    with pytest.raises(PermissionDenied):
        call(app, worklist.finish_task, session, pm, task_id, "done", "x")
    with pytest.raises(DomainError):
        call(app, worklist.finish_task, session, csm, task_id, "open", "x")
    with pytest.raises(DomainError):
        call(
            app, worklist.create_improvement, session, csm, org.id, department="product", title=" "
        )
    with pytest.raises(Conflict):
        call(app, worklist.set_improvement_status, session, csm, item_id, "closed")
        call(app, worklist.set_improvement_status, session, csm, item_id, "open")


# --- CSV ----------------------------------------------------------------------------------------


def test_csv_exports_are_formula_safe(app, client, session, org, csm):
    call(app, worklist.create_improvement, session, csm, org.id, department="support",
         title="=HYPERLINK(\"http://evil\")", owner_name="+Bob")  # fmt: skip
    detractor_task(app, session, org)
    login(client, csm)
    rows = read_csv(client.get("/cs/improvements.csv"))
    assert rows[0][:4] == ["ID", "Account", "Department", "Title"]
    assert rows[1][3] == '\'=HYPERLINK("http://evil")' and rows[1][5] == "'+Bob"
    tasks = read_csv(client.get("/cs/tasks.csv?state=all"))
    assert len(tasks) == 2 and tasks[1][2] == "Acme"
    assert len(read_csv(client.get("/cs/referrals.csv"))) == 1


def test_list_pages_cost_the_same_whatever_the_number_of_rows(
    app, client, connection, session, org, other_org, csm, admin
):
    def add_rows():
        detractor_task(app, session, org)
        detractor_task(app, session, other_org)
        call(app, worklist.ask_referral, session, admin, org.id)
        call(app, worklist.ask_referral, session, admin, other_org.id)
        call(app, worklist.create_improvement, session, csm, org.id, department="legal", title="A")
        call(
            app,
            worklist.create_improvement,
            session,
            admin,
            other_org.id,
            department="sales",
            title="B",
        )

    add_rows()
    login(client, admin)
    urls = ["/cs/tasks?state=all", "/cs/referrals", "/cs/improvements"]
    for url in urls:  # the first page also fills the navigation's moderation-queue count
        client.get(url)
    before = [count_statements(client, connection, url) for url in urls]
    for _ in range(3):
        add_rows()
    assert [count_statements(client, connection, url) for url in urls] == before
    page = client.get("/cs/tasks").get_data(as_text=True)
    for label in ("Tasks", "Improvements", "Referrals"):
        assert f">{label}</a>" in page


def test_the_task_names_the_customers_questions_and_ideas(app, client, session, org, csm):
    """What the customer asked and voted for, written by the real features, is listed by
    title with a link, not as 'Question #97'."""
    from tests.qa_factories import QA
    from tests.qa_factories import member as qa_member
    from tests.roadmap_factories import Roadmap

    asker = qa_member(organization=org)
    question = QA(app, session).question(asker, title="How do we rotate the SSO certificate?")
    roadmap = Roadmap(app, session)
    idea = roadmap.idea(title="Scheduled exports to SharePoint")
    roadmap.vote(asker, idea)
    task = detractor_task(app, session, org)
    login(client, csm)
    page = client.get(f"/cs/tasks/{task.id}").get_data(as_text=True)
    assert f'<a href="/questions/{question.id}">How do we rotate the SSO certificate?</a>' in page
    assert f'<a href="/roadmap/ideas/{idea.id}">Scheduled exports to SharePoint</a>' in page


def test_questions_waiting_for_review_are_marked_and_rejected_ones_left_out(
    app, client, session, org, csm
):
    """A CSM cannot open a question a moderator has not approved: it is named as awaiting
    review without a link, a rejected one is not listed, and an approved one is linked."""
    from moderation import service as moderation
    from moderation.models import ModerationItem
    from tests.qa_factories import QA
    from tests.qa_factories import member as qa_member

    qa = QA(app, session)
    held = qa.question(  # a new member's first posts are held
        qa_member(organization=org, trust_level=0), title="Where is the audit log export?"
    )
    refused = qa.question(
        qa_member(organization=org, trust_level=0), title="Buy cheap watches here please"
    )
    shown = qa.question(qa_member(organization=org), title="How do we rotate the SSO key?")
    moderator = staff(Role.MODERATOR)

    def item(question):
        return session.scalar(
            select(ModerationItem).filter_by(kind="question", object_id=question.id)
        )

    qa(moderation.reject, moderator, item(refused).id, "Spam")
    task = detractor_task(app, session, org)
    login(client, csm)
    page = client.get(f"/cs/tasks/{task.id}").get_data(as_text=True)
    assert f'<a href="/questions/{shown.id}">How do we rotate the SSO key?</a>' in page
    assert "Where is the audit log export? <span" in page and "awaiting review" in page
    assert f'href="/questions/{held.id}"' not in page
    assert "Buy cheap watches" not in page
    assert client.get(f"/questions/{held.id}").status_code == 404  # what a link would give

    qa(moderation.approve, moderator, item(held).id)
    page = client.get(f"/cs/tasks/{task.id}").get_data(as_text=True)
    assert f'<a href="/questions/{held.id}">Where is the audit log export?</a>' in page
    assert "awaiting review" not in page
    context = call(app, worklist.customer_context, session, org.id)
    assert [q.id for q in context.open_questions] == [shown.id, held.id]
