"""Passwords, signed links and random tokens: the one place each is done."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from flask_babel import lazy_gettext as _l
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from portal.core.errors import DomainError, InvalidToken

# OWASP's argon2id minimum, one of its equivalent lines: 19 MiB, 2 passes, 1 lane.
ARGON2_MEMORY_KIB = 19 * 1024
ARGON2_TIME_COST = 2
ARGON2_PARALLELISM = 1
PASSWORD_MIN_LENGTH = 10
# Hashing is deliberately slow; an unbounded input would make it a denial-of-service lever.
PASSWORD_MAX_LENGTH = 4096

_hasher = PasswordHasher(
    time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB, parallelism=ARGON2_PARALLELISM
)
# Verified against when the account does not exist, so timing does not reveal which do.
_DUMMY_HASH = _hasher.hash("not-a-real-password-for-timing")


@cache
def _common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def password_problem(password: str, email: str = "") -> str | None:
    """Why ``password`` is not acceptable, in words for the person, or None."""
    if len(password) < PASSWORD_MIN_LENGTH:
        return str(_l("Use at least %(n)d characters.", n=PASSWORD_MIN_LENGTH))
    if len(password) > PASSWORD_MAX_LENGTH:
        return str(_l("Use at most %(n)d characters.", n=PASSWORD_MAX_LENGTH))
    lowered = password.lower()
    if lowered in _common_passwords():
        return str(_l("This password is too common; choose one that is harder to guess."))
    if email and lowered == email.lower():
        return str(_l("Your password must differ from your email address."))
    if len(set(password)) < 4:
        return str(_l("This password is too easy to guess; mix more different characters."))
    return None


def validate_password(password: str, email: str = "", field: str = "password") -> None:
    problem = password_problem(password, email)
    if problem:
        raise DomainError(problem, field=field)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    if len(password) > PASSWORD_MAX_LENGTH:
        return False
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def password_needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=f"cocreate.{purpose}")


def sign(purpose: str, payload: Any) -> str:
    """A signed, timestamped link token for ``purpose`` (tokens of one purpose open no other)."""
    return _serializer(purpose).dumps(payload)


def unsign(purpose: str, token: str, max_age: int) -> Any:
    try:
        return _serializer(purpose).loads(token, max_age=max_age)
    except SignatureExpired as error:
        raise InvalidToken(str(_l("This link has expired. Ask for a new one."))) from error
    except BadSignature as error:
        raise InvalidToken(str(_l("This link is not valid. Ask for a new one."))) from error


def fingerprint(value: str) -> str:
    """A short digest that changes when ``value`` changes (binds a link to a password)."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def new_secret_token(prefix: str = "") -> tuple[str, str]:
    """A random token to hand out once, and the digest to store instead of it."""
    token = prefix + secrets.token_urlsafe(32)
    return token, token_digest(token)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same_digest(a: str, b: str) -> bool:
    return hmac.compare_digest(a, b)
