"""`python -m shrinkvec.cli`: the `shrinkvec` command."""

from shrinkvec.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
