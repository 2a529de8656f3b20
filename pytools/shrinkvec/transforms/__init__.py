"""Learned maps of the vectors before they are coded: `transform` (the `Transform` record, its exact
reference application and its catalog rows), `fitting` (centering, PCA, the Matryoshka-Adaptor),
`adaptor` / `adaptor_torch` (the adaptor's trainers), `reencode` (re-coding a live table in the
background) and `adapt` (the `shrinkvec adapt` run that ties them together).

This package was the module `shrinkvec/transforms.py`; its names are kept here."""

from shrinkvec.transforms.transform import (
    KINDS,
    ROWS_PER_CHUNK,
    Transform,
    TransformError,
    TransformKind,
    load,
    make_name,
    next_version,
    save,
    verify,
)

__all__ = ["KINDS", "ROWS_PER_CHUNK", "Transform", "TransformError", "TransformKind", "load", "make_name",
           "next_version", "save", "verify"]
