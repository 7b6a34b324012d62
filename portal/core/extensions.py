"""Flask extensions shared by every feature, initialised by the app factory."""

from __future__ import annotations

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()
login_manager = LoginManager()
# When the Redis storage is away, each process counts in memory (the same limits, per process)
# and checks every few seconds whether Redis is back: pages keep working during an outage
# and sign-in stays limited. The timeouts keep a Redis that does not answer from holding a
# request; any other storage error is logged and the request is let through.
limiter = Limiter(
    key_func=get_remote_address,
    default_limits=[],
    in_memory_fallback_enabled=True,
    swallow_errors=True,
    storage_options={"socket_connect_timeout": 1, "socket_timeout": 1},
)


def per_signed_in_user() -> str:
    """A limit's key for pages only signed-in people reach: per person, not per address (an
    office behind one address is many people)."""
    from flask_login import current_user

    return f"user:{current_user.get_id()}"
