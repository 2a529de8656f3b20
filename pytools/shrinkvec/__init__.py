"""shrinkvec: compact codes and two-stage search for pgvector tables.

The public API is `__all__` (docs/api.md describes it). The names load on first use, so `import shrinkvec`
stays cheap (no numpy, psycopg or SQLAlchemy until a name needs them). The subpackages hold the rest:
`sql` (names, connections, DDL, catalog, query builder), `load` (the loader and its readers), `transforms`
(centering, PCA, the Matryoshka-Adaptor, re-encoding, adapt), `evaluation` (configs, metrics, eval, tune),
`integrations` (SQLAlchemy, alembic), `kinds` (the code kinds), `cli`; `codes` is the numpy reference of
every code, `server` the embedded PostgreSQL.

The verbs that share their name with a module are called through it: `shrinkvec.load.load(...)`,
`shrinkvec.transforms.adapt.adapt(...)`, `shrinkvec.evaluation.tune.tune(...)`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The one place of the package version: pyproject.toml reads it (dynamic version), and it matches the
# extension's default_version (extension/shrinkvec.control).
__version__ = "0.5.0"

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "ShrinkvecError": "shrinkvec.errors",
    # profiles and code kinds
    "Profile": "shrinkvec.profile",
    "ProfileError": "shrinkvec.profile",
    "parse_codes": "shrinkvec.profile",
    "calibrate": "shrinkvec.profile",
    "Code": "shrinkvec.kinds.base",
    "CodeKind": "shrinkvec.kinds.base",
    "KindError": "shrinkvec.kinds.base",
    "CodeError": "shrinkvec.codes",
    # SQL: connections, catalog, queries
    "connect": "shrinkvec.sql.connection",
    "ExtensionMissing": "shrinkvec.sql.connection",
    "migrate": "shrinkvec.sql.catalog",
    "CatalogError": "shrinkvec.sql.profiles",
    "find_profile": "shrinkvec.sql.profiles",
    "save_profile": "shrinkvec.sql.profiles",
    "table_profile": "shrinkvec.sql.tables",
    "adopt": "shrinkvec.sql.tables",
    "TableError": "shrinkvec.sql.tables",
    "Plan": "shrinkvec.sql.query",
    "Stage": "shrinkvec.sql.query",
    "plan": "shrinkvec.sql.query",
    "search": "shrinkvec.sql.query",
    # loading
    "LoadOptions": "shrinkvec.load.setup",
    "LoadError": "shrinkvec.load.setup",
    "LoadResult": "shrinkvec.load.loader",
    "ReadError": "shrinkvec.load.readers.base",
    # transforms
    "Transform": "shrinkvec.transforms.transform",
    "TransformError": "shrinkvec.transforms.transform",
    "AdaptorConfig": "shrinkvec.transforms.adaptor",
    "AdaptOptions": "shrinkvec.transforms.adapt",
    "AdaptResult": "shrinkvec.transforms.adapt",
    "AdaptError": "shrinkvec.transforms.adapt",
    # evaluation
    "Config": "shrinkvec.evaluation.configs",
    "ConfigError": "shrinkvec.evaluation.configs",
    "Evaluator": "shrinkvec.evaluation.evaluate",
    "EvalError": "shrinkvec.evaluation.evaluate",
    # SQLAlchemy
    "two_stage": "shrinkvec.integrations.orm",
    "code_column": "shrinkvec.integrations.orm",
    "bits_column": "shrinkvec.integrations.orm",
    "prefix_column": "shrinkvec.integrations.orm",
    "int8_column": "shrinkvec.integrations.orm",
    "multibit_column": "shrinkvec.integrations.orm",
}

__all__ = [
    "__version__",
    "ShrinkvecError", "Profile", "ProfileError", "parse_codes", "calibrate", "Code", "CodeKind", "KindError",
    "CodeError", "connect", "ExtensionMissing", "migrate", "CatalogError", "find_profile", "save_profile",
    "table_profile", "adopt", "TableError", "Plan",
    "Stage", "plan", "search", "LoadOptions", "LoadError", "LoadResult", "ReadError", "Transform", "TransformError",
    "AdaptorConfig", "AdaptOptions", "AdaptResult", "AdaptError", "Config", "ConfigError", "Evaluator", "EvalError",
    "two_stage", "code_column", "bits_column", "prefix_column", "int8_column", "multibit_column",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use, and keep the name here."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'shrinkvec' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # the same names, for type checkers and editors
    from shrinkvec.codes import CodeError
    from shrinkvec.errors import ShrinkvecError
    from shrinkvec.evaluation.configs import Config, ConfigError
    from shrinkvec.evaluation.evaluate import EvalError, Evaluator
    from shrinkvec.integrations.orm import (
        bits_column,
        code_column,
        int8_column,
        multibit_column,
        prefix_column,
        two_stage,
    )
    from shrinkvec.kinds.base import Code, CodeKind, KindError
    from shrinkvec.load.loader import LoadResult
    from shrinkvec.load.readers.base import ReadError
    from shrinkvec.load.setup import LoadError, LoadOptions
    from shrinkvec.profile import Profile, ProfileError, calibrate, parse_codes
    from shrinkvec.sql.catalog import migrate
    from shrinkvec.sql.connection import ExtensionMissing, connect
    from shrinkvec.sql.profiles import CatalogError, find_profile, save_profile
    from shrinkvec.sql.query import Plan, Stage, plan, search
    from shrinkvec.sql.tables import TableError, adopt, table_profile
    from shrinkvec.transforms.adapt import AdaptError, AdaptOptions, AdaptResult
    from shrinkvec.transforms.adaptor import AdaptorConfig
    from shrinkvec.transforms.transform import Transform, TransformError
