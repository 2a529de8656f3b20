"""Old import path of :mod:`shrinkvec.sql.names`, kept so existing imports work: this module *is* that one."""

import sys

from shrinkvec.sql import names as _module
from shrinkvec.sql.names import *  # noqa: F403  (the public names, for type checkers)

sys.modules[__name__] = _module
