"""Two languages: English and Simplified Chinese.

Catalogs (``portal/translations/*/LC_MESSAGES/messages.po``) are compiled to ``.mo`` files in
the instance folder whenever a ``.po`` is newer, at app start: an install or a pull never
needs a manual compile step and a stale catalog is never served.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale
from babel import dates as babel_dates
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, g, has_request_context, request, session
from flask_babel import format_date, get_locale, get_timezone, get_translations
from flask_login import current_user

LOCALES = {"en": "English", "zh_CN": "简体中文"}
SOURCE_DIR = Path(__file__).resolve().parent.parent / "translations"


def compile_catalogs(target_dir: Path) -> Path:
    for po_path in SOURCE_DIR.glob("*/LC_MESSAGES/messages.po"):
        locale = po_path.parent.parent.name
        # Babel reads zh_CN as zh_Hans_CN and looks the catalog up under that name.
        mo_path = target_dir / str(Locale.parse(locale)) / "LC_MESSAGES" / "messages.mo"
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        mo_path.parent.mkdir(parents=True, exist_ok=True)
        with po_path.open("rb") as po_file:
            catalog = read_po(po_file, locale=locale)
        temporary = mo_path.with_suffix(".tmp")
        with temporary.open("wb") as mo_file:
            write_mo(mo_file, catalog)
        temporary.replace(mo_path)
    return target_dir


def normalize_locale(value: str | None) -> str | None:
    if not value:
        return None
    value = value.replace("-", "_")
    if value in LOCALES:
        return value
    if value.lower().startswith("zh"):
        return "zh_CN"
    if value.lower().startswith("en"):
        return "en"
    return None


def select_locale() -> str:
    """The profile's language, else the one chosen in the switcher, else Accept-Language."""
    if not has_request_context():
        return "en"  # tasks and the CLI choose a language explicitly with force_locale
    if current_user and current_user.is_authenticated:
        chosen = normalize_locale(current_user.locale)
        if chosen:
            return chosen
    chosen = normalize_locale(session.get("locale"))
    if chosen:
        return chosen
    best = request.accept_languages.best_match(["en", "zh_CN", "zh-CN", "zh"])
    return normalize_locale(best) or "en"


def current_locale() -> str:
    """The active UI language as one of LOCALES' keys (Babel may say zh_Hans_CN)."""
    locale = get_locale()
    return "zh_CN" if locale is not None and locale.language == "zh" else "en"


def minute_text(value: datetime, locale: Locale, zone: tzinfo) -> str:
    """A moment to the minute in ``zone``, in the locale's own order: the medium date and the
    short time ("Nov 27, 2026, 7:23 PM", "2026年11月27日 19:23"). Unambiguous where the short
    date is not (7/8/26), and no seconds: they are noise on a page."""
    local = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(zone)
    pattern = str(locale.datetime_formats["medium"])  # "{1}, {0}": date, then time
    return pattern.format(
        babel_dates.format_time(local, "short", locale=locale),
        babel_dates.format_date(local, "medium", locale=locale),
    )


def when(value: datetime | None) -> str:
    """The ``datetime`` filter: ``minute_text`` in the reader's language and time zone."""
    if not value:
        return ""
    return minute_text(value, get_locale(), get_timezone())


def day(value: date | str | None) -> str:
    """A day as people read it ("Nov 27, 2026", "2026年11月27日"): a date, a datetime (in the
    reader's time zone) or an ISO day ("2026-11-27") kept as a data key."""
    if not value:
        return ""
    return format_date(date.fromisoformat(value) if isinstance(value, str) else value, "medium")


def in_zone(moment: datetime, timezone: str | None) -> datetime:
    """``moment`` in a person's time zone (a user's ``timezone``), so that a day or a week
    means theirs and not UTC's; an unknown or empty zone name reads as UTC."""
    try:
        return moment.astimezone(ZoneInfo(timezone or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        return moment.astimezone(UTC)


def select_timezone() -> str | None:
    if has_request_context() and current_user and current_user.is_authenticated:
        return current_user.timezone
    return None


def _translations() -> Any:
    """Flask-Babel's translations, remembered for the current locale object of this context.

    Flask-Babel looks the locale and the catalog up again on every ``_()`` (about 25 µs each,
    a third of a simple page). ``force_locale`` swaps the locale object, so an identity check
    is enough to stay right inside it.
    """
    state = getattr(g, "_flask_babel", None)
    locale = getattr(state, "babel_locale", None)
    if locale is None:
        return get_translations()
    remembered = getattr(state, "cocreate_translations", None)
    if remembered is not None and remembered[0] is locale:
        return remembered[1]
    translations = get_translations()
    state.cocreate_translations = (locale, translations)
    return translations


def _template_gettext(string: str) -> str:
    return _translations().ugettext(string)


def _template_ngettext(singular: str, plural: str, n: int) -> str:
    return _translations().ungettext(singular, plural, n)


def init_app(app: Flask) -> None:
    from flask_babel import Babel

    target = compile_catalogs(Path(app.instance_path) / "translations")
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(target)
    Babel(app, locale_selector=select_locale, timezone_selector=select_timezone)
    # Templates translate through the remembered catalog (Jinja formats and escapes).
    app.jinja_env.install_gettext_callables(_template_gettext, _template_ngettext, newstyle=True)
    app.jinja_env.globals["LOCALES"] = LOCALES
