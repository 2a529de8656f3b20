"""Old import path of :mod:`shrinkvec.load.setup`, kept so existing imports work: this module *is* that one."""

import sys

from shrinkvec.load import setup as _module
from shrinkvec.load.setup import *  # noqa: F403  (the public names, for type checkers)

sys.modules[__name__] = _module
