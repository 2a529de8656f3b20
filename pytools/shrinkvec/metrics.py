"""Old import path of :mod:`shrinkvec.evaluation.metrics`, kept so existing imports work: this module *is* that one."""

import sys

from shrinkvec.evaluation import metrics as _module
from shrinkvec.evaluation.metrics import *  # noqa: F403  (the public names, for type checkers)

sys.modules[__name__] = _module
