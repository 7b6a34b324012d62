"""schemathesis over /api/v1/openapi.json, in process (WSGI), as several roles.

Every operation of the document is fuzzed as a customer, a moderator, a CSM and a vendor
admin (each with a personal access token with write scope): inputs the schema allows
(positive) and inputs it does not (negative), with path ids drawn at random and pinned to the
world's real objects. Each case must not answer 5xx, and every response must match the
document: its status declared, its content type and body as declared. Each case runs inside a
savepoint rolled back after it, so one case's writes do not leak into the next.

``SCHEMATHESIS_EXAMPLES`` (default 3) bounds the examples per operation, role and mode so the
whole run stays under a minute on the CI machine.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
import whoosh.util
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from tests.security.world import World, build

pytestmark = pytest.mark.sweep

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "3"))
ROLES = ("member_a", "moderator", "csm", "vendor_admin")
# Domain rules refuse some inputs the schema allows (voting on one's own post, a month that
# does not exist, a template file that is not JSON): that is a 4xx naming the field, not a bug.
EXCLUDED_CHECKS = [schemathesis.checks.positive_data_acceptance]
KNOWN_WRONG: dict[str, list[Any]] = {}


def real_ids(world: World) -> dict[str, int]:
    """Path parameters pinned to objects that exist (organization A's, the shared ones)."""
    side = world.a
    return {
        "question_id": side.question_id,
        "answer_id": side.answer_id,
        "idea_id": side.idea_id,
        "template_id": side.template_id,
        "item_id": side.item_id,
        "org_id": side.org.id,
        "article_id": world.article_id,
        "job_id": 1,
    }


INT32 = 2**31 - 1


def int32_bounded(node: Any) -> Any:
    """The document with every integer bounded to PostgreSQL's ``integer`` range.

    Ids past that range are a 404 or 422 (``test_ids_past_the_integer_range_are_404_or_422``);
    bounding them here keeps the fuzzing on everything else.
    """
    if isinstance(node, dict):
        node = {key: int32_bounded(value) for key, value in node.items()}
        if node.get("type") == "integer":
            node.setdefault("maximum", INT32)
            node.setdefault("minimum", -INT32)
        return node
    if isinstance(node, list):
        return [int32_bounded(value) for value in node]
    return node


def _ints(node: Any) -> Iterator[int]:
    if isinstance(node, bool):
        return
    if isinstance(node, int):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _ints(value)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from _ints(value)


def in_range(case: Any) -> bool:
    """No integer past the int32 range anywhere in the request (the known 500, above)."""
    parts = (
        case.path_parameters,
        case.query,
        case.body if isinstance(case.body, dict | list) else None,
    )
    return all(abs(n) <= INT32 for part in parts for n in _ints(part))


def _failure(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error).strip()[:1500]}"


def _fuzz(
    label: str,
    strategies: list[Any],
    headers: dict[str, str],
    mode: GenerationMode,
    connection: Connection,
    session: Session,
    cases: Counter[str],
) -> Any:
    """A hypothesis test of one operation as one role in one generation mode."""

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(strategies))
    def run(case: Any) -> None:
        nested = connection.begin_nested()
        try:
            cases[label] += 1
            if mode is GenerationMode.POSITIVE:
                excluded = EXCLUDED_CHECKS + KNOWN_WRONG.get(label, [])
                case.call_and_validate(headers=headers, excluded_checks=excluded)
            else:
                response = case.call(headers=headers)
                assert response.status_code < 500, (
                    f"{response.status_code} for {case.as_curl_command()}"
                )
        finally:
            nested.rollback()
            session.expire_all()

    return run


@pytest.mark.filterwarnings("ignore")
def test_api_conforms_to_its_openapi_document(
    app: Flask, session: Session, connection: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Hypothesis seeds the global ``random`` before each example; Whoosh names its segment
    # files with it, so two examples would write the same segment name and whoosh's commit
    # would fail. Production never reseeds ``random``.
    monkeypatch.setattr(whoosh.util, "random", random.SystemRandom())
    world = build(app, session)
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    # Positive cases from the document with int32-bounded integers; negative ones from the
    # document as served (a bounded integer's negative would be an out-of-range id again).
    schemas = {
        GenerationMode.POSITIVE: schemathesis.openapi.from_dict(int32_bounded(document)),
        GenerationMode.NEGATIVE: schemathesis.openapi.from_dict(document),
    }
    for schema in schemas.values():
        schema.app, schema.location = app, "/api/v1/openapi.json"
    ids = real_ids(world)
    failures: dict[str, str] = {}
    cases: Counter[str] = Counter()

    for mode, schema in schemas.items():
        for result in schema.get_all_operations():
            operation = result.ok()
            names = {p.name for p in operation.path_parameters}
            pinned = {name: ids[name] for name in names if name in ids}
            for role in ROLES:
                headers = {"Authorization": f"Bearer {world.tokens[role]}"}
                strategies = [operation.as_strategy(generation_mode=mode).filter(in_range)]
                if pinned:
                    strategies.append(
                        operation.as_strategy(generation_mode=mode, path_parameters=pinned).filter(
                            in_range
                        )
                    )
                run = _fuzz(operation.label, strategies, headers, mode, connection, session, cases)
                try:
                    run()
                except BaseException as error:  # noqa: BLE001 - collected, reported below
                    label = f"{operation.label} as {role} ({mode.value})"
                    failures[label] = _failure(error)

    total = sum(cases.values())
    print(
        f"\nschemathesis: {len(cases)} operations x {len(ROLES)} roles, {total} cases, "
        f"{len(failures)} failing"
    )
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())


def test_template_download_is_documented_as_a_file(app: Flask, session: Session) -> None:
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    responses = spec["paths"]["/templates/{template_id}/download"]["get"]["responses"]
    assert "200" in responses, sorted(responses)


HUGE = 2**64  # past SQLite's INTEGER and PostgreSQL's bigint


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/api/v1/organizations/{HUGE}/members", None),
        ("GET", f"/api/v1/cs/accounts/{HUGE}/health", None),
        ("POST", "/api/v1/questions/{question}/accept", {"answer_id": HUGE}),
        ("GET", f"/questions/{HUGE}", None),
    ],
)
def test_ids_past_the_integer_range_are_404_or_422(
    app: Flask, session: Session, method: str, path: str, body: dict[str, Any] | None
) -> None:
    world = build(app, session)
    headers = {"Authorization": f"Bearer {world.tokens['vendor_admin']}"}
    url = path.format(question=world.a.question_id)
    response = app.test_client().open(url, method=method, json=body, headers=headers)
    assert response.status_code in (404, 422), response.status_code
