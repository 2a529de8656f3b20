"""Old import path of :mod:`shrinkvec.transforms.adaptor_torch`, kept so existing imports work: this module *is* that one."""

import sys

from shrinkvec.transforms import adaptor_torch as _module
from shrinkvec.transforms.adaptor_torch import *  # noqa: F403  (the public names, for type checkers)

sys.modules[__name__] = _module
