"""Loading embedding files into profiled tables: `loader` (the `shrinkvec load` run: batches, checks,
rejects, resume), `setup` (the target table and its profile), `copy_rows` / `copy_multi` (binary COPY
of single vectors and of token-vector documents) and `readers` (the file formats).

`shrinkvec.load.load` and `shrinkvec.load.LoadOptions` are the entry points (this package was the module
`shrinkvec/load.py`, whose names it keeps)."""

from shrinkvec.load.loader import STAGE_TABLE, LoadResult, default_reject_file, load
from shrinkvec.load.setup import LoadError, LoadOptions, Target, prepare_target

__all__ = ["STAGE_TABLE", "LoadError", "LoadOptions", "LoadResult", "Target", "default_reject_file", "load",
           "prepare_target"]
