"""Demo data is written now and told as a history: what one step of a demo wrote to the
activity log and to people's notifications is dated back to when it happened (an account's
community timeline, trust levels' days visited and the notification bell read these dates)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from portal.core.activity import Activity
from portal.core.db import Base
from portal.core.notifications import Notification

_TIMED: tuple[tuple[type[Base], str], ...] = (
    (Activity, "occurred_at"),
    (Notification, "created_at"),
)


class Backdate:
    """``step = Backdate(session)``, then write, then ``step.to(when)``: the activities and
    notifications written since are dated ``when``, and the mark moves past them, so the
    next ``to`` dates only what was written after this one."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._after = {model: self._newest(model) for model, _ in _TIMED}

    def _newest(self, model: type[Base]) -> int:
        return self.session.scalar(select(func.max(model.id))) or 0  # type: ignore[attr-defined]

    def to(self, when: datetime) -> None:
        self.session.flush()
        for model, column in _TIMED:
            self.session.execute(
                update(model)
                .where(model.id > self._after[model])  # type: ignore[attr-defined]
                .values({column: when})
            )
            self._after[model] = self._newest(model)
