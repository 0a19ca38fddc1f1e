"""``python -m loadtests``: the same as the ``brink`` command."""

from loadtests.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
