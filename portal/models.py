"""Imports every model module so that ``Base.metadata`` knows all tables (migrations, tests)."""

from moderation import models as moderation_models  # noqa: F401
from portal.accounts import models as accounts_models  # noqa: F401
from portal.core import activity, identity, mail, notifications  # noqa: F401
