"""The Q&A JSON API: lists, asking, answers, votes, acceptance, errors naming fields, and votes
from many people at the same moment against a live server."""

from __future__ import annotations

import http.client
import json
import threading
import time

import pytest
from sqlalchemy import func, select

from portal.accounts.service import create_api_token
from portal.qa import service
from portal.qa.models import Answer, Question, Reputation, Vote
from tests.factories import OrganizationFactory
from tests.qa_factories import QA, member


@pytest.fixture
def qa(app, session) -> QA:
    return QA(app, session)


def token_for(qa: QA, user, scope: str = "write") -> dict[str, str]:
    _token, raw = qa(create_api_token, user, "script", scope)
    return {"Authorization": f"Bearer {raw}"}


def test_list_filters_paginates_and_hides_other_orgs_private_questions(qa, client, session):
    asker = member()
    qa.question(asker, title="Public question about dashboards", tags=["dashboards"])
    qa.question(asker, title="Private question about our SSO", private=True, tags=["sso"])
    outsider = member()
    body = client.get("/api/v1/questions", headers=token_for(qa, outsider, "read")).get_json()
    assert [q["title"] for q in body["items"]] == ["Public question about dashboards"]
    assert body["meta"]["total"] == 1
    mine = client.get("/api/v1/questions?tag=SSO", headers=token_for(qa, asker, "read")).get_json()
    assert [q["title"] for q in mine["items"]] == ["Private question about our SSO"]
    bad = client.get("/api/v1/questions?sort=bogus&per_page=0", headers=token_for(qa, asker))
    assert bad.status_code == 422
    assert set(bad.get_json()["error"]["fields"]) == {"sort", "per_page"}


def test_ask_answer_vote_accept(qa, client, session):
    asker, answerer, voter = member(), member(), member()
    response = client.post(
        "/api/v1/questions",
        json={"title": "How do I import CSV data nightly?", "body": "From S3", "tags": ["Import"]},
        headers=token_for(qa, asker),
    )
    assert response.status_code == 201
    question = response.get_json()
    assert question["published"] is True and question["tags"] == ["import"]
    qid = question["id"]
    answer = client.post(
        f"/api/v1/questions/{qid}/answers",
        json={"body": "Use a scheduled import job."},
        headers=token_for(qa, answerer),
    )
    assert answer.status_code == 201
    aid = answer.get_json()["id"]
    voted = client.post(
        f"/api/v1/answers/{aid}/vote", json={"value": 1}, headers=token_for(qa, voter)
    )
    assert voted.get_json() == {"value": 1, "score": 1}
    again = client.post(
        f"/api/v1/answers/{aid}/vote", json={"value": 1}, headers=token_for(qa, voter)
    )
    assert again.get_json() == {"value": 0, "score": 0}
    own = client.post(
        f"/api/v1/questions/{qid}/vote", json={"value": 1}, headers=token_for(qa, asker)
    )
    assert own.status_code == 400 and "value" in own.get_json()["error"]["fields"]
    odd = client.post(
        f"/api/v1/questions/{qid}/vote", json={"value": 5}, headers=token_for(qa, voter)
    )
    assert odd.status_code == 422 and "value" in odd.get_json()["error"]["fields"]
    refused = client.post(
        f"/api/v1/questions/{qid}/accept", json={"answer_id": aid}, headers=token_for(qa, voter)
    )
    assert refused.status_code == 403
    accepted = client.post(
        f"/api/v1/questions/{qid}/accept", json={"answer_id": aid}, headers=token_for(qa, asker)
    )
    assert accepted.status_code == 200 and accepted.get_json()["accepted_answer_id"] == aid
    detail = client.get(f"/api/v1/questions/{qid}", headers=token_for(qa, voter, "read")).get_json()
    assert [a["id"] for a in detail["answers"]] == [aid]
    unaccepted = client.post(
        f"/api/v1/questions/{qid}/accept", json={"answer_id": None}, headers=token_for(qa, asker)
    )
    assert unaccepted.get_json()["accepted_answer_id"] is None


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"title": "short", "body": "x"}, "title"),
        ({"title": "A long enough title", "body": ""}, "body"),
        ({"title": "A long enough title", "body": "x", "tags": ["a"] * 6}, "tags"),
        ({"title": "A long enough title", "body": "x", "tags": ["no spaces!"]}, "tags"),
        ({"title": "A long enough title", "body": "x", "product_area": "moon"}, "product_area"),
        ({"title": "A long enough title", "body": "x", "extra": 1}, "extra"),
    ],
)
def test_bad_questions_answer_422_naming_the_field(qa, client, session, payload, field):
    response = client.post("/api/v1/questions", json=payload, headers=token_for(qa, member()))
    assert response.status_code == 422
    assert field in response.get_json()["error"]["fields"]
    assert session.scalar(select(func.count()).select_from(Question)) == 0


def test_private_ids_of_other_orgs_are_404_and_closed_questions_409(qa, client, session):
    org = OrganizationFactory()
    secret = qa.question(member(organization=org), private=True)
    outsider = token_for(qa, member())
    for method, path, payload in [
        ("get", f"/api/v1/questions/{secret.id}", None),
        ("post", f"/api/v1/questions/{secret.id}/answers", {"body": "hi"}),
        ("post", f"/api/v1/questions/{secret.id}/vote", {"value": 1}),
        ("post", f"/api/v1/questions/{secret.id}/accept", {"answer_id": None}),
    ]:
        response = getattr(client, method)(path, json=payload, headers=outsider)
        assert response.status_code == 404, path
    public = qa.question()
    qa(service.close, member(trust_level=4), public.id, "Answered elsewhere")
    closed = client.post(
        f"/api/v1/questions/{public.id}/answers", json={"body": "late"}, headers=outsider
    )
    assert closed.status_code == 409
    assert session.scalar(select(func.count()).select_from(Answer)) == 0


def test_the_openapi_document_lists_the_qa_endpoints(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert {"get", "post"} <= set(paths["/questions"])
    for path in (
        "/questions/{question_id}",
        "/questions/{question_id}/answers",
        "/questions/{question_id}/vote",
        "/answers/{answer_id}/vote",
        "/questions/{question_id}/accept",
    ):
        assert path in paths
    assert "422" in paths["/questions/{question_id}/vote"]["post"]["responses"]


def test_concurrent_votes_all_count(tmp_root):
    """Twelve people upvote one answer at the same moment through a live threaded server: the
    score, the vote rows and the author's reputation all say twelve. On SQLite a write that
    loses the lock race answers 503 with Retry-After, and the client retries as told."""
    from werkzeug.serving import make_server

    from portal.accounts.service import create_user
    from portal.core.db import db
    from portal.core.identity import Organization
    from tests.conftest import committing_app

    voters = 12
    app = committing_app("qa_votes", tmp_root)
    with app.app_context():
        org = Organization(name="C", slug="c", kind="customer")
        db.session.add(org)
        db.session.flush()
        people = [
            create_user(db.session, org, f"u{i}@c.example", f"U{i}", "long-password-xyz")
            for i in range(voters + 2)
        ]
        for person in people:
            person.trust_level = 3
        question = service.ask(db.session, people[0], "Concurrent votes question", "Body text")
        reply = service.answer(db.session, people[1], question.id, "An answer to vote on")
        tokens = [create_api_token(db.session, p, "t", "write")[1] for p in people[2:]]
        author_id, answer_id = people[1].id, reply.id
        db.session.commit()
        db.session.remove()

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    barrier = threading.Barrier(voters)
    statuses: list[int] = []

    def upvote(token: str) -> None:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        barrier.wait()
        for _attempt in range(50):
            connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
            connection.request(
                "POST", f"/api/v1/answers/{answer_id}/vote", json.dumps({"value": 1}), headers
            )
            response = connection.getresponse()
            response.read()
            connection.close()
            if response.status != 503:
                statuses.append(response.status)
                return
            time.sleep(0.05)

    threads = [threading.Thread(target=upvote, args=(t,)) for t in tokens]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        server.shutdown()
    assert statuses == [200] * voters
    with app.app_context():
        score = db.session.scalar(select(Answer.score).where(Answer.id == answer_id))
        votes = db.session.scalar(select(func.count()).select_from(Vote))
        points = db.session.scalar(select(Reputation.points).where(Reputation.user_id == author_id))
        db.session.remove()
    app.extensions["cocreate_engine"].dispose()
    assert (score, votes, points) == (voters, voters, 10 * voters)
