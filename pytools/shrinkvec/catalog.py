"""Old import path of :mod:`shrinkvec.sql.catalog`, kept so existing imports work: this module *is* that one."""

import sys

from shrinkvec.sql import catalog as _module
from shrinkvec.sql.catalog import *  # noqa: F403  (the public names, for type checkers)

sys.modules[__name__] = _module
