"""Old import path of :mod:`shrinkvec.sql.orm_names`, kept so existing imports work: this module *is* that one."""

import sys

from shrinkvec.sql import orm_names as _module
from shrinkvec.sql.orm_names import *  # noqa: F403  (the public names, for type checkers)

sys.modules[__name__] = _module
