"""What CityPass reported done, kept to notice a reorg deeper than the confirmations asked.

`tx.send_many` reports a transaction done only once its block has N blocks on top
(`--confirmations N`) and is still the chain's block at that height. A reorg deeper than N
can still take it out afterwards: no client can prevent that, but it must not go unnoticed.
So every transaction reported done with N >= 1 is written here (hash, block, block hash),
one JSON line each, under the work directory:

    <workdir>/reported/<chain id>.jsonl

and `check(chain)` (the CLI runs it before every command that opens such a chain) looks the
last WATCH of them up again. One that is no longer in its block is returned and said once:
re-running the command that sent it finishes it exactly once, because every CityPass write
is checked on chain before it is sent again (batch ids, payment references, voucher nonces,
pass states). The embedded chain cannot reorganise and keeps no such file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from citypass.errors import CityPassError

WATCH = 500  # the newest reported transactions looked up again by check()
KEEP = 2_000  # lines kept when the file is rewritten
FOLDER = "reported"


@dataclass(frozen=True)
class Reorged:
    """A transaction CityPass reported done that the chain no longer has in that block."""

    tx_hash: str
    block: int  # where it was when reported
    confirmations: int  # how deep it was asked to be then
    now_block: int | None  # mined again in another block (None: not in the chain now)
    pending: bool  # back in the node's pool (it may be mined again by itself)

    def sentence(self) -> str:
        where = (f"it is now in block {self.now_block}" if self.now_block is not None else
                 "it is back in the node's pool, waiting to be mined again" if self.pending else
                 "it is not in the chain any more")
        return (f"the chain reorganised deeper than {self.confirmations} confirmation(s): transaction {self.tx_hash}, "
                f"reported done in block {self.block}, left that block; {where}. Run the command that sent it again: "
                "CityPass checks on chain what is still needed, so it finishes exactly once")


def path(chain: Any) -> Path:
    return Path(chain.workdir) / FOLDER / f"{chain.chain_id}.jsonl"


def record(chain: Any, receipts: Sequence[dict[str, Any]], confirmations: int) -> None:
    """Appends the receipts (raw JSON-RPC form) reported done at `confirmations` blocks deep."""
    if getattr(chain, "embedded", False) or not receipts:
        return
    file = path(chain)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        with open(file, "a", encoding="utf-8") as out:
            for r in receipts:
                out.write(json.dumps({"tx": r["transactionHash"], "block": int(r["blockNumber"], 16),
                                      "hash": r["blockHash"], "confirmations": confirmations},
                                     separators=(",", ":")) + "\n")
    except OSError as exc:
        raise CityPassError(f"cannot write {file} (what was reported done, to notice deep reorgs): {exc}") from exc


def _entries(file: Path) -> list[dict[str, Any]]:
    out = []
    for line in file.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut off by a crash: only the watch list, not a record of truth
        if isinstance(entry, dict) and {"tx", "block", "hash"} <= entry.keys():
            out.append(entry)
    return out


def check(chain: Any, *, say: bool = True) -> list[Reorged]:
    """The newest WATCH reported transactions that are no longer in the block they were
    reported in (each said once through chain.say and then forgotten)."""
    file = path(chain)
    if getattr(chain, "embedded", False) or not file.exists():
        return []
    entries = _entries(file)
    watched = entries[-WATCH:]
    if not watched:
        return []
    answers = chain.rpc_batch([("eth_getTransactionReceipt", [e["tx"]]) for e in watched])
    numbers = sorted({int(a["blockNumber"], 16) for a in answers if a} | {e["block"] for e in watched})
    blocks = chain.rpc_batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
    canonical = {n: (b or {}).get("hash") for n, b in zip(numbers, blocks)}
    found: list[Reorged] = []
    gone: set[str] = set()
    lost = [(e, a) for e, a in zip(watched, answers) if canonical.get(e["block"]) != e["hash"]]
    pending = chain.rpc_batch([("eth_getTransactionByHash", [e["tx"]]) for e, a in lost]) if lost else []
    for (e, a), t in zip(lost, pending):
        now_block = int(a["blockNumber"], 16) if a and canonical.get(int(a["blockNumber"], 16)) == a["blockHash"] else None
        found.append(Reorged(e["tx"], e["block"], int(e.get("confirmations", 0)), now_block,
                             now_block is None and isinstance(t, dict) and not t.get("blockHash")))
        gone.add(e["tx"])
    if gone or len(entries) > KEEP:
        kept = [e for e in entries if e["tx"] not in gone][-KEEP:]
        tmp = file.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in kept), encoding="utf-8")
        os.replace(tmp, file)
    if say:
        for r in found:
            chain.say(r.sentence())
    return found


__all__ = ["Reorged", "check", "path", "record"]
