"""The roadmap JSON API: ideas, votes, comments, statuses, merges, errors naming fields, and
votes and unvotes from many people at the same moment against a live server."""

from __future__ import annotations

import http.client
import json
import threading
import time

import pytest
from sqlalchemy import func, select

from portal.accounts.service import create_api_token
from portal.core.identity import Role
from portal.roadmap import service
from portal.roadmap.models import Idea, IdeaVote
from tests.factories import staff
from tests.roadmap_factories import Roadmap, member, product_manager


@pytest.fixture
def rm(app, session) -> Roadmap:
    return Roadmap(app, session)


def token_for(rm: Roadmap, user, scope: str = "write") -> dict[str, str]:
    _token, raw = rm(create_api_token, user, "script", scope)
    return {"Authorization": f"Bearer {raw}"}


def test_create_list_and_get_ideas(rm, client):
    author = member()
    headers = token_for(rm, author)
    created = client.post(
        "/api/v1/ideas",
        json={
            "title": "Export dashboards as PDF",
            "description": "For the **board** meeting",
            "product_area": "dashboards",
            "tags": ["pdf"],
        },
        headers=headers,
    )
    assert created.status_code == 201
    body = created.get_json()
    assert body["published"] is True and body["tags"] == ["pdf"]
    assert "<strong>board</strong>" in body["description_html"]
    assert body["history"][0]["to_status"] == "open"
    listed = client.get("/api/v1/ideas?sort=new", headers=headers).get_json()
    assert [i["title"] for i in listed["items"]] == ["Export dashboards as PDF"]
    assert listed["meta"]["total"] == 1
    got = client.get(f"/api/v1/ideas/{body['id']}", headers=headers).get_json()
    assert got["id"] == body["id"] and got["my_importance"] is None


def test_bad_input_is_a_clear_4xx_naming_the_field(rm, client, session):
    idea = rm.idea()
    headers = token_for(rm, member())
    short = client.post("/api/v1/ideas", json={"title": "x", "description": "y"}, headers=headers)
    assert short.status_code == 422 and "title" in short.get_json()["error"]["fields"]
    bad_level = client.post(
        f"/api/v1/ideas/{idea.id}/vote", json={"importance": 7}, headers=headers
    )
    assert bad_level.status_code == 422 and "importance" in bad_level.get_json()["error"]["fields"]
    unknown = client.get("/api/v1/ideas?status=someday", headers=headers)
    assert unknown.status_code == 422 and "status" in unknown.get_json()["error"]["fields"]
    missing = client.post("/api/v1/ideas/999999/vote", json={}, headers=headers)
    assert missing.status_code == 404
    assert session.scalar(select(func.count()).select_from(IdeaVote)) == 0


def test_vote_twice_unvote_and_vote_on_a_merged_idea(rm, client, session):
    source, target = rm.idea(), rm.idea()
    headers = token_for(rm, member())
    first = client.post(f"/api/v1/ideas/{target.id}/vote", json={"importance": 3}, headers=headers)
    assert first.get_json() == {
        "idea_id": target.id,
        "voted": True,
        "changed": True,
        "vote_count": 1,
        "message": "Thank you for your vote.",
    }
    again = client.post(f"/api/v1/ideas/{target.id}/vote", json={"importance": 3}, headers=headers)
    assert again.status_code == 200 and again.get_json()["changed"] is False
    assert "already" in again.get_json()["message"]
    gone = client.delete(f"/api/v1/ideas/{target.id}/vote", headers=headers)
    assert gone.get_json()["vote_count"] == 0
    rm(service.merge, product_manager(), source.id, target.id)
    landed = client.post(f"/api/v1/ideas/{source.id}/vote", json={}, headers=headers)
    assert landed.get_json()["idea_id"] == target.id
    session.expire_all()
    assert session.get(Idea, target.id).vote_count == 1


def test_vote_over_budget_is_refused_and_nothing_is_written(rm, client, session):
    rm(service.set_vote_budget, staff(Role.VENDOR_ADMIN), 1)
    one, two = rm.idea(), rm.idea()
    headers = token_for(rm, member())
    assert client.post(f"/api/v1/ideas/{one.id}/vote", json={}, headers=headers).status_code == 200
    over = client.post(f"/api/v1/ideas/{two.id}/vote", json={}, headers=headers)
    assert over.status_code == 409 and "votes" in over.get_json()["error"]["message"]
    assert session.scalar(select(func.count()).select_from(IdeaVote)) == 1


def test_staff_endpoints_refuse_customers_and_serve_product_managers(rm, client, session):
    idea, other = rm.idea(), rm.idea()
    customer = token_for(rm, member())
    for path, payload in (
        (f"/api/v1/ideas/{idea.id}/status", {"status": "planned"}),
        (f"/api/v1/ideas/{idea.id}/merge", {"target_id": other.id}),
        (f"/api/v1/ideas/{idea.id}/unmerge", None),
    ):
        assert client.post(path, json=payload, headers=customer).status_code == 403
    pm = token_for(rm, product_manager())
    planned = client.post(
        f"/api/v1/ideas/{idea.id}/status",
        json={"status": "planned", "response": "Q3"},
        headers=pm,
    )
    assert planned.status_code == 200 and planned.get_json()["status"] == "planned"
    unknown = client.post(f"/api/v1/ideas/{idea.id}/status", json={"status": "x"}, headers=pm)
    assert unknown.status_code == 422
    itself = client.post(f"/api/v1/ideas/{idea.id}/merge", json={"target_id": idea.id}, headers=pm)
    assert itself.status_code == 422 and "target_id" in itself.get_json()["error"]["fields"]
    merged = client.post(f"/api/v1/ideas/{other.id}/merge", json={"target_id": idea.id}, headers=pm)
    assert merged.status_code == 200 and merged.get_json()["id"] == idea.id
    cycle = client.post(f"/api/v1/ideas/{idea.id}/merge", json={"target_id": other.id}, headers=pm)
    assert cycle.status_code == 422
    undone = client.post(f"/api/v1/ideas/{other.id}/unmerge", headers=pm)
    assert undone.status_code == 200 and undone.get_json()["merged_into_id"] is None
    comment = client.post(
        f"/api/v1/ideas/{idea.id}/comments", json={"body": "Nice"}, headers=customer
    )
    assert comment.status_code == 201 and comment.get_json()["published"] is True


def test_the_openapi_document_lists_the_roadmap(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    for path in (
        "/ideas",
        "/ideas/{idea_id}",
        "/ideas/{idea_id}/vote",
        "/ideas/{idea_id}/comments",
        "/ideas/{idea_id}/status",
        "/ideas/{idea_id}/merge",
        "/ideas/{idea_id}/unmerge",
    ):
        assert path in spec["paths"], path
    assert set(spec["paths"]["/ideas/{idea_id}/vote"]) >= {"post", "delete"}


def test_concurrent_votes_and_unvotes_leave_exact_counts(tmp_root):
    """Sixteen people vote, unvote and vote again on two ideas at the same moment through a
    live threaded server; odd ones finally unvote. Every count equals the rows and the truth."""
    from werkzeug.serving import make_server

    from portal.accounts.service import create_user
    from portal.core.db import db
    from portal.core.identity import Organization
    from tests.conftest import committing_app

    people_count = 16
    app = committing_app("roadmap_votes", tmp_root)
    with app.app_context():
        org = Organization(name="C", slug="c", kind="customer")
        db.session.add(org)
        db.session.flush()
        people = [
            create_user(db.session, org, f"u{i}@c.example", f"U{i}", "long-password-xyz")
            for i in range(people_count + 1)
        ]
        for person in people:
            person.trust_level = 3
        ideas = [
            service.submit_idea(db.session, people[0], f"Concurrent idea number {n}", "Body")
            for n in range(2)
        ]
        tokens = [create_api_token(db.session, p, "t", "write")[1] for p in people[1:]]
        idea_ids = [i.id for i in ideas]
        db.session.commit()
        db.session.remove()

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    barrier = threading.Barrier(people_count)
    statuses: list[int] = []
    lock = threading.Lock()

    def send(token: str, method: str, path: str) -> None:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        for _attempt in range(80):
            connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
            connection.request(method, path, json.dumps({}) if method == "POST" else None, headers)
            response = connection.getresponse()
            response.read()
            connection.close()
            if response.status != 503:
                with lock:
                    statuses.append(response.status)
                return
            time.sleep(0.05)

    def person(index: int, token: str) -> None:
        barrier.wait()
        for idea_id in idea_ids:
            path = f"/api/v1/ideas/{idea_id}/vote"
            send(token, "POST", path)
            send(token, "DELETE", path)
            send(token, "POST", path)
            if index % 2:
                send(token, "DELETE", path)

    threads = [threading.Thread(target=person, args=(i, t)) for i, t in enumerate(tokens)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        server.shutdown()
    expected_requests = len(idea_ids) * (3 * people_count + people_count // 2)
    assert statuses == [200] * expected_requests
    with app.app_context():
        counts = dict(db.session.execute(select(Idea.id, Idea.vote_count)).all())
        rows = dict(
            db.session.execute(
                select(IdeaVote.idea_id, func.count()).group_by(IdeaVote.idea_id)
            ).all()
        )
        db.session.remove()
    app.extensions["cocreate_engine"].dispose()
    truth = people_count // 2
    assert counts == {idea_ids[0]: truth, idea_ids[1]: truth}
    assert rows == counts
