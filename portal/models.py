"""Imports every model module so that ``Base.metadata`` knows all tables (migrations, tests)."""

from cs_metrics import models as cs_models  # noqa: F401
from moderation import models as moderation_models  # noqa: F401
from portal.accounts import models as accounts_models  # noqa: F401
from portal.core import activity, consent, identity, mail, notifications, tasks  # noqa: F401
from portal.gallery import models as gallery_models  # noqa: F401
from portal.kb import models as kb_models  # noqa: F401
from portal.media import models as media_models  # noqa: F401
from portal.privacy import models as privacy_models  # noqa: F401
from portal.qa import models as qa_models  # noqa: F401
from portal.roadmap import models as roadmap_models  # noqa: F401
from portal.search import models as search_models  # noqa: F401
