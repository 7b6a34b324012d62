"""Deterministic Q&A demo data: about a hundred questions in English and Chinese, with answers,
votes, accepted answers, helpful marks, a few private questions and a few held for review.

Everything goes through the Q&A service and moderation, as people would post it; each post is
then dated back into the past 120 days (with its moderation item and activity rows), so the
lists look lived-in and no author runs into the per-minute posting limits.
"""

from __future__ import annotations

import contextlib
import io
from datetime import timedelta

from flask import current_app
from PIL import Image, ImageDraw
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from moderation import service as moderation
from portal.core.db import utcnow
from portal.core.errors import DomainError
from portal.core.history import Backdate
from portal.core.html import UPLOADS_PREFIX
from portal.core.identity import User
from portal.core.storage import storage_for
from portal.media import service as media
from portal.qa import service
from portal.qa.models import Answer, Question

# (subject, tags, product area)
EN_SUBJECTS = (
    ("dashboard", ["dashboards"], "dashboards"),
    ("report template", ["report-templates", "reports"], "reports"),
    ("scheduled report", ["scheduling", "reports"], "alerts"),
    ("SSO login", ["sso", "saml"], "sso"),
    ("CSV import", ["csv", "data-import"], "data-import"),
    ("API token", ["api"], "api"),
    ("user permission", ["permissions"], "permissions"),
    ("alert rule", ["alerts"], "alerts"),
)
EN_ISSUES = (
    (
        "How do I share a {s} with another team?",
        "We want finance to see our {s} without edit rights. Is there a read-only share?",
    ),
    (
        "Why is my {s} slow after the upgrade?",
        "Since last week's release the {s} takes about 20 seconds. We have roughly 2 million rows.",
    ),
    (
        "Can I copy a {s} between workspaces?",
        "We run a staging and a production workspace. Can a {s} be moved from one to the other?",
    ),
    (
        "How can we audit changes to a {s}?",
        "Our compliance team asks who changed each {s} and when. Where can we see that?",
    ),
    (
        "Is there a limit on the number of each {s}?",
        "We are planning a rollout to 40 regions. Will we hit a limit on {s} objects?",
    ),
    (
        "Best practice for naming a {s} in a large org?",
        "With 300 users, naming gets messy. How do other customers organize each {s}?",
    ),
)
EN_ANSWERS = (
    "Open **Settings → Sharing** on the {s} and choose *View only*. Groups synced from your IdP work too.",
    "We had the same problem. Turning on the result cache for the {s} brought it down to 2 seconds.",
    "Use the export/import bundle: *More → Export* on the {s}, then import it in the other workspace.",
    "The audit log under *Admin → Activity* lists every change to a {s}, filterable by user and date.",
)
ZH_SUBJECTS = (
    ("仪表板", ["仪表板", "dashboards"], "dashboards"),
    ("报表模板", ["报表模板", "reports"], "reports"),
    ("定时报表", ["定时任务", "reports"], "alerts"),
    ("单点登录配置", ["sso", "单点登录"], "sso"),
    ("数据导入任务", ["数据导入"], "data-import"),
    ("数据权限", ["权限"], "permissions"),
    ("客户成功看板", ["客户成功", "dashboards"], "dashboards"),
    ("API 接口", ["api"], "api"),
)
ZH_ISSUES = (
    (
        "如何把{s}分享给其他部门的同事？",
        "我们希望财务部门只能查看{s}，不能修改。有只读分享的方式吗？",
    ),
    ("升级之后{s}加载很慢怎么办？", "上周升级后，{s}打开需要二十秒左右，数据量大约两百万行。"),
    ("{s}可以在不同工作区之间复制吗？", "我们有测试和生产两个工作区，{s}能否从一个迁移到另一个？"),
    (
        "怎样查看{s}的修改记录和审计日志？",
        "合规部门要求记录每次修改{s}的人和时间，在哪里可以看到？",
    ),
    (
        "{s}的数量有没有上限？我们要推广到全国",
        "我们计划推广到四十个分公司，{s}会不会遇到数量限制？",
    ),
    (
        "大型企业里{s}应该怎么命名和管理？",
        "公司有三百多位用户，{s}越来越乱，其他客户是怎么管理的？",
    ),
)
ZH_ANSWERS = (
    "在{s}的**设置 → 分享**里选择“仅查看”即可，也可以直接分享给从身份提供方同步的用户组。",
    "我们遇到过同样的问题，为{s}开启结果缓存之后，加载时间降到了两秒左右。",
    "可以使用导出/导入功能：在{s}上选择“更多 → 导出”，然后在另一个工作区导入。",
    "在“管理 → 操作记录”里可以看到{s}的每一次修改，可以按用户和日期筛选。",
)
EN_ASKERS = (
    "alice@acme.example",
    "bob@acme.example",
    "gina@globex.example",
    "hank@globex.example",
    "peter@initech.example",
    "joanna@initech.example",
)
ZH_ASKERS = (
    "wang@huaxin.example",
    "li@huaxin.example",
    "zhao@chenguang.example",
    "sun@chenguang.example",
)
EN_ANSWERERS = (
    "csm@vendor.example",
    "pm@vendor.example",
    "alice@acme.example",
    "peter@initech.example",
    "gina@globex.example",
)
ZH_ANSWERERS = (
    "csm@vendor.example",
    "wang@huaxin.example",
    "zhao@chenguang.example",
    "pm@vendor.example",
)
MODERATOR = "moderator@vendor.example"
COLLEAGUES = {
    "bob@acme.example": ("alice@acme.example",),
    "hank@globex.example": ("gina@globex.example",),
    "gina@globex.example": ("hank@globex.example",),
    "li@huaxin.example": ("wang@huaxin.example",),
    "sun@chenguang.example": ("zhao@chenguang.example",),
    "zhao@chenguang.example": ("sun@chenguang.example",),
    "joanna@initech.example": ("peter@initech.example",),
    "peter@initech.example": ("joanna@initech.example",),
}
PENDING_TAIL = 4  # the last questions stay in the review queue
READERS_PER_QUESTION = 4  # besides its voters; a few more on some questions


def _posts(subjects: tuple, issues: tuple, answers: tuple, askers: tuple, answerers: tuple):  # noqa: ANN202
    for s_index, (subject, tags, area) in enumerate(subjects):
        for i_index, (title, body) in enumerate(issues):
            yield {
                "title": title.format(s=subject),
                "body": body.format(s=subject),
                "tags": tags,
                "area": area,
                "asker": askers[(s_index + i_index) % len(askers)],
                "answers": [
                    (
                        answerers[(s_index + i_index + k) % len(answerers)],
                        answers[(i_index + k) % len(answers)].format(s=subject),
                    )
                    for k in range((s_index + i_index) % 4)
                ],
            }


def demo_posts() -> list[dict]:
    """English and Chinese interleaved, so both languages are on the first page."""
    english = list(_posts(EN_SUBJECTS, EN_ISSUES, EN_ANSWERS, EN_ASKERS, EN_ANSWERERS))
    chinese = list(_posts(ZH_SUBJECTS, ZH_ISSUES, ZH_ANSWERS, ZH_ASKERS, ZH_ANSWERERS))
    posts = [post for pair in zip(english, chinese, strict=True) for post in pair]
    extra = (
        (
            "How do I connect Salesforce as a data source?",
            "We want the opportunity pipeline in a dashboard, like https://acme.example/pipeline.",
            ["salesforce", "data-import"],
            "data-import",
            "nina@acme.example",
        ),
        (
            "客户健康度评分可以自定义权重吗？",
            "我们想把续约风险的权重调高一些，参考 https://huaxin.example/health 。",
            ["客户成功"],
            "dashboards",
            "chen@huaxin.example",
        ),
        (
            "Can report emails go to people without an account?",
            "Our board members do not log in; see https://acme.example/board.",
            ["reports", "email"],
            "alerts",
            "nina@acme.example",
        ),
        (
            "报表导出 PDF 时中文乱码怎么解决？",
            "导出的 PDF 里中文显示成方块，截图见 https://huaxin.example/pdf 。",
            ["报表模板", "pdf"],
            "reports",
            "chen@huaxin.example",
        ),
    )
    for title, body, tags, area, asker in extra:
        posts.append(
            {
                "title": title,
                "body": body,
                "tags": tags,
                "area": area,
                "asker": asker,
                "answers": [],
            }
        )
    return posts


class _Clock:
    """Dates every post back: the oldest 120 days ago, then forward in fixed steps."""

    def __init__(self, session: Session, total: int) -> None:
        self.session = session
        self.start = utcnow() - timedelta(days=120)
        self.step = timedelta(days=118) / max(total, 1)
        self.history = Backdate(session)

    def settle(self, kind: str, obj: Question | Answer, when) -> None:  # noqa: ANN001
        """Move the post, its moderation item and the activity it caused to ``when``."""
        obj.created_at = obj.updated_at = when
        if isinstance(obj, Question):
            obj.last_activity_at = when
        self.session.flush()
        moderation.date_item(self.session, kind, obj.id, when)
        self.history.to(when)


def _screenshot(session: Session, uploader: User) -> str:
    """The first answer shows a screenshot, as real answers often do: a drawn chart of load
    times, uploaded as a member's image is (re-encoded, kept under an unguessable name)."""
    image = Image.new("RGB", (480, 240), "white")
    draw = ImageDraw.Draw(image)
    for i, value in enumerate((190, 200, 185, 22, 20, 21)):  # seconds x 10, by day
        draw.rectangle((40 + i * 70, 220 - value, 90 + i * 70, 220), fill=(37, 99, 235))
    draw.line((20, 220, 460, 220), fill="black", width=2)
    data = io.BytesIO()
    image.save(data, "PNG")
    data.seek(0)
    stored = media.store_image(
        session,
        uploader,
        data,
        storage_for(current_app.config["UPLOAD_DIR"], media.AREA),
        current_app.config["MEDIA_MAX_IMAGE_BYTES"],
    )
    return (
        f"![Dashboard load time by day, before and after the cache]({UPLOADS_PREFIX}{stored.name})"
    )


def _may_read(user: User, question: Question, asker: User) -> bool:
    return not question.is_private or user.organization_id == asker.organization_id or user.is_staff


def load_demo(session: Session, users_by_email: dict[str, User]) -> None:
    """Create the Q&A demo once (skipped when any question exists); deterministic."""
    if session.scalar(select(func.count()).select_from(Question)):
        return
    users = users_by_email
    moderator = users[MODERATOR]
    posts = demo_posts()
    clock = _Clock(session, len(posts))
    # Voters were members all along: a newcomer's only post is the question they just asked.
    everyone = [
        u for email, u in sorted(users.items()) if email != MODERATOR and u.created_at < clock.start
    ]

    def publish(kind: str, obj: Question | Answer, when, keep_pending: bool = False) -> bool:  # noqa: ANN001
        item_id = moderation.item_id(session, kind, obj.id)
        if not obj.published and not keep_pending and item_id is not None:
            moderation.approve(session, moderator, item_id)
        if obj.published:
            # What the task sent at the commit does, done now, so that the step's date reaches
            # the notifications; the task then finds the followers told.
            service.tell_followers(session, kind, obj.id)
        clock.settle(kind, obj, when)
        return obj.published

    screenshot_shown = False
    for index, post in enumerate(posts):
        when = clock.start + clock.step * index
        pending = index >= len(posts) - PENDING_TAIL
        question = None
        # A new member who just posted is refused by the per-minute limit: a colleague from
        # the same organization (or the CSM, on their behalf) asks instead.
        for email in (post["asker"], *COLLEAGUES.get(post["asker"], ()), "csm@vendor.example"):
            asker = users.get(email)
            if asker is None:
                continue
            try:
                with session.begin_nested():
                    question = service.ask(
                        session,
                        asker,
                        post["title"],
                        post["body"],
                        post["tags"],
                        post["area"],
                        private=index % 17 == 5,
                    )
                break
            except DomainError:
                continue
        if question is None or asker is None:
            continue
        if not publish(service.QUESTION_KIND, question, when, keep_pending=pending) or pending:
            continue
        replies: list[Answer] = []
        for k, (email, text) in enumerate(post["answers"]):
            author = users.get(email)
            if author is None or author.id == asker.id:
                continue
            try:
                with session.begin_nested():
                    if not screenshot_shown:
                        text += "\n\n" + _screenshot(session, author)
                    reply = service.answer(session, author, question.id, text)
                    screenshot_shown = True
            except DomainError:
                continue
            if publish(service.ANSWER_KIND, reply, when + timedelta(hours=3 + 5 * k)):
                replies.append(reply)
        # Its readers (trust levels count reads): a few members, and everyone who votes.
        for r in range(READERS_PER_QUESTION + index % 5):
            reader = everyone[(index * 5 + r) % len(everyone)]
            if reader.id != asker.id and _may_read(reader, question, asker):
                service.record_view(session, reader, question)
        for k in range(index % 5):
            voter = everyone[(index * 3 + k) % len(everyone)]
            if voter.id != asker.id and _may_read(voter, question, asker):
                service.record_view(session, voter, question)
                service.vote(
                    session, voter, -1 if (index + k) % 11 == 0 else 1, question_id=question.id
                )
            for j, reply in enumerate(replies):
                fan = everyone[(index + j * 5 + k * 7) % len(everyone)]
                if fan.id == reply.author_id or not _may_read(fan, question, asker):
                    continue
                service.record_view(session, fan, question)
                service.vote(session, fan, 1, answer_id=reply.id)
                if (index + j + k) % 3 == 0:
                    with contextlib.suppress(DomainError):
                        service.mark_helpful(session, fan, reply.id)
        if replies and index % 3 != 2:
            best = max(replies, key=lambda r: (r.score, -r.id))
            service.accept(session, asker, question.id, best.id)
        clock.settle(service.QUESTION_KIND, question, when)
        question.last_activity_at = when + timedelta(hours=3 + 5 * len(replies))
        if index % 23 == 7 and replies:
            service.close(
                session,
                moderator,
                question.id,
                "Answered; please open a new question for follow-ups.",
            )
    session.flush()
