"""Old import path of :mod:`shrinkvec.integrations.alembic_ops`, kept so existing imports work: this module *is* that one."""

import sys

from shrinkvec.integrations import alembic_ops as _module
from shrinkvec.integrations.alembic_ops import *  # noqa: F403  (the public names, for type checkers)

sys.modules[__name__] = _module
