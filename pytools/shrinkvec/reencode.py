"""Old import path of :mod:`shrinkvec.transforms.reencode`, kept so existing imports work: this module *is* that one."""

import sys

from shrinkvec.transforms import reencode as _module
from shrinkvec.transforms.reencode import *  # noqa: F403  (the public names, for type checkers)

sys.modules[__name__] = _module
