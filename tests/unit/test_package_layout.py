"""The package's layout: every module imports, the public names of `shrinkvec.__all__` resolve, the old
module paths are the new modules, and no module depends on itself through others.

The import graph is read from the source with `ast`: every `import` / `from ... import` of a shrinkvec
module anywhere in a module (at the top, under TYPE_CHECKING, or inside a function) is an edge, because a
deferred import is still a dependency; only the alias modules of the old paths are left out (they import
their new module and nothing else, and nothing inside the package imports them).
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import shrinkvec
from conftest import REPO

PACKAGE = Path(shrinkvec.__file__).parent

# old path -> the module it is now (shrinkvec.load and shrinkvec.transforms are packages that re-export
# the names of the old modules of that name)
ALIASES = {
    "sqlnames": "sql.names", "orm_names": "sql.orm_names", "connection": "sql.connection", "ddl": "sql.ddl",
    "query": "sql.query", "catalog": "sql.catalog", "profile_check": "sql.profile_check",
    "load_setup": "load.setup", "copy_rows": "load.copy_rows", "copy_multi": "load.copy_multi",
    "readers": "load.readers", "readers_multi": "load.readers.multi",
    "fitting": "transforms.fitting", "adaptor": "transforms.adaptor", "adaptor_torch": "transforms.adaptor_torch",
    "reencode": "transforms.reencode", "adapt": "transforms.adapt",
    "configs": "evaluation.configs", "metrics": "evaluation.metrics", "evaluate": "evaluation.evaluate",
    "tune": "evaluation.tune", "orm": "integrations.orm", "alembic_ops": "integrations.alembic_ops",
}


def module_files() -> dict[str, Path]:
    """Every module of the package (alias modules excluded) by dotted name."""
    out: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        name = ".".join(["shrinkvec", *parts])
        if len(parts) == 1 and parts[0] in ALIASES:
            continue
        out[name] = path
    return out


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    """The package's modules that module `name` imports (resolving relative imports, and `from pkg import
    mod` to the module)."""
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_pkg else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in modules and "." in t:  # `import shrinkvec.sql.ddl.x` -> the module part
                t = t.rsplit(".", 1)[0]
            if t in modules and t != name:
                found.add(t)
    return found


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    names = set(files)
    return {name: imports_of(name, path, names) for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_module_imports() -> None:
    for info in pkgutil.walk_packages(shrinkvec.__path__, "shrinkvec."):
        importlib.import_module(info.name)


def test_no_import_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 30  # the walk found the package
    assert cycles(graph) == []


def test_the_graph_walk_sees_a_cycle() -> None:
    """The check itself: a cycle through a deferred import is found."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_public_names_resolve() -> None:
    assert len(shrinkvec.__all__) == len(set(shrinkvec.__all__))
    assert set(shrinkvec.__all__) == {"__version__", *shrinkvec._EXPORTS}
    for name in shrinkvec.__all__:
        assert getattr(shrinkvec, name) is not None, name
    assert set(shrinkvec.__all__) <= set(dir(shrinkvec))


def test_old_paths_are_the_new_modules() -> None:
    for old, new in ALIASES.items():
        assert importlib.import_module(f"shrinkvec.{old}") is importlib.import_module(f"shrinkvec.{new}"), old
    from shrinkvec.load import LoadOptions, load
    from shrinkvec.load.loader import load as loader_load
    from shrinkvec.load.setup import LoadOptions as setup_options
    from shrinkvec.profile import Code
    from shrinkvec.transforms import Transform
    from shrinkvec.transforms.transform import Transform as transform_class

    assert load is loader_load and LoadOptions is setup_options and Transform is transform_class
    assert Code is importlib.import_module("shrinkvec.kinds.base").Code


@pytest.mark.parametrize("module", ["shrinkvec"])
def test_importing_the_package_is_cheap(module: str) -> None:
    """`import shrinkvec` loads no numpy, psycopg or SQLAlchemy: the public names load on first use."""
    code = (f"import sys; import {module}; heavy = sorted(m for m in ('numpy', 'psycopg', 'sqlalchemy', 'alembic') "
            "if m in sys.modules); print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_one_version_for_the_package_and_the_extension() -> None:
    """The package's version (pyproject reads it from shrinkvec.__version__) is the extension's default
    version, and the extension ships exactly that version's install script."""
    root = REPO
    control = (root / "extension" / "shrinkvec.control").read_text()
    versions = [line.split("'")[1] for line in control.splitlines() if line.startswith("default_version")]
    assert versions == [shrinkvec.__version__]
    installs = sorted(p.name for p in (root / "sql").glob("shrinkvec--*.sql") if p.name.count("--") == 1)
    assert installs == [f"shrinkvec--{shrinkvec.__version__}.sql"]
