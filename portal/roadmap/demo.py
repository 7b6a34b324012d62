"""Deterministic roadmap demo data: forty ideas in English and Chinese across every status,
votes from every demo customer organization, one merged pair and shipped ideas with release
notes for the changelog.

Everything goes through the roadmap service and moderation, as people would do it; each idea
is then dated back (with its moderation item and activity rows) so the board looks lived-in,
trending has something to rank, and no author runs into the posting limits.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from moderation import service as moderation
from portal.core.db import utcnow
from portal.core.errors import DomainError
from portal.core.history import Backdate
from portal.core.identity import User
from portal.roadmap import service
from portal.roadmap.models import Idea, IdeaVote, StatusChange

# (title, description, area, tags)
EN_IDEAS = (
    (
        "Schedule dashboard exports to email",
        "Send a PDF of a dashboard every Monday.",
        "dashboards",
        ["exports", "pdf"],
    ),
    (
        "Dark mode for the whole portal",
        "Our analysts work late; a dark theme would help.",
        "admin",
        ["ui"],
    ),
    (
        "SAML single logout",
        "Signing out of our IdP should sign out of Cocreate too.",
        "sso",
        ["saml"],
    ),
    (
        "Incremental CSV import",
        "Only import rows that changed since the last run.",
        "data-import",
        ["csv"],
    ),
    (
        "Row-level permissions on reports",
        "Regional managers should only see their region.",
        "permissions",
        ["rls"],
    ),
    (
        "Webhooks for alert rules",
        "Call our incident tool when an alert fires.",
        "alerts",
        ["webhooks"],
    ),
    ("API rate limit headers", "Tell scripts how many calls they have left.", "api", ["api"]),
    (
        "Report templates gallery",
        "Share report templates between customers.",
        "reports",
        ["templates"],
    ),
    ("Audit log export", "Export the admin audit log to our SIEM.", "admin", ["audit"]),
    (
        "Dashboard filters that remember my choice",
        "Keep my last filter per dashboard.",
        "dashboards",
        ["filters"],
    ),
    (
        "SCIM user provisioning",
        "Create and deactivate users from Okta automatically.",
        "sso",
        ["scim"],
    ),
    (
        "Excel export keeps formatting",
        "Number formats are lost when exporting to Excel.",
        "reports",
        ["excel"],
    ),
    (
        "Alert digest instead of one mail per alert",
        "We get forty mails a day.",
        "alerts",
        ["email"],
    ),
    ("Custom roles", "Define a role between viewer and editor.", "permissions", ["roles"]),
    ("Import from Google Sheets", "Connect a sheet as a data source.", "data-import", ["sheets"]),
    ("Embed dashboards in our intranet", "An iframe with single sign-on.", "dashboards", ["embed"]),
    ("GraphQL API", "Fetch exactly the fields we need.", "api", ["graphql"]),
    ("Two-factor authentication for local accounts", "For users outside our IdP.", "sso", ["2fa"]),
    (
        "Scheduled dashboard snapshot to Slack",
        "Post the dashboard image to a channel.",
        "alerts",
        ["slack"],
    ),
    (
        "Export dashboards as PDF",
        "Same as scheduled exports, but on demand.",
        "dashboards",
        ["pdf"],
    ),
)
ZH_IDEAS = (
    ("仪表板支持定时邮件推送", "希望每周一自动把仪表板 PDF 发给管理层。", "dashboards", ["导出"]),
    ("报表支持中文字体导出", "导出的 PDF 中文显示为方块。", "reports", ["pdf"]),
    ("支持企业微信登录", "员工希望用企业微信扫码登录。", "sso", ["企业微信"]),
    ("数据导入支持增量更新", "只导入上次之后变化的数据。", "data-import", ["导入"]),
    ("按部门设置数据权限", "各部门只能看到本部门的数据。", "permissions", ["权限"]),
    ("告警支持钉钉通知", "告警触发时推送到钉钉群。", "alerts", ["钉钉"]),
    ("开放 API 支持批量操作", "一次请求处理多条记录。", "api", ["api"]),
    ("报表模板市场", "客户之间共享报表模板。", "reports", ["模板"]),
    ("操作日志导出", "把管理员操作日志导出给审计部门。", "admin", ["审计"]),
    ("仪表板移动端适配", "手机上查看仪表板时布局错乱。", "dashboards", ["移动端"]),
    ("支持飞书单点登录", "我们公司使用飞书作为身份源。", "sso", ["飞书"]),
    ("Excel 导出保留格式", "导出时数字格式丢失。", "reports", ["excel"]),
    ("告警合并为每日摘要", "每天收到几十封告警邮件。", "alerts", ["邮件"]),
    ("自定义角色", "需要介于查看者和编辑者之间的角色。", "permissions", ["角色"]),
    ("支持从数据库直连导入", "直接连接 MySQL 导入数据。", "data-import", ["mysql"]),
    ("仪表板嵌入内网门户", "通过 iframe 嵌入并支持单点登录。", "dashboards", ["嵌入"]),
    ("API 返回剩余调用次数", "脚本需要知道剩余额度。", "api", ["限流"]),
    ("本地账号支持两步验证", "身份源之外的用户需要两步验证。", "sso", ["安全"]),
    ("仪表板快照推送到企业微信群", "定时把仪表板截图发到群里。", "alerts", ["企业微信"]),
    ("管理后台支持批量停用用户", "离职员工需要批量停用。", "admin", ["用户管理"]),
)
EN_AUTHORS = (
    "alice@acme.example",
    "bob@acme.example",
    "gina@globex.example",
    "hank@globex.example",
    "peter@initech.example",
    "joanna@initech.example",
)
ZH_AUTHORS = (
    "wang@huaxin.example",
    "li@huaxin.example",
    "zhao@chenguang.example",
    "sun@chenguang.example",
)
PM = "pm@vendor.example"
MODERATOR = "moderator@vendor.example"
# Index in the 40-idea list -> status (the rest stay open).
STATUS_PLAN = {
    0: "shipped",
    1: "planned",
    2: "in_progress",
    3: "shipped",
    4: "under_review",
    5: "declined",
    6: "shipped",
    7: "planned",
    8: "under_review",
    10: "in_progress",
    20: "shipped",
    21: "shipped",
    22: "planned",
    23: "under_review",
    25: "declined",
    27: "in_progress",
}
RESPONSES = {
    "under_review": (
        "We are looking into this with a few customers.",
        "我们正在和几位客户一起评估。",
    ),
    "planned": ("Planned for the next quarter.", "已列入下个季度的计划。"),
    "in_progress": ("Our team is building this now.", "团队正在开发中。"),
    "declined": (
        "Not for now: it does not fit the product direction.",
        "暂不考虑：与产品方向不符。",
    ),
    "shipped": ("Shipped in release 5.2.", "已在 5.2 版本发布。"),
}
RELEASE_NOTES = (
    "**New:** {t}. Find it under *Settings*; administrators can turn it off per workspace.",
    "**新功能：** {t}。可在“设置”中找到，管理员可以按工作区关闭。",
)


def _ideas() -> list[tuple[str, str, str, list[str], str, int]]:
    """English and Chinese interleaved: (title, description, area, tags, author, language)."""
    out = []
    for n, (en, zh) in enumerate(zip(EN_IDEAS, ZH_IDEAS, strict=True)):
        out.append((*en, EN_AUTHORS[n % len(EN_AUTHORS)], 0))
        out.append((*zh, ZH_AUTHORS[n % len(ZH_AUTHORS)], 1))
    return out


def _publish(session: Session, moderator: User | None, idea: Idea) -> None:
    if idea.published or moderator is None:
        return
    item_id = moderation.item_id(session, service.IDEA_KIND, idea.id)
    if item_id is not None:
        moderation.approve(session, moderator, item_id)


def _submit(
    session: Session,
    author: User | None,
    customers: list[User],
    index: int,
    spec: tuple[str, str, str, list[str], str, int],
) -> Idea | None:
    """A member who just posted elsewhere (a bio, a question) may be refused by the
    per-minute limit: a colleague posts the idea instead (the refused attempt leaves nothing)."""
    title, description, area, tags, _email, _lang = spec
    candidates = [author] if author is not None else []
    candidates += [customers[(index + k) % len(customers)] for k in range(len(customers))]
    for person in candidates:
        try:
            with session.begin_nested():
                return service.submit_idea(session, person, title, description, area, tags)
        except DomainError:
            continue
    return None


def load_demo(session: Session, users: dict[str, User | None]) -> int:
    """Create the demo ideas once (nothing when ideas exist); returns how many were made."""
    if session.scalar(select(func.count()).select_from(Idea)):
        return 0
    pm, moderator = users.get(PM), users.get(MODERATOR)
    start = utcnow() - timedelta(days=90)
    # Newcomers (joined after the ideas were posted) have not voted yet.
    customers = [
        u for u in users.values() if u is not None and not u.is_staff and u.created_at < start
    ]
    if pm is None or not customers:
        return 0
    plan = _ideas()
    step = timedelta(days=88) / len(plan)
    ideas: list[Idea] = []
    for index, spec in enumerate(plan):
        posted = Backdate(session)
        idea = _submit(session, users.get(spec[4]), customers, index, spec)
        if idea is None:
            continue
        _publish(session, moderator, idea)
        when = start + step * index
        idea.created_at = idea.updated_at = when
        moderation.date_item(session, service.IDEA_KIND, idea.id, when)
        posted.to(when)
        session.execute(
            update(StatusChange).where(StatusChange.idea_id == idea.id).values(created_at=when)
        )
        ideas.append(idea)
    session.flush()
    # Votes: every customer votes on a deterministic spread, so every org votes somewhere and
    # a few ideas clearly lead; each cast some time between the idea's posting and now.
    now = utcnow()
    cast = 0
    for u_index, voter in enumerate(customers):
        for i_index, idea in enumerate(ideas):
            chosen = (i_index * 7 + u_index * 3) % 5 == 0 or (i_index < 6 and u_index % 2 == 0)
            if chosen and idea.published and service.my_vote(session, voter, idea.id) is None:
                voted = Backdate(session)
                service.vote(session, voter, idea.id, 1 + (i_index + u_index) % 3)
                cast += 1
                when = idea.created_at + (now - idea.created_at) * ((cast % 10 + 1) / 11)
                session.execute(
                    update(IdeaVote)
                    .filter_by(user_id=voter.id, idea_id=idea.id)
                    .values(created_at=when)
                )
                voted.to(when)
    for index, status in STATUS_PLAN.items():
        if index >= len(ideas):
            continue
        idea = ideas[index]
        if not idea.published:
            continue
        language = next(p[5] for p in plan if p[0] == idea.title)
        steps = ("planned", "shipped") if status == "shipped" else (status,)
        for k, step_status in enumerate(steps, 1):
            notes = RELEASE_NOTES[language].format(t=idea.title)
            decision = Backdate(session)
            service.change_status(
                session,
                pm,
                idea.id,
                step_status,
                RESPONSES[step_status][language],
                notes if step_status == "shipped" else None,
            )
            # Decided a while after the votes came in, shipped weeks later: planned 35% and
            # shipped 50% of the way from the idea's posting to now (a lone decision at 50%).
            since = idea.created_at
            decided = since + (now - since) * (0.2 + 0.3 * k / len(steps))
            session.execute(
                update(StatusChange)
                .where(StatusChange.idea_id == idea.id, StatusChange.to_status == step_status)
                .values(created_at=decided)
            )
            idea.updated_at = decided
            if step_status == "shipped":
                idea.shipped_at = decided
            decision.to(decided)
    # A merged pair: "Export dashboards as PDF" duplicates "Schedule dashboard exports".
    duplicate = next((i for i in ideas if i.title == "Export dashboards as PDF"), None)
    original = ideas[0] if ideas else None
    if duplicate and original and duplicate.published and original.published:
        service.merge(session, pm, duplicate.id, original.id)
    session.flush()
    service.refresh_trending(session)
    return len(ideas)
