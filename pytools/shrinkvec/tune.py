"""Old import path of :mod:`shrinkvec.evaluation.tune`, kept so existing imports work: this module *is* that one."""

import sys

from shrinkvec.evaluation import tune as _module
from shrinkvec.evaluation.tune import *  # noqa: F403  (the public names, for type checkers)

sys.modules[__name__] = _module
