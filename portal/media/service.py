"""Images in posts.

An upload is accepted only if Pillow decodes it completely as PNG, JPEG, GIF or WebP within
size limits, and what is kept is Pillow's re-encoding of the pixels, never the bytes sent:
camera metadata (EXIF with GPS position, XMP, comments) is dropped, a phone photo is turned
upright by its EXIF orientation first, and a file that is also something else (an HTML or
script "polyglot") cannot survive the round trip. SVG is not accepted: it is a document that
can carry script. Who may *show* an image is the HTML policy's and the moderation rules'
business (``portal.core.html``: only ``/uploads/`` images, only in fields that keep images; a
new member's post with an image is held for review).
"""

from __future__ import annotations

import hashlib
import io
import re
import secrets
import warnings
from dataclasses import dataclass
from datetime import UTC, timedelta
from pathlib import PurePath
from typing import IO, Any

from flask_babel import lazy_gettext as _l
from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy import delete, func, inspect, or_, select, update
from sqlalchemy.orm import Session

from portal.core.db import utcnow
from portal.core.errors import DomainError, TooManyRequests
from portal.core.identity import User
from portal.core.storage import Storage, delete_unreferenced
from portal.media.models import ContentImage

AREA = "images"  # the folder of UPLOAD_DIR the files are kept in
FORMATS = {
    "PNG": ("image/png", "png"),
    "JPEG": ("image/jpeg", "jpg"),
    "GIF": ("image/gif", "gif"),
    "WEBP": ("image/webp", "webp"),
}
MAX_PIXELS = 40_000_000  # one frame: a 40-megapixel photo; decoding is bounded by it
MAX_ANIMATION_PIXELS = 200_000_000  # all frames of an animated GIF or WebP together
JPEG_QUALITY = 88
UPLOADS_PER_HOUR = 30  # per person: a post with a dozen screenshots is fine, a flood is not
_NAME = re.compile(r"^[0-9a-f]{32}\.(?:png|jpg|gif|webp)$")
_SHOWN = re.compile(r'<img src="/uploads/([0-9a-f]{32}\.(?:png|jpg|gif|webp))"')
UNCLAIMED_DAYS = 2
_ALT_UNSAFE = re.compile(r"[\[\]()\\<>*_`!\r\n\t]+")


class ImageRefused(DomainError):
    """Not an image the portal will keep: 422 naming the ``file`` field."""

    status_code = 422
    code = "image_refused"

    def __init__(self, message: object) -> None:
        super().__init__(str(message), field="file")


@dataclass(frozen=True)
class Encoded:
    data: bytes
    content_type: str
    extension: str
    width: int
    height: int


def reencode(data: bytes) -> Encoded:
    """The image drawn again by Pillow, without metadata (see the module docstring)."""
    not_an_image = _l("This is not an image the portal can show. Use PNG, JPEG, GIF or WebP.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=tuple(FORMATS)) as image:
                form = image.format or ""
                frames = getattr(image, "n_frames", 1)
                pixels = image.width * image.height
                if pixels > MAX_PIXELS or pixels * frames > MAX_ANIMATION_PIXELS:
                    raise ImageRefused(
                        _l(
                            "The image is too large: at most %(mp)d megapixels.",
                            mp=MAX_PIXELS // 1_000_000,
                        )
                    )
                return _encode(image, form, frames)
    except ImageRefused:
        raise
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
    ) as error:
        raise ImageRefused(not_an_image) from error


def _encode(image: Image.Image, form: str, frames: int) -> Encoded:
    content_type, extension = FORMATS[form]
    out = io.BytesIO()
    if frames > 1:  # animated GIF or WebP: every frame, with its timing, and nothing else
        image.save(out, form, save_all=True, loop=image.info.get("loop", 0))
        width, height = image.size
    else:
        upright = ImageOps.exif_transpose(image)
        if form == "JPEG":
            if upright.mode not in ("RGB", "L"):
                upright = upright.convert("RGB")
            upright.save(out, "JPEG", quality=JPEG_QUALITY)
        elif form == "WEBP":
            upright.save(out, "WEBP", quality=JPEG_QUALITY)
        else:
            upright.save(out, form)
        width, height = upright.size
    return Encoded(out.getvalue(), content_type, extension, width, height)


def store_image(
    session: Session,
    uploader: User,
    stream: IO[bytes],
    storage: Storage,
    max_bytes: int,
) -> ContentImage:
    """Read at most ``max_bytes`` (more is refused), re-encode, keep, and record; at most
    ``UPLOADS_PER_HOUR`` a person (429 with the wait), on every surface alike."""
    _check_upload_rate(session, uploader)
    data = stream.read(max_bytes + 1)
    if not data:
        raise ImageRefused(_l("The file is empty."))
    if len(data) > max_bytes:
        raise ImageRefused(
            _l("The image is larger than %(mb)s MB.", mb=f"{max_bytes / (1024 * 1024):g}")
        )
    encoded = reencode(data)
    handle, temp = storage.new_temp()
    try:
        with handle:
            handle.write(encoded.data)
        key = storage.commit(temp, hashlib.sha256(encoded.data).hexdigest())
    except BaseException:
        storage.discard(temp)
        raise
    image = ContentImage(
        name=f"{secrets.token_hex(16)}.{encoded.extension}",
        storage_key=key,
        content_type=encoded.content_type,
        width=encoded.width,
        height=encoded.height,
        size=len(encoded.data),
        uploader_id=uploader.id,
        organization_id=uploader.organization_id,
    )
    session.add(image)
    session.flush()
    return image


def _check_upload_rate(session: Session, uploader: User) -> None:
    since = utcnow() - timedelta(hours=1)
    recent = select(ContentImage.created_at).where(
        ContentImage.uploader_id == uploader.id, ContentImage.created_at > since
    )
    count = session.scalar(select(func.count()).select_from(recent.subquery())) or 0
    if count >= UPLOADS_PER_HOUR:
        oldest = session.scalar(select(func.min(recent.subquery().c.created_at)))
        if oldest is not None and oldest.tzinfo is None:  # SQLite: naive UTC
            oldest = oldest.replace(tzinfo=UTC)
        wait = (oldest - since).total_seconds() if oldest is not None else 60
        raise TooManyRequests(
            str(
                _l(
                    "You uploaded %(count)d images in the last hour. Try again in a while.",
                    count=count,
                )
            ),
            retry_after=int(wait) + 1,
            field="file",
        )


def find(session: Session, name: str) -> ContentImage | None:
    if not _NAME.match(name):
        return None
    return session.scalar(select(ContentImage).where(ContentImage.name == name))


def markdown_for(url: str, filename: str | None) -> str:
    """``![alt](url)`` with the file's name (without extension) as the alt text, which the
    writer can then improve: a screen reader says it, and it shows where images are dropped."""
    stem = PurePath(filename or "").stem
    alt = " ".join(_ALT_UNSAFE.sub(" ", stem).split())[:100] or "image"
    return f"![{alt}]({url})"


# --- which images are used ---------------------------------------------------------------------

_HTML_COLUMNS: dict[type, tuple[str, ...]] = {}


def _html_columns(model: type) -> tuple[str, ...]:
    """The stored-HTML columns of a model (``body_html``, ``description_html``...)."""
    found = _HTML_COLUMNS.get(model)
    if found is None:
        columns = inspect(model).column_attrs
        found = _HTML_COLUMNS[model] = tuple(c.key for c in columns if c.key.endswith("_html"))
    return found


def claim_shown_images(session: Session, _flush_context: Any) -> None:
    """After each flush: the images that saved posts now show are in use, and readable by
    whoever may read those posts. Every feature keeps a post's rendered HTML in a ``*_html``
    column, so no feature has to say which images it shows; a post says who reads it with an
    ``image_audience`` attribute: None when it is public, else the id of the one organization
    that (with staff) may read it. Rows without one (the review queue's copy of a post) claim
    an image but open it to no one.

    Audiences only widen, and only by the organization they belong to: an image is public
    once a public post shows it, unless a private post showed it first, in which case only a
    public post by that organization (a member publishing it on purpose) opens it; another
    organization's post cannot, whatever links it was given."""
    shown: set[str] = set()
    public: dict[int | None, set[str]] = {}  # by the organization of the post
    private: dict[int, set[str]] = {}
    for obj in (*session.new, *session.dirty):
        names: set[str] = set()
        for key in _html_columns(type(obj)):
            html = getattr(obj, key, None)
            if isinstance(html, str) and "/uploads/" in html:
                names.update(_SHOWN.findall(html))
        if not names:
            continue
        shown |= names
        if not hasattr(type(obj), "image_audience"):
            continue
        audience = obj.image_audience
        if audience is None:
            public.setdefault(getattr(obj, "organization_id", None), set()).update(names)
        else:
            private.setdefault(int(audience), set()).update(names)
    if not shown:
        return
    connection = session.connection()
    connection.execute(
        update(ContentImage)
        .where(ContentImage.name.in_(sorted(shown)), ContentImage.claimed_at.is_(None))
        .values(claimed_at=utcnow())
    )
    for organization_id, names in private.items():
        connection.execute(
            update(ContentImage)
            .where(
                ContentImage.name.in_(sorted(names)),
                ContentImage.is_public.is_(False),
                ContentImage.audience_organization_id.is_(None),
            )
            .values(audience_organization_id=organization_id)
        )
    for organization_id, names in public.items():
        connection.execute(
            update(ContentImage)
            .where(
                ContentImage.name.in_(sorted(names)),
                ContentImage.is_public.is_(False),
                or_(
                    ContentImage.audience_organization_id.is_(None),
                    ContentImage.audience_organization_id == organization_id,
                ),
            )
            .values(is_public=True)
        )


def may_see(viewer: User | None, image: ContentImage) -> bool:
    """Whether ``viewer`` may fetch ``image`` (else it is "not found", as the post would be):
    everyone a public image; its uploader (the editor's preview, before any post shows it),
    staff (the review queue), and the members of the organization whose private post shows
    it."""
    if image.is_public:
        return True
    if viewer is None or not viewer.is_authenticated or not viewer.is_active:
        return False
    return (
        viewer.is_staff
        or viewer.id == image.uploader_id
        or (
            image.audience_organization_id is not None
            and viewer.organization_id == image.audience_organization_id
        )
    )


def delete_unclaimed(session: Session) -> int:
    """Forget images no saved post showed within ``UNCLAIMED_DAYS`` of their upload (an
    abandoned draft's, an upload never used); their files go with the next file sweep."""
    cutoff = utcnow() - timedelta(days=UNCLAIMED_DAYS)
    return session.execute(
        delete(ContentImage).where(
            ContentImage.claimed_at.is_(None), ContentImage.created_at < cutoff
        )
    ).rowcount


def sweep_unreferenced_files(session: Session, storage: Storage) -> int:
    """Delete image files no row refers to any more (unclaimed images, the images of erased
    content, of deleted organizations)."""
    referenced = set(session.scalars(select(ContentImage.storage_key).distinct()))
    return delete_unreferenced(storage, referenced)
