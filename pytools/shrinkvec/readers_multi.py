"""Old import path of :mod:`shrinkvec.load.readers.multi`, kept so existing imports work: this module *is* that one."""

import sys

from shrinkvec.load.readers import multi as _module
from shrinkvec.load.readers.multi import *  # noqa: F403  (the public names, for type checkers)

sys.modules[__name__] = _module
