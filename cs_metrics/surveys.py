"""The in-app NPS survey: who is asked, when, and what an answer sets in motion.

A customer user is asked at most once per cadence (never under 90 days, whatever the setting
says), counted from the latest of their last showing, answer or dismissal, and only once their
own account is older than ``min_account_age_days`` and never on their first day (the
organization is always older than its users). Staff are never asked. An answer becomes an
``NpsResponse`` like an imported one, so the same close-the-loop rules apply
(``worklist.open_loop_tasks``): a detractor gets a call back from the account's CSM, a promoter
a referral ask.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Session

from cs_metrics import nps, worklist
from cs_metrics.models import NpsResponse, NpsSource, NpsSurveyState
from cs_metrics.settings import DEFAULTS, get_setting
from portal.core import consent
from portal.core.activity import record_activity, register_verbs
from portal.core.bulk import dialect_insert
from portal.core.db import utcnow
from portal.core.errors import Conflict, DomainError, PermissionDenied
from portal.core.identity import OrgKind, User

register_verbs("nps.answered")

MIN_CADENCE_DAYS = 90
# Nobody is asked on their first day, whatever the setting: it also lets every page skip the
# check for brand-new users without reading the database.
FIRST_DAY = timedelta(days=1)
MAX_COMMENT = 2000


def _settings(session: Session) -> tuple[bool, int, int]:
    """``(enabled, cadence_days, min_account_age_days)``, bad stored values read as defaults
    and the cadence raised to the 90-day floor."""
    value = get_setting(session, "nps_survey")
    default = DEFAULTS["nps_survey"]

    def whole(key: str) -> int:
        number = value.get(key, default[key]) if isinstance(value, dict) else default[key]
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            return int(default[key])
        return number

    enabled = value.get("enabled", True) if isinstance(value, dict) else True
    return (
        bool(enabled),
        max(MIN_CADENCE_DAYS, whole("cadence_days")),
        whole("min_account_age_days"),
    )


def is_customer_user(user: Any) -> bool:
    """A signed-in, active member of a customer organization (never vendor staff)."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return user.organization.kind == OrgKind.CUSTOMER


def survey_status(session: Session, user: User, now: datetime) -> tuple[bool, datetime | None]:
    """Whether ``user`` is due now, and when they are (next) due -- None when never (not a
    customer user, withdrew NPS consent, or the survey is off). Three reads: the consent, the
    setting and the user's state."""
    if not is_customer_user(user) or not consent.nps_allowed(session, user.id):
        return False, None
    enabled, cadence, min_age = _settings(session)
    if not enabled:
        return False, None
    old_enough = user.created_at + max(timedelta(days=min_age), FIRST_DAY)
    state = session.get(NpsSurveyState, user.id)
    if state is None:
        return now >= old_enough, old_enough
    events = [
        e
        for e in (state.last_shown_at, state.last_answered_at, state.last_dismissed_at)
        if e is not None
    ]
    due = now >= old_enough and nps.should_show_survey(
        now,
        last_shown=state.last_shown_at,
        last_answered=state.last_answered_at,
        last_dismissed=state.last_dismissed_at,
        min_interval_days=cadence,
    )
    upcoming = max(old_enough, max(events) + timedelta(days=cadence)) if events else old_enough
    return due, upcoming


def survey_due(session: Session, user: User, now: datetime) -> bool:
    """Whether to show ``user`` the survey now (see the module docstring for the rules)."""
    return survey_status(session, user, now)[0]


def next_survey_at(session: Session, user: User, now: datetime) -> datetime | None:
    """When ``user`` is next due (``<= now``: due now), or None when they are never asked."""
    return survey_status(session, user, now)[1]


def _save_state(session: Session, user_id: int, **values: datetime) -> None:
    """Insert or update the user's survey state in one statement (two tabs may race)."""
    insert = dialect_insert(session, NpsSurveyState.__table__)
    session.execute(
        insert.values(user_id=user_id, **values).on_conflict_do_update(
            index_elements=["user_id"], set_=values
        )
    )
    cached = session.identity_map.get(session.identity_key(NpsSurveyState, user_id))
    if cached is not None:
        session.expire(cached)


def mark_shown(session: Session, user: User, now: datetime | None = None) -> None:
    """Record that the survey was shown: it counts toward the cadence even if ignored."""
    if is_customer_user(user):
        _save_state(session, user.id, last_shown_at=now or utcnow())


def _require_customer(user: User | None) -> User:
    if not is_customer_user(user):
        raise PermissionDenied(str(_l("Only customer users answer this survey.")))
    assert user is not None
    return user


def _check_not_answered(session: Session, user: User, now: datetime) -> None:
    _enabled, cadence, _min_age = _settings(session)
    state = session.get(NpsSurveyState, user.id)
    if state is None:
        return
    recent = [e for e in (state.last_answered_at, state.last_dismissed_at) if e is not None]
    if recent and now - max(recent) < timedelta(days=cadence):
        raise Conflict(str(_l("You have already answered this survey. Thank you!")))


def record_answer(
    session: Session,
    user: User | None,
    score: Any,
    comment: str | None = None,
    now: datetime | None = None,
) -> NpsResponse:
    """Store a customer user's answer as an in-app NPS response and act on it at once: a
    detractor opens a close-the-loop task for the account's CSM, a promoter a referral ask."""
    user = _require_customer(user)
    now = now or utcnow()
    try:
        score = nps.validate_score(score)
    except nps.NpsInputError:
        raise DomainError(str(_l("Choose a score from 0 to 10.")), field="score") from None
    text = (comment or "").strip()
    if len(text) > MAX_COMMENT:
        raise DomainError(
            str(_l("Use at most %(max)d characters.", max=MAX_COMMENT)), field="comment"
        )
    _check_not_answered(session, user, now)
    response = NpsResponse(
        external_id=None,
        organization_id=user.organization_id,
        user_id=user.id,
        contact_email=user.email,
        score=score,
        responded_at=now,
        comment=text or None,
        source=NpsSource.IN_APP,
    )
    session.add(response)
    session.flush()
    state = session.get(NpsSurveyState, user.id)
    _save_state(
        session,
        user.id,
        last_answered_at=now,
        last_shown_at=(state.last_shown_at if state and state.last_shown_at else now),
    )
    consent.add(session, user.id, consent.NPS_SURVEY, True, "survey", now)
    category = nps.classify(score)
    record_activity(
        session,
        user,
        user.organization,
        "nps.answered",
        response,
        {"score": score, "category": str(category)},
    )
    if category != nps.Category.PASSIVE:
        worklist.open_loop_tasks(session, now, only=[response.id])
    return response


def dismiss(session: Session, user: User | None, now: datetime | None = None) -> None:
    """ "Not now": the survey stays away for a whole cadence."""
    user = _require_customer(user)
    _save_state(session, user.id, last_dismissed_at=now or utcnow())
