"""Defaults for development; every setting can be overridden by a ``COCREATE_*`` variable.

``COCREATE_ENV=production`` turns on the production checks: a real secret key is required,
debug is refused and cookies are marked Secure.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

# Name -> (default, type). Each one is read from COCREATE_<NAME>.
SETTINGS: dict[str, tuple[Any, type]] = {
    "ENV": ("development", str),
    "SECRET_KEY": (None, str),
    "DATABASE_URL": (None, str),  # default: sqlite under the instance folder
    "BROKER_URL": ("", str),  # empty: tasks run inline
    # Redis hands an unacknowledged task to another worker after this many seconds; keep it
    # above the longest task (a recompute of every account) or that task runs twice.
    "BROKER_VISIBILITY_TIMEOUT": (3600, int),
    # Seconds a send waits for a Redis that accepts no connection or does not answer; the
    # task's task_outbox row stays for the flush, so a page never hangs on the broker.
    "BROKER_SOCKET_TIMEOUT": (1.0, float),
    "BROKER_RETRY_AFTER": (5.0, float),  # after a failed send, do not try Redis this long
    "TASK_OUTBOX_FLUSH_SECONDS": (30.0, float),  # how often beat sends what has not completed
    # A task not completed this long after its last send was lost by the broker (or failed,
    # or is stuck): the flush sends it again. Above a normal queue wait, or tasks run twice.
    "TASK_OUTBOX_GRACE_SECONDS": (600.0, float),
    # A row that failed this many sends is held (kept, logged) until `cocreate tasks flush`.
    "TASK_OUTBOX_MAX_ATTEMPTS": (100, int),
    "RATELIMIT_STORAGE_URI": ("", str),  # default: the Redis broker if any, else memory://
    "RATELIMIT_ENABLED": (True, bool),
    "SEARCH_INDEX_DIR": (None, str),
    # Compare the index with the database when a process starts (one count per kind).
    "SEARCH_STARTUP_CHECK": (True, bool),
    "UPLOAD_DIR": (None, str),
    "MAIL_BACKEND": ("outbox", str),  # outbox: kept for /dev/outbox; smtp: sent
    "MAIL_SERVER": ("localhost", str),
    "MAIL_PORT": (25, int),
    "MAIL_USERNAME": ("", str),
    "MAIL_PASSWORD": ("", str),
    "MAIL_USE_TLS": (False, bool),
    "MAIL_DEFAULT_SENDER": ("Cocreate <no-reply@cocreate.local>", str),
    "DEV_OUTBOX": (None, bool),  # default: on outside production
    "BASE_URL": ("http://127.0.0.1:5000", str),
    "PASSWORD_RESET_MAX_AGE": (3600, int),
    "EMAIL_CONFIRM_MAX_AGE": (3 * 24 * 3600, int),
    "INVITATION_DAYS": (14, int),
    "MAX_CONTENT_LENGTH": (25 * 1024 * 1024, int),
    "SESSION_LIFETIME_HOURS": (12, int),  # from signing in, whatever the activity
    "SESSION_IDLE_MINUTES": (30, int),  # without a request; 0 turns the idle timeout off
    "QA_LIST_CACHE_SECONDS": (None, float),  # default: 5, or 0 under TESTING
    "ROADMAP_BOARD_CACHE_SECONDS": (None, float),  # default: 5, or 0 under TESTING
    "GALLERY_LIST_CACHE_SECONDS": (None, float),  # default: 5, or 0 under TESTING
    "CS_PORTFOLIO_CACHE_SECONDS": (None, float),  # default: 5, or 0 under TESTING
    "USER_CACHE_SECONDS": (None, float),  # default: 5, or 0 under TESTING
    "MODERATION_QUEUE_CACHE_SECONDS": (None, float),  # default: 30, or 0 under TESTING
    "MODERATION_QUEUE_SYNC_SECONDS": (None, float),  # default: 1, or 0 under TESTING
    "RETENTION_ACTIVITY_DAYS": (730, int),  # 0 keeps forever
    "RETENTION_SEARCH_LOG_DAYS": (180, int),  # 0 keeps forever
    "RETENTION_OUTBOX_DAYS": (90, int),  # sent mail only; 0 keeps forever
    "GALLERY_MAX_UPLOAD_BYTES": (20 * 1024 * 1024, int),
    "MEDIA_MAX_IMAGE_BYTES": (5 * 1024 * 1024, int),  # an image in a post; Discourse: 4 MB
}

ENV_PREFIX = "COCREATE_"


class ConfigError(RuntimeError):
    """Raised when the app must not start with the configuration it was given."""


def _coerce(raw: str, kind: type) -> Any:
    if kind is bool:
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if kind in (int, float):
        return kind(raw)
    return raw


def load_config(instance_path: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge defaults, ``COCREATE_*`` environment variables and explicit overrides."""
    config: dict[str, Any] = {}
    for name, (default, kind) in SETTINGS.items():
        raw = os.environ.get(ENV_PREFIX + name)
        config[name] = _coerce(raw, kind) if raw is not None else default
    config.update(overrides or {})

    instance = Path(instance_path)
    production = config["ENV"] == "production"
    config.setdefault("TESTING", False)
    if not config["DATABASE_URL"]:
        config["DATABASE_URL"] = f"sqlite:///{instance / 'cocreate.db'}"
    if not config["SEARCH_INDEX_DIR"]:
        config["SEARCH_INDEX_DIR"] = str(instance / "search-index")
    if not config["UPLOAD_DIR"]:
        config["UPLOAD_DIR"] = str(instance / "uploads")
    if config["DEV_OUTBOX"] is None:
        config["DEV_OUTBOX"] = not production

    if production:
        key = config["SECRET_KEY"]
        if not key or len(key) < 32 or key.startswith("dev-"):
            raise ConfigError(
                "COCREATE_SECRET_KEY must be set to a random value of at least 32 characters "
                "in production (python -c 'import secrets; print(secrets.token_hex(32))')."
            )
        if os.environ.get("FLASK_DEBUG", "").lower() in {"1", "true"} or config.get("DEBUG"):
            raise ConfigError("Debug mode is never allowed in production.")
        config["DEBUG"] = False
    elif not config["SECRET_KEY"]:
        config["SECRET_KEY"] = _development_secret(instance)
    if not config["RATELIMIT_STORAGE_URI"]:
        broker = config["BROKER_URL"]
        if broker.startswith(("redis://", "rediss://")):
            config["RATELIMIT_STORAGE_URI"] = broker
        elif production and config["RATELIMIT_ENABLED"]:
            # In memory, each gunicorn worker counts alone (N workers: N times the limit) and a
            # restart forgets every lockout.
            raise ConfigError(
                "Set COCREATE_RATELIMIT_STORAGE_URI (or a Redis COCREATE_BROKER_URL) in "
                "production: in-memory rate limits are per process."
            )
        else:
            config["RATELIMIT_STORAGE_URI"] = "memory://"

    secure_cookies = production
    config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure_cookies,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=secure_cookies,
        REMEMBER_COOKIE_DURATION=14 * 24 * 3600,
        PERMANENT_SESSION_LIFETIME=config["SESSION_LIFETIME_HOURS"] * 3600,
        WTF_CSRF_TIME_LIMIT=3600,
        BABEL_DEFAULT_LOCALE="en",
        BABEL_DEFAULT_TIMEZONE="UTC",
        BOOTSTRAP_SERVE_LOCAL=True,
        RATELIMIT_HEADERS_ENABLED=True,
    )
    return config


def _development_secret(instance: Path) -> str:
    """A random key kept in the instance folder so sessions survive restarts in development."""
    instance.mkdir(parents=True, exist_ok=True)
    key_file = instance / "secret_key"
    if not key_file.exists():
        key_file.write_text("dev-" + secrets.token_hex(32))
        key_file.chmod(0o600)
    return key_file.read_text().strip()
