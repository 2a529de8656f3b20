"""Everything that writes or reads SQL: `names` (qualified functions and operators of the extensions),
`connection` (connections with a pinned search_path), `ddl` (code columns, the codes trigger, indexes),
`catalog` (the `shrinkvec` catalog schema: migrations and profile rows), `profile_check` (the column
types a profile expects), `query` (the two-stage / funnel query builder) and `orm_names` (the same
qualified names as SQLAlchemy expressions)."""
