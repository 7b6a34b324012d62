"""Words for the codes CS rows store (alert severity, improvement department and status, contact
role, rule action), shared by every CS page that shows them: one map per code, translated when
shown. A code missing from its map is shown as stored."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from cs_metrics import playbooks
from cs_metrics.models import Department, ImprovementStatus, TaskKind

SEVERITY_LABELS = {"info": _l("Info"), "warning": _l("Warning"), "critical": _l("Critical")}
IMPROVEMENT_STATUSES = {
    ImprovementStatus.OPEN: _l("Open"),
    ImprovementStatus.IN_PROGRESS: _l("In progress"),
    ImprovementStatus.CLOSED: _l("Closed"),
}
DEPARTMENTS = {
    Department.PRODUCT: _l("Product"),
    Department.SUPPORT: _l("Support"),
    Department.SALES: _l("Sales"),
    Department.ENGINEERING: _l("Engineering"),
    Department.MARKETING: _l("Marketing"),
    Department.FINANCE: _l("Finance"),
    Department.LEGAL: _l("Legal"),
}
# cs_metrics.importers reads these three roles from the CRM's contact rows.
CONTACT_ROLES = {
    "decision_maker": _l("Decision maker"),
    "champion": _l("Champion"),
    "user": _l("User"),
}
# What a rule does when it fires (cs_metrics.playbooks.ACTION_TYPES).
RULE_ACTIONS = {
    "task": _l("Task"),
    "notify": _l("Notify"),
    "tag": _l("Tag"),
    "channel": _l("Channel"),
}


def task_label(kind: str, organization: str, details: dict[str, Any] | None, title: str) -> str:
    """What a task is about, in the reader's language (the stored title is for exports)."""
    score = (details or {}).get("score")
    if kind == TaskKind.CLOSE_THE_LOOP:
        return _("Call back %(org)s: NPS %(score)s", org=organization, score=score)
    if kind == TaskKind.REFERRAL_ASK:
        return _("Ask %(org)s for a referral: NPS %(score)s", org=organization, score=score)
    suffix = f": {organization}"
    if kind == TaskKind.ALERT and title.endswith(suffix):
        rule = title[: -len(suffix)]
        shown = playbooks.display_label(rule)
        if shown != rule:
            return _("%(rule)s: %(org)s", rule=shown, org=organization)
    return title
