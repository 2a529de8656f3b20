"""alembic scripts of the shrinkvec catalog (packaged as shrinkvec._migrations)."""
