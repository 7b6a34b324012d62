"""Posting limits by trust level, over HTTP: the post past the limit is refused with 429, a
Retry-After that says when the next one will be accepted, and a message beside the field;
nothing is saved."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from moderation.models import ModerationSetting
from moderation.rules import DEFAULT_RATE_LIMITS
from portal.accounts.service import create_api_token
from portal.qa.models import Question
from tests.conftest import login
from tests.factories import UserFactory
from tests.qa_factories import QA


def ask(client, number: int):
    return client.post(
        "/questions/ask",
        data={
            "title": f"How do I schedule report number {number} for my team?",
            "body": f"Question {number}: the scheduler page shows no option for weekly runs.",
        },
    )


def questions_by(session, user) -> int:
    return session.scalar(select(func.count(Question.id)).where(Question.author_id == user.id))


@pytest.mark.parametrize("trust_level", sorted(DEFAULT_RATE_LIMITS))
def test_the_post_past_the_per_minute_limit_of_each_trust_level_is_refused_with_429(
    client, session, trust_level: int
) -> None:
    per_minute = DEFAULT_RATE_LIMITS[trust_level][0]
    author = UserFactory(trust_level=trust_level)
    login(client, author)
    for number in range(per_minute):
        assert ask(client, number).status_code == 302, f"post {number + 1} of {per_minute}"

    refused = ask(client, per_minute)

    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    assert "posting too fast" in refused.get_data(as_text=True)
    assert questions_by(session, author) == per_minute


def test_the_daily_limit_answers_429_with_the_wait_until_the_oldest_post_ages_out(
    client, session
) -> None:
    session.add(ModerationSetting(key="rules", value={"rate_limits": {"0": [0, 2]}}))
    author = UserFactory(trust_level=2)
    login(client, author)
    assert [ask(client, n).status_code for n in range(2)] == [302, 302]

    refused = ask(client, 2)

    assert refused.status_code == 429
    # The first post was a moment ago, so the wait is (nearly) a whole day.
    assert 86_000 <= int(refused.headers["Retry-After"]) <= 86_401
    assert "Daily limit reached" in refused.get_data(as_text=True)
    assert questions_by(session, author) == 2


def test_a_limit_raised_or_lowered_applies_to_the_next_post(client, session) -> None:
    """Counts stop at the limits the last post was judged by: after a raise they are taken
    again, as far as the new limit, so nobody gets past a limit by its having been lower."""
    rules_row = ModerationSetting(key="rules", value={"rate_limits": {"0": [0, 4]}})
    session.add(rules_row)
    author = UserFactory(trust_level=2)
    login(client, author)

    def daily_limit(posts: int) -> None:
        rules_row.value = {"rate_limits": {"0": [0, posts]}}
        session.flush()

    assert [ask(client, n).status_code for n in range(3)] == [302, 302, 302]
    daily_limit(2)
    assert ask(client, 3).status_code == 429  # counted up to 2: enough to refuse
    daily_limit(3)
    assert ask(client, 4).status_code == 429  # 2 counted before is not "under 3": 3 posts
    daily_limit(5)
    assert [ask(client, n).status_code for n in range(5, 8)] == [302, 302, 429]
    daily_limit(0)  # no daily limit
    assert ask(client, 8).status_code == 302
    assert questions_by(session, author) == 6


def test_the_api_answers_429_with_retry_after_and_names_the_field(app, client, session) -> None:
    author = UserFactory(trust_level=0)
    _token, raw = QA(app, session)(create_api_token, author, "script", "write")
    headers = {"Authorization": f"Bearer {raw}"}
    body = {
        "title": "Where is the export button on the dashboard?",
        "body": "I cannot find the export button anywhere on the dashboard page.",
    }
    assert client.post("/api/v1/questions", json=body, headers=headers).status_code == 201

    refused = client.post(
        "/api/v1/questions", json={**body, "title": "And where are the filters?"}, headers=headers
    )

    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    error = refused.get_json()["error"]
    assert error["code"] == "rate_limited" and list(error["fields"]) == ["body"]
    assert questions_by(session, author) == 1
