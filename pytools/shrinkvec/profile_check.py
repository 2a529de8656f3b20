"""Old import path of :mod:`shrinkvec.sql.profile_check`, kept so existing imports work: this module *is* that one."""

import sys

from shrinkvec.sql import profile_check as _module
from shrinkvec.sql.profile_check import *  # noqa: F403  (the public names, for type checkers)

sys.modules[__name__] = _module
