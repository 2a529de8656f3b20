"""Old import path of :mod:`shrinkvec.sql.ddl`, kept so existing imports work: this module *is* that one."""

import sys

from shrinkvec.sql import ddl as _module
from shrinkvec.sql.ddl import *  # noqa: F403  (the public names, for type checkers)

sys.modules[__name__] = _module
