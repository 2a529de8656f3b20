"""The root of shrinkvec's user errors: bad input, a missing table, a profile that cannot be used.

Every error a user can cause and fix derives from ShrinkvecError, and the CLI turns exactly these (and
the database's own errors) into one-line messages; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class ShrinkvecError(Exception):
    """An error the user can fix; its message names the problem."""


class ServerError(ShrinkvecError, RuntimeError):
    """The embedded server could not be used (not installed, not running, failed to start); shrinkvec.server
    and shrinkvec.server_tcp raise it."""
