"""`python -m citypass ...` is the `citypass` command."""

from citypass.cli import main

main(prog_name="citypass")
