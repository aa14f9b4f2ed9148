"""Imports every domain's tables so that Alembic sees one complete metadata."""

from __future__ import annotations

from gridtokenx.accounts import models as _accounts  # noqa: F401
from gridtokenx.certificates import models as _certificates  # noqa: F401
from gridtokenx.core import models as _core  # noqa: F401
from gridtokenx.core.db import Base
from gridtokenx.market import models as _market  # noqa: F401
from gridtokenx.meters import models as _meters  # noqa: F401
from gridtokenx.readings import models as _readings  # noqa: F401
from gridtokenx.tokenization import models as _tokenization  # noqa: F401
from gridtokenx.wallets import models as _wallets  # noqa: F401

metadata = Base.metadata
