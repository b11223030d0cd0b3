"""`citypass issue` as bench/throughput.py runs it: `python -m citypass`'s own entry point,
after writing down (to the file named first) the wall-clock time at which the interpreter had
started and imported the command, so the benchmark can tell start-up from the run itself."""

import json
import sys
import time
from pathlib import Path

from citypass.cli import main

Path(sys.argv[1]).write_text(json.dumps({"imported_at": time.time()}))
main(args=sys.argv[2:], prog_name="citypass")
