"""The gallery demo loads a dozen listed templates in both languages, with a zip bundle,
versions, ratings and downloads, and loading it again adds nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from portal.demo import demo_users, load_community
from portal.gallery import demo
from portal.gallery.models import Download, Rating, Template, TemplateVersion


def test_demo_loads_once(app_ctx, session):
    users = demo_users(session, load_community(session))
    demo.load_demo(session, users)
    templates = session.scalars(select(Template)).all()
    assert len(templates) == 12
    assert all(t.listed for t in templates)
    assert any("零售" in t.title for t in templates)
    assert (
        session.scalar(
            select(func.count())
            .select_from(TemplateVersion)
            .where(TemplateVersion.file_kind == "zip")
        )
        == 2
    )
    assert {t.latest_version for t in templates} >= {"1.1.0", "2.0.0"}
    assert session.scalar(select(func.count()).select_from(Rating)) > 20
    assert session.scalar(select(func.count()).select_from(Download)) > 20
    demo.load_demo(session, users)
    assert session.scalar(select(func.count()).select_from(Template)) == 12
