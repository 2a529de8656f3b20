"""Old import path of :mod:`shrinkvec.load.readers`, kept so existing imports work: this module *is* that one."""

import sys

from shrinkvec.load import readers as _module
from shrinkvec.load.readers import *  # noqa: F403  (the public names, for type checkers)

sys.modules[__name__] = _module
