"""Old import path of :mod:`shrinkvec.sql.connection`, kept so existing imports work: this module *is* that one."""

import sys

from shrinkvec.sql import connection as _module
from shrinkvec.sql.connection import *  # noqa: F403  (the public names, for type checkers)

sys.modules[__name__] = _module
