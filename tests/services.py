"""Real services the suite needs, and whether a missing one fails or skips the test.

Locally a missing PostgreSQL, Redis or Chromium skips the tests that need it; under CI
(``COCREATE_REQUIRE_SERVICES=1``, set by ``.ci/run``) it fails them instead.
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRED = os.environ.get("COCREATE_REQUIRE_SERVICES", "") == "1"


def missing(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"required service missing: {reason}", pytrace=False)
    pytest.skip(reason)


def chromium_path() -> str:
    path = (
        os.environ.get("CHROMIUM_PATH")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )
    if not path:
        missing("Chromium is not installed (apt-get install chromium)")
    return path  # type: ignore[return-value]


def redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        missing(f"Redis at {url} does not answer: {error}")
    return url
