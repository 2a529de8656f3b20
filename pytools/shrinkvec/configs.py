"""Old import path of :mod:`shrinkvec.evaluation.configs`, kept so existing imports work: this module *is* that one."""

import sys

from shrinkvec.evaluation import configs as _module
from shrinkvec.evaluation.configs import *  # noqa: F403  (the public names, for type checkers)

sys.modules[__name__] = _module
