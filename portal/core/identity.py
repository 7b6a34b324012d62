"""Who is who: organizations, users and their roles.

A user belongs to exactly one organization: a customer company, or the vendor's own staff
organization. Roles are a set per user; staff roles only make sense in the vendor org.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_login import UserMixin
from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.core.db import Base, utcnow


class OrgKind(enum.StrEnum):
    CUSTOMER = "customer"
    VENDOR = "vendor"


class Role(enum.StrEnum):
    MEMBER = "member"
    ORG_ADMIN = "org_admin"
    MODERATOR = "moderator"
    CSM = "csm"
    PRODUCT_MANAGER = "product_manager"
    VENDOR_ADMIN = "vendor_admin"


CUSTOMER_ROLES = frozenset({Role.MEMBER, Role.ORG_ADMIN})
STAFF_ROLES = frozenset({Role.MODERATOR, Role.CSM, Role.PRODUCT_MANAGER, Role.VENDOR_ADMIN})


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default=OrgKind.CUSTOMER)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    domains: Mapped[list[OrganizationDomain]] = relationship(
        back_populates="organization",
        cascade="all, delete-orphan",
        order_by="OrganizationDomain.domain",
    )
    users: Mapped[list[User]] = relationship(back_populates="organization")

    @property
    def is_vendor(self) -> bool:
        return self.kind == OrgKind.VENDOR

    def __repr__(self) -> str:
        return f"<Organization {self.slug}>"


class OrganizationDomain(Base):
    """An email domain; a verified one lets people with that address join on their own."""

    __tablename__ = "organization_domains"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    domain: Mapped[str] = mapped_column(String(253), unique=True)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)

    organization: Mapped[Organization] = relationship(back_populates="domains")


# Stored as the name of an erased account; pages show it in the reader's language.
ERASED_NAME = "Deleted user"
ERASED_LABEL = _l("Deleted user")


@dataclass(frozen=True)
class AuthorRef:
    """A post's author as lists read them, in plain columns beside each row (building a User
    per row cost lists more than their query): enough to name them and link their profile."""

    id: int
    display_name: str
    organization_name: str | None
    active: bool = True  # a deactivated or erased account's profile is not linked

    @classmethod
    def of(cls, row: Any) -> AuthorRef | None:
        """From a list's row with ``author_id``, ``author_name``, ``author_active`` and
        ``organization_name`` columns; None where the post has no author."""
        if not row.author_id:
            return None
        return cls(row.author_id, row.author_name, row.organization_name, row.author_active)


def shown_name(person: User | AuthorRef | str | None) -> str:
    """A person's name as pages show it (``{{ user|person_name }}``): an erased account's
    stored placeholder becomes the reader's language. Takes a user or a name read from a
    query, since lists read names as plain columns."""
    if person is None:
        return ""
    name = person if isinstance(person, str) else person.display_name
    return str(ERASED_LABEL) if name == ERASED_NAME else name


class User(UserMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stored lower-cased, so the unique constraint is case-insensitive on every backend.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(80))
    password_hash: Mapped[str] = mapped_column(String(255))
    locale: Mapped[str] = mapped_column(String(10), default="en")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    email_confirmed_at: Mapped[datetime | None]
    # Owned by moderation (0-4); kept here so every feature can read it cheaply.
    trust_level: Mapped[int] = mapped_column(Integer, default=0)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_sign_in_at: Mapped[datetime | None]
    # Set when the account was erased (GDPR/PIPL): the row stays so that votes and other
    # aggregates stay correct, with the personal fields replaced.
    erased_at: Mapped[datetime | None]

    organization: Mapped[Organization] = relationship(back_populates="users", lazy="joined")
    role_grants: Mapped[list[UserRole]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def is_active(self) -> bool:  # flask-login refuses inactive users
        return self.active

    @property
    def roles(self) -> frozenset[Role]:
        return frozenset(Role(grant.role) for grant in self.role_grants)

    @property
    def is_staff(self) -> bool:
        return bool(self.roles & STAFF_ROLES) and self.organization.is_vendor

    def has_role(self, *roles: Role) -> bool:
        return bool(self.roles & set(roles))

    def __repr__(self) -> str:
        return f"<User {self.email}>"


class UserRole(Base):
    """A membership role held by a user in their organization."""

    __tablename__ = "user_roles"
    __table_args__ = (UniqueConstraint("user_id", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(32))

    user: Mapped[User] = relationship(back_populates="role_grants")
