"""Domain errors: services raise these, one handler per surface turns them into 4xx."""

from __future__ import annotations


class DomainError(Exception):
    """A request that cannot be done as asked; the message is shown to the person."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    @property
    def fields(self) -> dict[str, list[str]]:
        return {self.field: [self.message]} if self.field else {}


class Invalid(DomainError):
    """Input that breaks a rule of the form (length, tags, a choice): 422 naming the field."""

    status_code = 422
    code = "validation_error"


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class PermissionDenied(DomainError):
    status_code = 403
    code = "forbidden"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


class TooManyRequests(DomainError):
    """A limit on how often a person may do something (posting per trust level): 429, and
    ``retry_after`` seconds until the next attempt can succeed, sent as Retry-After."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int, field: str | None = None) -> None:
        super().__init__(message, field)
        self.retry_after = max(1, int(retry_after))


class Unavailable(DomainError):
    """Something the request needs is briefly away (the search index being rebuilt): 503,
    with Retry-After."""

    status_code = 503
    code = "unavailable"

    def __init__(self, message: str, retry_after: int = 60) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class InvalidToken(DomainError):
    status_code = 400
    code = "invalid_token"
