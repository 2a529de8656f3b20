"""shrinkvec: compact codes and two-stage search for pgvector tables."""

__version__ = "0.1.0"
