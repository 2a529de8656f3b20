"""catalog revisions."""
