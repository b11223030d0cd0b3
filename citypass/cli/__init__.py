"""The `citypass` command line: a thin face over the library.

`main` (the root group, set-up and admin commands) is in `main.py`; issuance, vouchers,
redemption and finance commands are in `ops.py`; options, output and account resolution
shared by both are in `common.py`. Nothing here imports the rest of the CLI back.
"""

from citypass.cli.main import main, run_cli

__all__ = ["main", "run_cli"]
