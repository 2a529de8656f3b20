"""Old import path of :mod:`shrinkvec.transforms.fitting`, kept so existing imports work: this module *is* that one."""

import sys

from shrinkvec.transforms import fitting as _module
from shrinkvec.transforms.fitting import *  # noqa: F403  (the public names, for type checkers)

sys.modules[__name__] = _module
