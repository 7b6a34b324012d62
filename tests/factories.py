"""factory_boy factories; ``bind`` points them at the test's session."""

from __future__ import annotations

from typing import Any

import factory
from sqlalchemy.orm import Session

from portal.core.db import utcnow
from portal.core.identity import Organization, OrganizationDomain, OrgKind, Role, User, UserRole
from portal.core.security import hash_password

PASSWORD = "correct-horse-battery-42"
_PASSWORD_HASH = hash_password(PASSWORD)  # hashed once: argon2id is slow on purpose


class _Base(factory.alchemy.SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_persistence = "flush"


def bind(session: Session) -> None:
    for model_factory in (OrganizationFactory, VendorFactory, DomainFactory, UserFactory):
        model_factory._meta.sqlalchemy_session = session


class OrganizationFactory(_Base):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Customer {n}")
    slug = factory.Sequence(lambda n: f"customer-{n}")
    kind = OrgKind.CUSTOMER


class VendorFactory(OrganizationFactory):
    name = "Vendor"
    slug = factory.Sequence(lambda n: f"vendor-{n}")
    kind = OrgKind.VENDOR


class DomainFactory(_Base):
    class Meta:
        model = OrganizationDomain

    organization = factory.SubFactory(OrganizationFactory)
    domain = factory.Sequence(lambda n: f"customer{n}.example")
    verified = True


class UserFactory(_Base):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    display_name = factory.Sequence(lambda n: f"User {n}")
    password_hash = _PASSWORD_HASH
    organization = factory.SubFactory(OrganizationFactory)
    email_confirmed_at = factory.LazyFunction(utcnow)
    locale = "en"

    @factory.post_generation
    def roles(self, create: bool, extracted: Any, **kwargs: Any) -> None:
        for role in extracted or (Role.MEMBER,):
            self.role_grants.append(UserRole(role=str(role)))
        if create:
            UserFactory._meta.sqlalchemy_session.flush()


def staff(role: Role, **kwargs: Any) -> User:
    """A vendor staff member with ``role``."""
    org = kwargs.pop("organization", None) or VendorFactory()
    return UserFactory(organization=org, roles=[role], **kwargs)
