"""Demo knowledge base: four categories and a dozen articles in English and Chinese for a B2B
analytics product, with some feedback. Idempotent: categories are found by slug, articles by
title, feedback by (article, user)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from portal.core.db import utcnow
from portal.core.history import Backdate
from portal.core.identity import User
from portal.kb import service
from portal.kb.models import Article, ArticleFeedback, ArticleVersion, Category

HISTORY_DAYS = 115  # the first article was written this long ago, the last three weeks ago

CATEGORIES = (
    ("getting-started", "Getting started", "快速入门"),
    ("admin-security", "Administration & security", "管理与安全"),
    ("reports-dashboards", "Reports & dashboards", "报表与仪表盘"),
    ("data-import", "Data import", "数据导入"),
)

# (category slug, language, title, tags, body)
ARTICLES: tuple[tuple[str, str, str, str, str], ...] = (
    (
        "admin-security",
        "en",
        "Set up SAML single sign-on (Okta, Azure AD)",
        "sso saml okta azure-ad",
        "Single sign-on lets your people sign in with your identity provider.\n\n"
        "## Before you start\n\n- You are an organization admin\n- You have your IdP's "
        "metadata URL\n\n## Steps\n\n1. Open **Settings › Security › Single sign-on**.\n"
        "2. Choose **SAML 2.0** and paste the metadata URL.\n3. Map the `email` attribute.\n"
        "4. Click **Test connection**, then **Enable**.\n\nKeep one password admin as a "
        "fallback until everyone has signed in once.",
    ),
    (
        "admin-security",
        "en",
        "Roles and permissions explained",
        "permissions roles admin",
        "| Role | Can view | Can edit | Can share |\n|---|---|---|---|\n"
        "| Viewer | yes | no | no |\n| Editor | yes | yes | no |\n| Admin | yes | yes | yes |\n\n"
        "Assign roles under **Settings › Members**. Changes apply at the next page load.",
    ),
    (
        "admin-security",
        "zh_CN",
        "权限管理：如何给只读用户分配查看权限",
        "permissions 权限",
        "只读用户只能查看被共享给他们的仪表盘。\n\n1. 打开 **设置 › 成员**。\n"
        "2. 选择用户，将角色设为 **查看者**。\n3. 在仪表盘的 **共享** 中添加该用户或其所在的组。\n\n"
        "提示：按组授权比逐个用户授权更易维护。",
    ),
    (
        "reports-dashboards",
        "en",
        "Share a dashboard with people outside your team",
        "dashboards sharing",
        "Open the dashboard and click **Share**. You can:\n\n- invite members of your "
        "organization by name;\n- create a **view-only link** that expires after 30 days.\n\n"
        "Links respect row-level filters: a viewer only sees the rows they are allowed to.",
    ),
    (
        "reports-dashboards",
        "en",
        "Start from a report template",
        "reports templates",
        "Templates give you a ready-made report with sensible charts.\n\n1. Click **New report "
        "› From template**.\n2. Pick a template such as *Weekly revenue* or *Funnel "
        "conversion*.\n3. Choose your data source; fields are matched by name.\n\n"
        "You can save any report as a template for your organization.",
    ),
    (
        "reports-dashboards",
        "zh_CN",
        "报表模板：从模板快速创建周报",
        "reports templates 报表",
        "使用模板可以在几分钟内得到一份完整的报表。\n\n1. 点击 **新建报表 › 从模板创建**。\n"
        "2. 选择 **销售周报** 模板。\n3. 选择数据源，字段会按名称自动匹配。\n\n"
        "创建后可以调整图表，并另存为组织内共享的模板。",
    ),
    (
        "reports-dashboards",
        "en",
        "Schedule a report by email",
        "reports email schedule",
        "Open a report, click **Schedule**, choose recipients and a time (in your time zone). "
        "Recipients get a PDF and a link; they need access to the report to open the link.",
    ),
    (
        "data-import",
        "en",
        "Import data from a CSV file",
        "csv import",
        "1. Go to **Data › Import › CSV**.\n2. Upload a UTF-8 file up to 200 MB.\n"
        "3. Check the detected column types; dates should be `YYYY-MM-DD`.\n"
        "4. Click **Import**.\n\nLarge files are processed in the background; you get a "
        "notification when they are ready.",
    ),
    (
        "data-import",
        "zh_CN",
        "数据导入：CSV 文件中文乱码怎么办",
        "csv import 数据导入",
        "导入的 CSV 必须是 **UTF-8** 编码。Excel 默认可能保存为 GBK：\n\n"
        "1. 在 Excel 中选择 **另存为 › CSV UTF-8**。\n2. 重新上传文件。\n\n"
        "如果仍有问题，请在导入页面手动选择编码。",
    ),
    (
        "data-import",
        "en",
        "Connect a PostgreSQL or MySQL database",
        "database postgresql mysql connectors",
        "Use **Data › Connections › New**. Allow our IP addresses in your firewall, use a "
        "read-only database user, and turn on TLS. Tables refresh every hour by default.",
    ),
    (
        "getting-started",
        "en",
        "Your first dashboard in ten minutes",
        "dashboards onboarding",
        "1. Import a CSV or connect a database.\n2. Click **New dashboard**.\n"
        "3. Add a chart, choose a measure and a dimension.\n4. Save and share it.\n\n"
        "Next: read *Start from a report template*.",
    ),
    (
        "getting-started",
        "zh_CN",
        "快速入门：十分钟创建第一个仪表盘",
        "dashboards onboarding 入门",
        "1. 导入 CSV 或连接数据库。\n2. 点击 **新建仪表盘**。\n3. 添加图表，选择指标和维度。\n"
        "4. 保存并共享。\n\n下一步：阅读《报表模板：从模板快速创建周报》。",
    ),
)

# (article title, customer email, helpful, comment)
FEEDBACK = (
    ("Set up SAML single sign-on (Okta, Azure AD)", "alice@acme.example", True, None),
    ("Set up SAML single sign-on (Okta, Azure AD)", "bob@acme.example", True, None),
    ("Import data from a CSV file", "bob@acme.example", False, "Please add an example file."),
    ("Share a dashboard with people outside your team", "alice@acme.example", True, None),
    ("数据导入：CSV 文件中文乱码怎么办", "li@huaxin.example", True, "解决了我们的问题"),
)


def _author(users_by_email: dict[str, User]) -> User | None:
    for email in ("admin@vendor.example", "csm@vendor.example", "moderator@vendor.example"):
        user = users_by_email.get(email)
        if user is not None and service.is_writer(user):
            return user
    return next((u for u in users_by_email.values() if service.is_writer(u)), None)


def load_demo(session: Session, users_by_email: dict[str, User]) -> None:
    """Create what is missing; never duplicates on a second run."""
    author = _author(users_by_email)
    if author is None:
        return
    by_slug = {c.slug: c for c in session.scalars(select(Category))}
    for slug, name, name_zh in CATEGORIES:
        if slug not in by_slug:
            by_slug[slug] = service.create_category(session, author, slug, name, name_zh)
    titles = {a.title: a for a in session.scalars(select(Article))}
    now = utcnow()
    step = timedelta(days=HISTORY_DAYS - 21) / len(ARTICLES)
    for number, (slug, language, title, tags, body) in enumerate(ARTICLES):
        if title not in titles:
            step_written = Backdate(session)
            article = titles[title] = service.create_article(
                session,
                author,
                title=title,
                body=body,
                language=language,
                category_id=by_slug[slug].id,
                tags=tags,
                published=True,
            )
            written = now - timedelta(days=HISTORY_DAYS) + step * number
            article.created_at = article.updated_at = written
            session.execute(
                update(ArticleVersion)
                .where(ArticleVersion.article_id == article.id)
                .values(created_at=written)
            )
            step_written.to(written)
    for k, (title, email, helpful, comment) in enumerate(FEEDBACK):
        user, article = users_by_email.get(email), titles.get(title)
        if user is None or article is None:
            continue
        given = session.scalar(
            select(ArticleFeedback.id).where(
                ArticleFeedback.article_id == article.id, ArticleFeedback.user_id == user.id
            )
        )
        if given is None:
            step_read = Backdate(session)
            feedback = service.give_feedback(session, user, article.id, helpful, comment or "")
            # Some days after the article was written, before now.
            read = article.created_at + (now - article.created_at) * ((k % 5 + 1) / 6)
            feedback.created_at = read
            step_read.to(read)
    session.flush()
