"""Deterministic gallery demo: a dozen templates in English and Chinese, with versions (one an
industry-solution .zip bundle, others .json manifests, .csv and .xlsx files), ratings, reviews
and downloads from several organizations.

Files go through the same upload checks as a browser upload; templates, versions and reviews
through the gallery service and moderation (held ones approved by the demo moderator).
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from moderation import service as moderation
from portal.core.db import utcnow
from portal.core.errors import DomainError
from portal.core.history import Backdate
from portal.core.identity import User
from portal.core.storage import storage_for
from portal.gallery import service, uploads
from portal.gallery.models import Download, Rating, Template

MODERATOR = "moderator@vendor.example"
FALLBACK_AUTHOR = "csm@vendor.example"


def _manifest(
    name: str, version: str, product: str, sources: list[str], params: list[str]
) -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "requires": {"product": product},
        "data_sources": [{"name": s, "type": "sql"} for s in sources],
        "parameters": [{"name": p, "type": "string"} for p in params],
        "template": {"panels": [{"title": name, "source": sources[0]}]},
    }


def _json(name: str, version: str, product: str, sources: list[str], params: list[str]) -> bytes:
    return json.dumps(
        _manifest(name, version, product, sources, params), ensure_ascii=False
    ).encode()


def _csv(rows: list[list[Any]]) -> bytes:
    return "\n".join(",".join(str(c) for c in row) for row in rows).encode("utf-8")


def _xlsx(rows: list[list[Any]]) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _bundle(name: str, version: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        manifest = _manifest(
            name, version, ">=5.0, <7", ["pos_sales", "stores"], ["region", "month"]
        )
        manifest["files"] = ["data/stores.csv", "sheets/kpis.xlsx"]
        archive.writestr("manifest.json", json.dumps(manifest, ensure_ascii=False))
        archive.writestr(
            "data/stores.csv",
            _csv(
                [
                    ["store", "city", "area_m2"],
                    [1, "Shanghai", 820],
                    [2, "Hangzhou", 640],
                    [3, "Suzhou", 510],
                ]
            ),
        )
        archive.writestr(
            "sheets/kpis.xlsx",
            _xlsx([["kpi", "target"], ["sales per m2", 1200], ["basket size", 86]]),
        )
    return buffer.getvalue()


# (author, title, description, category, industry, tags, file name, file bytes factory, versions)
def demo_templates() -> list[dict[str, Any]]:
    return [
        dict(
            author="alice@acme.example",
            title="Monthly churn dashboard",
            category="dashboard",
            industry="saas",
            tags="churn retention",
            description="Churn and net revenue retention by **segment** and month.",
            file=(
                "churn.json",
                lambda v: _json(
                    "Monthly churn dashboard", v, ">=5.2, <6", ["subscriptions"], ["month"]
                ),
            ),
            versions=[
                ("1.0.0", "First release."),
                ("1.1.0", "Adds a region filter and faster queries."),
            ],
        ),
        dict(
            author="wang@huaxin.example",
            title="零售门店经营分析解决方案",
            category="solution",
            industry="retail",
            tags="零售 门店 kpi",
            description="门店销售、坪效与客单价的行业解决方案，包含数据模板与 KPI 工作簿。",
            file=("retail-solution.zip", lambda v: _bundle("零售门店经营分析解决方案", v)),
            versions=[("1.0.0", "首个版本。"), ("1.1.0", "新增区域对比与月度参数。")],
        ),
        dict(
            author="gina@globex.example",
            title="Retail inventory turnover report",
            category="report",
            industry="retail",
            tags="inventory retail",
            description="Inventory turnover and days of supply per store.",
            file=(
                "inventory.csv",
                lambda v: _csv(
                    [["store", "sku", "turnover"], ["north", "A-1", 6.2], ["south", "B-7", 4.9]]
                ),
            ),
            versions=[("1.0.0", "First release.")],
        ),
        dict(
            author="peter@initech.example",
            title="Support ticket SLA report",
            category="report",
            industry="saas",
            tags="support sla",
            description="First response and resolution times against SLA targets.",
            file=(
                "sla.json",
                lambda v: _json(
                    "Support ticket SLA report", v, "^5.0", ["tickets"], ["team", "week"]
                ),
            ),
            versions=[("1.0.0", "First release."), ("1.0.1", "Fixes the weekend calculation.")],
        ),
        dict(
            author="zhao@chenguang.example",
            title="制造业设备综合效率（OEE）看板",
            category="dashboard",
            industry="manufacturing",
            tags="oee 设备 制造",
            description="按产线和班次统计设备综合效率、停机原因。",
            file=(
                "oee.json",
                lambda v: _json("OEE 看板", v, ">=5.4", ["machines", "shifts"], ["line", "shift"]),
            ),
            versions=[("1.0.0", "首个版本。")],
        ),
        dict(
            author="alice@acme.example",
            title="Quarterly business review deck data",
            category="report",
            industry="general",
            tags="qbr executive",
            description="The numbers for a quarterly business review, one sheet per section.",
            file=(
                "qbr.xlsx",
                lambda v: _xlsx(
                    [
                        ["section", "metric", "value"],
                        ["adoption", "active users", 420],
                        ["value", "hours saved", 1300],
                    ]
                ),
            ),
            versions=[("1.0.0", "First release.")],
        ),
        dict(
            author="wang@huaxin.example",
            title="银行网点客户分层报表",
            category="report",
            industry="finance",
            tags="银行 客户分层",
            description="按资产规模对网点客户分层，并跟踪迁移。",
            file=(
                "bank-tiers.json",
                lambda v: _json("银行网点客户分层报表", v, ">=5.2, <6", ["accounts"], ["branch"]),
            ),
            versions=[("1.0.0", "首个版本。"), ("2.0.0", "改用新的资产口径，需 5.2 以上版本。")],
        ),
        dict(
            author="gina@globex.example",
            title="Hospital bed occupancy dashboard",
            category="dashboard",
            industry="healthcare",
            tags="occupancy healthcare",
            description="Bed occupancy and length of stay per ward.",
            file=(
                "beds.json",
                lambda v: _json(
                    "Hospital bed occupancy dashboard", v, ">=4.8, <5.5", ["admissions"], ["ward"]
                ),
            ),
            versions=[("1.0.0", "First release.")],
        ),
        dict(
            author="peter@initech.example",
            title="Logistics on-time delivery report",
            category="report",
            industry="logistics",
            tags="delivery logistics",
            description="On-time delivery rate by carrier and lane.",
            file=(
                "otd.csv",
                lambda v: _csv(
                    [
                        ["carrier", "lane", "on_time"],
                        ["FastShip", "SH-BJ", 0.94],
                        ["RoadCo", "GZ-SZ", 0.88],
                    ]
                ),
            ),
            versions=[("1.0.0", "First release.")],
        ),
        dict(
            author="zhao@chenguang.example",
            title="高校招生数据分析模板",
            category="report",
            industry="education",
            tags="招生 教育",
            description="按专业和生源地分析报名、录取与报到情况。",
            file=(
                "admissions.xlsx",
                lambda v: _xlsx(
                    [["专业", "报名", "录取"], ["计算机", 1200, 300], ["金融", 900, 210]]
                ),
            ),
            versions=[("1.0.0", "首个版本。")],
        ),
        dict(
            author="alice@acme.example",
            title="Public sector budget execution dashboard",
            category="dashboard",
            industry="public",
            tags="budget public-sector",
            description="Budget execution by department and quarter.",
            file=(
                "budget.json",
                lambda v: _json("Budget execution dashboard", v, "*", ["ledger"], ["department"]),
            ),
            versions=[("1.0.0", "First release.")],
        ),
        dict(
            author="gina@globex.example",
            title="Manufacturing scrap rate report",
            category="report",
            industry="manufacturing",
            tags="quality scrap",
            description="Scrap rate and causes per plant, with a weekly trend.",
            file=(
                "scrap.json",
                lambda v: _json(
                    "Manufacturing scrap rate report", v, ">=5.0", ["quality_events"], ["plant"]
                ),
            ),
            versions=[("1.0.0", "First release.")],
        ),
    ]


RATERS = (
    "bob@acme.example",
    "hank@globex.example",
    "joanna@initech.example",
    "li@huaxin.example",
    "sun@chenguang.example",
    "alice@acme.example",
    "wang@huaxin.example",
    "gina@globex.example",
)


HISTORY_DAYS = 100  # the first template was shared this long ago, the last a few days ago


def _settle(history: Backdate, when: datetime, kind: str | None = None, object_id: int = 0) -> None:
    """Date what the demo just wrote back to ``when``: the activities and notifications it
    caused and the moderation item of ``kind``'s ``object_id``; the rows themselves are
    dated by the caller."""
    history.to(when)
    if kind is not None:
        moderation.date_item(history.session, kind, object_id, when)


def load_demo(session: Session, users_by_email: dict[str, User]) -> None:
    """Create the gallery demo once (skipped when any template exists); deterministic."""
    if session.scalar(select(func.count()).select_from(Template)):
        return
    users = users_by_email
    moderator = users.get(MODERATOR)
    store = storage_for(current_app.config["UPLOAD_DIR"], "gallery")

    def receive(name: str, data: bytes) -> uploads.Upload:
        return uploads.receive(io.BytesIO(data), name, store)

    def approve(kind: str, object_id: int) -> None:
        item = moderation.item_id(session, kind, object_id)
        if (
            moderator is not None
            and item is not None
            and moderation.item_state(session, kind, object_id) == "pending"
        ):
            moderation.approve(session, moderator, item)

    specs = demo_templates()
    now = utcnow()
    start = now - timedelta(days=HISTORY_DAYS)
    step = timedelta(days=HISTORY_DAYS - 5) / len(specs)
    history = Backdate(session)
    for number, spec in enumerate(specs):
        when = start + step * number

        def later(share: float, when: datetime = when) -> datetime:
            """A moment ``share`` (0-1) of the way from the template's sharing to now."""
            return when + (now - when) * share

        file_name, make = spec["file"]
        first_version, first_log = spec["versions"][0]
        template = None
        for email in (spec["author"], FALLBACK_AUTHOR):
            author = users.get(email)
            if author is None:
                continue
            try:
                with session.begin_nested():
                    template = service.share(
                        session,
                        author,
                        title=spec["title"],
                        description=spec["description"],
                        category=spec["category"],
                        industry=spec["industry"],
                        tags=spec["tags"],
                        license="CC-BY-4.0",
                        visibility="public",
                        upload=receive(file_name, make(first_version)),
                        version=first_version,
                        changelog=first_log,
                    )
                break
            except DomainError:
                continue
        if template is None:
            continue
        approve(service.TEMPLATE_KIND, template.id)
        template.created_at = template.updated_at = when
        for first in template.versions:
            first.created_at = when
        _settle(history, when, service.TEMPLATE_KIND, template.id)
        later_versions = spec["versions"][1:]
        for k, (version, log) in enumerate(later_versions, 1):
            try:
                with session.begin_nested():
                    row = service.add_version(
                        session,
                        template.author,
                        template.id,
                        upload=receive(file_name, make(version)),
                        version=version,
                        changelog=log,
                    )
                approve(service.VERSION_KIND, row.id)
            except DomainError:
                continue
            shipped = later(0.5 * k / len(later_versions))
            row.created_at = template.updated_at = shipped
            _settle(history, shipped, service.VERSION_KIND, row.id)
        # Ratings, downloads and a review from people of other organizations.
        raters = RATERS[: 3 + number % 5]
        for offset, email in enumerate(raters):
            user = users.get(email)
            if user is None or user.id == template.author_id:
                continue
            rated = later((offset + 1) / (len(raters) + 1))
            review = None
            with session.begin_nested():
                service.download(session, user, template.id)
                service.rate(session, user, template.id, 5 - (offset + number) % 3)
            if offset == 0:
                try:
                    with session.begin_nested():
                        review = service.review(
                            session,
                            user,
                            template.id,
                            "很实用，节省了我们一周的工作。"
                            if user.locale.startswith("zh")
                            else "Clear and useful: saved us a week.",
                        )
                    approve(service.REVIEW_KIND, review.id)
                except DomainError:
                    review = None
            mine = {"template_id": template.id, "user_id": user.id}
            session.execute(update(Download).filter_by(**mine).values(created_at=rated))
            session.execute(
                update(Rating).filter_by(**mine).values(created_at=rated, updated_at=rated)
            )
            if review is None:
                _settle(history, rated)
                continue
            review.created_at = review.updated_at = rated
            _settle(history, rated, service.REVIEW_KIND, review.id)
    session.flush()
