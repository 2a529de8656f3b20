"""Old import path of :mod:`shrinkvec.sql.query`, kept so existing imports work: this module *is* that one."""

import sys

from shrinkvec.sql import query as _module
from shrinkvec.sql.query import *  # noqa: F403  (the public names, for type checkers)

sys.modules[__name__] = _module
