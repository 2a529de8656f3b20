"""Old import path of :mod:`shrinkvec.evaluation.evaluate`, kept so existing imports work: this module *is* that one."""

import sys

from shrinkvec.evaluation import evaluate as _module
from shrinkvec.evaluation.evaluate import *  # noqa: F403  (the public names, for type checkers)

sys.modules[__name__] = _module
