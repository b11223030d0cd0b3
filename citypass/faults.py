"""Fault injection for the crash tests (tests/test_faults.py); does nothing unless asked.

`CITYPASS_FAULT=<point>:<n>` makes the process kill itself (SIGKILL: no clean-up, no
`finally`, like a power cut) the n-th time it reaches `point`. The points:

    before-send      signed, not yet handed to the node           (tx.submit)
    after-broadcast  handed to the node (each JSON-RPC batch)     (tx.submit)
    before-receipt   all handed to the node, no receipt read yet  (tx.collect)
    after-receipt    mined and seen, the caller not yet told      (tx.collect)
    between-batches  before an issuance transaction is checked    (issuance.execute)
"""

from __future__ import annotations

import os
import signal

POINTS = ("before-send", "after-broadcast", "before-receipt", "after-receipt", "between-batches")
_reached: dict[str, int] = {}


def fault_point(point: str) -> None:
    """Counts a visit to `point`; SIGKILLs this process on the visit CITYPASS_FAULT names."""
    spec = os.environ.get("CITYPASS_FAULT")
    if not spec:
        return
    name, _, nth = spec.rpartition(":")
    _reached[point] = _reached.get(point, 0) + 1
    if name == point and _reached[point] == int(nth):
        os.kill(os.getpid(), signal.SIGKILL)
