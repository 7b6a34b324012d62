"""Words for the codes CS rows store (alert severity, improvement department and status, contact
role, rule action), shared by every CS page that shows them: one map per code, translated when
shown. A code missing from its map is shown as stored."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from cs_metrics import playbooks
from cs_metrics.models import Department, ImprovementStatus, TaskKind

BAND_LABELS = {
    "green": _l("Green"),
    "yellow": _l("Yellow"),
    "red": _l("Red"),
    "none": _l("No score"),
}
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


# What a member did, for an account's community timeline (portal.core.activity's verbs).
ACTIVITY_LABELS = {
    "account.signed_up": _l("Joined"),
    "account.confirmed": _l("Confirmed their email"),
    "account.signed_in": _l("Signed in"),
    "account.signed_out": _l("Signed out"),
    "account.password_reset": _l("Reset their password"),
    "account.password_changed": _l("Changed their password"),
    "account.erased": _l("Account erased"),
    "org.invitation_sent": _l("Invited a colleague"),
    "org.member_deactivated": _l("Deactivated a member"),
    "org.member_reactivated": _l("Reactivated a member"),
    "org.role_changed": _l("Changed a member's role"),
    "api.token_created": _l("Created an API token"),
    "content.submitted": _l("Posted content"),
    "content.published": _l("Content published"),
    "content.rejected": _l("Content rejected"),
    "content.edited": _l("Content edited by a moderator"),
    "content.hidden": _l("Content hidden"),
    "content.restored": _l("Content restored"),
    "content.removed": _l("Content removed"),
    "content.withdrawn": _l("Content withdrawn"),
    "content.flagged": _l("Flagged a post"),
    "content.viewed": _l("Read a post"),
    "trust.promoted": _l("Reached a new trust level"),
    "question.asked": _l("Asked a question"),
    "answer.posted": _l("Answered a question"),
    "comment.posted": _l("Commented"),
    "question.upvoted": _l("Upvoted a question"),
    "answer.upvoted": _l("Upvoted an answer"),
    "question.downvoted": _l("Downvoted a question"),
    "answer.downvoted": _l("Downvoted an answer"),
    "answer.accepted": _l("Accepted an answer"),
    "answer.helpful": _l("Found an answer helpful"),
    "question.closed": _l("Question closed"),
    "question.reopened": _l("Question reopened"),
    "question.duplicate": _l("Question closed as a duplicate"),
    "question.followed": _l("Followed a question"),
    "search.performed": _l("Searched"),
    "search.clicked": _l("Opened a search result"),
    "article.helpful": _l("Rated an article"),
    "article.published": _l("Article published"),
    "article.promoted": _l("Answer made an article"),
    "article.updated": _l("Article updated"),
    "idea.created": _l("Suggested an idea"),
    "idea.voted": _l("Voted for an idea"),
    "idea.unvoted": _l("Withdrew a vote"),
    "idea.commented": _l("Commented on an idea"),
    "template.uploaded": _l("Uploaded a template"),
    "template.published": _l("Template published"),
    "template.downloaded": _l("Downloaded a template"),
    "template.rated": _l("Rated a template"),
    "template.reviewed": _l("Reviewed a template"),
    "nps.answered": _l("Answered the NPS survey"),
    "privacy.export_requested": _l("Asked for a data export"),
}


def activity_label(verb: str) -> str:
    """A logged verb in the reader's language; one without words is shown as logged."""
    label = ACTIVITY_LABELS.get(verb)
    return str(label) if label is not None else verb
