"""shrinkvec inside other libraries: `orm` (SQLAlchemy code columns and `two_stage`) and `alembic_ops`
(alembic `op` helpers for code columns and indexes, and autogenerate rendering)."""
