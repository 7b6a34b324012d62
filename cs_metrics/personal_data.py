"""What customer success keeps about a person: their NPS answers and survey state."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from cs_metrics.models import NpsResponse, NpsSurveyState
from portal.core import personal_data
from portal.core.identity import User


def export(session: Session, user: User) -> dict[str, Any]:
    answers = session.scalars(
        select(NpsResponse).where(NpsResponse.user_id == user.id).order_by(NpsResponse.id)
    )
    state = session.get(NpsSurveyState, user.id)
    return {
        "nps_answers": personal_data.rows(answers, "score", "comment", "responded_at", "source"),
        "nps_survey_state": (
            personal_data.rows([state], "last_shown_at", "last_dismissed_at", "last_answered_at")[0]
            if state is not None
            else None
        ),
    }


def erase(session: Session, user: User, mode: str) -> None:
    """Scores stay, so NPS counts do not move; the survey state, the address and (when the
    admin removes content) the comment go."""
    session.execute(delete(NpsSurveyState).where(NpsSurveyState.user_id == user.id))
    values: dict[str, Any] = {"contact_email": None}
    if mode != personal_data.KEEP:
        values["comment"] = None
    session.execute(
        update(NpsResponse)
        .where(NpsResponse.user_id == user.id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def register() -> None:
    personal_data.register("cs_metrics", export, erase)
