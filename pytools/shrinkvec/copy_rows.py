"""Old import path of :mod:`shrinkvec.load.copy_rows`, kept so existing imports work: this module *is* that one."""

import sys

from shrinkvec.load import copy_rows as _module
from shrinkvec.load.copy_rows import *  # noqa: F403  (the public names, for type checkers)

sys.modules[__name__] = _module
