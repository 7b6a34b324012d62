"""Words for the codes CS rows store (alert severity, improvement department and status, contact
role, rule action), shared by every CS page that shows them: one map per code, translated when
shown. A code missing from its map is shown as stored."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from cs_metrics.models import Department, ImprovementStatus

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
