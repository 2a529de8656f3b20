"""Old import path of :mod:`shrinkvec.integrations.orm`, kept so existing imports work: this module *is* that one."""

import sys

from shrinkvec.integrations import orm as _module
from shrinkvec.integrations.orm import *  # noqa: F403  (the public names, for type checkers)

sys.modules[__name__] = _module
