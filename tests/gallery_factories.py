"""Gallery test data, written through the upload checks and the gallery service, so every row
is what the app would write."""

from __future__ import annotations

import io
import itertools
import json
from typing import Any

from flask import Flask, current_app
from sqlalchemy.orm import Session

from portal.core.identity import User
from portal.core.storage import storage_for
from portal.gallery import service, uploads
from portal.gallery.models import Template, TemplateVersion
from tests.factories import UserFactory

_numbers = itertools.count(1)


def member(trust_level: int = 3, **kwargs: Any) -> User:
    """A customer member trusted enough to publish uploads at once (trust 3)."""
    return UserFactory(trust_level=trust_level, **kwargs)


def manifest(version: str = "1.0.0", product: str = ">=5.2, <6", **extra: Any) -> dict[str, Any]:
    return {
        "name": "Churn report",
        "version": version,
        "requires": {"product": product},
        "data_sources": [{"name": "crm", "type": "postgres"}],
        "parameters": [{"name": "month", "type": "date", "label": "Month"}],
        "template": {"panels": [{"title": "Churn by month"}]},
        **extra,
    }


def manifest_bytes(version: str = "1.0.0", product: str = ">=5.2, <6", **extra: Any) -> bytes:
    return json.dumps(manifest(version, product, **extra)).encode()


class Gallery:
    """Calls services in an app context that is popped again before the next request."""

    def __init__(self, app: Flask, session: Session) -> None:
        self.app, self.session = app, session

    def __call__(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        with self.app.app_context():
            result = function(self.session, *args, **kwargs)
            self.session.flush()
            return result

    def upload(self, data: bytes, name: str = "template.json") -> uploads.Upload:
        with self.app.app_context():
            store = storage_for(current_app.config["UPLOAD_DIR"], "gallery")
            return uploads.receive(io.BytesIO(data), name, store)

    def template(
        self,
        author: User | None = None,
        data: bytes | None = None,
        name: str = "template.json",
        **kwargs: Any,
    ) -> Template:
        number = next(_numbers)
        values: dict[str, Any] = {
            "title": f"Churn report number {number}",
            "description": f"Monthly churn by segment, **template {number}**.",
            "category": "report",
            "industry": "saas",
            "tags": "churn finance",
            "license": "CC-BY-4.0",
            "visibility": "public",
            "version": None,
            "changelog": "First release.",
            "product_range": None,
            **kwargs,
        }
        upload = self.upload(data if data is not None else manifest_bytes(), name)
        return self(service.share, author or member(), upload=upload, **values)

    def version(
        self,
        template: Template,
        version: str,
        author: User | None = None,
        changelog: str = "Faster queries.",
        data: bytes | None = None,
        name: str = "template.json",
    ) -> TemplateVersion:
        upload = self.upload(data if data is not None else manifest_bytes(version), name)
        return self(
            service.add_version,
            author or template.author,
            template.id,
            upload=upload,
            version=version,
            changelog=changelog,
        )
