"""Old import path of :mod:`shrinkvec.transforms.adapt`, kept so existing imports work: this module *is* that one."""

import sys

from shrinkvec.transforms import adapt as _module
from shrinkvec.transforms.adapt import *  # noqa: F403  (the public names, for type checkers)

sys.modules[__name__] = _module
